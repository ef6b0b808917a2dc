/**
 * The file-system primitives every state change is built from. Invariants kept here:
 * - nothing half-written is ever visible under a published name: content is written in tmp/, fsynced
 *   (durable mode), closed with its return value checked (NFS reports write errors at close), then renamed
 *   or linked into place (NFS rule 4);
 * - a move that could collide never overwrites: `moveNoClobber` uses link()+unlink(), whose EEXIST is the
 *   collision (NFS rule 3), and counts an EEXIST whose target is our own inode as success (rule 2);
 * - fresh metadata comes from open()+fstat(), not stat() (rule 7); ENOENT and ESTALE mean "gone" (rule 9).
 */
import * as fss from 'node:fs';
import { open, link, unlink, rename, readdir, constants } from 'node:fs/promises';
import { promisify } from 'node:util';
import { dirname } from 'node:path';
import { isGone, errnoOf } from '../errors.js';

/** Create `path` exclusively, write `data`, fsync when durable, close. Removes the file on failure. */
export async function writeFileDurable(path: string, data: string | Uint8Array, durable: boolean): Promise<void> {
  writeFileSyncDurable(path, data, durable);
}

/** fsync a folder so that a rename into it survives a power cut (a no-op where folders cannot be opened). */
export async function fsyncDir(dir: string): Promise<void> {
  fsyncDirSync(dir);
}

let linkUnsupported = false;

/**
 * Move `src` to `dst` without ever replacing an existing `dst`. Returns false when `src` is gone (someone
 * else moved it: a lost race). Throws EEXIST when `dst` exists and is not the same file.
 */
export async function moveNoClobber(src: string, dst: string): Promise<boolean> {
  if (!linkUnsupported) {
    try {
      await link(src, dst);
    } catch (err) {
      const code = errnoOf(err);
      if (isGone(err)) return false;
      if (code === 'EEXIST') {
        if (!(await sameFile(src, dst))) throw err;
        // A retransmitted LINK that had already succeeded (NFS rule 2): carry on and unlink the source.
      } else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS' || code === 'EOPNOTSUPP' || code === 'EXDEV') {
        linkUnsupported = code !== 'EXDEV';
        return renameIfAbsent(src, dst);
      } else {
        throw err;
      }
    }
    try { await unlink(src); } catch (err) { if (!isGone(err)) throw err; }
    return true;
  }
  return renameIfAbsent(src, dst);
}

/** Fallback where hard links are unavailable: check then rename (names are unique, so the window is academic). */
async function renameIfAbsent(src: string, dst: string): Promise<boolean> {
  if (await exists(dst)) {
    const e = new Error(`EEXIST: ${dst} exists`) as NodeJS.ErrnoException;
    e.code = 'EEXIST';
    throw e;
  }
  return renameOrGone(src, dst);
}

/**
 * rename(2) that reports a lost race as `false` instead of throwing. Used where the target name is unique
 * to the caller (a worker's own lease folder, a fresh id) so that replacing cannot happen.
 * A rename error after which the source is gone and the target exists counts as success (NFS rule 2).
 */
export async function renameOrGone(src: string, dst: string): Promise<boolean> {
  try {
    await rename(src, dst);
    return true;
  } catch (err) {
    if (isGone(err)) {
      if (errnoOf(err) === 'ENOENT' && !(await exists(src)) && (await exists(dst)) && (await exists(dirname(dst)))) {
        // Could be a retransmitted rename that worked — or someone else's rename to the same target; the
        // caller only uses unique targets, so the target is ours.
        return true;
      }
      return false;
    }
    throw err;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    await fh.close();
    return true;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ELOOP') return true; // a symlink is there
    if (isGone(err) || code === 'ENOTDIR') return false;
    return true; // EACCES etc.: something is there
  }
}

async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
    try {
      const [sa, sb] = await Promise.all([fa.stat(), fb.stat()]);
      return sa.ino === sb.ino && sa.dev === sb.dev;
    } finally {
      await Promise.all([fa.close(), fb.close()]);
    }
  } catch {
    return false;
  }
}

/** readdir that treats a vanished folder as empty. */
export async function listNames(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isGone(err)) return [];
    throw err;
  }
}

/** Names a reader must ignore: dot-names (temporaries, `.nfs*` silly renames) and `.reason` side files. */
export function isJobName(name: string): boolean {
  return name.endsWith('.json') && !name.startsWith('.');
}

export const MAX_JOB_BYTES = 1 << 20;

/**
 * Read a job file without following a symlink, refusing anything that is not a regular file or is larger
 * than `maxBytes`. Returns the text, or a reason string (prefixed "!") describing why it is not a job file.
 * Throws ENOENT/ESTALE (gone) to the caller.
 */
export async function readRegularFile(path: string, maxBytes = MAX_JOB_BYTES): Promise<{ text: string; mtimeMs: number } | { bad: string }> {
  return readRegularFileSync(path, maxBytes);
}

/*
 * The synchronous primitives. The hot paths (put; read the claimed job, write its outcome, move it) call
 * them directly: on a local disk each call takes microseconds, and a promise round trip through libuv's
 * thread pool costs more than the call itself. The async names above are thin wrappers kept for callers
 * that read better with await.
 */

