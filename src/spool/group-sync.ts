/**
 * Group commit of folder fsyncs. A durable state change is a rename into a folder followed by an fsync
 * of that folder; workers finishing many jobs at once would each pay a full fsync in turn. Here the
 * callers that arrive while an fsync of a folder is in flight wait for one more fsync of it, shared.
 *
 * Invariant: a caller's promise resolves only after an fsync of the folder that started after the call
 * (so after the caller's rename), and rejects if that fsync failed.
 */
import * as fss from 'node:fs';
import { promisify } from 'node:util';
import { errnoOf } from '../errors.js';
import { fsyncUnsupported } from './fsops.js';

const fsyncFd = promisify(fss.fsync);

interface Slot { running?: Promise<void>; queued?: Promise<void> }

export class GroupSync {
  private readonly slots = new Map<string, Slot>();

  /** Resolves once a rename into `dir` made before this call is durable. */
  sync(dir: string): Promise<void> {
    let slot = this.slots.get(dir);
    if (!slot) { slot = {}; this.slots.set(dir, slot); }
    if (slot.queued) return slot.queued;
    const running = slot.running;
    if (!running) return this.start(dir, slot);
    const s = slot;
    const next = () => { s.queued = undefined; return this.start(dir, s); };
    s.queued = running.then(next, next);
    return s.queued;
  }

  private start(dir: string, slot: Slot): Promise<void> {
    const p: Promise<void> = fsyncDirAsync(dir).finally(() => { if (slot.running === p) slot.running = undefined; });
    slot.running = p;
    return p;
  }
}

/** fsync a folder on libuv's thread pool (a no-op where folders cannot be fsynced, as fsyncDirSync). */
export async function fsyncDirAsync(dir: string): Promise<void> {
  const fd = fss.openSync(dir, fss.constants.O_RDONLY | fss.constants.O_DIRECTORY);
  try {
    await fsyncFd(fd);
  } catch (err) {
    if (!fsyncUnsupported(errnoOf(err))) throw err;
  } finally {
    fss.closeSync(fd);
  }
}

/**
 * Write `path` (created or truncated), and in durable mode fsync it on the thread pool, where the fsyncs
 * of jobs finishing together are merged by the file system's journal. Removes the file on failure.
 */
export async function writeFileDurableOnPool(path: string, data: string, durable: boolean): Promise<void> {
  const fd = fss.openSync(path, 'w', 0o644);
  try {
    fss.writeFileSync(fd, data);
    if (durable) await fsyncFd(fd);
  } catch (err) {
    try { fss.closeSync(fd); } catch { /* already failing */ }
    try { fss.unlinkSync(path); } catch { /* gone */ }
    throw err;
  }
  fss.closeSync(fd);
}

/**
 * Write `text` into the existing file `path` (a spare inode, see Lease): only if no other name links it
 * (checked before truncating, so a file still named elsewhere is never touched), then fsync it on the
 * pool in durable mode. False, with the spare removed, when it cannot be used; throws on a write error.
 */
export async function rewriteSpare(path: string, text: string, durable: boolean): Promise<boolean> {
  let fd: number;
  try { fd = fss.openSync(path, fss.constants.O_RDWR | fss.constants.O_NOFOLLOW); } catch { return false; }
  let ok = false;
  try {
    const st = fss.fstatSync(fd);
    if (!st.isFile() || st.nlink !== 1) return false;
    fss.ftruncateSync(fd, 0);
    fss.writeFileSync(fd, text);
    if (durable) await fsyncFd(fd);
    ok = true;
  } finally {
    fss.closeSync(fd);
    if (!ok) { try { fss.unlinkSync(path); } catch { /* gone */ } }
  }
  return true;
}
