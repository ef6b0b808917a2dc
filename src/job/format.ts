/**
 * The job file format (format 1; documented in man/zcq-spool.5). A job file is untrusted input: anyone who
 * can write the spool can write one, so `parseJob` checks every field's type and bounds before the worker
 * acts on it, and a file that fails is quarantined, never trusted and never deleted.
 *
 * The state of a job is the folder its file sits in, not any field of the file: a person may `mv` a file
 * between folders and the fields (result, failure) are then history, not state.
 */
import { hostname } from 'node:os';

// Looked up once: os.hostname() is a system call, and put is a hot path.
const HOST = hostname();

/** What a job id (or a file name made from it) may contain: no path separators, no leading dot. */
export const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$/;
import { checkJsonShape } from './json-limits.js';
import { JOB_DEFAULTS } from '../defaults.js';

export const JOB_FORMAT = 1;

export type InterruptPolicy = 'retry' | 'fail';
export type Outcome = 'done' | 'failed' | 'retry' | 'interrupted' | 'timeout' | 'cancelled' | 'deadline';

export interface Backoff {
  /** exponential: base·2^(n-1) with full jitter, capped at maxMs; fixed: always baseMs. */
  kind: 'exponential' | 'fixed';
  baseMs: number;
  maxMs: number;
}

export interface Attempt {
  attempt: number;
  worker: string;
  host: string;
  pid: number;
  start: string;
  end?: string;
  outcome?: Outcome;
  error?: string;
}

export interface Failure {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  /** why the job ended in failed/: 'error', 'timeout', 'cancelled', 'deadline passed', 'worker lost', … */
  reason: string;
}

export interface Job {
  zcq: typeof JOB_FORMAT;
  id: string;
  /** `module#export`, resolved against the worker's roots. */
  fn: string;
  args: unknown[];
  queue: string;
  created: string;
  createdBy: { host: string; pid: number };
  /** Attempts started so far. */
  attempts: number;
  /** Further attempts allowed after a failure (0 = run once). */
  retries: number;
  backoff: Backoff;
  timeoutMs: number | null;
  /** Latest start time (ISO); a job not started by then fails with reason "deadline passed". */
  deadline: string | null;
  /** Earliest start time (ISO); set while the job waits in deferred/. */
  notBefore: string | null;
  onInterrupt: InterruptPolicy;
  maxInterrupts: number;
  interrupts: number;
  history: Attempt[];
  result?: unknown;
  failure?: Failure;
  finished?: string;
  /**
   * The run that wrote this record: `LEASE/SEQ`, the claim it ended (every record finish writes, final or a
   * retry). Recovery compares it with the claim a file sits under to tell a record not yet moved from an
   * older record moved back by hand.
   */
  run?: string;
  /** Composite jobs (issue 12; see man/zcq-spool.5). Jobs this one waits for: it sits in waiting/ until they end. */
  after?: string[];
  /** Run once the jobs in `after` ended, whatever their outcome (otherwise a failed one fails this job: "dependency failed"). */
  afterAnyOutcome?: boolean;
  /** Callback put when this job is done: `fn(result, id)`. */
  then?: CallbackSpec;
  /** Callback put when this job failed for good: `fn(failure, id)`. */
  catch?: CallbackSpec;
  /** Member `index` of a parallel or serial group of `size`, whose postprocess job is `post`. */
  group?: GroupRef;
  /** The postprocess of group `gid`: it waits in waiting/ until every member ended, then runs with their entries. */
  postprocessOf?: { gid: string; size: number };
  /** The job that created this one (currentJob().put/parallel/serial). */
  parent?: string;
  /** This job returned a composite: it waits (in waiting/) for that composite's postprocess and takes its outcome. */
  awaits?: string;
  /** 0 (first) to 9 (last), default 5: where the job waits in pending/QUEUE/ (a folder per priority). */
  priority?: number;
  /** Named quotas the job holds a slot of while it runs (quotas/NAME/, spool/quota.ts). */
  quotas?: string[];
  /** Fields this version does not know are kept as they are. */
  [extra: string]: unknown;
}

