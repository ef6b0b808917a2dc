/**
 * The file-system primitives every state change is built from. Invariants kept here:
 * - nothing half-written is ever visible under a published name: content is written in tmp/, fsynced
 *   (durable mode), closed with its return value checked (NFS reports write errors at close), then renamed
 *   or linked into place (NFS rule 4); a job leaves a state by one rename of its only copy, never by
 *   link+unlink (a crash between the two left a second copy), and a move never aims at a name in use (rule 3);
 * - fresh metadata comes from open()+fstat(), not stat() (rule 7); ENOENT and ESTALE mean "gone" (rule 9).
 *
 * The spool may be group-writable: a co-user can plant a symlink, a FIFO, a socket, a hard link or an odd
 * name at any name we use. None of that may make us write, move or read outside the spool, or hang:
 * - every open of a spool file carries O_NOFOLLOW|O_NONBLOCK (libuv adds O_CLOEXEC to every open on
 *   Linux), then fstat()s the *descriptor* and refuses anything that is not a regular file ("is a FIFO",
 *   "is a symbolic link", ...): `openRegular*`, `readRegularFile*`, `readRegularText`. O_NONBLOCK makes
 *   the open of a FIFO return at once (for reading), or fail with ENXIO (for writing without a reader),
 *   instead of parking a thread until a writer comes. The check is on the descriptor, never on an lstat
 *   made before the open: the name can be swapped in between, the descriptor cannot. O_TRUNC is refused
 *   there (it would truncate before the check).
 * - new content is written only into a file we just created under a crypto-random name with
 *   O_CREAT|O_EXCL|O_NOFOLLOW (`createExclusive*`), then renamed over its name (`writeReplace*`); rename(2)
 *   replaces a planted symlink and never follows it. Nothing is ever written through an existing name,
 *   except by `rewriteOwnedInPlace*` / `checkOwnedRegular`: a regular file with our uid and one name only
 *   (a hard link to someone else's file, or to one of our own files elsewhere, has nlink 2 and is refused).
 * - the mode a file or folder gets is the one asked for whatever the process umask (fchmod on the fresh
 *   descriptor when the umask would strip bits; the umask is read once per process, see processUmask).
 * - `lstatDir` / `listNamesChecked` / `listEntries`: descend only into real folders. O_NOFOLLOW guards the
 *   last component only; a symlinked *parent* folder is still followed by open, rename, link and unlink,
 *   and Node has no openat/renameat: callers must check a folder with lstat before descending into it, and
 *   may prove an opened descriptor lies inside the spool with `fdIsInside` (Linux /proc). Between the check
 *   and the use a co-user who can write the parent can still swap the folder: that window is what remains.
 * - cleanup removes entries with unlink/rmdir/rm, which act on a symlink itself, never on its target.
 */
import * as fss from 'node:fs';
import { rename, readdir, lstat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { basename, dirname, join, sep } from 'node:path';
import { isGone, errnoOf, retryTransient, retryTransientAsync, ZcqError } from '../errors.js';

/** readdir that treats a vanished folder as empty. */
export async function listNames(dir: string): Promise<string[]> {
  try {
    return await retryTransientAsync(() => readdir(dir));
  } catch (err) {
    if (isGone(err)) return [];
    throw err;
  }
}

export const MAX_JOB_BYTES = 1 << 20;

/*
 * The synchronous primitives. The hot paths (put; read the claimed job, write its outcome, move it) call
 * them directly: on a local disk each call takes microseconds, and a promise round trip through libuv's
 * thread pool costs more than the call itself. The async names above are thin wrappers kept for callers
 * that read better with await.
 */

/**
 * Write `path` (created, or truncated when `exclusive` is false), fsync when durable, close. Never through
 * a symlink; with `exclusive` false an existing file is reused only when it is ours (see openForRewriteSync),
 * anything else at the name is removed (the entry itself) and the file created afresh. `mode` is applied
 * whatever the umask.
 */
export function writeFileSyncDurable(path: string, data: string | Uint8Array, durable: boolean, exclusive = true, mode = DEFAULT_FILE_MODE): void {
  const fd = exclusive ? openExclusiveSync(path, mode) : openForRewriteSync(path, mode);
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
    retryTransient(() => fss.renameSync(src, dst));
    return true;
  } catch (err) {
    if (isGone(err)) {
      // A retransmitted rename that had already worked (NFS rule 2): source gone, our unique target there.
      // The target first: on a lost race (the common case) it is absent, and that one look settles it.
      if (errnoOf(err) === 'ENOENT' && existsNoFollowSync(dst) && !fss.existsSync(src)) return true;
      return false;
    }
    throw err;
  }
}

