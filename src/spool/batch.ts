/**
 * Publishing new job files, one or many at a time: the write half of `Spool.put` and `Spool.putMany`.
 * Every file of a batch is created in tmp/, written, fsynced (durable mode) and closed before the first one
 * is renamed into place; then each is renamed to its target; then each target folder is fsynced once. A
 * reader never sees a half-written file, and a failure before the renames publishes nothing.
 *
 * The fsyncs of a batch are issued concurrently on libuv's thread pool, so that the file system commits
 * them together (one ext4 journal commit for several files) while this thread creates the next files; a
 * batch of one fsyncs inline, as a pool round trip would cost more than it saves.
 */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fsyncDirSync, renameOrGoneSync, unlinkQuietly } from './fsops.js';

/** A job file to publish: `dir/name` is its target; `makeDir` when `dir` may not exist yet (a deferred bucket). */
export interface Outgoing {
  id: string;
  text: string;
  dir: string;
  name: string;
  makeDir?: boolean;
}

/** fsyncs in flight at once: more than the pool's threads (4) keep it busy; the bound caps open files. */
const FSYNC_WINDOW = 32;

/** publish() stopped: the first `published` files are in place (renamed), the others were not; their temporaries are removed. */
export class PublishError extends Error {
  constructor(readonly published: number, readonly path: string, override readonly cause: NodeJS.ErrnoException) {
    super(`${path}: ${cause.message}`);
  }
}

/** Write `files` in `tmpDir`, fsync them (durable), rename each to its target, fsync each target folder once. */
export async function publish(tmpDir: string, files: readonly Outgoing[], durable: boolean): Promise<void> {
  const folders = new Set<string>();
  for (const f of files) folders.add(f.dir);
  // Bucket folders first, so that a failure here leaves nothing to undo. A folder created now must be
  // made durable in its parent too (deferred/), or a power cut could lose the bucket with its jobs.
  for (const f of files) {
    if (!f.makeDir) continue;
    try {
      const made = fs.mkdirSync(f.dir, { recursive: true });
      if (made !== undefined) folders.add(dirname(made));
    } catch (err) {
      throw new PublishError(0, f.dir, err as NodeJS.ErrnoException);
    }
  }

  const tmps: string[] = [];
  let failed: { path: string; err: NodeJS.ErrnoException } | undefined;
  const inflight = new Set<Promise<void>>();
  let at = tmpDir;
  try {
    for (const f of files) {
      const tmp = (at = join(tmpDir, `${f.id}.json`));
      const fd = fs.openSync(tmp, 'wx', 0o644);
      tmps.push(tmp);
      try {
        fs.writeFileSync(fd, f.text);
        if (durable && files.length === 1) fs.fsyncSync(fd);
      } catch (err) {
        try { fs.closeSync(fd); } catch { /* already failing */ }
        throw err;
      }
      if (!durable || files.length === 1) { fs.closeSync(fd); continue; }
      const p: Promise<void> = fsyncAndClose(fd)
        .catch((err: NodeJS.ErrnoException) => { failed ??= { path: tmp, err }; })
        .finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= FSYNC_WINDOW) await Promise.race(inflight);
      if (failed) break;
    }
    await Promise.all(inflight);
    if (failed) throw failed.err;
  } catch (err) {
    await Promise.all(inflight);
    for (const t of tmps) unlinkQuietly(t);
    throw new PublishError(0, failed?.path ?? at, err as NodeJS.ErrnoException);
  }

  let n = 0;
  try {
    for (; n < files.length; n++) {
      const f = files[n]!;
      if (!renameOrGoneSync(tmps[n]!, join(f.dir, f.name))) throw Object.assign(new Error(`ENOENT: ${tmps[n]} vanished before it was published`), { code: 'ENOENT' });
    }
  } catch (err) {
    for (let i = n; i < files.length; i++) unlinkQuietly(tmps[i]!);
    // Those already in place are published (a worker may be running them): make them durable if we can.
    if (durable) for (const dir of new Set(files.slice(0, n).map((f) => f.dir))) { try { fsyncDirSync(dir); } catch { /* reported below */ } }
    throw new PublishError(n, join(files[n]!.dir, files[n]!.name), err as NodeJS.ErrnoException);
  }

  if (!durable) return;
  for (const dir of folders) {
    try { fsyncDirSync(dir); } catch (err) { throw new PublishError(files.length, dir, err as NodeJS.ErrnoException); }
  }
}

/** fsync then close (always), on the thread pool; the first error wins. Close is checked: NFS reports write errors there. */
function fsyncAndClose(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fsync(fd, (syncErr) => fs.close(fd, (closeErr) => {
      const e = syncErr ?? closeErr;
      if (e) reject(e); else resolve();
    }));
  });
}
