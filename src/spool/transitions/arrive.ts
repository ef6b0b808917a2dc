/**
 * arrive: a member of a composite group ended; the last one to arrive releases the group's postprocess.
 *
 *   groups/GID/e.INDEX                     the member's entry: a hard link to its final record
 *   groups/GID/K.J, groups/GID/K.J.first   a tournament tree: node tokens and node slots
 *   waiting/PQUEUE/POST.json  ->  pending/PQUEUE/POST.json     at the root, once every member arrived
 *
 * Before: the member's final record (done or failed) is in place in its claim (finish.ts step 4): arrival
 *   runs inside finish, between its steps 4 and 5, for every finisher (worker, recovery, cancel). The
 *   member's `group` field gives GID, its INDEX among SIZE members, and the postprocess POST (checked as
 *   untrusted: safe names, bounded counts). The group folder and the postprocess in waiting/ were made by
 *   the client before any member was published (client/composite.ts).
 * Steps:
 *   1. link the member's final record (written and fsynced by finish) as its entry e.INDEX — no data
 *      written, no file fsync; later moves or pruning of the record leave the entry as it was. EEXIST with
 *      the same inode: a finish run again; another file there is replaced (a link in tmp/ renamed over).
 *      ENOENT: our lease was taken, and its recoverer completes finish and this arrival. The entry is
 *      also the leaf's token (a group of one, whose leaf is its root, links it as the token 0.0);
 *   2. climb. At level K our node is J = INDEX >> K, complete (its token exists: the entry at level 0,
 *      K.J above). If its sibling J^1 covers no member, the parent is complete too. Otherwise link our
 *      entry as the parent's slot K+1.(J>>1).first: success means we completed first — stop, the
 *      sibling's climber goes on. EEXIST means the sibling completed first — unless the slot is our own
 *      link of an earlier run (or of a retransmitted NFS link that worked): stop. Every token and slot a
 *      member makes is a link of its entry, so a slot holds the record of the member that filled it, and
 *      its id tells ours from the sibling's (a member climbs one path, so the sibling's climber is always
 *      another member; recovery may have rewritten our record since, so neither its inode nor its link
 *      count would tell). The second to complete links its entry as the parent's token (EEXIST: made by
 *      an earlier run) and climbs on. No file is created: a new inode is the dearest thing an arrival
 *      could ask of the file system. Every decision is made by the file server (link), or read from a
 *      file it said exists and whose name never holds another member's record, never by a lookup that a
 *      client cache could answer stale: exactly one member climbs out of each node. Durable mode: the
 *      folder is fsynced where the climb stops (a lost slot would let the sibling stop too, and the group never complete) — by finish at its step 6,
 *      beside the target folder and shared with the members finishing at once (finish.ts says why the
 *      arrival cannot reach the disk after the move, and what `zcq recover` completes where it could) —
 *      and here before the release;
 *   3. at the root (level ceil(log2 SIZE)) release the postprocess: ONE rename out of waiting/ (release.ts
 *      releaseWaiting); ENOENT: released already (an arrival run again) or cancelled.
 * Cost: per member one link, at most ceil(log2 SIZE) links and tokens, one folder fsync; no scan of the
 *   group: a group of 10,000 costs each member at most 14 steps, one of 10 at most 4. On average a member
 *   makes 4 links and creates no file: its entry; a node's slot, tried by both children; the parent's
 *   token, for the member that completes a node second. About one member in two per node reads the
 *   slot it could not fill (open, fstat, read, close), and each makes 1 lstat of the group folder (no
 *   symbolic link followed). The folder fsync is shared (finish step 6).
 *   The postprocess reads the SIZE entries once, when it runs (worker/composite.ts).
 * Crash after 1 or during 2: the final record is still in the claim (finish step 5 not done); recovery
 *   completes finish, which runs arrival again: every step is idempotent, and the id in a taken slot tells a
 *   first arrival's rerun from a second. After 3 (or during it): the postprocess is pending, or still
 *   waiting with the root token present; every worker's sweep of waiting/ (and `zcq recover`) releases a
 *   postprocess whose root token exists (release.ts sweepWaiting).
 * Fence: none needed: tokens and slots only appear, an entry is replaced whole, and the release is one
 *   rename of a job nobody holds. `zcq retry` of a member (forgetArrival), whether its group ended or is
 *   under way, removes its entry and its path's tokens and sets each slot on its path back to the sibling
 *   side's token when that side is complete, so the member's next end climbs exactly as far as the others
 *   allow, and the group completes only once the member has ended again. A retry that runs at the very
 *   moment the last other member climbs past the retried member's old slot (a decision made before the
 *   retry reset that slot) lets the climber release the postprocess with the member's entry gone, and may
 *   leave the member's next climb stopping short of the root. The postprocess's gate closes that: it runs
 *   only once every entry is there; finding a member's entry gone and that member open (retried), it goes
 *   back to waiting/ with a dependency edge on the member (worker/composite.ts), whose next end releases
 *   it (release.ts) — so it runs with the member's new record — and it marks the root itself when it
 *   finds every entry there. A retry while the postprocess runs past its gate (it read the member's old
 *   record, and the retry finds it not ended, so cannot re-open it): the retry leaves the group's mark
 *   `reopened` after removing the entry, the gate removed that mark before reading, and the postprocess's
 *   finish, after its move to done/ or failed/, finds the mark and sends it back to waiting/ (finish.ts
 *   reopenIfStale) to run again with the member's new record. Whichever of the retry's look and the
 *   finish's move comes first, one of the two re-opens it. A crash of that finish between its move and
 *   its check leaves the mark and the ended postprocess: the member's next arrival that reaches the root
 *   (release finds the postprocess out of waiting/) re-opens it, and so does `zcq recover`
 *   (reopenStalePostprocesses). A finish whose sending back fails (an odd file where the group or
 *   waiting/QUEUE should be, a full disk) keeps its move, leaves the mark, and the worker logs
 *   job.reopen.failed; the same two complete it. An entry found not forgotten and replaced (a member's old record that
 *   `zcq recover`'s re-arrival linked again while the member was being retried) marks the group the same
 *   way, and re-opens a postprocess that already ended with it.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../../errors.js';
import { parseJob, type Failure, type GroupRef, type Job } from '../../job/format.js';
import { MAX_JOB_BYTES, fsyncDirSync, isRealDir, pauseSync, readRegularFileSync, refusedAsExisting, unlinkQuietly } from '../fsops.js';
import { jobPath, type Layout } from '../layout.js';
import { makeDir } from '../modes.js';
import { entryName, jobName, markerName, slotName } from '../names.js';
import { listQueues } from '../queues.js';
import { findExact } from '../scan.js';
import { COMPOSITE } from '../../defaults.js';
import { SAFE_NAME } from '../ids.js';
import { releaseWaiting, settleWaiting } from './release.js';
import { reopenPostprocess } from './retry.js';
import { step } from './steps.js';

/** What a postprocess receives per member, in input order. */
export interface GroupEntry {
  id: string;
  state: 'done' | 'failed' | 'missing';
  result?: unknown;
  failure?: Failure;
}

