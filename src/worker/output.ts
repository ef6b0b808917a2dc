/**
 * A job's output: what its code writes to stdout and stderr (console.log, console.error, process.stdout.write,
 * process.stderr.write, `currentJob().log()`), kept beside the job as output/ID.log, appended to by each
 * attempt under a header line `--- attempt N on HOST pid PID at ISO ---`.
 *
 * Capture: the threads and inline runtimes share one process (and one process.stdout) between many jobs and
 * the worker itself, so the streams' `write` is patched once per thread or process (installCapture): a
 * write made inside a job's async context (the AsyncLocalStorage run that wraps the job, and its
 * `currentJob()` context) goes to that job's file; any other write goes where it went before — the
 * worker's own log stays as it was (one JSON object per line under `zcq --json worker`). console's printing
 * methods (log, info, debug, warn, error, trace, dir) are patched the same way; its others (table, group,
 * count, time...) write through the patched streams. The processes runtime captures the same way
 * inside the child process. Not captured: writes to file descriptors 1 and 2 made below Node's streams (a
 * child process spawned with inherited stdio, native code).
 *
 * The file: opened O_WRONLY|O_APPEND|O_NOFOLLOW|O_NONBLOCK, then fstat()ed — it must be a regular file of
 * ours with one name; created with O_EXCL and the spool's file mode when new. Anything else at the name (a
 * symlink, a FIFO, a co-user's file, a hard link) is moved aside with quarantine and a new file made.
 * Size: at most OUTPUT_CAP_BYTES (1 MiB) of output per job over all its attempts; beyond that, writes are
 * counted and dropped, and the attempt ends with one line saying how many bytes were dropped. Output that
 * cannot be written (disk full, no output/ folder allowed) is dropped: a job never fails for its output.
 * A write made in a job's context after the job ended (a timer it left) goes where it went before.
 * The file is removed with the job's record by prune (transitions/prune.ts).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { formatWithOptions, inspect } from 'node:util';
import { OUTPUT_CAP_BYTES } from '../defaults.js';
import { errnoOf, isGone } from '../errors.js';
import { currentJobOrNull, type JobContext } from '../job/context.js';
import { applyModeSync, checkOwnedRegular, DEFAULT_FILE_MODE, isUnsafeFile, openRegularSync } from '../spool/fsops.js';
import { layoutOf } from '../spool/layout.js';
import { makeDir, type SpoolModes } from '../spool/modes.js';
import { quarantine } from '../spool/transitions/quarantine.js';

const C = fs.constants;

export function outputPath(spool: string, id: string): string {
  return join(spool, 'output', `${id}.log`);
}

export class OutputSink {
  /** undefined: not opened yet (nothing written so far); null: writes are dropped. */
  private fd: number | null | undefined;
  private size = 0;
  private dropped = 0;
  /** Writes made while an unsafe entry at the name is being moved aside (async), to be flushed after. */
  private waiting: Buffer[] | null = null;
  /** The moving aside and making afresh under way, if any. */
  private pending: Promise<void> = Promise.resolve();
  closed = false;

  private constructor(private readonly where: { spool: string; id: string; attempt: number; modes?: SpoolModes } | null, private readonly cap: number) {
    if (where === null) this.fd = null;
  }

  /** A sink that drops everything. */
  static none(): OutputSink { return new OutputSink(null, 0); }

  /**
   * The sink of one attempt of a job. output/ID.log is opened (or created) at the first write, with the
   * attempt's header: a job that prints nothing costs no file (creating one is the dearest file operation
   * on many disks, and most jobs print nothing). Never throws: a file that cannot be opened drops output.
   */
  static async open(spool: string, id: string, attempt: number, modes?: SpoolModes, cap = OUTPUT_CAP_BYTES): Promise<OutputSink> {
    return new OutputSink({ spool, id, attempt, modes }, cap);
  }

  /** Append what a stream write or log call gave; beyond the cap, count it and drop it. */
  write(chunk: unknown, encoding?: BufferEncoding): void {
    if (this.fd === null && this.waiting === null) return;
    let buf: Buffer;
    if (typeof chunk === 'string') buf = Buffer.from(chunk, encoding && Buffer.isEncoding(encoding) ? encoding : 'utf8');
    else if (chunk instanceof Uint8Array) buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    else buf = Buffer.from(String(chunk));
    if (!this.opened()) {
      if (this.waiting === null) return;
    }
    const room = Math.max(0, this.cap - this.size);
    if (buf.length > room) { this.dropped += buf.length - room; buf = buf.subarray(0, room); }
    if (buf.length > 0) this.raw(buf);
  }

  /** One line, formatted as console.log formats its arguments. */
  log(args: unknown[]): void {
    this.write(formatWithOptions({ colors: false }, ...args) + '\n');
  }

  /** Open at the first write: true when writes go to the file (or wait for it). */
  private opened(): boolean {
    if (this.fd !== undefined) return this.fd !== null;
    const w = this.where!;
    try {
      this.fd = openOutputSync(w.spool, w.id, w.modes);
    } catch (err) {
      this.fd = null;
      if (!(err instanceof MovedAside)) return false;
      // Something unsafe stands at the name: moved aside (async) and a fresh file made; writes wait.
      this.waiting = [];
      this.pending = openOutput(w.spool, w.id, w.modes).then((fd) => this.adopt(fd), () => { this.waiting = null; });
      this.header();
      return false;
    }
    try { this.size = fs.fstatSync(this.fd).size; } catch { /* size unknown: counted from 0 */ }
    this.header();
    return true;
  }

  private header(): void {
    const w = this.where!;
    this.raw(`--- attempt ${w.attempt} on ${hostname()} pid ${process.pid} at ${new Date().toISOString()} ---\n`);
  }

  private adopt(fd: number): void {
    const queued = this.waiting ?? [];
    this.waiting = null;
    this.fd = fd;
    for (const b of queued) this.raw(b);
    if (this.closed) { this.closed = false; this.close(); }
  }

  private raw(data: string | Buffer): void {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.waiting !== null) { this.waiting.push(buf); this.size += buf.length; return; }
    if (this.fd === null || this.fd === undefined) return;
    try {
      let n = 0;
      while (n < buf.length) n += fs.writeSync(this.fd, buf, n, buf.length - n);
      this.size += buf.length;
    } catch {
      // Disk full, quota, a lost mount: the job goes on; its output from here is lost.
      this.dropped += buf.length;
    }
  }

  /** Resolves once the output file is in place and closed (when an unsafe entry had to be moved aside first). */
  settled(): Promise<void> { return this.pending; }

  /** End the attempt's output: say what was dropped, close the file (once it is open, if it is being made). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.waiting !== null) return; // adopt() closes it
    if (this.fd === null || this.fd === undefined) return;
    if (this.dropped > 0) this.raw(`--- output capped at ${this.cap} bytes per job: ${this.dropped} bytes of this attempt dropped ---\n`);
    try { fs.closeSync(this.fd); } catch { /* nothing to do about it now */ }
    this.fd = null;
  }
}