/** Write `path` (created, or truncated when `exclusive` is false), fsync when durable, close. */
export function writeFileSyncDurable(path: string, data: string | Uint8Array, durable: boolean, exclusive = true): void {
  const fd = fss.openSync(path, exclusive ? 'wx' : 'w', 0o644);
  try {
    fss.writeFileSync(fd, data);
    if (durable) fss.fsyncSync(fd);
  } catch (err) {
    try { fss.closeSync(fd); } catch { /* already failing */ }
    unlinkQuietly(path);
    throw err;
  }
  fss.closeSync(fd);
}

/** rename(2), false when the source is gone (a lost race); see renameOrGone. */
export function renameOrGoneSync(src: string, dst: string): boolean {
  try {
    fss.renameSync(src, dst);
    return true;
  } catch (err) {
    if (isGone(err)) {
      // A retransmitted rename that had already worked (NFS rule 2): source gone, our unique target there.
      if (errnoOf(err) === 'ENOENT' && !fss.existsSync(src) && existsNoFollowSync(dst)) return true;
      return false;
    }
    throw err;
  }
}

function existsNoFollowSync(path: string): boolean {
  try { fss.lstatSync(path); return true; } catch { return false; }
}

/** readRegularFile, synchronously. */
export function readRegularFileSync(path: string, maxBytes = MAX_JOB_BYTES): { text: string; mtimeMs: number } | { bad: string } {
  let fd: number;
  try {
    fd = fss.openSync(path, fss.constants.O_RDONLY | fss.constants.O_NOFOLLOW | fss.constants.O_NONBLOCK);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ELOOP' || code === 'EMLINK') return { bad: 'is a symbolic link' };
    if (code === 'EACCES' || code === 'EPERM') return { bad: `unreadable (${code})` };
    throw err;
  }
  try {
    const st = fss.fstatSync(fd);
    if (st.isDirectory()) return { bad: 'is a folder, not a job file' };
    if (!st.isFile()) return { bad: 'is not a regular file' };
    if (st.size > maxBytes) return { bad: `is ${st.size} bytes, larger than the ${maxBytes}-byte limit for a job file` };
    const buf = Buffer.allocUnsafe(Math.min(st.size + 1, maxBytes + 1));
    let n = 0;
    for (;;) {
      const r = fss.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
      if (n > maxBytes) return { bad: `is larger than the ${maxBytes}-byte limit for a job file` };
      // Published job files are never written again (new content comes by rename), so the size fstat
      // gave is the whole file: stop there rather than pay a second read to see end-of-file.
      if (n >= st.size) break;
    }
    return { text: buf.toString('utf8', 0, n), mtimeMs: st.mtimeMs };
  } catch (err) {
    if (errnoOf(err) === 'EISDIR') return { bad: 'is a folder, not a job file' };
    throw err;
  } finally {
    fss.closeSync(fd);
  }
}

/** unlink(2), ignoring any error: for temporaries that may already be gone. */
export function unlinkQuietly(path: string): void {
  try { fss.unlinkSync(path); } catch { /* gone already */ }
}

/**
 * fsync on libuv's thread pool. The hot paths use it where several jobs finish at once: the event loop
 * goes on, and the file system's journal merges the concurrent fsyncs into few commits.
 */
export const fsyncOnPool: (fd: number) => Promise<void> = promisify(fss.fsync);

/** writeFileSyncDurable (created or truncated), with its fsync on the pool. Removes the file on failure. */
export async function writeFileDurableOnPool(path: string, data: string, durable: boolean): Promise<void> {
  const fd = fss.openSync(path, 'w', 0o644);
  try {
    fss.writeFileSync(fd, data);
    if (durable) await fsyncOnPool(fd);
  } catch (err) {
    try { fss.closeSync(fd); } catch { /* already failing */ }
    unlinkQuietly(path);
    throw err;
  }
  fss.closeSync(fd);
}

/** fsyncDirSync, with the fsync on the pool. */
export async function fsyncDirOnPool(dir: string): Promise<void> {
  const fd = fss.openSync(dir, fss.constants.O_RDONLY | fss.constants.O_DIRECTORY);
  try {
    await fsyncOnPool(fd);
  } catch (err) {
    if (!fsyncUnsupported(errnoOf(err))) throw err;
  } finally {
    fss.closeSync(fd);
  }
}

/** Errors by which a file system says that folders cannot be fsynced (some FUSE and network mounts). */
export function fsyncUnsupported(code: string | undefined): boolean {
  return code === 'EINVAL' || code === 'ENOTSUP' || code === 'EISDIR' || code === 'EBADF' || code === 'EPERM' || code === 'ENOSYS';
}

/** fsyncDir, synchronously. */
export function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fss.openSync(dir, fss.constants.O_RDONLY | fss.constants.O_DIRECTORY);
    fss.fsyncSync(fd);
  } catch (err) {
    if (!fsyncUnsupported(errnoOf(err))) throw err;
  } finally {
    if (fd !== undefined) fss.closeSync(fd);
  }
}
