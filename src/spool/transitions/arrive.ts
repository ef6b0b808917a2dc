/**
 * arrive: a member of a composite group ended; the last one to arrive releases the group's postprocess.
 *
 *   groups/GID/0.INDEX                     the member's entry {id, state, result | failure}
 *   groups/GID/K.J                         fan-in markers, a tournament tree over the members
 *   waiting/PQUEUE/POST.json  ->  pending/PQUEUE/POST.json     at the root, once every member arrived
 *
 * Before: the member's final record (done or failed) is in place in its claim (finish.ts step 4): arrival
 *   runs inside finish, between its steps 4 and 5, for every finisher (worker, recovery, cancel). The
 *   member's `group` field gives GID, its INDEX among SIZE members, and the postprocess POST (checked as
 *   untrusted: safe names, bounded counts). The group folder and the postprocess in waiting/ were made by
 *   the client before any member was published (client/composite.ts).
 * Steps:
 *   1. write the member's entry as leaf 0.INDEX (a temporary in tmp/, renamed over the name: a member that
 *      runs again after `zcq retry` replaces its entry);
 *   2. climb: at level K the member's node is J (J = INDEX >> K). If the sibling node J^1 exists (it covers
 *      members below SIZE) and its marker K.(J^1) is absent, stop: the sibling's last arrival will climb.
 *      Otherwise create the parent's marker K+1.(J>>1) (exclusive create; EEXIST: the sibling's climber
 *      made it, fine) and go on. Each side creates its own marker BEFORE looking at its sibling's, so of
 *      two members arriving together at least one sees the other; both may climb, and they converge;
 *   3. at the root (level ceil(log2 SIZE)) release the postprocess: ONE rename out of waiting/ (release.ts
 *      releaseWaiting), which only one climber wins; the others get ENOENT and stop.
 * Cost: O(log SIZE) small files per member, no scan of the group: a group of 10,000 costs each member
 *   about 14 markers, one of 10 about 4. The postprocess reads the SIZE leaves once, when it runs (worker).
 * Crash after 1 or during 2: the final record is still in the claim (finish step 5 not done); recovery
 *   completes finish, which runs arrival again — every step is idempotent. After 3 (or during it): the
 *   postprocess is pending or still waiting with the root marker present; `zcq recover` (release.ts
 *   sweepWaiting) releases a postprocess whose root marker exists.
 * Fence: none needed: markers only ever appear (an entry is replaced whole), and the release is one
 *   rename of a job nobody holds. A retry that re-opens the group (client: reopenGroup) removes the
 *   member's leaf and its ancestors' markers before the member runs again, so the root is reached again
 *   only when every member has an entry.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../../errors.js';
import type { Failure, GroupRef, Job } from '../../job/format.js';
import { MAX_JOB_BYTES, readRegularFileSync, unlinkQuietly, writeReplaceSync } from '../fsops.js';
import type { Layout } from '../layout.js';
import { makeDir } from '../modes.js';
import { releaseWaiting } from './release.js';
import { step } from './steps.js';

/** What a postprocess receives per member, in input order. */
export interface GroupEntry {
  id: string;
  state: 'done' | 'failed' | 'missing';
  result?: unknown;
  failure?: Failure;
}

export type ArriveResult = 'stopped' | 'released' | 'root';

export function groupDir(l: Layout, gid: string): string { return join(l.groups, gid); }

/** Levels of the fan-in tree above the leaves: ceil(log2 size) (0 for a group of one). */
export function treeHeight(size: number): number {
  let k = 0;
  while (2 ** k < size) k++;
  return k;
}

export function markerName(level: number, node: number): string { return `${level}.${node}`; }

/** Whether node `node` of `level` covers at least one member of a group of `size`. */
function nodeExists(size: number, level: number, node: number): boolean {
  return node >= 0 && node * 2 ** level < size;
}

/** The member's arrival: steps 1–3. `state` is where its final record goes. */
export function arriveInGroup(l: Layout, job: Job, state: 'done' | 'failed', durable: boolean): ArriveResult {
  const g = job.group as GroupRef;
  const dir = groupDir(l, g.gid);
  if (!isRealDir(dir)) makeDir(l.modes, l.groups), makeDir(l.modes, dir);
  const entry: GroupEntry = state === 'done' ? { id: job.id, state, result: job.result ?? null } : { id: job.id, state, failure: job.failure };
  // 1. the leaf
  writeReplaceSync(join(dir, markerName(0, g.index)), JSON.stringify(entry) + '\n', { tmpDir: l.tmp, durable, mode: l.modes.fileMode });
  step('arrive', 1, job.id);
  // 2. climb
  const height = treeHeight(g.size);
  let node = g.index;
  for (let level = 0; level < height; level++) {
    const sib = node ^ 1;
    if (nodeExists(g.size, level, sib) && !exists(join(dir, markerName(level, sib)))) return 'stopped';
    node >>= 1;
    createMarker(join(dir, markerName(level + 1, node)), l.modes.fileMode);
    step('arrive', 2, `${job.id}@${level + 1}`);
  }
  // 3. the root: release the postprocess
  const released = releaseWaiting(l, g.postQueue, g.post, durable);
  step('arrive', 3, job.id);
  return released ? 'released' : 'root';
}

/** Whether every member arrived (the root marker, or the single leaf of a group of one). */
export function groupComplete(l: Layout, gid: string, size: number): boolean {
  if (size === 0) return true;
  const h = treeHeight(size);
  return exists(join(groupDir(l, gid), markerName(h, 0)));
}

/** The entries of a group, in input order (read by the worker that runs the postprocess). */
export function readEntries(l: Layout, gid: string, size: number): GroupEntry[] {
  const dir = groupDir(l, gid);
  const out: GroupEntry[] = [];
  for (let i = 0; i < size; i++) {
    let e: GroupEntry = { id: '', state: 'missing' };
    try {
      const r = readRegularFileSync(join(dir, markerName(0, i)), MAX_JOB_BYTES);
      if ('text' in r) {
        const v = JSON.parse(r.text) as Record<string, unknown>;
        if (v && typeof v === 'object' && typeof v.id === 'string' && (v.state === 'done' || v.state === 'failed')) {
          e = v.state === 'done' ? { id: v.id, state: 'done', result: v.result } : { id: v.id, state: 'failed', failure: v.failure as Failure };
        }
      }
    } catch { /* missing or unreadable: reported as 'missing' */ }
    out.push(e);
  }
  return out;
}

/**
 * Undo a member's arrival before it runs again (`zcq retry` of a member): remove its leaf and the markers
 * of its ancestors, so that the root is reached again only once it has ended anew.
 */
export function forgetArrival(l: Layout, g: GroupRef): void {
  const dir = groupDir(l, g.gid);
  if (!isRealDir(dir)) return;
  unlinkQuietly(join(dir, markerName(0, g.index)));
  const height = treeHeight(g.size);
  let node = g.index;
  for (let level = 1; level <= height; level++) { node >>= 1; unlinkQuietly(join(dir, markerName(level, node))); }
}

function createMarker(path: string, mode: number): void {
  try {
    fs.closeSync(fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode));
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
}

function exists(path: string): boolean {
  try { fs.lstatSync(path); return true; } catch (err) { if (errnoOf(err) === 'ENOENT') return false; throw err; }
}

function isRealDir(path: string): boolean {
  try { return fs.lstatSync(path).isDirectory(); } catch { return false; }
}
