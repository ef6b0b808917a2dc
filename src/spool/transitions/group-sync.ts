/**
 * Group commit of folder fsyncs. A durable state change is a rename into a folder followed by an fsync
 * of that folder; workers finishing many jobs at once would each pay a full fsync in turn. Here the
 * callers that arrive while an fsync of a folder is in flight wait for one more fsync of it, shared.
 *
 * Invariant: a caller's promise resolves only after an fsync of the folder that started after the call
 * (so after the caller's rename), and rejects if that fsync failed.
 *
 * Descriptors kept: a caller that has just lstat'ed the folder passes its identity (folderKey), and the
 * folder's descriptor is then kept open for the next fsyncs of it, as long as the folder at that path is
 * still that inode. Opening and closing a folder for each fsync is two more calls a job, each a round trip
 * on a networked file system. The identity comes from the caller's own lstat just before its rename, so a
 * folder replaced at that path (removed and made again, or a co-user's symbolic link, which the lstat
 * already refused) gets a fresh descriptor; one replaced between that lstat and the rename gets the old
 * folder fsynced once, the same window the lstat already leaves. A kept descriptor is closed only when no
 * fsync runs on it, at most MAX_OPEN are kept, and a failure of one (ESTALE: the folder was removed
 * through another machine) drops it and fsyncs by path instead.
 */
import * as fs from 'node:fs';
import { fsyncDirOnPool, fsyncOnPool, fsyncUnsupported } from '../fsops.js';
import { errnoOf } from '../../errors.js';

/** Folder descriptors kept open at most (the least recently synced ones without an fsync running are closed). */
export const MAX_OPEN = 32;

/**
 * A folder's identity for a kept descriptor: device, inode and birth time. A descriptor we keep holds its
 * folder's inode, so a local file system cannot give that number to a folder made again at the path; an
 * NFS server can (the client's descriptor does not hold the server's inode), and ext4 does at once for a
 * folder nobody holds. The birth time tells them apart where the file system has one (Node reports 0
 * where it has none).
 */
export function folderKey(st: fs.Stats): string {
  return `${st.dev}:${st.ino}:${st.birthtimeMs}`;
}

/** Folders remembered at most before the idle ones without a descriptor are forgotten. */
const MAX_SLOTS = 256;

interface Slot { running?: Promise<void>; queued?: Promise<void>; fd?: number; key?: string }

export class GroupSync {
  private readonly slots = new Map<string, Slot>();
  private open = 0;
  private closed = false;

  /**
   * Resolves once a rename into `dir` made before this call is durable. `key` is folderKey of `dir` by an
   * lstat the caller made just before its rename; without it the folder is opened for this fsync only.
   */
  sync(dir: string, key?: string): Promise<void> {
    let slot = this.slots.get(dir);
    if (!slot) { if (this.slots.size >= MAX_SLOTS) this.sweep(); slot = {}; this.slots.set(dir, slot); }
    else { this.slots.delete(dir); this.slots.set(dir, slot); } // most recently used last
    if (slot.queued) return slot.queued;
    const running = slot.running;
    if (!running) return this.start(dir, slot, key);
    const s = slot;
    const next = () => { s.queued = undefined; return this.start(dir, s, key); };
    s.queued = running.then(next, next);
    return s.queued;
  }

  /** Close every kept descriptor once its fsync ended; later fsyncs open their folder each time. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.slots.values()].map((s) => Promise.allSettled([s.running, s.queued])));
    for (const s of this.slots.values()) this.closeFd(s);
    this.slots.clear();
  }

  /** Descriptors kept now (tests). */
  get openCount(): number { return this.open; }

  private start(dir: string, slot: Slot, key: string | undefined): Promise<void> {
    const p: Promise<void> = this.fsyncOnce(dir, slot, key).finally(() => { if (slot.running === p) slot.running = undefined; });
    slot.running = p;
    return p;
  }

  /** Runs only while no other fsync of this slot runs, so the slot's descriptor may be replaced here. */
  private async fsyncOnce(dir: string, slot: Slot, key: string | undefined): Promise<void> {
    if (key === undefined || this.closed) return fsyncDirOnPool(dir);
    if (slot.fd !== undefined && slot.key !== key) this.closeFd(slot);
    if (slot.fd === undefined) {
      let fd: number;
      try { fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW); } catch { return fsyncDirOnPool(dir); }
      let same = false;
      try { same = folderKey(fs.fstatSync(fd)) === key; } catch { /* told below */ }
      if (!same) { fs.closeSync(fd); return fsyncDirOnPool(dir); } // replaced since the caller's lstat (or unreadable)
      this.evictFor();
      slot.fd = fd; slot.key = key; this.open++;
    }
    try {
      await fsyncOnPool(slot.fd);
    } catch (err) {
      if (fsyncUnsupported(errnoOf(err))) return;
      this.closeFd(slot);
      return fsyncDirOnPool(dir);
    }
  }

  private closeFd(slot: Slot): void {
    if (slot.fd === undefined) return;
    try { fs.closeSync(slot.fd); } catch { /* closed with the mount */ }
    slot.fd = undefined; slot.key = undefined; this.open--;
  }

  /** Forget the idle folders that keep no descriptor (a worker fsyncs one folder per group it finishes members of). */
  private sweep(): void {
    for (const [dir, s] of this.slots) if (s.fd === undefined && !s.running && !s.queued) this.slots.delete(dir);
  }

  /** Make room for one more kept descriptor: close the least recently used idle ones. */
  private evictFor(): void {
    if (this.open < MAX_OPEN) return;
    for (const [dir, s] of this.slots) {
      if (this.open < MAX_OPEN) return;
      if (s.fd === undefined || s.running || s.queued) continue;
      this.closeFd(s);
      this.slots.delete(dir);
    }
  }
}
