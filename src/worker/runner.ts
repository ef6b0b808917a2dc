/**
 * The code that runs inside a pool thread (or child process): import the job's module, call its export
 * with the job's args inside a `currentJob()` context, and hand back a plain, serialisable outcome. It
 * never throws to the pool: errors thrown across a thread lose their fields (name, code, stack), so they
 * are flattened here into data.
 */
import type { MessagePort } from 'node:worker_threads';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runWithJob } from '../job/context.js';

export interface RunTask {
  url: string;
  exportName: string;
  args: unknown[];
  ctx: { id: string; fn: string; queue: string; attempt: number; spool: string };
  port?: MessagePort;
}

export interface RunError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  permanent?: boolean;
  retryAt?: string;
}

export type RunOutcome = { ok: true; json: string } | { ok: false; error: RunError };

// process.exit() inside a pool thread would leave the task pending forever (tinypool): make it an error.
process.exit = ((code?: number) => {
  throw Object.assign(new Error(`job called process.exit(${code ?? ''}); return or throw instead`), { name: 'ProcessExitError' });
}) as typeof process.exit;

export default async function run(task: RunTask): Promise<RunOutcome> {
  const controller = new AbortController();
  // The abort arrives as a port message, outside the job's async context: dispatch it inside that context
  // so that the job's 'abort' listeners can still call currentJob() (they run synchronously in abort()).
  let jobCtx: Parameters<typeof runWithJob>[0] | undefined;
  task.port?.on('message', (m: { abort?: string }) => {
    if (!m || typeof m.abort !== 'string') return;
    const abort = () => controller.abort(Object.assign(new Error(m.abort), { name: 'AbortError' }));
    if (jobCtx) runWithJob(jobCtx, abort); else abort();
  });
  try {
    let mod: Record<string, unknown>;
    try {
      mod = await import(task.url);
    } catch (err) {
      return { ok: false, error: { ...flatten(err), name: 'ModuleLoadError', message: `cannot load ${task.url}: ${(err as Error)?.message ?? String(err)}`, permanent: true } };
    }
    const fn = mod[task.exportName];
    if (typeof fn !== 'function') {
      return { ok: false, error: { name: 'ExportNotFound', message: `${task.url} has no exported function '${task.exportName}'`, permanent: true } };
    }
    const progressFile = join(task.ctx.spool, 'progress', `${task.ctx.id}.json`);
    let seq = 0;
    const progress = async (value: unknown) => {
      const tmp = join(task.ctx.spool, 'tmp', `.progress-${task.ctx.id}-${process.pid}-${++seq}`);
      await writeFile(tmp, JSON.stringify({ at: new Date().toISOString(), attempt: task.ctx.attempt, value }) + '\n');
      await rename(tmp, progressFile);
    };
    const ctx = { ...task.ctx, args: Object.freeze([...task.args]), signal: controller.signal, progress };
    jobCtx = ctx;
    const value = await runWithJob(ctx, () => (fn as (...a: unknown[]) => unknown)(...task.args));
    let json: string | undefined;
    try {
      json = JSON.stringify(value === undefined ? null : value);
    } catch (err) {
      return { ok: false, error: { name: 'ResultNotSerializable', message: `the job returned a value that is not JSON-serialisable: ${(err as Error).message}`, permanent: true } };
    }
    if (json === undefined) return { ok: false, error: { name: 'ResultNotSerializable', message: `the job returned a ${typeof value}, which JSON cannot hold`, permanent: true } };
    return { ok: true, json };
  } catch (err) {
    return { ok: false, error: flatten(err) };
  } finally {
    task.port?.close();
  }
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