/**
 * rename(2) for a move a person or a client makes (retry, hold, release): false when the source is gone.
 * No NFS-retransmit guess here: the target may be another mover's (two retries of one job), and the loser
 * must be told it lost. A retransmitted rename that did work is then reported as lost, harmlessly: the job
 * is where it was asked to go.
 */
export function renameStrictSync(src: string, dst: string): boolean {
  try {
    retryTransient(() => fss.renameSync(src, dst));
    return true;
  } catch (err) {
    if (isGone(err)) return false;
    throw err;
  }
}

/**
 * Whether an exclusive create or link of `path` was refused because the name exists. sshfs answers EPERM
 * there (SFTP v3 has no "exists" status, only SSH_FX_FAILURE), so EPERM counts as "exists" when the name is
 * there now; and, when its holder may have removed it by the time we look (`mayHaveGone`: a quota slot, a
 * rate token), whenever the folder is one we may write in. A real permission problem is still thrown.
 */
export function refusedAsExisting(err: unknown, path: string, mayHaveGone = true): boolean {
  const code = errnoOf(err);
  if (code === 'EEXIST') return true;
  if (code !== 'EPERM') return false;
  if (existsNoFollowSync(path)) return true;
  if (!mayHaveGone) return false;
  try { fss.accessSync(dirname(path), fss.constants.W_OK | fss.constants.X_OK); return true; } catch { return false; }
}

export function existsNoFollowSync(path: string): boolean {
  try { fss.lstatSync(path); return true; } catch { return false; }
}

type ReadVerdict = { text: string; mtimeMs: number } | { bad: string };

/** Open a file that must be regular, to read it (O_NOFOLLOW|O_NONBLOCK): its descriptor, or why it was refused. */
function openToReadSync(path: string): number | { bad: string } {
  try {
    return retryTransient(() => fss.openSync(path, O_READ_SAFE));
  } catch (err) {
    const refused = refusedRead(path, err);
    if (refused) return refused;
    throw err;
  }
}

/** What a refused open of a file that must be regular says, or null when the error is to be thrown. */
function refusedRead(path: string, err: unknown): { bad: string } | null {
  const code = errnoOf(err);
  const why = refusedOpen(path, code);
  if (why) return { bad: `${why}, not a regular file` };
  if (code === 'EACCES' || code === 'EPERM') return { bad: `unreadable (${code})` };
  return null;
}

/** The fstat check both reads make: a regular file of at most maxBytes (null: read it). */
function refusedStat(st: fss.Stats, maxBytes: number): { bad: string } | null {
  if (!st.isFile()) return { bad: `${describeKind(kindOfStats(st))}, not a regular file` };
  if (st.size > maxBytes) return { bad: `is ${st.size} bytes, larger than the ${maxBytes}-byte limit for a job file` };
  return null;
}

/**
 * Read up to maxBytes with `read` (sync or async), stopping at the size fstat gave: published job files are
 * never written again (new content comes by rename), so that size is the whole file, and a second read to
 * see end-of-file is not paid.
 */
async function readBounded(st: fss.Stats, maxBytes: number, read: (buf: Buffer, at: number) => number | Promise<number>): Promise<ReadVerdict> {
  const buf = Buffer.allocUnsafe(Math.min(st.size + 1, maxBytes + 1));
  let n = 0;
  for (;;) {
    const r = await read(buf, n);
    if (r === 0) break;
    n += r;
    if (n > maxBytes) return { bad: `is larger than the ${maxBytes}-byte limit for a job file` };
    if (n >= st.size) break;
  }
  return { text: buf.toString('utf8', 0, n), mtimeMs: st.mtimeMs };
}

/**
 * A file that must be a regular file of at most maxBytes, read on the thread pool: opened with the same
 * O_NOFOLLOW|O_NONBLOCK flags and fstat check as readRegularFileSync. Several reads at once overlap their
 * disk (or NFS) waits: the dashboard reads a page of job files so.
 */
