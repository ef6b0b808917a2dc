/**
 * The queues of a state folder are its sub-folders. Listing them is the only way any code learns which
 * queues exist: an entry that is not a real folder with a queue name (a symlink, a file, a FIFO, an odd
 * name) is reported as odd, never descended into.
 */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { errnoOf, isGone, isMountGone, retryTransient } from '../errors.js';
import { pauseSync } from './fsops.js';
import { QUEUE_NAME } from './layout.js';

export interface Entry { name: string; kind: 'dir' | 'file' | 'symlink' | 'other' }

/**
 * Folders found broken alone in this process (see brokenAlone): the error each answered and when
 * (performance.now()) it last did, so that a long-lived process asking again (a doctor run, a dashboard)
 * hears of a folder that has mended no more. Bounded: a spool with more broken folders than this has bigger
 * trouble than its warnings.
 */
const broken = new Map<string, { error: string; seenAt: number }>();
const BROKEN_MAX = 1000;

/**
 * Whether `err`, from reading folder `dir`, means that folder alone is broken: a mount-gone error (EIO,
 * ENOTCONN, …: errors.ts) while `dir`'s parent still lists. A GlusterFS replica folder in gfid split-brain
 * answers EIO for good (docs/nfs.md) — one such queue folder must cost its own jobs, not make every worker
 * take the whole mount for gone and every `zcq ls` fail. Such a folder is skipped and remembered
 * (brokenFolders) for a warning; where the parent fails too, the mount is gone and the error stands.
 * A folder not known broken is read once more after BROKEN_LOOK_AGAIN_MS before it is remembered: a call in
 * flight to a replica brick that dies answers ENOTCONN once, and the next goes to the live brick (the rig,
 * replica 2 with one brick SIGKILLed under two workers). It is skipped for this pass either way (true).
 * `readAgain` is that second read (tests hand one that fails as a split-brain folder does).
 */
export function brokenAlone(dir: string, err: unknown, readAgain: (dir: string) => unknown = fs.readdirSync): boolean {
  if (!isMountGone(err)) return false;
  try { fs.readdirSync(dirname(dir)); } catch { return false; }
  if (!broken.has(dir)) {
    pauseSync(BROKEN_LOOK_AGAIN_MS);
    try { readAgain(dir); return true; } catch (again) { if (!isMountGone(again)) return true; }
  }
  if (broken.has(dir) || broken.size < BROKEN_MAX) broken.set(dir, { error: errnoOf(err) ?? String(err), seenAt: performance.now() });
  return true;
}

/** How long brokenAlone waits before it reads a failing folder again. */
const BROKEN_LOOK_AGAIN_MS = 200;

/**
 * The folders brokenAlone skipped in this process, with the error each answered: all of them, or those
 * that answered so at or after `since` (performance.now() of a caller's start).
 */
export function brokenFolders(since = -Infinity): Map<string, string> {
  const out = new Map<string, string>();
  for (const [dir, b] of broken) if (b.seenAt >= since) out.set(dir, b.error);
  return out;
}

/** Entries of a folder with their kind (d_type, or lstat where the file system does not say); [] when the folder is gone or broken alone. */
export function listEntries(dir: string): Entry[] {
  let ents: fs.Dirent[];
  try { ents = retryTransient(() => fs.readdirSync(dir, { withFileTypes: true })); } catch (err) { if (isGone(err) || brokenAlone(dir, err)) return []; throw err; }
  const out: Entry[] = [];
  for (const e of ents) {
    let kind: Entry['kind'] = e.isDirectory() ? 'dir' : e.isFile() ? 'file' : e.isSymbolicLink() ? 'symlink' : 'other';
    if (!e.isDirectory() && !e.isFile() && !e.isSymbolicLink() && !e.isFIFO() && !e.isSocket() && !e.isBlockDevice() && !e.isCharacterDevice()) {
      try { const st = fs.lstatSync(join(dir, e.name)); kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other'; } catch { continue; }
    }
    out.push({ name: e.name, kind });
  }
  return out;
}

/**
 * The queue folders of `stateDir`, sorted, the entries that are not (dot-names are skipped), and how many
 * sub-folders it held in all, dot-names included (what its link count counts: dirLinksCountFolders).
 */
export function listQueues(stateDir: string): { queues: string[]; odd: Entry[]; folders: number } {
  const queues: string[] = [];
  const odd: Entry[] = [];
  let folders = 0;
  for (const e of listEntries(stateDir)) {
    if (e.kind === 'dir') folders++;
    if (e.name.startsWith('.')) continue;
    if (e.kind === 'dir' && QUEUE_NAME.test(e.name)) queues.push(e.name);
    else odd.push(e);
  }
  return { queues: queues.sort(), odd, folders };
}

/**
 * Whether this file system's link count of a folder tells its sub-folders (2 + one per sub-folder: ext4,
 * XFS, tmpfs, GlusterFS; sshfs answers 1, btrfs 1, ext4 past 65,000 sub-folders 1), judged on a folder just
 * listed as holding `folders` sub-folders. A folder made or removed between the listing and the lstat makes
 * it false for this once: the answer errs only toward looking further.
 */
export function dirLinksCountFolders(dir: string, folders: number): boolean {
  try { return fs.lstatSync(dir).nlink === 2 + folders; } catch { return false; }
}

/** A real folder with no sub-folder, by its link count: to be asked only where dirLinksCountFolders said yes. */
export function hasNoFolders(dir: string): boolean {
  try { const st = fs.lstatSync(dir); return st.isDirectory() && st.nlink === 2; } catch { return false; }
}

/** Queues with a pause marker (paused/QUEUE): workers take no new job of them. One readdir per call. */
export function pausedQueues(l: { paused: string }): string[] {
  let names: string[];
  try { names = fs.readdirSync(l.paused); } catch { return []; }
  return names.filter((n) => QUEUE_NAME.test(n)).sort();
}
