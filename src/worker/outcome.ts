/**
 * What an attempt's end means for the job: a pure classifier (no I/O). Given how the run ended (its
 * outcome from the host, and why the worker stopped it, if it did), it records the attempt through the
 * policy (job/policy.ts) and says where the job goes next — or that the worker must not record anything
 * (its lease was lost: recovery owns the job now).
 */
import { recordAwait, recordError, recordInterrupt, recordSuccess, type Next, type RunError } from '../job/policy.js';
import { isCompositeHandle } from '../job/composite.js';
import type { Attempt, Job } from '../job/format.js';
import type { RunOutcome } from './runner.js';

export type StopReason = 'timeout' | 'cancelled' | 'lease lost' | 'shutdown';

export type Classified =
  | { record: false; why: string }
  | { record: true; next: Next; uncounted?: boolean };

/** The largest result a job may return (half a job file: the record keeps the args too). */
export const MAX_RESULT_BYTES = (1 << 20) / 2;

export function classifyOutcome(job: Job, attempt: Attempt, outcome: RunOutcome, stop: StopReason | undefined, endIso: string, serverNowMs: number): Classified {
  if (stop === 'lease lost') return { record: false, why: 'lease lost; recovery settles it' };
  if (!outcome.ok && 'lost' in outcome) {
    if (outcome.lost === 'killed' || (outcome.lost === 'crashed' && !outcome.shared)) {
      const error: RunError = outcome.lost === 'crashed'
        ? { name: 'WorkerCrashed', message: outcome.message }
        : stop === 'timeout'
          ? { name: 'TimeoutError', message: `timed out after ${job.timeoutMs} ms and was terminated (${outcome.message})` }
          : { name: 'AbortError', message: `terminated: ${stop ?? 'killed'} (${outcome.message})` };
      outcome = { ok: false, error };
    } else if (outcome.lost === 'bystander' || stop === 'shutdown') {
      return requeueUncounted(job, attempt, endIso, outcome.message);
    } else {
      // A shared thread died and took several jobs: which one did it is unknown, so each goes by its
      // interrupt policy (a job that keeps killing its thread ends in failed/ after maxInterrupts).
      job.history.push(attempt);
      return { record: true, next: recordInterrupt(job, { worker: attempt.worker, host: attempt.host, pid: attempt.pid }, endIso, outcome.message) };
    }
  }
  if (stop === 'shutdown') return requeueUncounted(job, attempt, endIso, 'worker shutdown');
  if (outcome.ok) {
    if (outcome.json.length > MAX_RESULT_BYTES) {
      return { record: true, next: recordError(job, attempt, { name: 'ResultTooLarge', message: `result is ${outcome.json.length} bytes; the limit is ${MAX_RESULT_BYTES}: write big results to a file and return its path`, permanent: true }, 'error', endIso, serverNowMs) };
    }
    if (stop === 'cancelled') {
      return { record: true, next: recordError(job, attempt, { name: 'Cancelled', message: 'cancelled while running (the job finished anyway; its result is kept in history only)' }, 'cancelled', endIso, serverNowMs) };
    }
    const value: unknown = JSON.parse(outcome.json);
    // A job that returns a composite's handle waits for it (in waiting/), its slot freed, and takes its outcome.
    if (isCompositeHandle(value) && value.id !== job.id) return { record: true, next: recordAwait(job, attempt, value.id, endIso) };
    return { record: true, next: recordSuccess(job, attempt, value, endIso) };
  }
  const kind = stop === 'timeout' ? 'timeout' : stop === 'cancelled' ? 'cancelled' : 'error';
  const err = kind === 'timeout' && outcome.error.name === 'AbortError' ? { ...outcome.error, name: 'TimeoutError', message: `timed out after ${job.timeoutMs} ms (${outcome.error.message})` } : outcome.error;
  return { record: true, next: recordError(job, attempt, err, kind, endIso, serverNowMs) };
}

/**
 * Back to pending/ with this attempt recorded as interrupted and not counted: ending it was not the job's
 * fault (a drained shutdown, or another job's thread terminated under it).
 */
function requeueUncounted(job: Job, attempt: Attempt, endIso: string, why: string): Classified {
  attempt.end = endIso; attempt.outcome = 'interrupted'; attempt.error = why;
  job.history.push(attempt);
  job.attempts -= 1;
  return { record: true, next: { to: 'pending' }, uncounted: true };
}