/** openOutputSync found something unsafe at the name (the message says what): it must be moved aside first (openOutput does). */
class MovedAside extends Error {}

/** openOutput without the quarantine step, for the first write of a job (synchronous). */
function openOutputSync(spool: string, id: string, modes?: SpoolModes): number {
  const path = outputPath(spool, id);
  const mode = modes?.fileMode ?? DEFAULT_FILE_MODE;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = fs.openSync(path, C.O_WRONLY | C.O_APPEND | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_NONBLOCK, mode & 0o777);
      try { applyModeSync(fd, mode); } catch { /* the mode is a nicety: the output is still written */ }
      return fd;
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' && attempt < 3) { if (modes) makeDir(modes, join(spool, 'output')); else fs.mkdirSync(join(spool, 'output'), { recursive: true }); continue; }
      if (code !== 'EEXIST' || attempt >= 3) throw err;
    }
    try {
      const { fd } = openRegularSync(path, C.O_WRONLY | C.O_APPEND);
      try {
        checkOwnedRegular(fd, path);
        return fd;
      } catch (err) {
        fs.closeSync(fd);
        throw err;
      }
    } catch (err) {
      if (isGone(err)) continue;
      if (!isUnsafeFile(err) && errnoOf(err) !== 'EACCES' && errnoOf(err) !== 'EPERM') throw err;
      throw new MovedAside(isUnsafeFile(err) ? err.why : `cannot be opened (${errnoOf(err)})`);
    }
  }
}

