/**
 * What `zcq show` tells of a composite job: the links the library reads (`spool.links`: parent, `after`,
 * awaited composite, group, postprocess, callbacks, dependents, children), each with where that job is
 * now, and for a postprocess how many of its members have ended. Read-only; every name read is checked.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Job } from '../job/format.js';
import type { JobState, Layout } from '../spool/layout.js';
import { SAFE_NAME } from '../spool/ids.js';
import { entryName } from '../spool/names.js';
import { findExact, pickCurrent } from '../spool/scan.js';
import type { JobLinks } from './spool.js';

/** A related job and where it is now ('missing': in no state folder, e.g. pruned, or not put yet). */
export interface Related { id: string; state: JobState | 'missing' }

export interface Relations {
  /** The jobs it waits for (put with `after`; a serial member: the previous member). */
  after?: Related[];
  /** With `after`: it runs whatever their outcome. */
  afterAnyOutcome?: boolean;
  /** A job that returned a composite: the postprocess whose outcome becomes its own. */
  awaits?: Related;
  /** A postprocess: its group, the number of members and how many have ended. */
  members?: { gid: string; size: number; ended: number };
  /** A member of a composite: its group, place (0-based) and postprocess. */
  group?: { gid: string; kind: 'parallel' | 'serial'; index: number; size: number; postprocess: Related };
  /** The job that created it (currentJob().put / parallel / serial; a callback's parent). */
  parent?: Related;
  /** Jobs waiting on it now. */
  waitedBy: Related[];
  /** Jobs it created while it ran. */
  children: Related[];
  /** Its callbacks: the function and the callback job (state 'missing' until the job ends and puts it). */
  then?: { fn: string; queue?: string; retries?: number; job: Related };
  catch?: { fn: string; queue?: string; retries?: number; job: Related };
}

/** At most this many dependents or children are looked up (the rest are counted, not listed). */
const MAX_LISTED = 1000;

function where(l: Layout, id: string): Related {
  if (!SAFE_NAME.test(id)) return { id, state: 'missing' };
  const locs = findExact(l, id);
  return { id, state: locs.length > 0 ? pickCurrent(locs).state : 'missing' };
}

/** Members of group `gid` (of `size`) that have ended: their entries in groups/GID/ (names.ts entryName). */
function endedMembers(l: Layout, gid: string, size: number): number {
  if (!SAFE_NAME.test(gid)) return 0;
  let names: string[];
  try { names = fs.readdirSync(join(l.groups, gid)); } catch { return 0; }
  return names.filter((n) => { const m = /^e\.(\d+)$/.exec(n); return m !== null && Number(m[1]) < size && n === entryName(Number(m[1])); }).length;
}

export function describeLinks(l: Layout, links: JobLinks, job: Job | undefined): Relations {
  const r: Relations = {
    waitedBy: links.waitedBy.slice(0, MAX_LISTED).map((id) => where(l, id)),
    children: links.children.slice(0, MAX_LISTED).map((id) => where(l, id)),
  };
  if (links.awaits) r.awaits = where(l, links.awaits);
  // A job that awaits a composite lists it in `after` too: shown once, as awaits.
  else if (links.after.length > 0) {
    r.after = links.after.map((id) => where(l, id));
    if (links.afterAnyOutcome) r.afterAnyOutcome = true;
  }
  if (links.postprocessOf) r.members = { gid: links.postprocessOf.gid, size: links.postprocessOf.size, ended: endedMembers(l, links.postprocessOf.gid, links.postprocessOf.size) };
  if (links.group) r.group = { gid: links.group.gid, kind: links.group.kind, index: links.group.index, size: links.group.size, postprocess: where(l, links.group.postprocess) };
  if (links.parent) r.parent = where(l, links.parent);
  for (const kind of ['then', 'catch'] as const) {
    const spec = job?.[kind];
    const id = links[kind];
    if (spec && id) r[kind] = { fn: spec.fn, queue: spec.queue, retries: spec.retries, job: where(l, id) };
  }
  return r;
}
