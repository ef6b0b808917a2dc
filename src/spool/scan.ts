/**
 * The read-only view of a spool: finding jobs by id and listing them, for `ls`, `show`, `wait`, `status`
 * and the dashboard. It reads names only (the folder is the state, the sub-folder the queue); it never
 * writes, so it works on a read-only spool. Entries it does not expect (dot-names, temporaries, odd names,
 * symlinks) are skipped here and left to the worker's quarantine and to `zcq doctor`.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { isGone } from '../errors.js';
import { isRealDir } from './fsops.js';
import { QUEUED_STATES, STATES, queueDir, type JobState, type Layout } from './layout.js';
import { deadLeaseOf } from './lease.js';
import { BUCKET, PRIORITY_FOLDERS, idFromName, jobName, parseClaimedName, parseDeferredName, priorityOfFolder } from './names.js';
import { brokenAlone, listEntries, listQueues } from './queues.js';

export interface Located {
  id: string;
  state: JobState;
  /** The queue folder it sits in; null for a loose file straight in pending/ or hold/. */
  queue: string | null;
  path: string;
  dueMs?: number;
  /** claimed: the lease holding it. */
  worker?: string;
  /** claimed: the claim's sequence number. */
  seq?: number;
}

export const ALL_STATES: readonly JobState[] = STATES;

/** A folder's names; [] when it is gone, not a folder, not ours to read (a queue of another group: per-queue permissions), or broken alone (queues.ts). */
function names(dir: string): string[] {
  try { return fs.readdirSync(dir); } catch (err) { if (isGone(err) || unreadable(err) || brokenAlone(dir, err)) return []; throw err; }
}

function unreadable(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM';
}

/** Every job in `state` (optionally one queue), in folder order. */
export function* scanState(l: Layout, state: JobState, queue?: string): Generator<Located> {
  if (state === 'claimed') {
    for (const e of listEntries(l.claimed)) {
      if (e.kind !== 'dir' || e.name.startsWith('.')) continue;
      yield* scanLease(join(l.claimed, e.name), e.name, queue);
    }
    return;
  }
  const { queues, odd } = listQueues(l[state]);
  if (state !== 'deferred' && queue === undefined) {
    for (const e of odd) {
      const id = idFromName(e.name);
      if (id && e.kind === 'file') yield { id, state, queue: null, path: join(l[state], e.name) };
    }
  }
  for (const q of queues) {
    if (queue !== undefined && q !== queue) continue;
    const qdir = queueDir(l, state, q);
    if (state === 'deferred') {
      for (const b of listEntries(qdir)) {
        if (b.kind !== 'dir' || !BUCKET.test(b.name)) continue;
        for (const name of names(join(qdir, b.name)).sort()) {
          const p = parseDeferredName(name);
          if (p) yield { id: p.id, state, queue: q, path: join(qdir, b.name, name), dueMs: p.dueMs };
        }
      }
      continue;
    }
    for (const name of names(qdir)) {
      const id = idFromName(name);
      if (id) yield { id, state, queue: q, path: join(qdir, name) };
      // pending/QUEUE/pN/: the jobs of priority N (only real folders: a symlink is never descended into).
      else if (state === 'pending' && priorityOfFolder(name) !== null && isRealDir(join(qdir, name))) {
        for (const inner of names(join(qdir, name))) {
          const iid = idFromName(inner);
          if (iid) yield { id: iid, state, queue: q, path: join(qdir, name, inner) };
        }
      }
    }
  }
}


function* scanLease(dir: string, worker: string, queue?: string): Generator<Located> {
  for (const name of names(dir)) {
    const c = parseClaimedName(name);
    if (c) { if (queue === undefined) yield { id: c.id, state: 'claimed', queue: null, path: join(dir, name), worker, seq: c.seq }; continue; }
    const inner = deadLeaseOf(name);
    // Only a real folder: a co-user's symlink named LEASE.dead would have us list a folder outside the spool.
    if (inner && isRealDir(join(dir, name))) yield* scanLease(join(dir, name), inner, queue);
  }
}

