/**
 * The code that calls a job function: import the job's module, call its export with the job's args inside
 * a `currentJob()` context, and hand back a plain, serialisable outcome. It never throws: errors thrown
 * across a thread lose their fields (name, code, stack), so they are flattened here into data.
 *
 * Three entry points, one per place a job can run (see hosts.ts):
 * - `runJob` — called directly (the inline runtime, and by the two below);
 * - `agent` — a pool thread's whole life: it serves many jobs at once over one MessagePort, so that a job
 *   costs at most one message each way (jobs handed over in one turn share one) instead of a pool task
 *   (and the pool's per-task bookkeeping);
 * - the default export — one pool task per job (the processes runtime: a job may take its process down).
 */
import type { MessagePort } from 'node:worker_threads';
import { join } from 'node:path';
import { writeReplace } from '../spool/fsops.js';
import { layoutOf, type Layout } from '../spool/layout.js';
import type { SpoolModes } from '../spool/modes.js';
import { OutputSink, bindContext, runWithOutput } from './output.js';
import type { RunError } from '../job/policy.js';
import { runWithJob, type JobContext } from '../job/context.js';
import { JSON_MAX_DEPTH, JSON_MAX_VALUE_DEPTH, checkJsonShape } from '../job/json-limits.js';

export interface RunTask {
  url: string;
  exportName: string;
  args: unknown[];
  ctx: { id: string; fn: string; queue: string; attempt: number; spool: string };
  /** The spool's file mode, for progress annotations. */
  fileMode?: number;
  /** The spool's modes, for the output file (output/ID.log) and its folder. */
  modes?: SpoolModes;
  /** Don't capture the job's output (default: capture it into output/ID.log). */
  noOutput?: boolean;
}

export type { RunError } from '../job/policy.js';

/**
 * What became of a run. `lost` means the job's host (thread or process) ended under it: `killed` when
 * the worker terminated it on purpose (timeout, cancel, shutdown), `crashed` when it died by itself, and
 * `bystander` when it was terminated for another job sharing it. The worker decides what each means.
 */
export type RunOutcome =
  | { ok: true; json: string }
  | { ok: false; error: RunError }
  | { ok: false; lost: 'killed' | 'crashed' | 'bystander'; message: string; shared?: boolean };

/** Messages between the worker and an agent thread. */
export type ToAgent = { run: RunTask } | { runs: RunTask[] } | { abort: string; why: string } | { stop: true };
export type FromAgent = { id: string; outcome: RunOutcome };
/** What an agent posts back: that it is up (its first message), one outcome, or the outcomes of the jobs that ended together. */
export type FromAgentMessage = FromAgent | { outcomes: FromAgent[] } | { up: true };

/**
 * Messages queued and posted together: a worker that claims 8 jobs in one pass wakes a pool thread once,
 * not 8 times, and the jobs a thread ends together wake the worker once. A message costs little; the other
 * thread's wake-up is what costs. `later` says when the queue is posted: the worker's side waits for the end
 * of the turn of its event loop (setImmediate: its jobs reach the hand-off from separate chains of promises);
 * a pool thread posts its outcomes as soon as the running promises settle (queueMicrotask), so that no timer
 * or message of another job — one that then never yields and gets its thread terminated — can come between
 * a job's end and its outcome's posting, and make a job that ended look like a bystander to be run again.
 */
export class Outbox<T> {
  private queued: T[] = [];
  private scheduled = false;
  constructor(private readonly post: (items: T[]) => void, private readonly later: (f: () => void) => void) {}
  push(item: T): void {
    this.queued.push(item);
    if (!this.scheduled) { this.scheduled = true; this.later(() => this.flush()); }
  }
  /** Post what is queued now (before a message that must not overtake it). */
  flush(): void {
    this.scheduled = false;
    if (this.queued.length === 0) return;
    const items = this.queued;
    this.queued = [];
    this.post(items);
  }
}

// In a pool thread or child process, process.exit() would take every job of that host down (and leave
// tinypool's task pending): make it an error. The inline runtime runs in the worker's own process, whose
// exit must keep working, so the guard is installed only inside tinypool's hosts.
if ((process as { __tinypool_state__?: { isTinypoolWorker?: boolean } }).__tinypool_state__?.isTinypoolWorker) {
  process.exit = ((code?: number) => {
    throw Object.assign(new Error(`job called process.exit(${code ?? ''}); return or throw instead`), { name: 'ProcessExitError' });
  }) as typeof process.exit;
}

/**
 * Run one job. `controller` is the job's AbortController (or a LazyAbort): aborting it (from inside the
 * job's async context, see `RunningJob.abort`) fires the job's `currentJob().signal`.
 */
