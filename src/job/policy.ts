/**
 * What happens to a job after an attempt: pure decisions, no I/O. Kept in one place so that the worker,
 * the recoverer and the tests agree on zc.async's policies:
 * - an error is retried while `attempts <= retries`, after a backoff stored in the job (so any worker
 *   honours it), unless the error is permanent (PermanentError, `permanent: true`, or a module/export that
 *   does not exist); a job may ask for "retry at T" (RetryAtError), which counts as an attempt;
 * - a timeout is an error with reason "timeout"; a cancel always ends in failed/ with reason "cancelled";
 * - a finished job found in pending/ (a person moved it back, or `zcq retry` did) starts over: fresh
 *   attempts, no deadline, no due time — `mv failed/Q/ID.json pending/Q/` is what `zcq retry` is;
 * - an interruption (the worker died) goes by `onInterrupt`: retry (until `maxInterrupts`, 9 by default, so
 *   that a job that keeps killing its worker ends in failed/) or fail with reason "worker lost".
 */
import { retryDelayMs, type Attempt, type Job, type Outcome } from './format.js';

/** An error as a job's run reports it: plain data (errors lose their fields across a thread). */
export interface RunError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  permanent?: boolean;
  retryAt?: string;
}

export type Next =
  | { to: 'done' }
  | { to: 'failed'; reason: string }
  | { to: 'pending' }
  | { to: 'deferred'; dueMs: number }
  /** Into waiting/: the job returned a composite and waits for its postprocess (`awaits`). */
  | { to: 'waiting' };

/** Whether a claimed job is a retry (a finished record moved back to pending/) rather than a job to go on with. */
export function isRetry(job: Job): boolean {
  // Only `finished`: a job going round a retry with backoff keeps its last `failure` but never `finished`.
  return typeof job.finished === 'string';
}

/** Start a finished job over, as `zcq retry` promises: fresh attempts and interrupts, no deadline or due time. */
export function resetForRetry(job: Job): void {
  job.attempts = 0;
  job.interrupts = 0;
  job.deadline = null;
  job.notBefore = null;
  delete job.finished;
  delete job.result;
  delete job.failure;
  delete job.run;
}

/**
 * The interrupt policy for a holder that never ran the job (a client holding it for a cancel or a hold
 * that did not complete): back to pending/ (or to deferred/ while it has a due time), attempt not counted.
 */
export function recordUntouched(job: Job): Next {
  // A job the client took out of deferred/ (a cancel of a waiting retry or a job put --in) keeps its due
  // time: back to deferred/ at its notBefore (promoted at once when that has passed), never run early.
  const due = job.notBefore === null ? NaN : Date.parse(job.notBefore);
  return Number.isFinite(due) ? { to: 'deferred', dueMs: due } : { to: 'pending' };
}

export function recordSuccess(job: Job, attempt: Attempt, result: unknown, endIso: string): Next {
  attempt.end = endIso;
  attempt.outcome = 'done';
  pushAttempt(job, attempt);
  job.result = result;
  delete job.failure;
  job.finished = endIso;
  return { to: 'done' };
}

export function recordError(job: Job, attempt: Attempt, err: RunError, kind: 'error' | 'timeout' | 'cancelled' | 'deadline' | 'dependency', endIso: string, serverNowMs: number): Next {
  attempt.end = endIso;
  attempt.error = `${err.name}: ${err.message}`.slice(0, 2000);
  const reason = kind === 'error' ? 'error' : kind === 'deadline' ? 'deadline passed' : kind === 'dependency' ? 'dependency failed' : kind;
  job.failure = { name: err.name, message: err.message, stack: err.stack, code: err.code, reason };
  const retryable = kind !== 'cancelled' && kind !== 'deadline' && kind !== 'dependency' && !err.permanent && job.attempts <= job.retries;
  if (!retryable) {
    attempt.outcome = outcomeOf(kind);
    pushAttempt(job, attempt);
    job.finished = endIso;
    delete job.result;
    return { to: 'failed', reason };
  }
  attempt.outcome = 'retry';
  pushAttempt(job, attempt);
  delete job.finished;
  let dueMs = serverNowMs + retryDelayMs(job.backoff, job.attempts);
  if (err.retryAt) dueMs = Date.parse(err.retryAt);
  job.notBefore = new Date(dueMs).toISOString();
  return dueMs <= serverNowMs ? { to: 'pending' } : { to: 'deferred', dueMs };
}

/**
 * The job returned a composite (its handle): its run ends here, its slot is freed, and it waits in waiting/
 * for the composite's postprocess `postId`, whose outcome becomes its own (zc.async's job returning a job).
 */
export function recordAwait(job: Job, attempt: Attempt, postId: string, endIso: string): Next {
  attempt.end = endIso;
  attempt.outcome = 'done';
  attempt.error = `waits for composite ${postId}`;
  pushAttempt(job, attempt);
  job.awaits = postId;
  job.after = [postId];
  job.afterAnyOutcome = true;
  delete job.finished;
  delete job.result;
  return { to: 'waiting' };
}

/** The job's worker died (or lost its lease) while holding it. */
export function recordInterrupt(job: Job, lost: { worker: string; host: string; pid: number }, endIso: string, why = 'worker lost'): Next {
  job.interrupts += 1;
  const last = job.history[job.history.length - 1];
  const entry: Attempt = last && last.worker === lost.worker && !last.end
    ? last
    : { attempt: job.attempts + 1, worker: lost.worker, host: lost.host, pid: lost.pid, start: endIso };
  if (entry !== last) { job.attempts += 1; pushAttempt(job, entry); }
  entry.end = endIso;
  entry.outcome = 'interrupted';
  entry.error = `${why}: ${lost.worker} on ${lost.host}`;
  if (job.onInterrupt === 'fail' || job.interrupts > job.maxInterrupts) {
    job.failure = {
      name: 'WorkerLost',
      message: job.onInterrupt === 'fail' ? `${why} (${lost.worker}); policy is to fail` : `${why} ${job.interrupts} times (cap ${job.maxInterrupts}): a poison job?`,
      reason: 'worker lost',
    };
    job.finished = endIso;
    return { to: 'failed', reason: 'worker lost' };
  }
  return { to: 'pending' };
}

function outcomeOf(kind: string): Outcome {
  return kind === 'error' || kind === 'dependency' ? 'failed' : (kind as Outcome);
}

function pushAttempt(job: Job, a: Attempt): void {
  if (job.history[job.history.length - 1] !== a) job.history.push(a);
  if (job.history.length > 100) job.history.splice(0, job.history.length - 100);
}