/** A callback job to put when a job ends: its function, and optionally its queue (the parent's by default) and retries (5). */
export interface CallbackSpec { fn: string; queue?: string; retries?: number }

export interface GroupRef {
  gid: string;
  kind: 'parallel' | 'serial';
  index: number;
  size: number;
  /** The postprocess job's id and queue. */
  post: string;
  postQueue: string;
}

/** The largest composite group (members): the fan-in tree and group.json stay bounded. */
export const MAX_GROUP_SIZE = 1_000_000;
/** The most dependencies (`after`) one job may list. */
export const MAX_AFTER = 1000;

export const DEFAULT_BACKOFF: Backoff = { ...JOB_DEFAULTS.backoff };
export const DEFAULT_MAX_INTERRUPTS: number = JOB_DEFAULTS.maxInterrupts;
const MAX_HISTORY = 100;
/** The longest timeout or backoff delay a job file may hold (a year). */
export const MAX_DELAY_MS = 365 * 86_400_000;

export interface NewJobFields {
  id: string;
  fn: string;
  args?: unknown[];
  queue?: string;
  retries?: number;
  backoff?: Backoff;
  timeoutMs?: number | null;
  deadline?: string | null;
  notBefore?: string | null;
  onInterrupt?: InterruptPolicy;
  maxInterrupts?: number;
  created?: string;
  priority?: number;
  quotas?: string[];
}

export function newJob(f: NewJobFields): Job {
  return {
    zcq: JOB_FORMAT,
    id: f.id,
    fn: f.fn,
    args: f.args ?? [],
    queue: f.queue ?? 'default',
    created: f.created ?? new Date().toISOString(),
    createdBy: { host: HOST, pid: process.pid },
    attempts: 0,
    retries: f.retries ?? 0,
    backoff: f.backoff ?? DEFAULT_BACKOFF,
    timeoutMs: f.timeoutMs ?? null,
    deadline: f.deadline ?? null,
    notBefore: f.notBefore ?? null,
    onInterrupt: f.onInterrupt ?? 'retry',
    maxInterrupts: f.maxInterrupts ?? DEFAULT_MAX_INTERRUPTS,
    interrupts: 0,
    history: [],
    ...(f.priority !== undefined && f.priority !== DEFAULT_PRIORITY ? { priority: f.priority } : {}),
    ...(f.quotas && f.quotas.length > 0 ? { quotas: f.quotas } : {}),
  };
}

