/**
 * The queues of a state folder are its sub-folders. Listing them is the only way any code learns which
 * queues exist: an entry that is not a real folder with a queue name (a symlink, a file, a FIFO, an odd
 * name) is reported as odd, never descended into.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { isGone, retryTransient } from '../errors.js';
import { QUEUE_NAME } from './layout.js';

export interface Entry { name: string; kind: 'dir' | 'file' | 'symlink' | 'other' }

/** Entries of a folder with their kind (d_type, or lstat where the file system does not say); [] when the folder is gone. */
export function listEntries(dir: string): Entry[] {
  let ents: fs.Dirent[];
  try { ents = retryTransient(() => fs.readdirSync(dir, { withFileTypes: true })); } catch (err) { if (isGone(err)) return []; throw err; }
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

/** The queue folders of `stateDir`, sorted, and the entries that are not (dot-names are skipped). */
export function listQueues(stateDir: string): { queues: string[]; odd: Entry[] } {
  const queues: string[] = [];
  const odd: Entry[] = [];
  for (const e of listEntries(stateDir)) {
    if (e.name.startsWith('.')) continue;
    if (e.kind === 'dir' && QUEUE_NAME.test(e.name)) queues.push(e.name);
    else odd.push(e);
  }
  return { queues: queues.sort(), odd };
}

/** Queues with a pause marker (paused/QUEUE): workers take no new job of them. One readdir per call. */
export function pausedQueues(l: { paused: string }): string[] {
  let names: string[];
  try { names = fs.readdirSync(l.paused); } catch { return []; }
  return names.filter((n) => QUEUE_NAME.test(n)).sort();
}