/** How long a lookup of a file known to exist may fail from a stale cache (NFS lookupcache=all, FUSE negative_timeout). */
const STALE_LOOKUP_MS = COMPOSITE.staleLookupMs;

/** group.json holds up to MAX_GROUP_SIZE ids of at most 200 characters. */
const MAX_GROUP_FILE_BYTES = 64 * 1024 * 1024;

export type ArriveResult = 'stopped' | 'released' | 'root' | 'lost';

export function groupDir(l: Layout, gid: string): string { return join(l.groups, gid); }

/** Levels of the fan-in tree above the leaves: ceil(log2 size) (0 for a group of one). */
export function treeHeight(size: number): number {
  let k = 0;
  while (2 ** k < size) k++;
  return k;
}

/** Whether node `node` of `level` covers at least one member of a group of `size`. */
function nodeExists(size: number, level: number, node: number): boolean {
  return node >= 0 && node * 2 ** level < size;
}

/**
 * The member's arrival: steps 1–3. `record` is its final record in place (finish step 4: written and, in
 * durable mode, fsynced), `state` where it goes. 'lost' when the record is no longer there (our lease was
 * taken: its recoverer completes finish, and this arrival with it).
 */
export function arriveInGroup(l: Layout, job: Job, state: 'done' | 'failed', record: string, durable: boolean, syncLater?: (dir: string) => void): ArriveResult {
  const g = job.group as GroupRef;
  const dir = groupDir(l, g.gid);
  if (!isRealDir(dir)) { makeDir(l.modes, l.groups); makeDir(l.modes, dir); }
  // 1. the entry: a second name of the record itself, already on disk (no data written, no fsync of a file)
  const entry = join(dir, entryName(g.index));
  let replaced = false;
  try {
    fs.linkSync(record, entry);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return 'lost';
    if (!takenAlready(err, entry)) throw err;
    // A record of this same run (a finish run again by recovery) is there already; anything else at the name
    // (an entry of an earlier run not forgotten, a co-user's file) is replaced by a fresh link.
    if (!sameFile(record, entry)) {
      // Of another run (an old record re-arrived by `zcq recover` while the member was retried): the
      // postprocess may have run with it, and runs again (see the header). Of this run: recovery rewrote
      // the record (a new inode, the same outcome) and completes finish — nothing to run again.
      replaced = runOf(entry) !== (job.run ?? null);
      const tmp = join(l.tmp, `.entry-${job.id}-${process.pid}-${Date.now()}`);
      try { fs.linkSync(record, tmp); } catch (e) { if (errnoOf(e) === 'ENOENT') return 'lost'; throw e; }
      fs.renameSync(tmp, entry);
      if (replaced) markReopened(l, dir);
    }
  }
  // Our tokens are names of our entry (the record itself): the leaf's is the entry, a node we complete
  // second gets a link of it — no file is created. A slot we fill therefore holds this member's record.
  const height = treeHeight(g.size);
  if (height === 0) linkToken(entry, join(dir, markerName(0, g.index)));
  step('arrive', 1, job.id);
  // 2. climb
  let node = g.index;
  for (let level = 0; level < height; level++) {
    const parent = node >> 1;
    if (nodeExists(g.size, level, node ^ 1)) {
      const slot = join(dir, slotName(level + 1, parent));
      let first: boolean;
      try {
        fs.linkSync(entry, slot);
        first = true;
      } catch (err) {
        if (!takenAlready(err, slot)) throw err;
        // Our own link of an earlier run (or a retransmitted link that worked): the slot holds a record of
        // this member — by its id, as recovery may have rewritten the record (a new inode) since. A member
        // climbs one path, so the sibling's climber is always another member.
        first = idOf(slot) === job.id;
      }
      if (first) {
        // The slot must be on disk before the record leaves its claim (finish step 5): lost, it would let
        // the sibling stop too. Finish shares that fsync with the jobs finishing at the same time.
        if (durable) { if (syncLater) syncLater(dir); else fsyncDirSync(dir); }
        if (replaced) reopenEndedPostprocess(l, g.gid, g.postQueue, g.post, durable);
        return 'stopped';
      }
    }
    node = parent;
    linkToken(entry, join(dir, markerName(level + 1, node)));
    step('arrive', 2, `${job.id}@${level + 1}`);
  }
  if (durable) fsyncDirSync(dir);
  // 3. the root: release the postprocess
  const released = releaseWaiting(l, g.postQueue, g.post, durable);
  step('arrive', 3, job.id);
  // Not in waiting/: running, released already, or ended — with entries a retry changed since its gate
  // read them when the group is marked re-opened (a crash of its finish between the move and its check).
  if (!released) reopenEndedPostprocess(l, g.gid, g.postQueue, g.post, durable);
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
      const r = readRegularFileSync(join(dir, entryName(i)), MAX_JOB_BYTES);
      if ('text' in r) {
        // The leaf is the member's final record: a failure means it failed (a success deletes it).
        const v = JSON.parse(r.text) as Record<string, unknown>;
        if (v && typeof v === 'object' && typeof v.id === 'string') {
          e = v.failure ? { id: v.id, state: 'failed', failure: v.failure as Failure } : { id: v.id, state: 'done', result: v.result ?? null };
        }
      }
    } catch { /* missing or unreadable: reported as 'missing' */ }
    out.push(e);
  }
  return out;
}

