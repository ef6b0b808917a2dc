/**
 * Typed errors. Every error zcq raises on purpose carries a stable `code` that users can match on
 * (`err.code === 'ZCQ_NOT_FOUND'`) and a one-line message naming the file or argument at fault and what
 * to do. The CLI maps `exitCode` to the process exit status.
 */
import { constants } from 'node:os';

const osErrno = constants.errno as Readonly<Record<string, number | undefined>>;

export class ZcqError extends Error {
  readonly code: string;
  readonly exitCode: number;
  constructor(code: string, message: string, exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** A command-line or API argument is malformed (exit 2). */
export class UsageError extends ZcqError {
  constructor(message: string, code = 'ZCQ_USAGE') { super(code, message, 2); }
}

/** The folder exists but is not a zcq spool, or cannot be made one. */
export class NotASpoolError extends ZcqError {
  constructor(dir: string, why: string, code = 'ZCQ_NOT_A_SPOOL', message?: string) {
    super(code, message ?? `${dir}: not a zcq spool (${why}); run 'zcq init ${dir}' or pick another --spool`, 2);
  }

  /** No spool there at all (only `zcq init` makes one). */
  static missing(dir: string): NotASpoolError {
    return new NotASpoolError(dir, 'missing', 'ZCQ_NO_SPOOL', `no spool at ${dir} (run zcq init ${dir})`);
  }

  /** A spool of another on-disk format. */
  static otherFormat(dir: string, format: number): NotASpoolError {
    return new NotASpoolError(dir, `format ${format}`, 'ZCQ_SPOOL_FORMAT', `${dir}: spool format ${format}; run 'zcq migrate --spool ${dir}' to convert it to format 2 (zcq migrate --dry-run shows what it moves)`);
  }

  /** A migration was started and has not finished. */
  static migrating(dir: string): NotASpoolError {
    return new NotASpoolError(dir, 'migrating', 'ZCQ_SPOOL_MIGRATING', `${dir}: a migration to format 2 has not finished; run 'zcq migrate --spool ${dir}' again to complete it`);
  }
}

/** No job matches an id or prefix. */
export class JobNotFoundError extends ZcqError {
  constructor(id: string) { super('ZCQ_NOT_FOUND', `job ${id}: not found in any state folder`, 1); }
}

/** An id prefix matches more than one job. */
export class AmbiguousIdError extends ZcqError {
  constructor(prefix: string, n: number) {
    super('ZCQ_AMBIGUOUS_ID', `job id prefix '${prefix}' matches ${n} jobs; give more characters`, 2);
  }
}

/** A job file is not a valid job (the worker quarantines it; readers report it). */
export class CorruptJobError extends ZcqError {
  constructor(file: string, why: string) { super('ZCQ_CORRUPT_JOB', `${file}: ${why}`, 1); }
}

/** A function reference escapes the worker's roots or cannot be resolved. */
export class ModuleRefError extends ZcqError {
  constructor(ref: string, why: string) { super('ZCQ_BAD_MODULE_REF', `function '${ref}': ${why}`, 1); }
}

/**
 * What a person does about a write into the spool that failed with `code`: one rule for every message that
 * reports one (SpoolWriteError, PartialPutError, `zcq put -`). EEXIST or ENOTDIR on the way to a job's folder
 * means a file, FIFO or symlink stands where a folder belongs, ELOOP a symlink where zcq opens without
 * following (a co-user of a shared spool can plant either): neither space nor permissions would help.
 */
export function writeRemedy(code: string | undefined): string {
  switch (code) {
    case 'ENOSPC': case 'EDQUOT': return 'free space';
    case 'EROFS': return 'remount the spool read-write';
    case 'EACCES': case 'EPERM': return 'fix permissions';
    case 'EEXIST': case 'ENOTDIR': return 'something that is not a folder stands on that path: see `ls -l` and remove it';
    case 'ELOOP': return 'a symlink stands on that path (zcq follows none): see `ls -l` and remove it';
    // A folder of the layout removed by hand that this user may not make again (the spool's root is its owner's).
    case 'ENOENT': return "a folder of the spool is missing (removed by hand?): its owner's `zcq doctor --repair` makes it again";
    default: return 'free space or fix permissions';
  }
}

/** The spool cannot be written (disk full, read-only, a non-folder in the way): nothing was published. */
export class SpoolWriteError extends ZcqError {
  constructor(path: string, cause: NodeJS.ErrnoException) {
    super('ZCQ_SPOOL_WRITE', `${path}: cannot write (${cause.code ?? cause.message}); nothing was published — ${writeRemedy(cause.code)}, then retry`, 1, { cause });
  }
}

/**
 * One item of a `putMany` batch is invalid (exit 2). Nothing of the batch was written. `index` is the
 * item's position in the array; `reason` the message `put` would have given for it alone; `code` is that
 * message's code (ZCQ_BAD_FN, ZCQ_BAD_DURATION, ...).
 */
export class PutItemError extends UsageError {
  constructor(readonly index: number, readonly reason: string, code: string) {
    super(`item ${index}: ${reason}`, code);
  }
}

/**
 * A batch put stopped part-way (disk full, read-only, I/O error) after some of its jobs were published:
 * `enqueued` are their ids, always the first `enqueued.length` items of the batch, in order; they are
 * visible to workers and may run, so they are not rolled back. The other items were not written (their
 * temporary files are removed). When `enqueued` holds every item, only the final folder fsync failed: the
 * jobs are published but may not survive a power cut.
 */
export class PartialPutError extends ZcqError {
  constructor(readonly enqueued: string[], readonly total: number, readonly path: string, cause: NodeJS.ErrnoException) {
    const why = `${path}: cannot write (${cause.code ?? cause.message})`;
    super('ZCQ_PARTIAL_PUT', enqueued.length === total
      ? `${why}; all ${total} jobs were published but their folder was not fsynced: they may not survive a power cut`
      : `${why}; ${enqueued.length} of ${total} jobs were enqueued (the first ${enqueued.length}, ids in err.enqueued), the other ${total - enqueued.length} were not — ${writeRemedy(cause.code)}, then put those again`,
    1, { cause });
  }
}

/** The worker lost its lease (heartbeat could not be renewed in time); its jobs belong to others now. */
export class LeaseLostError extends ZcqError {
  constructor(workerId: string) { super('ZCQ_LEASE_LOST', `worker ${workerId}: lease lost (heartbeat not renewed in time)`, 1); }
}

/** Thrown inside a job to say: do not retry this failure. */
export class PermanentError extends Error {
  readonly permanent = true;
  constructor(message: string, options?: { cause?: unknown }) { super(message, options); this.name = 'PermanentError'; }
}

/** Thrown inside a job to ask for another attempt at a given time (counts as an attempt). */
export class RetryAtError extends Error {
  readonly retryAt: Date;
  constructor(when: Date | number, message = 'retry requested') {
    super(message);
    this.name = 'RetryAtError';
    this.retryAt = new Date(when);
  }
}

/**
 * Errors of local and networked file systems by meaning: the one place that maps an errno to what zcq
 * does about it. Node names the errors libuv knows (err.code 'ENOENT'); for those it does not — ESTALE on
 * Linux, which NFS and GlusterFS clients return — err.code is a message like 'Unknown system error -116'
 * and only err.errno (-116) says what it is. So every test here looks at the name and at the number.
 *
 *   gone       ENOENT, ESTALE          the name is gone or now stands for another file: look it up again;
 *                                      on a claim or a move, another worker won (NFS rule 9)
 *   mount gone EIO, ENOTCONN,          the mount itself fails (a soft NFS mount timing out, a FUSE client
 *              ESHUTDOWN, ECONNABORTED  or sshfs transport gone, every GlusterFS brick of a name down):
 *                                      retrying the name does not help; back off and report once
 *   transient  EAGAIN, EINTR, EBUSY,   the same call may work a moment later: retry it a few times
 *              EBADFD                  (EBADFD: GlusterFS's answer for a folder or file handle opened on a
 *                                      replica brick that went down meanwhile; a new open uses the live one)
 */
/** Linux numbers Node's os.constants.errno leaves out. */
const LINUX_ERRNO: Readonly<Record<string, number>> = { ESHUTDOWN: 108, EBADFD: 77 };
const ERRNO = new Map<number, string>();
for (const name of ['ENOENT', 'ESTALE', 'EIO', 'ENOTCONN', 'ESHUTDOWN', 'ECONNABORTED', 'EAGAIN', 'EINTR', 'EBUSY', 'EBADFD']) {
  const n = osErrno[name] ?? (process.platform === 'linux' ? LINUX_ERRNO[name] : undefined);
  if (typeof n === 'number') ERRNO.set(n, name);
}
const GONE = ['ENOENT', 'ESTALE'] as const;
const MOUNT_GONE = ['EIO', 'ENOTCONN', 'ESHUTDOWN', 'ECONNABORTED'] as const;
const TRANSIENT = ['EAGAIN', 'EINTR', 'EBUSY', 'EBADFD'] as const;

/** The errno name of an error (ENOENT, ESTALE, ...), also where Node had no name for it and said 'Unknown system error -116'. */
export function errnoName(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException | undefined;
  const code = e?.code;
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
  const n = typeof e?.errno === 'number' ? Math.abs(e.errno) : numberInCode(code);
  if (n === undefined) return code;
  return ERRNO.get(n) ?? code;
}

function numberInCode(code: unknown): number | undefined {
  const m = typeof code === 'string' ? /error -?(\d+)$/.exec(code) : null;
  return m ? Number(m[1]) : undefined;
}

function oneOf(err: unknown, names: readonly string[]): boolean {
  const name = errnoName(err);
  return name !== undefined && names.includes(name);
}

/** "The name is gone": ENOENT or ESTALE — a lost race, normal on a shared spool (NFS rule 9). Look it up again. */
export function isGone(err: unknown): boolean {
  return oneOf(err, GONE);
}

/** A call that may work if made again at once: EAGAIN, EINTR (a signal on an interruptible mount), EBUSY, EBADFD (a handle on a brick that went down). */
export function isTransient(err: unknown): boolean {
  return oneOf(err, TRANSIENT);
}

/**
 * Run a synchronous file operation, again up to `tries` times in all while it fails with a transient
 * error (isTransient); other errors, and the last transient one, are thrown as they come.
 */
export function retryTransient<T>(op: () => T, tries = 3): T {
  for (let i = 1; ; i++) {
    try { return op(); } catch (err) { if (i >= tries || !isTransient(err)) throw err; }
  }
}

/** retryTransient for a promise-returning operation, with a short pause between tries. */
export async function retryTransientAsync<T>(op: () => Promise<T>, tries = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try { return await op(); } catch (err) {
      if (i >= tries || !isTransient(err)) throw err;
      await new Promise((r) => setTimeout(r, 20 * i));
    }
  }
}

/** The errno name of an error (see errnoName: ESTALE also where Node reports it as 'Unknown system error -116'). */
export function errnoOf(err: unknown): string | undefined {
  return errnoName(err);
}

/**
 * The file system has no room for what we write: a full disk (ENOSPC) or a full quota (EDQUOT). A caller
 * that only rewrites a file it already owns (a heartbeat, a spare) may still succeed in place.
 */
export function isNoSpace(err: unknown): boolean {
  const code = errnoOf(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** The spool is mounted read-only: reading commands go on, nothing can be written. */
export function isReadOnly(err: unknown): boolean {
  return errnoOf(err) === 'EROFS';
}

/**
 * The mount itself is failing: an I/O error (EIO: a dying disk, a soft NFS mount timing out, a GlusterFS
 * file whose bricks are all down) or a FUSE / sshfs / GlusterFS client whose transport is gone (ENOTCONN,
 * ESHUTDOWN, ECONNABORTED). Unlike ESTALE (the *name* is gone: look again, see isGone), retrying the same
 * name will not help; a worker backs off, reports once, and judges no lease by what it cannot read.
 */
export function isMountGone(err: unknown): boolean {
  return oneOf(err, MOUNT_GONE);
}