export async function runJob(task: RunTask, controller: { readonly signal: AbortSignal }, onContext?: (ctx: Parameters<typeof runWithJob>[0]) => void): Promise<RunOutcome> {
  // The sink is set up before the module is imported: what the module prints as it loads is the output
  // of the job that loaded it (the file itself is made at the first write).
  const sink = task.noOutput ? OutputSink.none() : await OutputSink.open(task.ctx.spool, task.ctx.id, task.ctx.attempt, task.modes);
  try {
    return await runWithOutput(sink, () => callJob(task, controller, sink, onContext));
  } finally {
    sink.close();
    await sink.settled();
  }
}

async function callJob(task: RunTask, controller: { readonly signal: AbortSignal }, sink: OutputSink, onContext?: (ctx: Parameters<typeof runWithJob>[0]) => void): Promise<RunOutcome> {
  try {
    let box: { ns: Record<string, unknown> };
    try {
      const boxed = importBoxed(task.url);
      box = boxed instanceof Promise ? await boxed : boxed;
    } catch (err) {
      const why = String((err as Error)?.message ?? err).replace(/ imported from data:\S*/, '');
      return { ok: false, error: { ...flatten(err), name: 'ModuleLoadError', message: `cannot load ${task.url}: ${why}`, permanent: true } };
    }
    const fn = box.ns[task.exportName];
    if (typeof fn !== 'function') {
      return { ok: false, error: { name: 'ExportNotFound', message: `${task.url} has no exported function '${task.exportName}'`, permanent: true } };
    }
    // An exclusive temporary under a random name, renamed over the annotation: a co-user's symlink at
    // either name is replaced, never written through. The layout is taken at the first call (it registers
    // progress/ and tmp/ to be made again if a person removed them: a job never fails for its progress).
    let l: Layout | undefined;
    const progress = async (value: unknown) => {
      l ??= layoutOf(task.ctx.spool, task.modes);
      const text = JSON.stringify({ at: new Date().toISOString(), attempt: task.ctx.attempt, value }) + '\n';
      await writeReplace(join(l.progress, `${task.ctx.id}.json`), text, { tmpDir: l.tmp, durable: false, mode: task.fileMode });
    };
    const log = (...args: unknown[]) => sink.log(args);
    // Object.assign, not a spread followed by more fields: V8 builds the latter slowly (~3 µs a job).
    const ctx = Object.assign({}, task.ctx, { args: Object.freeze([...task.args]), progress, log }) as JobContext;
    // Read when the job asks for it: most jobs never do, and an AbortController costs ~5 µs to make.
    Object.defineProperty(ctx, 'signal', { get: () => controller.signal, enumerable: true });
    bindContext(ctx, sink);
    onContext?.(ctx);
    const value = await runWithJob(ctx, () => (fn as (...a: unknown[]) => unknown)(...task.args));
    let json: string | undefined;
    try {
      json = JSON.stringify(value === undefined ? null : value);
    } catch (err) {
      return { ok: false, error: { name: 'ResultNotSerializable', message: `the job returned a value that is not JSON-serialisable: ${(err as Error).message}`, permanent: true } };
    }
    if (json === undefined) return { ok: false, error: { name: 'ResultNotSerializable', message: `the job returned a ${typeof value}, which JSON cannot hold`, permanent: true } };
    // The result goes into the job file: deeper than a job file may be, it would make the file unreadable.
    try {
      checkJsonShape(json, { maxDepth: JSON_MAX_VALUE_DEPTH });
    } catch (err) {
      return { ok: false, error: { name: 'ResultNotSerializable', message: `the job returned a value ${(err as Error).message} (a job file holds at most ${JSON_MAX_DEPTH})`, permanent: true } };
    }
    return { ok: true, json };
  } catch (err) {
    return { ok: false, error: flatten(err) };
  }
}

/**
 * Import a job module and hand back its namespace inside a box. `import(url)` resolves its promise with the
 * namespace, and a namespace that exports `then` is a thenable: the promise would adopt it, calling the
 * module's `then` and waiting for it (forever, if it never calls back). A one-line data: module imports the
 * namespace and exports it as a property of a plain object, which no promise looks into. The namespace
 * must stay in the box: returning it from an async function, or awaiting it, would assimilate it again.
 * Works for ES modules and CommonJS alike (their namespace, as `import()` gives it); the data: module is
 * cached by the loader like the module itself, one per module URL.
 */