/**
 * Undo a member's arrival before it runs again (`zcq retry` of a member, its group ended or not): remove its
 * entry and the tokens of its leaf and ancestors; at each ancestor, the slot is set back to what it would
 * be had this member not arrived — the sibling side's token when that side is complete, else nothing — so
 * that the member's next arrival climbs exactly as far as the other members' arrivals allow.
 */
export function forgetArrival(l: Layout, g: GroupRef): void {
  const dir = groupDir(l, g.gid);
  if (!isRealDir(dir)) return;
  unlinkQuietly(join(dir, entryName(g.index)));
  // After the entry is gone, never before: a gate that read the old entry cleared the mark before it read.
  markReopened(l, dir);
  unlinkQuietly(join(dir, markerName(0, g.index)));
  step('forget', 1, g.gid);
  const height = treeHeight(g.size);
  let node = g.index;
  for (let level = 1; level <= height; level++) {
    const sib = node ^ 1;
    node >>= 1;
    unlinkQuietly(join(dir, markerName(level, node)));
    const slot = join(dir, slotName(level, node));
    unlinkQuietly(slot);
    if (nodeExists(g.size, level - 1, sib)) {
      const sibToken = level === 1 ? entryName(sib) : markerName(level - 1, sib);
      try { fs.linkSync(join(dir, sibToken), slot); } catch { /* that side is not complete */ }
    }
  }
}