export async function readRegularFile(path: string, maxBytes = MAX_JOB_BYTES): Promise<ReadVerdict> {
  let fh: fss.promises.FileHandle;
  try {
    fh = await fss.promises.open(path, O_READ_SAFE);
  } catch (err) {
    const refused = refusedRead(path, err);
    if (refused) return refused;
    throw err;
  }
  try {
    const st = await fh.stat();
    return refusedStat(st, maxBytes) ?? await readBounded(st, maxBytes, async (buf, at) => (await fh.read(buf, at, buf.length - at, at)).bytesRead);
  } catch (err) {
    if (errnoOf(err) === 'EISDIR') return { bad: 'is a folder, not a regular file' };
    throw err;
  } finally {
    await fh.close();
  }
}

/** readRegularFile, synchronously. */
export function readRegularFileSync(path: string, maxBytes = MAX_JOB_BYTES): ReadVerdict {
  const fd = openToReadSync(path);
  if (typeof fd !== 'number') return fd;
  try {
    const st = fss.fstatSync(fd);
    const refused = refusedStat(st, maxBytes);
    if (refused) return refused;
    const buf = Buffer.allocUnsafe(Math.min(st.size + 1, maxBytes + 1));
    let n = 0;
    for (;;) {
      const r = fss.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
      if (n > maxBytes) return { bad: `is larger than the ${maxBytes}-byte limit for a job file` };
      if (n >= st.size) break; // the size fstat gave is the whole file (see readBounded)
    }
    return { text: buf.toString('utf8', 0, n), mtimeMs: st.mtimeMs };
  } catch (err) {
    if (errnoOf(err) === 'EISDIR') return { bad: 'is a folder, not a regular file' };
    throw err;
  } finally {
    fss.closeSync(fd);
  }
}

/**
 * A job file this process has just claimed (renamed into its lease), read without the fstat
 * readRegularFileSync makes: on a networked file system that fstat is a round trip of its own (GlusterFS:
 * ~0.6 ms, more than the read), paid once a job by every worker. What the fstat refused is refused here by
 * the reads themselves: a FIFO answers pread with ESPIPE and a folder with EISDIR (a socket cannot be
 * opened: refusedOpen), and only root can make a device node. Reads go into one scratch buffer; past its
 * 64 KB — rare for a job file — the descriptor is fstat-checked before any more is read, so nothing that is
 * not a regular file is read past 64 KB.
 * Where the reads end: at a read that returns 0 — or at a short read whose text `complete` accepts (the
 * caller parses it: a whole job). A short read of a regular file is its end on a local disk and through a
 * page cache, but a network file system may return one before the end (a FUSE file system in direct-I/O
 * mode answers what its daemon sent), and a JSON object cut short does not parse; so the read that would
 * only confirm the end — one round trip a job on a network mount — is made only when the text so far is
 * not a job. `complete` is called with the text read so far and must not throw.
 */
export function readJustClaimedSync(path: string, maxBytes = MAX_JOB_BYTES, complete?: (text: string) => boolean): { text: string } | { bad: string } {
  const fd = openToReadSync(path);
  if (typeof fd !== 'number') return fd;
  try {
    let buf = claimScratch;
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (buf === claimScratch) {
          const refused = refusedStat(fss.fstatSync(fd), maxBytes);
          if (refused) return refused;
        }
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 4, maxBytes + 1));
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      const asked = buf.length - n;
      const r = fss.readSync(fd, buf, n, asked, n);
      if (r === 0) break;
      n += r;
      if (n > maxBytes) return { bad: `is larger than the ${maxBytes}-byte limit for a job file` };
      if (r < asked && complete) {
        const text = buf.toString('utf8', 0, n);
        if (complete(text)) return { text };
      }
    }
    return { text: buf.toString('utf8', 0, n) };
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'EISDIR') return { bad: 'is a folder, not a regular file' };
    if (code === 'ESPIPE') return { bad: `${describeFd(fd)}, not a regular file` };
    throw err;
  } finally {
    fss.closeSync(fd);
  }
}
const claimScratch = Buffer.allocUnsafe(64 * 1024);

/** What a descriptor that refused a read is, in words (a FIFO, normally). */
function describeFd(fd: number): string {
  try { return describeKind(kindOfStats(fss.fstatSync(fd))); } catch { return 'is a FIFO or a socket'; }
}