function importBoxed(url: string): Promise<{ ns: Record<string, unknown> }> | { ns: Record<string, unknown> } {
  // A module loaded once stays loaded (the loader caches it for the thread's life): its box is kept here
  // too, so that the next job of the module skips the loader's look-up (a tenth of a pool thread's time
  // per no-op job). A module that failed to load is not kept, as the loader does not keep it either.
  const known = boxes.get(url);
  if (known) return known;
  const source = `import * as ns from ${JSON.stringify(url)}; export const box = { ns };`;
  return import(`data:text/javascript,${encodeURIComponent(source)}`).then((m: { box: { ns: Record<string, unknown> } }) => {
    boxes.set(url, m.box);
    return m.box;
  });
}
const boxes = new Map<string, { ns: Record<string, unknown> }>();

/**
 * An AbortController made only when its signal is first read. A reason given before that is kept, and the
 * signal is then made already aborted with it — what the job would have seen had it read the signal first.
 */
export class LazyAbort {
  private made?: AbortController;
  private reason?: { why: unknown };
  get signal(): AbortSignal {
    if (!this.made) {
      this.made = new AbortController();
      if (this.reason) this.made.abort(this.reason.why);
    }
    return this.made.signal;
  }
  abort(why: unknown): void {
    if (this.made) this.made.abort(why);
    else this.reason ??= { why };
  }
}

/**
 * A job being run, with what it takes to abort it: the abort arrives outside the job's async context, so
 * it is dispatched inside that context, letting the job's 'abort' listeners (which run synchronously in
 * abort()) still call currentJob().
 */
export class RunningJob {
  readonly controller = new LazyAbort();
  private ctx?: Parameters<typeof runWithJob>[0];
  readonly outcome: Promise<RunOutcome>;

  constructor(task: RunTask) {
    this.outcome = runJob(task, this.controller, (ctx) => { this.ctx = ctx; });
  }

  abort(why: string): void {
    const abort = () => this.controller.abort(Object.assign(new Error(why), { name: 'AbortError' }));
    if (this.ctx) runWithJob(this.ctx, abort); else abort();
  }
}

/**
 * A pool thread's agent: runs every job sent on `port`, as many at once as are sent (the worker keeps
 * the count within its concurrency), until told to stop. Resolves only then.
 */
export function agent({ port }: { port: MessagePort }): Promise<number> {
  const jobs = new Map<string, RunningJob>();
  let served = 0;
  const outbox = new Outbox<FromAgent>((items) => port.postMessage((items.length === 1 ? items[0] : { outcomes: items }) satisfies FromAgentMessage), queueMicrotask);
  const start = (task: RunTask) => {
    const id = task.ctx.id;
    const job = new RunningJob(task);
    jobs.set(id, job);
    served++;
    void job.outcome.then((outcome) => {
      jobs.delete(id);
      outbox.push({ id, outcome });
    });
  };
  // The worker starts its jobs' timeouts when it hears this: a thread's own start is not the jobs' time.
  port.postMessage({ up: true } satisfies FromAgentMessage);
  return new Promise((resolve) => {
    port.on('message', (m: ToAgent) => {
      if ('run' in m) start(m.run);
      else if ('runs' in m) for (const task of m.runs) start(task);
      else if ('abort' in m) {
        jobs.get(m.abort)?.abort(m.why);
      } else if ('stop' in m) {
        outbox.flush();
        port.close();
        resolve(served);
      }
    });
  });
}

/** One pool task per job (the processes runtime). Aborts arrive only as a kill of the process. */
export default async function run(task: RunTask): Promise<RunOutcome> {
  return new RunningJob(task).outcome;
}

function flatten(err: unknown): RunError {
  if (err instanceof Error || (typeof err === 'object' && err !== null && 'message' in err)) {
    const e = err as Error & { code?: unknown; permanent?: unknown; retryAt?: unknown };
    const out: RunError = { name: String(e.name ?? 'Error'), message: String(e.message ?? ''), stack: typeof e.stack === 'string' ? e.stack : undefined };
    if (typeof e.code === 'string' || typeof e.code === 'number') out.code = String(e.code);
    if (e.permanent === true) out.permanent = true;
    if (e.retryAt instanceof Date && !Number.isNaN(e.retryAt.getTime())) out.retryAt = e.retryAt.toISOString();
    else if (typeof e.retryAt === 'string' && !Number.isNaN(Date.parse(e.retryAt))) out.retryAt = new Date(e.retryAt).toISOString();
    return out;
  }
  return { name: 'NonErrorThrown', message: `the job threw a non-Error value: ${safeString(err)}` };
}

function safeString(v: unknown): string {
  try { return JSON.stringify(v) ?? String(v); } catch { return String(v); }
}
