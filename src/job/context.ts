/**
 * `currentJob()`: what a running job function may know about itself. The store lives on globalThis under
 * a registered symbol so that the runner and a job module that imports another copy of zcq (its own
 * node_modules) still see the same context.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface JobContext {
  id: string;
  fn: string;
  queue: string;
  /** 1 for the first attempt. */
  attempt: number;
  args: readonly unknown[];
  /** Aborted when the job is cancelled, times out, or its worker loses its lease or shuts down. */
  signal: AbortSignal;
  /** The spool folder (absolute). */
  spool: string;
  /**
   * Publish a progress annotation (any JSON value) that other clients read with `zcq show` or
   * `spool.progress(id)`: written atomically to progress/<id>.json; the last one wins.
   */
  progress(value: unknown): Promise<void>;
  /**
   * Write one line to the job's output (output/ID.log, read with `zcq logs ID`), formatted as console.log
   * formats its arguments. console.log and console.error inside a job go there too.
   */
  log(...args: unknown[]): void;
}

const KEY = Symbol.for('zcq.currentJob');
type Holder = { als: AsyncLocalStorage<JobContext> };
const g = globalThis as unknown as Record<symbol, Holder | undefined>;
const holder: Holder = g[KEY] ?? (g[KEY] = { als: new AsyncLocalStorage<JobContext>() });

/** The job this code runs for; throws when called outside a job. */
export function currentJob(): JobContext {
  const ctx = holder.als.getStore();
  if (!ctx) throw new Error('currentJob() called outside a zcq job');
  return ctx;
}

/** The job this code runs for, or null outside a job. */
export function currentJobOrNull(): JobContext | null {
  return holder.als.getStore() ?? null;
}

export function runWithJob<T>(ctx: JobContext, fn: () => T): T {
  return holder.als.run(ctx, fn);
}