/** Wait `ms` without returning to the event loop: the pause of a synchronous look-again loop (a stale lookup, a folder being made elsewhere). */
export function pauseSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * A folder, not a symbolic link to one (nor anything else planted at its name); false when nothing is there.
 * throwIfNoEntry: most looks find nothing (no deps/ID for nearly every ending job), and building the ENOENT
 * error costs more than the lstat.
 */
export function isRealDir(path: string): boolean {
  try { return fss.lstatSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false; } catch { return false; }
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

/* ------------------------------------------------------------------------------------------------------
 * Opening spool files safely (see the header): O_NOFOLLOW|O_NONBLOCK, then fstat of the descriptor.
 * ---------------------------------------------------------------------------------------------------- */

const C = fss.constants;
const O_READ_SAFE = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;

/** The mode of files zcq creates when the caller names none (a private spool's; modes.ts has the spool's own). */
export const DEFAULT_FILE_MODE = 0o644;

/** What an entry is, by lstat or fstat (never by its name). */
export type EntryKind = 'file' | 'folder' | 'symlink' | 'FIFO' | 'socket' | 'character device' | 'block device' | 'unknown';

export function kindOfStats(st: fss.Stats | fss.Dirent): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'folder';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'unknown';
}

/** "is a FIFO", "is a symbolic link", ... for one-line messages. */
export function describeKind(kind: EntryKind): string {
  switch (kind) {
    case 'file': return 'is a regular file';
    case 'symlink': return 'is a symbolic link';
    case 'unknown': return 'is of an unknown kind';
    default: return `is a ${kind}`;
  }
}

/**
 * A spool entry zcq will not read or write: not a regular file, not ours, or with another name elsewhere.
 * One line naming the file: `PATH: is a FIFO, not a regular file`.
 */
export class UnsafeFileError extends ZcqError {
  constructor(readonly path: string, readonly why: string) {
    super('ZCQ_UNSAFE_FILE', `${path}: ${why}`, 1);
  }
}

export function isUnsafeFile(err: unknown): err is UnsafeFileError {
  return err instanceof UnsafeFileError;
}

/**
 * Why an O_NOFOLLOW|O_NONBLOCK open was refused by the kernel for the entry's kind, or null for other
 * errors. ELOOP (Linux) / EMLINK (BSD): the last component is a symlink; ENXIO: a FIFO opened for writing
 * with no reader, or a socket; EISDIR: a folder opened for writing. The kind in the message comes from an
 * lstat made only to word it; nothing is decided by that lstat.
 */
function refusedOpen(path: string, code: string | undefined): string | null {
  if (code === 'ELOOP' || code === 'EMLINK') return 'is a symbolic link';
  if (code === 'EISDIR') return 'is a folder';
  if (code === 'ENXIO' || code === 'ENODEV' || code === 'EOPNOTSUPP') {
    try { return describeKind(kindOfStats(fss.lstatSync(path))); } catch { return 'is a FIFO or a socket'; }
  }
  return null;
}

/**
 * Open `path` with `flags` | O_NOFOLLOW | O_NONBLOCK and make sure the descriptor is a regular file.
 * Throws UnsafeFileError for a symlink, FIFO, socket, device or folder (never blocks on any of them);
 * ENOENT/ESTALE and permission errors are thrown as they come. O_TRUNC is refused: it would truncate
 * before the check (use rewriteOwnedInPlace). The caller closes `fd`.
 */
export function openRegularSync(path: string, flags: number = C.O_RDONLY, mode = DEFAULT_FILE_MODE): { fd: number; st: fss.Stats } {
  if (flags & C.O_TRUNC) throw new TypeError(`openRegular(${path}): O_TRUNC would truncate before the file is checked`);
  let fd: number;
  try {
    fd = retryTransient(() => fss.openSync(path, flags | C.O_NOFOLLOW | C.O_NONBLOCK, mode));
  } catch (err) {
    const why = refusedOpen(path, errnoOf(err));
    if (why) throw new UnsafeFileError(path, `${why}, not a regular file`);
    throw err;
  }
  try {
    const st = fss.fstatSync(fd);
    if (!st.isFile()) throw new UnsafeFileError(path, `${describeKind(kindOfStats(st))}, not a regular file`);
    return { fd, st };
  } catch (err) {
    fss.closeSync(fd);
    throw err;
  }
}

