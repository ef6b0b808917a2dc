/**
 * The one validator of new jobs (put, putMany, `zcq put -`): every option is checked and turned into the
 * job's fields before anything is written; a bad value is a UsageError naming the option. The worker
 * checks job files again (they are untrusted: anyone in the group can write one); this makes sure that a
 * job put through zcq is never one a worker would quarantine.
 */
import { DEFAULT_PRIORITY, MAX_AFTER, MAX_JOB_QUOTAS, MAX_PRIORITY, QUOTA_NAME, MAX_DELAY_MS, QUEUE_NAME, FN_REF, SAFE_NAME, newJob, parseBackoff, serializeJob, type Backoff, type CallbackSpec, type InterruptPolicy, type Job } from '../job/format.js';
import { UsageError } from '../errors.js';
import { JSON_MAX_VALUE_DEPTH, checkValueShape } from '../job/json-limits.js';
import { parseDuration, parseWhen } from '../schedule/time-input.js';
import { MAX_JOB_BYTES } from '../spool/fsops.js';
import { newJobId } from '../spool/ids.js';
import { queueDir, type Layout } from '../spool/layout.js';
import { MAX_DUE_MS, jobName } from '../spool/names.js';
import { placeNewJob, type Outgoing } from '../spool/transitions/put.js';

export interface PutOptions {
  queue?: string;
  /** Further attempts after a failure (default 0). */
  retries?: number;
  /** Backoff between retries: a fixed delay ('10s' or ms) or the default exponential with jitter. */
  backoff?: string | number | Backoff;
  /** Time limit of one attempt: ms or '30s'. */
  timeout?: string | number | null;
  /** Do not start before this time (Date, ISO string with offset, or epoch ms). A past time means now. */
  at?: Date | string | number;
  /** Do not start before now + this duration ('90s', '15m', or ms), judged by the spool's clock. */
  in?: string | number;
  /** Fail with reason "deadline passed" if not started by then (Date/ISO), or within this duration of put. */
  deadline?: Date | string | number;
  onInterrupt?: InterruptPolicy;
  maxInterrupts?: number;
  /** Wait (in waiting/) until every listed job ended; a failed or cancelled one fails this job with reason "dependency failed". */
  after?: string | string[];
  /** With `after`: run once they ended, whatever their outcome. */
  afterAnyOutcome?: boolean;
  /** Put `fn(result, id)` when this job is done: a function ('module#export') or {fn, queue?, retries?}. */
  then?: string | CallbackSpec;
  /** Put `fn(failure, id)` when this job failed for good. */
  catch?: string | CallbackSpec;
  /** 0 (taken first) to 9 (last); default 5. Within a queue, workers take the highest priority first. */
  priority?: number;
  /** Quotas (`zcq quota set NAME N`) the job holds a slot of while it runs: at most N such jobs run at once, anywhere. */
  quota?: string | string[];
}

/** One job of `putMany`: its function and args, and any PutOptions of its own (they override the batch's). */
export interface PutItem extends PutOptions {
  fn: string;
  args?: unknown[];
}

/** A validated job, ready to publish: its file text and where it goes. */
export interface Prepared extends Outgoing { job: Job }

/** A putMany item's options over the batch's common ones. An item's own `at` or `in` replaces both of common's. */
export function withCommon(item: PutItem, common: PutOptions): PutOptions {
  const o: Record<string, unknown> = { ...common };
  if (item.at !== undefined || item.in !== undefined) { delete o.at; delete o.in; }
  for (const [k, v] of Object.entries(item)) if (v !== undefined && k !== 'fn' && k !== 'args') o[k] = v;
  return o as PutOptions;
}

function toMs(v: string | number, what: string): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw new UsageError(`${what}: ${v} is not a non-negative number of milliseconds`);
    return Math.round(v);
  }
  try {
    return parseDuration(v);
  } catch (err) {
    throw new UsageError(`${what} '${v}': ${(err as Error).message}`, 'ZCQ_BAD_DURATION');
  }
}

function toTime(v: Date | string | number, what: string): number {
  let ms: number;
  if (v instanceof Date) ms = v.getTime();
  else if (typeof v === 'number') ms = v;
  else {
    try {
      ms = parseWhen(v, new Date()).getTime();
    } catch (err) {
      throw new UsageError(`${what} '${v}': ${(err as Error).message}`, 'ZCQ_BAD_TIME');
    }
  }
  return checkTime(ms, what);
}