/**
 * The descriptor of output/ID.log, opened for appending: created exclusively with the spool's file mode,
 * or the existing file when it is a regular file of ours with one name; anything else is quarantined and
 * the file created afresh.
 */
async function openOutput(spool: string, id: string, modes?: SpoolModes): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      return openOutputSync(spool, id, modes);
    } catch (err) {
      if (!(err instanceof MovedAside) || attempt >= 3) throw err;
      await quarantine(layoutOf(spool, modes), outputPath(spool, id), `${id}.log`, `output file of job ${id} ${err.message}; moved aside and a new one made`, { mode: modes?.fileMode ?? DEFAULT_FILE_MODE });
    }
  }
}

/* ------------------------------------------------------------------------------------------------------
 * Routing writes made inside a job's context.
 * ---------------------------------------------------------------------------------------------------- */

const outputAls = new AsyncLocalStorage<OutputSink>();
const sinkOfContext = new WeakMap<JobContext, OutputSink>();

/** Run `fn` (a job: its module's import and its call) with its writes going to `sink`. */
export function runWithOutput<T>(sink: OutputSink, fn: () => T): T {
  installCapture();
  return outputAls.run(sink, fn);
}

/** Tie a job context to its sink, for code that runs in the context alone (abort listeners). */
export function bindContext(ctx: JobContext, sink: OutputSink): void {
  sinkOfContext.set(ctx, sink);
}

function currentSink(): OutputSink | undefined {
  const s = outputAls.getStore();
  if (s) return s;
  const ctx = currentJobOrNull();
  return ctx ? sinkOfContext.get(ctx) : undefined;
}

const INSTALLED = Symbol.for('zcq.outputCapture');

/** console methods routed straight to the job's file (the console may not write through process.stdout). */
const CONSOLE_METHODS = ['log', 'info', 'debug', 'warn', 'error', 'trace', 'dir'] as const;

/**
 * Patch console's printing methods and process.stdout.write / process.stderr.write, once per thread or
 * process. console is patched as well as the streams because the global console may be one that does not
 * write through process.stdout (a test runner's, an application's own).
 */
export function installCapture(): void {
  const g = globalThis as unknown as Record<symbol, boolean | undefined>;
  if (g[INSTALLED]) return;
  g[INSTALLED] = true;
  const con = globalThis.console as unknown as Record<string, (...a: unknown[]) => void>;
  for (const name of CONSOLE_METHODS) {
    const before = con[name];
    if (typeof before !== 'function') continue;
    con[name] = function (this: unknown, ...args: unknown[]): void {
      const sink = currentSink();
      if (sink === undefined || sink.closed) return before.apply(this, args);
      if (name === 'dir') sink.write(inspect(args[0], { colors: false, ...(args[1] as object | undefined) }) + '\n');
      else if (name === 'trace') sink.write(`Trace: ${formatWithOptions({ colors: false }, ...args)}\n${(new Error().stack ?? '').split('\n').slice(2).join('\n')}\n`);
      else sink.log(args);
    };
  }
  for (const stream of [process.stdout, process.stderr]) {
    const before = stream.write;
    stream.write = function write(this: NodeJS.WriteStream, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
      const sink = currentSink();
      // eslint-disable-next-line prefer-rest-params
      if (sink === undefined || sink.closed) return (before as (...a: unknown[]) => boolean).apply(this, arguments as unknown as unknown[]);
      if (typeof encoding === 'function') { cb = encoding; encoding = undefined; }
      sink.write(chunk, typeof encoding === 'string' ? encoding as BufferEncoding : undefined);
      if (typeof cb === 'function') process.nextTick(cb as () => void);
      return true;
    } as typeof stream.write;
  }
}