/** openRegularSync. The open itself cannot block (O_NONBLOCK), so it runs inline. */
export async function openRegular(path: string, flags: number = C.O_RDONLY, mode = DEFAULT_FILE_MODE): Promise<{ fd: number; st: fss.Stats }> {
  return openRegularSync(path, flags, mode);
}

/**
 * The text of a small regular file (a marker, a schedule, a cron state, a heartbeat). Throws UnsafeFileError
 * for anything that is not a regular file or is larger than `maxBytes`; ENOENT/ESTALE as they come.
 */
export function readRegularTextSync(path: string, maxBytes = 64 * 1024): string {
  const r = readRegularFileSync(path, maxBytes);
  if ('bad' in r) throw new UnsafeFileError(path, r.bad);
  return r.text;
}

export async function readRegularText(path: string, maxBytes = 64 * 1024): Promise<string> {
  return readRegularTextSync(path, maxBytes);
}

/* ------------------------------------------------------------------------------------------------------
 * Creating and replacing: exclusive temporaries under crypto-random names.
 * ---------------------------------------------------------------------------------------------------- */

let umaskCache: number | undefined;

/**
 * The process umask, read once. (process.umask() without an argument is deprecated in the documentation
 * only, DEP0139, for its race with a thread changing it; zcq never changes it.) A test that wants another
 * umask sets it before zcq creates anything.
 */
export function processUmask(): number {
  umaskCache ??= process.umask();
  return umaskCache;
}

/** fchmod the fresh descriptor when the umask took bits of `mode` away, or `mode` has setgid/sticky bits. */
export function applyModeSync(fd: number, mode: number): void {
  const perm = mode & 0o777;
  if ((perm & ~processUmask()) !== perm || (mode & 0o7000) !== 0) fss.fchmodSync(fd, mode);
}

/** open(O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW) and the exact mode: fails with EEXIST for anything at `path`, a symlink included. */
export function openExclusiveSync(path: string, mode: number): number {
  const fd = fss.openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode & 0o777);
  try {
    applyModeSync(fd, mode);
  } catch (err) {
    try { fss.closeSync(fd); } catch { /* already failing */ }
    unlinkQuietly(path);
    throw err;
  }
  return fd;
}

/**
 * A descriptor for rewriting `path`, a name that is ours by convention (a worker's temp name for a job):
 * created exclusively; or, when something is there already, reused only if it is a regular file of ours
 * with one name (checkOwnedRegular), then truncated. Anything else there — a planted symlink, FIFO, hard
 * link, someone else's file — is unlinked (the entry itself) and the file created afresh, once.
 */
function openForRewriteSync(path: string, mode: number): number {
  for (let attempt = 0; ; attempt++) {
    try {
      return openExclusiveSync(path, mode);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST' || attempt > 0) throw err;
    }
    try {
      const { fd } = openRegularSync(path, C.O_WRONLY);
      try {
        checkOwnedRegular(fd, path);
        fss.ftruncateSync(fd, 0);
        return fd;
      } catch (err) {
        fss.closeSync(fd);
        throw err;
      }
    } catch (err) {
      if (!(err instanceof UnsafeFileError) && !isGone(err) && errnoOf(err) !== 'EACCES' && errnoOf(err) !== 'EPERM') throw err;
    }
    try { fss.unlinkSync(path); } catch (err) { if (!isGone(err)) throw err; }
  }
}

/**
 * Create a new empty file in `dir` under `prefix` + a crypto-random suffix (O_CREAT|O_EXCL|O_NOFOLLOW, the
 * exact `mode`) and return it *open* for writing: for a file written many times through its descriptor
 * (the clock probe), so that no later write goes through a name a co-user could have swapped.
 */
export function createExclusiveOpenSync(dir: string, prefix: string, mode = DEFAULT_FILE_MODE): { fd: number; path: string } {
  return openFreshSync(dir, prefix, mode);
}

/** How many times one write makes a removed folder again before it gives up (a removal racing the remake). */
export const REMAKES_MAX = 3;

