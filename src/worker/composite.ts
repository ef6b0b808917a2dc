/**
 * What a worker checks before running a job that belongs to a composite (issue 12), after claiming it:
 * - a job with `after`: a dependency that failed or was cancelled (or is gone) ends it in failed/ with
 *   reason "dependency failed" naming it — "cancelled" for a serial member, whose chain stopped — unless
 *   `afterAnyOutcome`; a dependency still open (the job was moved to pending/ early, by hand or by a
 *   recovery that put a cancel's claim back) sends it back to waiting/ uncounted, with its edges remade;
 * - a job that `awaits` a composite takes the outcome of the composite's postprocess, without running;
 * - a postprocess gets the entries of its group as its one argument (read here, once per run), or returns
 *   them when it is the built-in one; it runs only once every member's entry is there (a member a retry
 *   re-opened sends it back to waiting/ until that member ends: postprocessGate).
 * Release (transitions/release.ts) only says "look now"; this is where the job's fate is decided, under
 * the worker's claim, so a crash anywhere is settled by recovery like any claimed job.
 */
import { BUILTIN_POSTPROCESS } from '../job/composite.js';
import type { Attempt, Job } from '../job/format.js';
import { recordError, recordSuccess, type Next } from '../job/policy.js';
import type { Layout } from '../spool/layout.js';
import { clearReopened, groupComplete, markComplete, readEntries, readGroupMembers } from '../spool/transitions/arrive.js';
import { addEdges, dependencyState, dropEdges } from '../spool/transitions/release.js';
import { COMPOSITE } from '../defaults.js';

export type Gate =
  | { run: true; args?: unknown[] }
  | { run: false; next: Next; uncounted?: boolean };

/** The gate that lets a job run as it is. */
export const OPEN_GATE: Gate = Object.freeze({ run: true });

/** Whether compositeGate has anything to decide for `job`: the worker skips the call (and its promise) when not. */
export function gatedJob(job: Job): boolean {
  return Boolean(job.awaits || job.postprocessOf || (job.after && job.after.length > 0));
}

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
  if (job.postprocessOf) return postprocessGate(l, job, attempt, endIso);
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
  return { run: true };
}

/** Missing members whose state is looked up per gate pass: a retry re-opens a few, a group released early by hand has them all open. */
const MAX_LOOKED_UP = 64;

/**
 * A postprocess runs only with every member's entry (its final record). A member retried while the
 * group's last other member climbed past its slot leaves the group released with that member's entry
 * gone (arrive.ts, forgetArrival): such a member is open (pending, running, deferred) — the postprocess
 * goes back to waiting/ with an edge on it (deps/MEMBER/QUEUE~POST, `after` = those members), so the
 * member's next end releases it (release.ts settleDependents; the sweep of waiting/ as a backstop), and
 * it then runs with the member's new record. An entry missing while its member has ended (a record
 * between its claim and done/, a lookup cache) is looked at again for up to COMPOSITE.staleLookupMs; a
 * member that has ended for good with no entry (removed by hand) is passed as 'missing' once the group
 * is complete, so the postprocess is never held forever. `after` on a postprocess is only these edges:
 * it never fails it.
 */
async function postprocessGate(l: Layout, job: Job, attempt: Attempt, endIso: () => string): Promise<Gate> {
  const { gid, size } = job.postprocessOf!;
  let members: string[] | null | undefined;
  // Before the entries are read: a member retried from now on marks the group again, and finish sends this
  // postprocess back to waiting/ to run again with the member's new record (finish.ts, arrive.ts REOPENED).
  clearReopened(l, gid);
  const look = () => {
    const complete = groupComplete(l, gid, size);
    const entries = readEntries(l, gid, size);
    const missing = entries.flatMap((e, i) => (e.state === 'missing' ? [i] : []));
    if (missing.length > 0 && members === undefined) members = readGroupMembers(l, gid, size);
    const open: string[] = [];
    for (const i of missing.slice(0, MAX_LOOKED_UP)) {
      const id = members?.[i];
      if (id && dependencyState(l, id).state === 'open') open.push(id);
    }
    return { complete, entries, missing, open };
  };
  const x = await settled(look, (v) => v.missing.length === 0 || v.open.length > 0 || (!v.complete && v.missing.length > MAX_LOOKED_UP));
  if (x.open.length > 0) {
    job.after = x.open;
    return backToWaiting(l, job, x.open);
  }
  if (x.missing.length > 0 && !x.complete) return backToWaiting(l, job, []);
  // Every entry is there: the group is complete, whether or not a climber reached the root.
  if (!x.complete) markComplete(l, gid, size);
  if (job.after) { dropEdges(l, job.after, job.queue, job.id); delete job.after; }
  if (job.fn === BUILTIN_POSTPROCESS) return { run: false, next: recordSuccess(job, attempt, x.entries, endIso()) };
  return { run: true, args: [x.entries] };
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
