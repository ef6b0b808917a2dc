/**
 * What a job waits on and what waits on it (composite jobs, issue 12), for `zcq show` and the library:
 * read-only, from the job's own fields, the reverse dependency edges in deps/ID/, the group folder's entries
 * and the callback jobs' derived ids. Every name read is checked as untrusted; nothing is written.
 *
 * A snapshot: the edges of a dependent are removed once it is released, so "waited by" lists the jobs still
 * waiting on this one, not every job that ever did.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Job } from '../job/format.js';
import { QUEUE_NAME, type JobState, type Layout } from '../spool/layout.js';
import { SAFE_NAME } from '../spool/ids.js';
import { findExact, pickCurrent } from '../spool/scan.js';
import { callbackId } from '../spool/transitions/callback.js';

/** A related job and where it is now ('missing': in no state folder, e.g. pruned). */
export interface Related { id: string; state: JobState | 'missing' }

export interface Relations {
  /** The jobs it waits for (put with `after`; a serial member: the previous member). */
  after?: Related[];
  /** With `after`: whether it runs whatever their outcome. */
  afterAnyOutcome?: boolean;
  /** Jobs waiting on it now (their reverse edges in deps/ID/). */
  waitedBy: Related[];
  /** A member of a composite: its group, place (0-based) and postprocess. */
  group?: { gid: string; kind: 'parallel' | 'serial'; index: number; size: number; postprocess: Related };
  /** A postprocess: its group, the number of members and how many have ended (entries in groups/GID/). */
  members?: { gid: string; size: number; ended: number };
  /** The job that created it (currentJob().put / parallel / serial, or the parent of a callback). */
  parent?: Related;
  /** A job that returned a composite: the postprocess whose outcome becomes its own. */
  awaits?: Related;
  /** Its callbacks: the function, and the callback job once it was put. */
  then?: { fn: string; queue?: string; retries?: number; job?: Related };
  catch?: { fn: string; queue?: string; retries?: number; job?: Related };
}

/** At most this many dependents are listed (deps/ID/ of a job that many wait on may be large). */
const MAX_LISTED = 1000;

function where(l: Layout, id: string): Related {
  if (!SAFE_NAME.test(id)) return { id, state: 'missing' };
  const locs = findExact(l, id);
  return { id, state: locs.length > 0 ? pickCurrent(locs).state : 'missing' };
}

function names(dir: string): string[] {
  try { return fs.readdirSync(dir); } catch { return []; }
}

export function relationsOf(l: Layout, job: Job): Relations {
  const r: Relations = { waitedBy: [] };
  if (job.after && !job.awaits) {
    r.after = job.after.map((id) => where(l, id));
    if (job.afterAnyOutcome) r.afterAnyOutcome = true;
  }
  for (const name of names(join(l.deps, job.id)).slice(0, MAX_LISTED)) {
    const i = name.indexOf('~');
    const queue = name.slice(0, i), id = name.slice(i + 1);
    if (i > 0 && QUEUE_NAME.test(queue) && SAFE_NAME.test(id)) r.waitedBy.push(where(l, id));
  }
  if (job.group) {
    const g = job.group;
    r.group = { gid: g.gid, kind: g.kind, index: g.index, size: g.size, postprocess: where(l, g.post) };
  }
  if (job.postprocessOf) {
    const { gid, size } = job.postprocessOf;
    // Leaves are "0.INDEX" (transitions/arrive.ts); higher levels are the fan-in markers.
    const ended = SAFE_NAME.test(gid) ? names(join(l.groups, gid)).filter((n) => /^0\.\d+$/.test(n) && Number(n.slice(2)) < size).length : 0;
    r.members = { gid, size, ended };
  }
  if (job.parent) r.parent = where(l, job.parent);
  if (job.awaits) r.awaits = where(l, job.awaits);
  for (const kind of ['then', 'catch'] as const) {
    const spec = job[kind];
    if (!spec) continue;
    const cb = where(l, callbackId(job.id, kind));
    r[kind] = { fn: spec.fn, queue: spec.queue, retries: spec.retries, job: cb.state === 'missing' ? undefined : cb };
  }
  return r;
}