/**
 * Folders that a person may remove by hand while workers run, and that the first write to find them gone
 * makes again (layout.ts registers them with the spool's modes: tmp/, workers/, claimed/, progress/,
 * quarantine/). `rm -rf SPOOL/tmp` to clear "temporary files" took every worker's heartbeat, then its lease
 * and its running jobs, and failed every put; without progress/ a job's progress() failed the job.
 */
const remakers = new Map<string, () => void>();

export function remakeWhenGone(dir: string, make: () => void): void {
  remakers.set(dir, make);
}

/**
 * Make `dir` again if it is a registered folder (remakeWhenGone) that is gone: true when it was made. False
 * when it cannot be (a read-only mount; a member of a shared spool, who may not write its root): the caller
 * then fails with its own error, as before.
 */
export function remadeIfGone(dir: string): boolean {
  const make = remakers.get(dir);
  if (!make || isRealDir(dir)) return false;
  try { make(); } catch { return false; }
  return true;
}

/** A name nobody can guess and so pre-create: `prefix` + 96 random bits (base64url). */
export function randomName(prefix: string): string {
  if (prefix.includes('/') || prefix.includes(sep)) throw new TypeError(`temporary name prefix '${prefix}' contains a path separator`);
  return prefix + randomBytes(12).toString('base64url');
}

export interface CreateOptions {
  /** fsync the file before closing it. */
  durable?: boolean;
  /** The file's mode, applied whatever the umask (default 0644; modes.ts's fileModeFor gives the spool's). */
  mode?: number;
}

function writeAllSync(fd: number, data: string | Uint8Array): void {
  fss.writeFileSync(fd, data);
}

/** Open a fresh name `prefix` + random in `dir` exclusively; EEXIST (a name someone prepared) is retried under a new name. */
function openFreshSync(dir: string, prefix: string, mode: number): { fd: number; path: string } {
  // A person's `rm -rf` still running can take the folder again just after we made it: a few remakes.
  let remakes = 0;
  for (let attempt = 0; ; attempt++) {
    const path = join(dir, randomName(prefix));
    try {
      return { fd: openExclusiveSync(path, mode), path };
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' && remakes < REMAKES_MAX && remadeIfGone(dir)) { remakes++; continue; }
      if (code !== 'EEXIST' || attempt >= 3) throw err;
    }
  }
}

/** Write `data` through `fd`, `sync` it, close (its error checked: NFS reports write errors there); on failure remove `path`. */
async function fillAndClose(fd: number, path: string, data: string | Uint8Array, sync: (fd: number) => void | Promise<void>): Promise<void> {
  try {
    writeAllSync(fd, data);
    await sync(fd);
  } catch (err) {
    try { fss.closeSync(fd); } catch { /* already failing */ }
    unlinkQuietly(path);
    throw err;
  }
  try { fss.closeSync(fd); } catch (err) { unlinkQuietly(path); throw err; }
}

/**
 * Create a new file in `dir` under `prefix` + a crypto-random suffix with O_CREAT|O_EXCL|O_NOFOLLOW (so it
 * cannot be a name someone prepared: EEXIST is retried under a new name), write `data`, fsync when durable,
 * close with its error checked (NFS reports write errors at close). Removed on any failure. Returns its path.
 */
export function createExclusiveSync(dir: string, prefix: string, data: string | Uint8Array, opts: CreateOptions = {}): string {
  const { fd, path } = openFreshSync(dir, prefix, opts.mode ?? DEFAULT_FILE_MODE);
  try {
    writeAllSync(fd, data);
    if (opts.durable) fss.fsyncSync(fd);
  } catch (err) {
    try { fss.closeSync(fd); } catch { /* already failing */ }
    unlinkQuietly(path);
    throw err;
  }
  try { fss.closeSync(fd); } catch (err) { unlinkQuietly(path); throw err; }
  return path;
}

/** createExclusiveSync with its fsync on libuv's pool. */
export async function createExclusive(dir: string, prefix: string, data: string | Uint8Array, opts: CreateOptions = {}): Promise<string> {
  if (!opts.durable) return createExclusiveSync(dir, prefix, data, opts);
  const { fd, path } = openFreshSync(dir, prefix, opts.mode ?? DEFAULT_FILE_MODE);
  await fillAndClose(fd, path, data, fsyncOnPool);
  return path;
}