/** `module#export`: a module specifier without NUL or newline, and a JavaScript identifier. */
export const FN_REF = /^([^#\0\n\r]{1,1024})#([A-Za-z_$][A-Za-z0-9_$]{0,200})$/;
export const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A quota's name: as a queue's. */
export const QUOTA_NAME = QUEUE_NAME;
/** Priorities: 0 is taken first, 9 last; a job without one (or moved by hand into pending/QUEUE/) is 5. */
export const DEFAULT_PRIORITY = 5;
export const MAX_PRIORITY = 9;
/** Quotas one job may hold at once. */
export const MAX_JOB_QUOTAS = 8;

export class JobFormatError extends Error {}

function isIsoTime(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 64 && !Number.isNaN(Date.parse(v));
}
function isCount(v: unknown, max = 1_000_000): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

/**
 * Parse and check a job file's text. `expectedId`, when given, is the id taken from the file name: the
 * name wins over a field that disagrees (the folder and the name are the truth), so a mismatch is an error.
 * Missing optional fields get their defaults so that hand-written job files work.
 */
export function parseJob(text: string, expectedId?: string): Job {
  checkJsonShape(text);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new JobFormatError(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JobFormatError('not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.zcq !== undefined && o.zcq !== JOB_FORMAT) throw new JobFormatError(`job format ${JSON.stringify(o.zcq)} is not ${JOB_FORMAT}`);
  const id = o.id ?? expectedId;
  if (typeof id !== 'string' || !SAFE_NAME.test(id)) throw new JobFormatError('"id" is missing or not a safe name ([A-Za-z0-9._@-], no leading dot)');
  if (expectedId !== undefined && id !== expectedId) throw new JobFormatError(`"id" is ${JSON.stringify(id)} but the file is named for ${JSON.stringify(expectedId)}`);
  if (typeof o.fn !== 'string' || !FN_REF.test(o.fn)) throw new JobFormatError('"fn" must be "module#export" (an identifier after #)');
  const args = o.args ?? [];
  if (!Array.isArray(args)) throw new JobFormatError('"args" must be an array');
  const queue = o.queue ?? 'default';
  if (typeof queue !== 'string' || !QUEUE_NAME.test(queue)) throw new JobFormatError('"queue" must be a name of [A-Za-z0-9._-], at most 64 characters');
  const created = o.created ?? new Date(0).toISOString();
  if (!isIsoTime(created)) throw new JobFormatError('"created" must be an ISO 8601 time');
  const attempts = o.attempts ?? 0;
  if (!isCount(attempts)) throw new JobFormatError('"attempts" must be a non-negative integer');
  const retries = o.retries ?? 0;
  if (!isCount(retries, 10_000)) throw new JobFormatError('"retries" must be an integer from 0 to 10000');
  const timeoutMs = o.timeoutMs ?? null;
  if (timeoutMs !== null && !(isCount(timeoutMs, MAX_DELAY_MS) && timeoutMs > 0)) throw new JobFormatError('"timeoutMs" must be null or a positive integer of milliseconds');
  for (const k of ['deadline', 'notBefore'] as const) {
    if (o[k] !== undefined && o[k] !== null && !isIsoTime(o[k])) throw new JobFormatError(`"${k}" must be null or an ISO 8601 time`);
  }
  const onInterrupt = o.onInterrupt ?? 'retry';
  if (onInterrupt !== 'retry' && onInterrupt !== 'fail') throw new JobFormatError('"onInterrupt" must be "retry" or "fail"');
  const maxInterrupts = o.maxInterrupts ?? DEFAULT_MAX_INTERRUPTS;
  if (!isCount(maxInterrupts, 10_000)) throw new JobFormatError('"maxInterrupts" must be an integer from 0 to 10000');
  const interrupts = o.interrupts ?? 0;
  if (!isCount(interrupts)) throw new JobFormatError('"interrupts" must be a non-negative integer');
  const backoff = parseBackoff(o.backoff);
  const history = o.history ?? [];
  if (!Array.isArray(history) || history.some((h) => typeof h !== 'object' || h === null || Array.isArray(h))) throw new JobFormatError('"history" must be an array of objects');
  if (o.run !== undefined && (typeof o.run !== 'string' || o.run.length > 300)) throw new JobFormatError('"run" must be a string (the claim that wrote the record)');
  checkCompositeFields(o);
  const priority = o.priority ?? DEFAULT_PRIORITY;
  if (!isCount(priority, MAX_PRIORITY)) throw new JobFormatError(`"priority" must be an integer from 0 to ${MAX_PRIORITY}`);
  const quotas = o.quotas ?? [];
  if (!Array.isArray(quotas) || quotas.length > MAX_JOB_QUOTAS || quotas.some((q) => typeof q !== 'string' || !QUOTA_NAME.test(q))) throw new JobFormatError(`"quotas" must be an array of at most ${MAX_JOB_QUOTAS} quota names ([A-Za-z0-9._-], at most 64 characters)`);
  const createdBy = (typeof o.createdBy === 'object' && o.createdBy !== null ? o.createdBy : { host: '?', pid: 0 }) as Job['createdBy'];
  // The object JSON.parse just made is ours: the checked fields and defaults are set on it in place (a field
  // it has keeps its place, a default goes at the end). Copying it with a spread into a literal of 18
  // fields cost ~15 µs a job in V8 against ~1 µs (bench/PROFILE.md, section 12).
  o.zcq = JOB_FORMAT; o.id = id; o.args = args; o.queue = queue; o.created = created; o.createdBy = createdBy;
  o.attempts = attempts; o.retries = retries; o.backoff = backoff; o.timeoutMs = timeoutMs;
  o.deadline = o.deadline ?? null; o.notBefore = o.notBefore ?? null;
  o.onInterrupt = onInterrupt; o.maxInterrupts = maxInterrupts; o.interrupts = interrupts;
  o.history = (history as Attempt[]).length > MAX_HISTORY ? (history as Attempt[]).slice(-MAX_HISTORY) : history;
  if (o.quotas !== undefined) o.quotas = [...new Set(quotas as string[])];
  return o as Job;
}

function isId(v: unknown): v is string { return typeof v === 'string' && SAFE_NAME.test(v); }

function checkCallback(v: unknown, k: string): void {
  if (v === undefined) return;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JobFormatError(`"${k}" must be an object {fn, queue?, retries?}`);
  const c = v as Record<string, unknown>;
  if (typeof c.fn !== 'string' || !FN_REF.test(c.fn)) throw new JobFormatError(`"${k}.fn" must be "module#export"`);
  if (c.queue !== undefined && (typeof c.queue !== 'string' || !QUEUE_NAME.test(c.queue))) throw new JobFormatError(`"${k}.queue" must be a queue name`);
  if (c.retries !== undefined && !isCount(c.retries, 10_000)) throw new JobFormatError(`"${k}.retries" must be an integer from 0 to 10000`);
}

/** The composite fields (untrusted like every field: ids are safe names, counts bounded). */
function checkCompositeFields(o: Record<string, unknown>): void {
  if (o.after !== undefined && (!Array.isArray(o.after) || o.after.length > MAX_AFTER || !o.after.every(isId))) throw new JobFormatError(`"after" must be an array of at most ${MAX_AFTER} job ids`);
  if (o.afterAnyOutcome !== undefined && typeof o.afterAnyOutcome !== 'boolean') throw new JobFormatError('"afterAnyOutcome" must be true or false');
  checkCallback(o.then, 'then');
  checkCallback(o.catch, 'catch');
  if (o.parent !== undefined && !isId(o.parent)) throw new JobFormatError('"parent" must be a job id');
  if (o.awaits !== undefined && !isId(o.awaits)) throw new JobFormatError('"awaits" must be a job id');
  if (o.group !== undefined) {
    const g = o.group as Record<string, unknown>;
    if (typeof g !== 'object' || g === null || Array.isArray(g) || !isId(g.gid) || (g.kind !== 'parallel' && g.kind !== 'serial')
      || !isCount(g.size, MAX_GROUP_SIZE) || !isCount(g.index, MAX_GROUP_SIZE) || (g.index as number) >= (g.size as number)
      || !isId(g.post) || typeof g.postQueue !== 'string' || !QUEUE_NAME.test(g.postQueue)) {
      throw new JobFormatError('"group" must be {gid, kind: "parallel"|"serial", index < size, post, postQueue}');
    }
  }
  if (o.postprocessOf !== undefined) {
    const p = o.postprocessOf as Record<string, unknown>;
    if (typeof p !== 'object' || p === null || Array.isArray(p) || !isId(p.gid) || !isCount(p.size, MAX_GROUP_SIZE)) throw new JobFormatError('"postprocessOf" must be {gid, size}');
  }
}

/** Check a backoff object (from a job file, or given to put): throws JobFormatError. */
export function parseBackoff(v: unknown): Backoff {
  if (v === undefined || v === null) return DEFAULT_BACKOFF;
  if (typeof v !== 'object' || Array.isArray(v)) throw new JobFormatError('"backoff" must be an object');
  const b = v as Record<string, unknown>;
  if (b.kind !== 'exponential' && b.kind !== 'fixed') throw new JobFormatError('"backoff.kind" must be "exponential" or "fixed"');
  if (!isCount(b.baseMs, MAX_DELAY_MS) || !isCount(b.maxMs, MAX_DELAY_MS)) throw new JobFormatError('"backoff.baseMs" and "backoff.maxMs" must be non-negative integers');
  return { kind: b.kind, baseMs: b.baseMs, maxMs: b.maxMs };
}

export function serializeJob(job: Job): string {
  return JSON.stringify(job, null, 2) + '\n';
}

/** Delay before retry n (1-based), with equal jitter (half fixed, half random) for exponential backoff (NFS rule 13). */
export function retryDelayMs(b: Backoff, n: number, random = Math.random): number {
  if (b.kind === 'fixed') return b.baseMs;
  const ceiling = Math.min(b.maxMs, b.baseMs * 2 ** Math.min(n - 1, 40));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