/** Every place the exact id is (normally one). Cheap states first; deferred/ only when not found elsewhere. */
export function findExact(l: Layout, id: string): Located[] {
  const found: Located[] = [];
  const file = jobName(id);
  for (const state of QUEUED_STATES) {
    if (state === 'deferred') continue;
    const { queues } = listQueues(l[state]);
    for (const q of queues) {
      const path = join(queueDir(l, state, q), file);
      if (existsNoFollow(path)) found.push({ id, state, queue: q, path });
      if (state === 'pending') {
        for (const level of PRIORITY_FOLDERS) {
          if (level === '') continue;
          const p = join(queueDir(l, state, q), level, file);
          if (existsNoFollow(p) && isRealDir(join(queueDir(l, state, q), level))) found.push({ id, state, queue: q, path: p });
        }
      }
    }
    if (state === 'pending' || state === 'hold') {
      const loose = join(l[state], file);
      if (existsNoFollow(loose)) found.push({ id, state, queue: null, path: loose });
    }
  }
  for (const loc of scanState(l, 'claimed')) if (loc.id === id) found.push(loc);
  if (found.length === 0) for (const loc of scanState(l, 'deferred')) if (loc.id === id) found.push(loc);
  return found;
}

/** Jobs whose id starts with `prefix`, in every state. */
export function findPrefix(l: Layout, prefix: string): Located[] {
  const out: Located[] = [];
  for (const state of ALL_STATES) for (const loc of scanState(l, state)) if (loc.id.startsWith(prefix)) out.push(loc);
  return out;
}

/** Whether a folder holds at least one job name (reads only the first entries, but a whole untyped folder: readNames). */
export function hasJobs(dir: string): boolean {
  try {
    return readNames(dir, (name) => !name.startsWith('.') && name.endsWith('.json'), 1).length > 0;
  } catch (err) {
    if (isGone(err) || unreadable(err) || brokenAlone(dir, err)) return false;
    throw err;
  }
}

/** Folders whose listing came without entry types (see readNames); bounded, forgotten all at once. */
const untypedFolders = new Set<string>();
const UNTYPED_MAX = 10_000;

/**
 * Up to `max` names of folder `dir` that `accept` takes, in directory order. Through fs.Dir, which reads
 * no more of the folder than that (O(max), not O(folder size)), where the file system gives each entry's
 * type with its name (getdents d_type). Where it does not (sshfs, some NFS mounts: DT_UNKNOWN), Node's Dir
 * lstats every entry it returns — one round trip each on such a mount, hundreds a scan — and a name that
 * a sibling renamed away meanwhile fails the whole read with ENOENT. A folder seen so once is read from then
 * on by readdir names only (no lstat; the whole folder, a few round trips per few hundred names).
 * Errors of opening the folder are thrown as they are.
 */
export function readNames(dir: string, accept: (name: string) => boolean, max: number): string[] {
  const names: string[] = [];
  if (!untypedFolders.has(dir)) {
    const d = fs.opendirSync(dir, { bufferSize: 32 }); // on an untyped folder, Node lstats a whole buffer before we can tell
    let untyped = false;
    try {
      for (let e = d.readSync(); e !== null; e = d.readSync()) {
        if (Object.getPrototypeOf(e) !== fs.Dirent.prototype) { untyped = true; break; } // made from an lstat
        if (!accept(e.name)) continue;
        names.push(e.name);
        if (names.length >= max) break;
      }
    } catch (err) {
      if (!isGone(err)) throw err;
      untyped = true; // an entry Node lstat'ed had gone (a folder of its own vanishing is caught by the readdir below)
    } finally {
      d.closeSync();
    }
    if (!untyped) return names;
    names.length = 0;
  }
  const all = fs.readdirSync(dir); // throws when the folder itself is gone: then nothing is remembered of it
  if (!untypedFolders.has(dir)) {
    if (untypedFolders.size >= UNTYPED_MAX) untypedFolders.clear();
    untypedFolders.add(dir);
  }
  for (const name of all) {
    if (!accept(name)) continue;
    names.push(name);
    if (names.length >= max) break;
  }
  return names;
}

/** The creation time encoded in an id's first field (base-36 ms), or null. */
export function idTimeMs(id: string): number | null {
  const m = /^([0-9a-z]{9})-/.exec(id);
  if (!m) return null;
  const ms = parseInt(m[1]!, 36);
  return Number.isFinite(ms) ? ms : null;
}

function existsNoFollow(path: string): boolean {
  try { return fs.lstatSync(path).isFile(); } catch { return false; }
}

/** Later state wins when a job shows in two places (a person's copy, or a finish that met a hand `mv`). */
export function pickCurrent(locs: readonly Located[]): Located {
  const order: JobState[] = ['waiting', 'pending', 'deferred', 'hold', 'claimed', 'done', 'failed'];
  return [...locs].sort((a, b) => order.indexOf(a.state) - order.indexOf(b.state))[0]!;
}
