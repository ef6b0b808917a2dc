/**
 * What a worker checks before running a job that belongs to a composite (issue 12), after claiming it:
 * - a job with `after`: a dependency that failed or was cancelled (or is gone) ends it in failed/ with
 *   reason "dependency failed" naming it — "cancelled" for a serial member, whose chain stopped — unless
 *   `afterAnyOutcome`; a dependency still open (the job was moved to pending/ early, by hand or by a
 *   recovery that put a cancel's claim back) sends it back to waiting/ uncounted, with its edges remade;
 * - a job that `awaits` a composite takes the outcome of the composite's postprocess, without running;
 * - a postprocess gets the entries of its group as its one argument (read here, once per run), or returns
 *   them when it is the built-in one.
 * Release (transitions/release.ts) only says "look now"; this is where the job's fate is decided, under
 * the worker's claim, so a crash anywhere is settled by recovery like any claimed job.
 */
import { BUILTIN_POSTPROCESS } from '../job/composite.js';
import type { Attempt, Job } from '../job/format.js';
import { recordError, recordSuccess, type Next } from '../job/policy.js';
import type { Layout } from '../spool/layout.js';
import { groupComplete, readEntries } from '../spool/transitions/arrive.js';
import { addEdges, dependencyState } from '../spool/transitions/release.js';
import { COMPOSITE } from '../defaults.js';

export type Gate =
  | { run: true; args?: unknown[] }
  | { run: false; next: Next; uncounted?: boolean };

/**
 * The gate, under the worker's claim. A dependency (or group) that looks open to a job someone released
 * contradicts the release: most often this client's view is behind (a record moving from claimed/ to
 * done/ as we look, a lookup cached by NFS or FUSE). It is looked at again for up to
 * COMPOSITE.staleLookupMs before the job goes back to waiting/. A dependency or entry that looks missing is
 * looked at again the same way before it counts as gone: a record between claimed/ and done/, or a name a
 * client's lookup cache still denies, looks missing for a moment (seen through sshfs on the rig, where it
 * failed `--after` jobs and cancelled serial chains of dependencies that had succeeded).
 */
export async function compositeGate(l: Layout, job: Job, attempt: Attempt, endIso: () => string, serverNowMs: number): Promise<Gate> {
  if (job.awaits) {
    const awaits = job.awaits;
    const s = await settled(() => dependencyState(l, awaits), (x) => x.state !== 'open' && x.state !== 'missing');
    if (s.state === 'open') return backToWaiting(l, job, [awaits]);
    if (s.state === 'done') return { run: false, next: recordSuccess(job, attempt, s.job?.result ?? null, endIso()) };
    const f = s.job?.failure;
    const err = f ? { name: f.name, message: f.message, stack: f.stack, code: f.code, permanent: true } : { name: 'DependencyFailed', message: `composite ${awaits} ${s.state === 'missing' ? 'is gone' : 'failed'}`, permanent: true };
    return { run: false, next: recordError(job, attempt, err, 'error', endIso(), serverNowMs) };
  }
  if (job.after && job.after.length > 0) {
    const states = await settled(() => job.after!.map((d) => ({ d, ...dependencyState(l, d) })), (xs) => xs.every((x) => x.state !== 'open' && x.state !== 'missing') || xs.some((x) => x.state === 'failed' && !job.afterAnyOutcome));
    for (const s of states) {
      if ((s.state === 'failed' || s.state === 'missing') && !job.afterAnyOutcome) {
        const why = s.state === 'missing' ? 'is gone (pruned?)' : s.job?.failure?.reason === 'cancelled' ? 'was cancelled' : 'failed';
        const serial = job.group?.kind === 'serial';
        const err = serial
          ? { name: 'Cancelled', message: `serial chain stopped: ${s.d} ${why}` }
          : { name: 'DependencyFailed', message: `dependency failed: ${s.d} ${why}` };
        return { run: false, next: recordError(job, attempt, err, serial ? 'cancelled' : 'dependency', endIso(), serverNowMs) };
      }
    }
    if (states.some((s) => s.state === 'open')) return backToWaiting(l, job, job.after);
  }
  if (job.postprocessOf) {
    const { gid, size } = job.postprocessOf;
    if (!(await settled(() => groupComplete(l, gid, size), (x) => x))) return backToWaiting(l, job, []);
    const entries = await settled(() => readEntries(l, gid, size), (es) => es.every((e) => e.state !== 'missing'));
    if (job.fn === BUILTIN_POSTPROCESS) return { run: false, next: recordSuccess(job, attempt, entries, endIso()) };
    return { run: true, args: [entries] };
  }
  return { run: true };
}

/** `look()` until `ok`, with growing pauses, for at most COMPOSITE.staleLookupMs; the last look either way. */
async function settled<T>(look: () => T, ok: (x: T) => boolean): Promise<T> {
  const until = Date.now() + COMPOSITE.staleLookupMs;
  let pause = 20;
  for (;;) {
    const x = look();
    if (ok(x) || Date.now() + pause > until) return x;
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 1000);
  }
}

/** Not time yet: back to waiting/, attempt not counted, edges remade (a release removed them). */
function backToWaiting(l: Layout, job: Job, deps: string[]): Gate {
  job.attempts -= 1;
  if (deps.length > 0) addEdges(l, deps, job.queue, job.id);
  return { run: false, next: { to: 'waiting' }, uncounted: true };
}