export interface ReplaceOptions extends CreateOptions {
  /**
   * Where the temporary is created (same file system as `path`: the spool's tmp/). Default: beside `path`,
   * as a dot-name that readers skip.
   */
  tmpDir?: string;
}

function tmpPrefixFor(path: string): string {
  return `.${basename(path).slice(0, 80)}.`;
}

/**
 * Replace the content of `path` atomically: an exclusive temporary (createExclusive), then rename(2) over
 * `path`, then (durable) an fsync of the folder. rename replaces whatever entry is at `path` — a planted
 * symlink is replaced, never followed — so nothing outside the spool is ever written.
 *
 * This is what write-file-atomic (7.0.1) does *not* do, on purpose: it realpath()s the target first and
 * writes beside the symlink's target ("resolves symlinks so the link survives"), creates its temporary
 * with open(..., 'w') — no O_EXCL, no O_NOFOLLOW — under a predictable name (sha1 of its own file name,
 * pid, thread id and a counter), and copies the target's mode and owner through stat/chown/chmod, which
 * follow symlinks. In a group-writable spool that writes wherever a co-user points a link.
 */
export function writeReplaceSync(path: string, data: string | Uint8Array, opts: ReplaceOptions = {}): void {
  const tmp = createExclusiveSync(opts.tmpDir ?? dirname(path), tmpPrefixFor(path), data, opts);
  try {
    try {
      fss.renameSync(tmp, path);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT' || !remadeIfGone(dirname(path))) throw err;
      fss.renameSync(tmp, path);
    }
  } catch (err) {
    unlinkQuietly(tmp);
    throw err;
  }
  if (opts.durable) fsyncDirSync(dirname(path));
}

export async function writeReplace(path: string, data: string | Uint8Array, opts: ReplaceOptions = {}): Promise<void> {
  const tmp = await createExclusive(opts.tmpDir ?? dirname(path), tmpPrefixFor(path), data, opts);
  try {
    try {
      await rename(tmp, path);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT' || !remadeIfGone(dirname(path))) throw err;
      await rename(tmp, path);
    }
  } catch (err) {
    unlinkQuietly(tmp);
    throw err;
  }
  if (opts.durable) await fsyncDirOnPool(dirname(path));
}

/* ------------------------------------------------------------------------------------------------------
 * Rewriting a file of our own in place (spares; heartbeats when the disk is full).
 * ---------------------------------------------------------------------------------------------------- */

/**
 * Our effective uid, read once: geteuid(2) is a system call each time, made once a job (a spare's check).
 * zcq never changes it; in a program that changes it after loading zcq, the check judges by the first (and
 * the descriptor it looks at was opened with the permissions of the current one).
 */
export const EUID = process.geteuid?.();

/**
 * Throw UnsafeFileError unless descriptor `fd` is a regular file owned by our effective uid with exactly
 * one name. Call it on a descriptor opened with O_NOFOLLOW|O_NONBLOCK *before* truncating or writing.
 * - not regular: a FIFO, socket, device or folder planted at the name;
 * - another uid: someone else's file (or, under NFS root squash, a root worker's own files belong to
 *   nobody: they are refused too, and the caller falls back to creating a new file);
 * - nlink > 1: the name is a hard link to a file that has another name — maybe a live job file, maybe a
 *   file outside the spool a co-user linked in (protected_hardlinks allows that for files they can write).
 * Returns the descriptor's stats.
 */
export function checkOwnedRegular(fd: number, path = `descriptor ${fd}`): fss.Stats {
  const st = fss.fstatSync(fd);
  if (!st.isFile()) throw new UnsafeFileError(path, `${describeKind(kindOfStats(st))}, not a regular file`);
  const uid = EUID;
  if (uid !== undefined && st.uid !== uid) throw new UnsafeFileError(path, `belongs to uid ${st.uid}, not to this process (uid ${uid}); not written in place`);
  if (st.nlink !== 1) throw new UnsafeFileError(path, `has ${st.nlink} names (a hard link); not written in place`);
  return st;
}

function rewriteFd(path: string): number {
  const { fd } = openRegularSync(path, C.O_WRONLY);
  try {
    checkOwnedRegular(fd, path);
    return fd;
  } catch (err) {
    fss.closeSync(fd);
    throw err;
  }
}