/** The members' ids of a group, in input order, from groups/GID/group.json (untrusted: null unless well formed). */
export function readGroupMembers(l: Layout, gid: string, size: number): string[] | null {
  try {
    const r = readRegularFileSync(join(groupDir(l, gid), 'group.json'), MAX_GROUP_FILE_BYTES);
    if (!('text' in r)) return null;
    const v = JSON.parse(r.text) as { members?: unknown };
    if (!Array.isArray(v.members) || v.members.length !== size || !v.members.every((m) => typeof m === 'string' && SAFE_NAME.test(m))) return null;
    return v.members as string[];
  } catch { return null; }
}

/**
 * Mark the group complete (its root token) when the postprocess found every member's entry although the
 * root was not reached — the tree was reset under a climber by a retry: a later retry of a member must see
 * the group complete, to re-open its postprocess.
 */
export function markComplete(l: Layout, gid: string, size: number): void {
  if (size === 0) return;
  closeToken(createToken(join(groupDir(l, gid), markerName(treeHeight(size), 0)), l.modes.fileMode));
}

/**
 * groups/GID/reopened: a member's end was undone (`zcq retry`: forgetArrival) or replaced since the
 * postprocess's gate last read the entries. The gate removes it before it reads; the retry makes it after
 * it removed the entry. So whatever the order, a postprocess that read an entry a retry then removed ends
 * with the mark present, and runs again (reopenEndedPostprocess); an old spool has no mark and nothing
 * changes. One name looked up per postprocess end, none per member.
 */
export const REOPENED = 'reopened';

function markReopened(l: Layout, dir: string): void {
  closeToken(createToken(join(dir, REOPENED), l.modes.fileMode));
}

/** The gate, before it reads the entries: a retry from now on leaves the mark again. */
export function clearReopened(l: Layout, gid: string): void {
  unlinkQuietly(join(groupDir(l, gid), REOPENED));
}

/** Whether the group was re-opened since the postprocess's gate last read its entries. */
export function reopenedSince(l: Layout, gid: string): boolean {
  return exists(join(groupDir(l, gid), REOPENED));
}

/**
 * A postprocess that ended although its group was re-opened since its gate read the entries goes back to
 * waiting/ (retry.ts reopenPostprocess: one rename, one winner), and is settled at once: released when the
 * group is complete again, else by the member's next end. `at` is where it ended when known (its finisher),
 * else done/ and failed/ of its queue are tried. Run by the postprocess's finisher after its move, by a
 * member whose arrival reaches the root and finds the postprocess out of waiting/, by an arrival that
 * replaced a stale entry, and by `zcq recover` (reopenStalePostprocesses) — the last two complete a
 * finisher that crashed between its move and its check. True when this call re-opened it.
 */
export function reopenEndedPostprocess(l: Layout, gid: string, queue: string, post: string, durable: boolean, at?: string): boolean {
  if (!reopenedSince(l, gid)) return false;
  for (const from of at ? [at] : [jobPath(l, 'done', queue, post), jobPath(l, 'failed', queue, post)]) {
    if (reopenPostprocess(l, from, queue, post, durable)) { settleWaiting(l, queue, post, durable); return true; }
  }
  return false;
}

/**
 * `zcq recover`'s pass over groups/: every group marked re-opened whose postprocess has ended (in done/ or
 * failed/) is re-opened (reopenEndedPostprocess). O(groups), by hand only. Returns how many.
 */
export function reopenStalePostprocesses(l: Layout, durable: boolean): number {
  let names: string[];
  try { names = fs.readdirSync(l.groups); } catch { return 0; }
  let n = 0;
  for (const gid of names) {
    if (!SAFE_NAME.test(gid) || !reopenedSince(l, gid)) continue;
    for (const loc of findExact(l, gid)) {
      if ((loc.state === 'done' || loc.state === 'failed') && loc.queue && reopenEndedPostprocess(l, gid, loc.queue, gid, durable, loc.path)) { n++; break; }
    }
  }
  return n;
}

/**
 * `zcq recover`'s repair of a group that waits although members have ended: each member found in done/
 * or failed/ with no entry arrives again from that record (a power cut during finish step 6, on a file
 * system that does not keep metadata operations in order, can keep a member's move and lose its arrival).
 * O(SIZE), run only by the full sweep of waiting/ (`zcq recover`), never per member end. A member being
 * retried at that instant (its entry forgotten, its record not yet moved) may arrive with its old record
 * once more; its new end replaces that entry, marks the group re-opened, and a postprocess that ran with
 * the old record runs again (arrive step 1). Returns how many members arrived again, and whether the
 * last of them released the postprocess.
 */