/** A time a job file can hold (an ISO string): finite and within Date's range. */
function checkTime(ms: number, what: string): number {
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) throw new UsageError(`${what}: not a valid time`, 'ZCQ_BAD_TIME');
  return ms;
}

/** A timeout or backoff delay a worker accepts (at most MAX_DELAY_MS). */
function toDelayMs(v: string | number, what: string): number {
  const ms = toMs(v, what);
  if (ms > MAX_DELAY_MS) throw new UsageError(`${what}: at most 365 days`, 'ZCQ_BAD_DURATION');
  return ms;
}


/** Check a job's fields and build it (the one validator of put and putMany); no I/O but the spool clock for --in. */
export async function prepareJob(layout: Layout, fn: string, args: unknown[], opts: PutOptions, serverNow: () => Promise<number>): Promise<Prepared> {
  if (typeof fn !== 'string' || !FN_REF.test(fn)) throw new UsageError(`function '${fn}': must be 'module#export', e.g. './jobs.mjs#render'`, 'ZCQ_BAD_FN');
  if (!Array.isArray(args)) throw new UsageError('args: must be an array');
  try { checkValueShape(args, { maxDepth: JSON_MAX_VALUE_DEPTH, what: 'args' }); } catch (err) { throw new UsageError(`args: ${(err as Error).message}`); }
  const queue = opts.queue ?? 'default';
  if (!QUEUE_NAME.test(queue)) throw new UsageError(`--queue '${queue}': use letters, digits, '.', '_' or '-' (at most 64)`);
  const retries = opts.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0 || retries > 10_000) throw new UsageError(`--retries ${retries}: must be an integer from 0 to 10000`);
  const maxInterrupts = opts.maxInterrupts;
  if (maxInterrupts !== undefined && (!Number.isInteger(maxInterrupts) || maxInterrupts < 0 || maxInterrupts > 10_000)) throw new UsageError(`--max-interrupts ${maxInterrupts}: must be an integer from 0 to 10000`);
  if (opts.onInterrupt !== undefined && opts.onInterrupt !== 'retry' && opts.onInterrupt !== 'fail') throw new UsageError(`--on-interrupt '${opts.onInterrupt}': must be 'retry' or 'fail'`);
  let timeoutMs: number | null = null;
  if (opts.timeout !== undefined && opts.timeout !== null) {
    timeoutMs = toDelayMs(opts.timeout, '--timeout');
    if (timeoutMs <= 0) throw new UsageError('--timeout: must be more than zero');
  }
  let backoff: Backoff | undefined;
  if (opts.backoff !== undefined) {
    if (typeof opts.backoff === 'object' && opts.backoff !== null) {
      try { backoff = parseBackoff(opts.backoff); } catch (err) { throw new UsageError(`--backoff: ${(err as Error).message}`); }
    } else { const ms = toDelayMs(opts.backoff, '--backoff'); backoff = { kind: 'fixed', baseMs: ms, maxMs: ms }; }
  }
  let dueMs: number | null = null;
  if (opts.at !== undefined && opts.in !== undefined) throw new UsageError('--at and --in: give one, not both');
  if (opts.at !== undefined) dueMs = toTime(opts.at, '--at');
  if (opts.in !== undefined) dueMs = checkTime((await serverNow()) + toMs(opts.in, '--in'), '--in');
  if (dueMs !== null && dueMs > MAX_DUE_MS) throw new UsageError(`${opts.at !== undefined ? '--at' : '--in'}: due after 9999-12-31; a spool holds due times up to the end of year 9999`, 'ZCQ_BAD_TIME');
  let deadline: string | null = null;
  if (opts.deadline !== undefined) {
    const d = typeof opts.deadline === 'string' && /^\d+(\.\d+)?(ms|s|m|h|d)/.test(opts.deadline)
      ? (dueMs ?? (await serverNow())) + toMs(opts.deadline, '--deadline')
      : toTime(opts.deadline, '--deadline');
    deadline = new Date(checkTime(d, '--deadline')).toISOString();
  }
  const priority = opts.priority ?? DEFAULT_PRIORITY;
  if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) throw new UsageError(`--priority ${String(priority).slice(0, 40)}: must be an integer from 0 (first) to ${MAX_PRIORITY} (last)`, 'ZCQ_BAD_PRIORITY');
  const quotas = opts.quota === undefined ? [] : [...new Set(Array.isArray(opts.quota) ? opts.quota : [opts.quota])];
  for (const q of quotas) if (typeof q !== 'string' || !QUOTA_NAME.test(q)) throw new UsageError(`--quota '${String(q).slice(0, 80)}': use letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit`, 'ZCQ_BAD_QUOTA');
  if (quotas.length > MAX_JOB_QUOTAS) throw new UsageError(`--quota: at most ${MAX_JOB_QUOTAS} quotas per job`, 'ZCQ_BAD_QUOTA');
  let text: string;
  const id = newJobId();
  const job = newJob({ id, fn, args, queue, retries, backoff, timeoutMs, deadline, notBefore: dueMs !== null ? new Date(dueMs).toISOString() : null, onInterrupt: opts.onInterrupt, maxInterrupts, priority, quotas });
  const after = linkFields(job, opts);
  if (after.length > 0 && dueMs !== null) throw new UsageError('--after with --at or --in: give one or the other (a job waits for its dependencies, then runs)');
  try {
    text = serializeJob(job);
  } catch (err) {
    throw new UsageError(`args: not JSON-serialisable (${(err as Error).message})`);
  }
  if (Buffer.byteLength(text) > MAX_JOB_BYTES) throw new UsageError(`args: the job would be ${Buffer.byteLength(text)} bytes, over the ${MAX_JOB_BYTES}-byte limit; pass a file path instead of the data`);
  if (after.length > 0) return { job, id, text, dir: queueDir(layout, 'waiting', queue), name: jobName(id), parents: [layout.waiting] };
  const due = dueMs !== null && dueMs > (await serverNow()) ? dueMs : null;
  return { job, ...placeNewJob(layout, queue, id, text, due, priority) };
}