/**
 * Rewrite a file we own in place: open O_WRONLY|O_NOFOLLOW|O_NONBLOCK (no O_CREAT, no O_TRUNC), refuse it
 * unless checkOwnedRegular passes, then write `data` at offset 0 and cut the file to its length. Writing
 * over the blocks the file already has, rather than truncating first, needs no free space when the new
 * content is not longer (a heartbeat on a full disk) and never shows a reader an empty file.
 * Throws UnsafeFileError when refused, ENOENT when gone.
 */
export function rewriteOwnedInPlaceSync(path: string, data: string | Uint8Array, opts: { durable?: boolean } = {}): void {
  const fd = rewriteFd(path);
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  try {
    let n = 0;
    while (n < buf.length) n += fss.writeSync(fd, buf, n, buf.length - n, n);
    fss.ftruncateSync(fd, buf.length);
    if (opts.durable) fss.fsyncSync(fd);
  } catch (err) {
    try { fss.closeSync(fd); } catch { /* already failing */ }
    throw err;
  }
  fss.closeSync(fd);
}


/* ------------------------------------------------------------------------------------------------------
 * Folders: descend only into real ones.
 * ---------------------------------------------------------------------------------------------------- */

/** True only for a real folder: false for a symlink to one, a file, a FIFO, or a name that is gone. */
export async function lstatDir(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isDirectory();
  } catch (err) {
    if (isGone(err) || errnoOf(err) === 'ENOTDIR') return false;
    throw err;
  }
}

export function lstatDirSync(path: string): boolean {
  try {
    return fss.lstatSync(path).isDirectory();
  } catch (err) {
    if (isGone(err) || errnoOf(err) === 'ENOTDIR') return false;
    throw err;
  }
}

/**
 * The names in `dir` when it is a real folder; [] when it is gone; null when something else is there (a
 * symlink to a folder elsewhere, a file, a FIFO): the caller must not descend, and may quarantine the entry.
 */
export async function listNamesChecked(dir: string): Promise<string[] | null> {
  try {
    if (!(await lstat(dir)).isDirectory()) return null;
    return await retryTransientAsync(() => readdir(dir));
  } catch (err) {
    if (isGone(err)) return [];
    if (errnoOf(err) === 'ENOTDIR') return null;
    throw err;
  }
}

/**
 * The entries of a real folder with their kinds (from the directory entry's type; where a file system
 * does not give one, Node lstat()s it: never followed). [] when gone; null when `dir` is not a real folder.
 */
export async function listEntries(dir: string): Promise<{ name: string; kind: EntryKind }[] | null> {
  try {
    if (!(await lstat(dir)).isDirectory()) return null;
    return (await retryTransientAsync(() => readdir(dir, { withFileTypes: true }))).map((d) => ({ name: d.name, kind: kindOfStats(d) }));
  } catch (err) {
    if (isGone(err)) return [];
    if (errnoOf(err) === 'ENOTDIR') return null;
    throw err;
  }
}

/**
 * Whether descriptor `fd` lies inside `rootReal` (a realpath()ed spool root), by the kernel's own idea of
 * the descriptor's path (/proc/self/fd, Linux). Proves an open did not wander out through a symlinked
 * parent folder. null where /proc is unavailable: the caller then relies on lstatDir checks alone.
 */
export function fdIsInside(fd: number, rootReal: string): boolean | null {
  let real: string;
  try { real = fss.readlinkSync(`/proc/self/fd/${fd}`); } catch { return null; }
  return real === rootReal || real.startsWith(rootReal.endsWith(sep) ? rootReal : rootReal + sep);
}

/**
 * statfs(2) f_type of the file systems whose every metadata call is a round trip to a server: NFS, SMB/CIFS,
 * CephFS, 9p, Lustre, GPFS, AFS, and FUSE (sshfs, GlusterFS; a local FUSE file system is counted too).
 */
const NETWORK_FS_TYPES = new Set([0x6969, 0xff534d42, 0xfe534d42, 0x517b, 0x00c36400, 0x01021997, 0x0bd00bd0, 0x47504653, 0x5346414f, 0x6b414653, 0x65735546]);

/** Whether `path` is on a networked (or FUSE) file system, by statfs; false when that cannot be told. */
export function onNetworkFileSystem(path: string): boolean {
  try {
    return NETWORK_FS_TYPES.has(Number(fss.statfsSync(path).type));
  } catch {
    return false;
  }
}