export function reArriveEnded(l: Layout, gid: string, size: number, durable: boolean): { arrived: number; released: boolean } {
  const dir = groupDir(l, gid);
  const none = { arrived: 0, released: false };
  if (!isRealDir(dir)) return none;
  const members = readGroupMembers(l, gid, size);
  if (!members) return none;
  let released = false;
  const places: { state: 'done' | 'failed'; dir: string }[] = [];
  for (const state of ['done', 'failed'] as const) for (const q of listQueues(l[state]).queues) places.push({ state, dir: join(l[state], q) });
  let n = 0;
  for (let i = 0; i < size; i++) {
    if (exists(join(dir, entryName(i)))) continue;
    for (const place of places) {
      const path = join(place.dir, jobName(members[i]!));
      let job: Job;
      try {
        const r = readRegularFileSync(path, MAX_JOB_BYTES);
        if (!('text' in r)) continue;
        job = parseJob(r.text, members[i]!);
      } catch { continue; }
      if (job.group?.gid !== gid || job.group.index !== i || job.group.size !== size) continue;
      const r = arriveInGroup(l, job, place.state, path, durable);
      if (r !== 'lost') n++;
      if (r === 'released') released = true;
      break;
    }
  }
  return { arrived: n, released };
}

/**
 * A node's token: an empty file, created once. Returns the open descriptor of a token made now (the
 * caller closes it), null when it existed (EEXIST: made by an earlier run of the same arrival).
 */
function createToken(path: string, mode: number): number | null {
  try {
    return fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
  } catch (err) {
    if (!takenAlready(err, path)) throw err;
    return null;
  }
}

function closeToken(fd: number | null): void {
  if (fd !== null) fs.closeSync(fd);
}

/** A node's token: a link of the climber's entry, made once (EEXIST: made by an earlier run of this arrival). */
function linkToken(entry: string, path: string): void {
  try { fs.linkSync(entry, path); } catch (err) { if (!takenAlready(err, path)) throw err; }
}

/**
 * Whether a link or exclusive create of `path` was refused because the name exists (refusedAsExisting). The
 * names of an arrival are never removed while it runs, so sshfs's EPERM (its answer when another machine made
 * the name at the same instant) counts only once the name is seen — looked for again for up to
 * STALE_LOOKUP_MS, as the mount may hold a negative lookup of it. Else the error stands.
 */
function takenAlready(err: unknown, path: string): boolean {
  if (errnoOf(err) !== 'EPERM') return refusedAsExisting(err, path, false);
  return untilSeen(() => (refusedAsExisting(err, path, false) ? true : undefined)) ?? false;
}

/**
 * The job id in the record at `path` (a slot: a member's entry linked there), null when unreadable.
 * The slot exists (link said EEXIST), so ENOENT can only be a negative lookup a client cached: tried again.
 */
function idOf(path: string): string | null {
  return untilSeen(() => {
    try {
      const r = readRegularFileSync(path, MAX_JOB_BYTES);
      const id = 'text' in r ? (JSON.parse(r.text) as { id?: unknown }).id : null;
      return typeof id === 'string' ? id : null;
    } catch (err) {
      return errnoOf(err) === 'ENOENT' ? undefined : null;
    }
  }) ?? null;
}

/**
 * `look()` until it answers (not undefined), every 100 ms for up to STALE_LOOKUP_MS: a name another machine
 * made may stay hidden behind a negative lookup the mount cached (NFS lookupcache=all, FUSE negative_timeout).
 * Synchronous, as the arrival it serves: it runs only after a refusal or a slot that answered "exists".
 */
function untilSeen<T>(look: () => T | undefined): T | undefined {
  const until = Date.now() + STALE_LOOKUP_MS;
  for (;;) {
    const answer = look();
    if (answer !== undefined || Date.now() > until) return answer;
    pauseSync(100);
  }
}

/** The `run` token of the record at `path` (an entry), null when unreadable or without one. */
function runOf(path: string): string | null {
  try {
    const r = readRegularFileSync(path, MAX_JOB_BYTES);
    const run = 'text' in r ? (JSON.parse(r.text) as { run?: unknown }).run : null;
    return typeof run === 'string' ? run : null;
  } catch { return null; }
}

function exists(path: string): boolean {
  try { fs.lstatSync(path); return true; } catch (err) { if (errnoOf(err) === 'ENOENT') return false; throw err; }
}

function sameFile(a: string, b: string): boolean {
  try { const x = fs.lstatSync(a), y = fs.lstatSync(b); return x.ino === y.ino && x.dev === y.dev; } catch { return false; }
}