/** Check and set the composite link options (issue 12) on a new job; returns its dependencies. */
function linkFields(job: Job, opts: PutOptions): string[] {
  const after = opts.after === undefined ? [] : Array.isArray(opts.after) ? opts.after : [opts.after];
  if (after.length > MAX_AFTER) throw new UsageError(`--after: at most ${MAX_AFTER} jobs`);
  for (const a of after) if (typeof a !== 'string' || !SAFE_NAME.test(a)) throw new UsageError(`--after '${String(a)}': not a job id ([A-Za-z0-9._@-])`);
  if (opts.afterAnyOutcome !== undefined && typeof opts.afterAnyOutcome !== 'boolean') throw new UsageError('--after-any-outcome: true or false');
  if (opts.afterAnyOutcome && after.length === 0) throw new UsageError('--after-any-outcome: needs --after');
  if (after.length > 0) { job.after = [...new Set(after)]; if (opts.afterAnyOutcome) job.afterAnyOutcome = true; }
  for (const kind of ['then', 'catch'] as const) {
    const v = opts[kind];
    if (v === undefined) continue;
    const spec: CallbackSpec = typeof v === 'string' ? { fn: v } : { ...v };
    if (typeof spec !== 'object' || spec === null || typeof spec.fn !== 'string' || !FN_REF.test(spec.fn)) throw new UsageError(`--${kind} '${typeof v === 'string' ? v : spec?.fn}': must be 'module#export'`, 'ZCQ_BAD_FN');
    if (spec.queue !== undefined && !QUEUE_NAME.test(spec.queue)) throw new UsageError(`--${kind}-queue '${spec.queue}': use letters, digits, '.', '_' or '-' (at most 64)`);
    if (spec.retries !== undefined && (!Number.isInteger(spec.retries) || spec.retries < 0 || spec.retries > 10_000)) throw new UsageError(`--${kind}-retries ${spec.retries}: must be an integer from 0 to 10000`);
    job[kind] = { fn: spec.fn, ...(spec.queue !== undefined ? { queue: spec.queue } : {}), ...(spec.retries !== undefined ? { retries: spec.retries } : {}) };
  }
  return job.after ?? [];
}

