/**
 * Multi-machine test rig for zcq: several "machines" sharing one network mount.
 *
 * One `sshd` on 127.0.0.1 (throwaway host + user keys, own config, run as root in the
 * foreground) exports one temp folder; it is mounted N times with `sshfs` (FUSE) with
 * kernel and sshfs caching on, like N NFS clients of one server. A process started with
 * `rig.run(i, ...)` / `rig.spawn(i, ...)` runs "on machine i": in its own UTS namespace
 * with hostname host-a, host-b, ... and, when the machine has a clock offset, under
 * libfaketime (wall clock shifted, monotonic clock untouched).
 *
 * Usage in a vitest file:
 *
 *   import { useRig } from './rig.js';
 *   const rig = useRig({ machines: 2, clockOffsets: [undefined, '+5m'] });
 *   it('...', async () => { await rig.run(1, process.execPath, ['-e', '...']); });
 *
 * or by hand:
 *
 *   let rig: Rig;
 *   beforeAll(async () => { rig = await startRig({ machines: 2 }); }, 60_000);
 *   afterAll(() => rig?.stop());
 *
 * Needs root, /dev/fuse and the Debian packages sshfs, openssh-server, openssh-client,
 * faketime (libfaketime), util-linux, fuse3. See README.md beside this file.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { REPLACED_PAUSES_MS } from '../../dist/spool/server-clock.js';

// ---------------------------------------------------------------------------------------
// Types

export interface CacheOptions {
  /** FUSE attr_timeout (s): how long the kernel trusts cached attributes (stat). NFS: acregmin/acdirmin. */
  attrTimeout: number;
  /** FUSE entry_timeout (s): how long the kernel trusts a cached name -> inode lookup. */
  entryTimeout: number;
  /** FUSE negative_timeout (s): how long a failed lookup (ENOENT) is cached. NFS caches these too (lookupcache=all). */
  negativeTimeout: number;
  /** sshfs dcache_timeout (s, integer): sshfs's own cache of directory listings, attributes and symlinks. */
  dirCacheTimeout: number;
}

/**
 * The shared file system the machines mount:
 * - `sshfs`: one sshd on loopback exporting a folder, one sshfs mount per machine (NFS-like caching).
 * - `gluster-replica`: a GlusterFS volume of 2 bricks, replica 2 (every file on both bricks), one FUSE
 *   mount (`mount -t glusterfs`) per machine.
 * - `gluster-dist`: a GlusterFS volume of 2 bricks without replica (each name hashed to one brick, so a
 *   rename can cross bricks and leave a link file behind).
 */
export type FsKind = 'sshfs' | 'gluster-replica' | 'gluster-dist';
export const FS_KINDS: readonly FsKind[] = ['sshfs', 'gluster-replica', 'gluster-dist'];

/**
 * The file systems a rig test runs on: all of FS_KINDS, or those named in ZCQ_RIG_FS (comma list, for a
 * quick local run: ZCQ_RIG_FS=sshfs). An unknown name throws. Use as
 * `for (const fsKind of rigFileSystems()) describe(`... (${fsKind})`, () => { useSpoolRig({ fs: fsKind, ... }) })`.
 */
/**
 * A file's text through a rig mount, as zcq reads (open, read, close by hand). Node's own
 * `fs.readFileSync(path)` asserts that close() succeeds and aborts the whole process when a GlusterFS
 * client answers close() with ESTALE (seen in CI: the vitest fork died mid-file). A failed close is
 * ignored here: the text was read whole before it.
 */
export function readMountedText(path: string): string {
  // GlusterFS may also let open() reach the file a name stood for before its last rename, and then fail
  // the read with ENOENT or ESTALE (measured by the heartbeat work, docs/nfs.md): look the name up again
  // after pauses past the client's 1 s entry cache, as zcq's own readers do (server-clock.ts readAged).
  const last = REPLACED_PAUSES_MS.length - 1;
  for (const [k, pauseMs] of REPLACED_PAUSES_MS.entries()) {
    if (pauseMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pauseMs);
    let fd: number;
    try { fd = fs.openSync(path, 'r'); } catch (err) { if (k < last && isLookAgain(err)) continue; throw err; }
    try {
      return fs.readFileSync(fd, 'utf8');
    } catch (err) {
      if (k < last && isLookAgain(err)) continue;
      throw err;
    } finally {
      try { fs.closeSync(fd); } catch { /* ESTALE from a GlusterFS close: the read is complete */ }
    }
  }
  throw new Error(`${path}: not readable`);
}

function isLookAgain(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return e?.code === 'ENOENT' || e?.errno === -116;
}

export function rigFileSystems(): FsKind[] {
  const env = process.env.ZCQ_RIG_FS?.trim();
  if (!env) return [...FS_KINDS];
  const kinds = env.split(',').map((k) => k.trim()).filter(Boolean);
  for (const k of kinds) if (!FS_KINDS.includes(k as FsKind)) throw new Error(`ZCQ_RIG_FS: unknown file system '${k}' (use ${FS_KINDS.join(', ')})`);
  return kinds as FsKind[];
}

export interface RigOptions {
  /** Number of machines (mounts), 1..26. */
  machines: number;
  /** The shared file system (default 'sshfs'). */
  fs?: FsKind;
  /** Per machine clock offset for libfaketime, e.g. '+5m', '-5m', '+300', '-2h'; undefined/null/'' = real clock. */
  clockOffsets?: Array<string | undefined | null>;
  /** Caching of every mount; defaults: DEFAULT_CACHE. */
  cache?: Partial<CacheOptions>;
  /** Extra `-o` options appended to every sshfs mount. */
  extraSshfsOptions?: string[];
  /** `-o` options of every GlusterFS machine mount (default none: the client's defaults, as an operator gets them). */
  glusterMountOptions?: string[];
  /**
   * `gluster volume set` options of the rig's volume, over GLUSTER_VOLUME_DEFAULTS (features.ctime off, as
   * docs/nfs.md asks of a zcq volume). Pass { 'features.ctime': 'on' } for GlusterFS's own default.
   */
  glusterVolumeOptions?: Record<string, string>;
}

export interface Machine {
  index: number;
  /** host-a, host-b, ... (the hostname processes on this machine see). */
  name: string;
  /** Absolute path of this machine's mount of the shared export. */
  mount: string;
  /** libfaketime offset or undefined. */
  clockOffset: string | undefined;
}

export interface RunOptions {
  /** Working directory; default: the machine's mount. */
  cwd?: string;
  /** Extra environment (merged over process.env). */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, then stdin is closed (run only). */
  input?: string;
  /** Kill (SIGKILL) after this many ms; default 30 000 (run only). */
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Rig {
  /** The shared file system the machines mount. */
  readonly fsKind: FsKind;
  readonly machines: readonly Machine[];
  /** Root of the temp folder holding keys, config, export and mounts. */
  readonly tmpDir: string;
  /**
   * The shared folder as the file server sees it: sshfs, the exported folder on disk; GlusterFS, one more
   * mount of the volume with every kernel cache off (the bricks hold internal files and, on a distributed
   * volume, only part of the tree each). For the tests' own assertions, not for zcq.
   */
  readonly exportDir: string;
  /** sshfs: sshd's port; 0 on GlusterFS. */
  readonly sshPort: number;
  /** sshfs: the `-o` option list every mount was made with; '' on GlusterFS. */
  readonly sshfsOptions: string;
  /** The `-o` option list every machine's mount was made with (sshfs or glusterfs). */
  readonly mountOptions: string;
  /** GlusterFS: the volume's name; undefined on sshfs. */
  readonly volume: string | undefined;
  /**
   * Process ids serving machine i's mount: sshfs, its sshfs process; GlusterFS, its glusterfs client. A
   * SIGKILL of them leaves the mount in place with every operation failing with ENOTCONN (a mount gone).
   */
  mountPids(i: number): number[];
  /** GlusterFS: the brick processes (glusterfsd), in brick order; [] on sshfs. */
  brickPids(): number[];
  /**
   * GlusterFS: wait (up to timeoutMs, else throw saying what is missing) until the volume is whole again
   * after a brick was down: every mount's client is connected to every brick (its `.meta` view), and on a
   * replica no entry waits for a heal. A client reconnects to a restarted brick a moment after the
   * restart, and until the heal a file's good copy may be on one brick only: a test that then takes the
   * other brick away would see errors that belong to the previous test. No-op on sshfs.
   */
  waitVolumeWhole(timeoutMs?: number): Promise<void>;
  readonly cache: CacheOptions;
  /**
   * Upper bound (ms) of how long a mount can show stale metadata after another mount
   * changed it: kernel cache + sshfs cache (whole seconds), plus a 2 s margin. Wait this long (or poll) before
   * asserting that machine B sees what machine A did.
   */
  readonly staleWindowMs: number;
  /** Path inside machine i's mount. */
  path(i: number, ...parts: string[]): string;
  /** The argv/env that runs cmd on machine i (for callers that spawn themselves). */
  commandFor(i: number, cmd: string, args?: readonly string[], env?: NodeJS.ProcessEnv): { file: string; args: string[]; env: NodeJS.ProcessEnv };
  /** Start cmd on machine i; the returned ChildProcess's pid is cmd itself (kill -9 hits it). */
  spawn(i: number, cmd: string, args?: readonly string[], opts?: RunOptions & Omit<SpawnOptions, 'env' | 'cwd'>): ChildProcess;
  /** Run cmd on machine i to completion. */
  run(i: number, cmd: string, args?: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Kill spawned processes, unmount every mount, stop sshd, remove the temp folder. Idempotent. */
  stop(): Promise<void>;
}

/**
 * attrTimeout 0 is deliberate: with a kernel attribute cache, even open()+fstat() and read()
 * on machine B can be stale for attrTimeout seconds after machine A wrote, which is stricter
 * than NFS (close-to-open: open revalidates). With 0, sshfs answers every stat from its own
 * cache (stale up to dirCacheTimeout, like NFS acregmin), while open() refreshes it, so
 * open()+fstat() and read() after open are fresh - the NFS behaviour zcq relies on.
 */
export const DEFAULT_CACHE: CacheOptions = {
  attrTimeout: 0,
  entryTimeout: 2,
  negativeTimeout: 2,
  dirCacheTimeout: 2,
};

/** What GlusterFS's FUSE client caches with its default mount options (rig.cache on a GlusterFS rig). */
export const GLUSTER_CACHE: CacheOptions = {
  attrTimeout: 1,
  entryTimeout: 1,
  negativeTimeout: 0,
  dirCacheTimeout: 1,
};

/**
 * Volume options the rig sets, as docs/nfs.md asks of a zcq volume.
 * - features.ctime on (GlusterFS 10's default) stores the times the *client* sends, so a file's mtime is the
 *   writing machine's clock, not the file server's: a heartbeat from a machine 5 minutes ahead looks 5
 *   minutes young. zcq judges leases by mtimes (NFS rule 6), so it runs off, which makes the bricks stamp
 *   mtimes (gluster.test.ts shows both).
 * - cluster.favorite-child-policy mtime: two clients making the same folder at once (three machines putting
 *   into one new queue) leave it with a different gfid on each replica now and then — a gfid split-brain,
 *   EIO from every mount for good (GlusterFS issues 2601, 4424). Measured with three mounts racing mkdir of
 *   100 names (each first looked up, as makeDir does): 1–3 such folders in each of 5 runs without the policy,
 *   none in 2 runs with it (AFR then resolves the split at the next lookup).
 */
export const GLUSTER_VOLUME_DEFAULTS: Readonly<Record<string, string>> = { 'features.ctime': 'off', 'cluster.favorite-child-policy': 'mtime' };

const TMP_PREFIX = 'zcq-rig-';
const RUN_SSHD_DIR = '/run/sshd'; // sshd's privilege separation directory; must exist
const MACHINE_LETTERS = 'abcdefghijklmnopqrstuvwxyz';

// ---------------------------------------------------------------------------------------
// Prerequisites

function which(cmd: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin', ...extraDirs];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Path of libfaketime (multi-threaded variant preferred: node is multi-threaded). */
export function findLibfaketime(): string | undefined {
  const override = process.env.ZCQ_RIG_LIBFAKETIME;
  if (override) return fs.existsSync(override) ? override : undefined;
  const dirs: string[] = [];
  for (const base of ['/usr/lib', '/usr/local/lib', '/usr/lib64']) {
    dirs.push(path.join(base, 'faketime'));
    try {
      for (const e of fs.readdirSync(base)) if (e.includes('-linux-')) dirs.push(path.join(base, e, 'faketime'));
    } catch {
      /* ignore */
    }
  }
  for (const name of ['libfaketimeMT.so.1', 'libfaketime.so.1']) {
    for (const d of dirs) {
      const p = path.join(d, name);
      if (fs.existsSync(p)) return p;
    }
  }
  return undefined;
}

/**
 * Throws one Error naming everything the rig needs but this machine lacks.
 * Call it in the test file (not wrapped in a skip): a missing tool must fail the suite.
 */
export function checkRigPrerequisites(opts: { needFaketime?: boolean; fileSystems?: readonly FsKind[] } = {}): void {
  const needFaketime = opts.needFaketime ?? true;
  const kinds = opts.fileSystems ?? rigFileSystems();
  const needSshfs = kinds.includes('sshfs');
  const needGluster = kinds.some((k) => k !== 'sshfs');
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push(`Linux (this is ${process.platform})`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) missing.push('root (sshd, unshare -u and FUSE mounts need uid 0)');
  try {
    fs.accessSync('/dev/fuse', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    missing.push('/dev/fuse (FUSE device; in a container run with --device /dev/fuse --cap-add SYS_ADMIN)');
  }
  const tools: Array<[string, string]> = [
    ...(needSshfs ? [
      ['sshfs', 'Debian package sshfs'],
      ['sshd', 'Debian package openssh-server'],
      ['ssh', 'Debian package openssh-client'],
      ['ssh-keygen', 'Debian package openssh-client'],
    ] as Array<[string, string]> : []),
    ...(needGluster ? [
      ['glusterd', 'Debian package glusterfs-server'],
      ['gluster', 'Debian package glusterfs-server (the gluster CLI)'],
      ['mount.glusterfs', 'Debian package glusterfs-client'],
      ['glusterfs', 'Debian package glusterfs-client'],
    ] as Array<[string, string]> : []),
    ['unshare', 'Debian package util-linux'],
    ['hostname', 'Debian package hostname'],
  ];
  for (const [t, pkg] of tools) if (!which(t)) missing.push(`${t} (${pkg})`);
  if (!which('fusermount3') && !which('fusermount')) missing.push('fusermount3 (Debian package fuse3)');
  if (needFaketime && !findLibfaketime()) {
    missing.push('libfaketime (Debian package faketime / libfaketime: /usr/lib/<arch>/faketime/libfaketime*.so.1; or set ZCQ_RIG_LIBFAKETIME)');
  }
  if (missing.length === 0 && which('unshare')) {
    const r = spawnSync('unshare', ['-u', 'true'], { encoding: 'utf8' });
    if (r.status !== 0) missing.push(`a working 'unshare -u' (failed: ${(r.stderr || String(r.error ?? '')).trim()}; needs CAP_SYS_ADMIN)`);
  }
  if (missing.length > 0) {
    throw new Error(
      `zcq multihost rig cannot run; missing:\n  - ${missing.join('\n  - ')}\n` +
        `Install with: apt-get install -y sshfs openssh-server openssh-client faketime fuse3 util-linux hostname glusterfs-server glusterfs-client ` +
        `(or run scripts/system-deps.sh as root; ZCQ_RIG_FS=sshfs limits a local run to sshfs)`,
    );
  }
}

// ---------------------------------------------------------------------------------------
// Helpers

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
}

/** Mount points (unescaped) currently in this mount namespace. */
function currentMounts(): Set<string> {
  const out = new Set<string>();
  let text = '';
  try {
    text = fs.readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length > 1) out.add(f[1]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

function isMounted(p: string): boolean {
  return currentMounts().has(p);
}

/** Unmount synchronously, escalating: fusermount -u, fusermount -uz (lazy), umount -l. */
function unmountSync(mnt: string): boolean {
  if (!isMounted(mnt)) return true;
  const fm = which('fusermount3') ?? which('fusermount') ?? 'fusermount';
  for (const [cmd, args] of [
    [fm, ['-u', mnt]],
    [fm, ['-uz', mnt]],
    ['umount', ['-l', mnt]],
  ] as Array<[string, string[]]>) {
    spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    if (!isMounted(mnt)) return true;
  }
  return !isMounted(mnt);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | undefined {
  try {
    const n = parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

const OFFSET_RE = /^[+-]\d+(\.\d+)?[smhdy]?$/;

interface RigState {
  tmpDir: string;
  mounts: string[];
  sshd?: ChildProcess;
  sshdPidFile: string;
  children: Set<ChildProcess>;
  stopped: boolean;
  /** GlusterFS: the volume, stopped and deleted at teardown. */
  volume?: string;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Live (non-zombie) pids whose environment carries ZCQ_RIG_DIR=<dir>: everything run on the rig's machines, descendants included. */
function rigProcesses(dir: string): number[] {
  const tag = Buffer.from(`\0ZCQ_RIG_DIR=${dir}\0`);
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const env = Buffer.concat([Buffer.from([0]), fs.readFileSync(`/proc/${e}/environ`), Buffer.from([0])]);
      if (env.includes(tag)) out.push(Number(e));
    } catch {
      /* gone or not readable */
    }
  }
  return out;
}

/** SIGKILL everything started on the rig (tracked children and their descendants) and wait briefly for it to go. */
function killRigProcesses(st: RigState): void {
  for (const c of st.children) {
    if (c.exitCode === null && c.signalCode === null && c.pid) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  for (let round = 0; round < 20; round++) {
    const left = rigProcesses(st.tmpDir);
    if (left.length === 0) return;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    sleepSync(50);
  }
}

/** Synchronous best-effort teardown, usable from process 'exit'. */
function teardownSync(st: RigState): void {
  if (st.stopped) return;
  st.stopped = true;
  killRigProcesses(st);
  let allUnmounted = true;
  for (const m of st.mounts) if (!unmountSync(m)) allUnmounted = false;
  killSshd(st);
  if (st.volume) removeVolumeSync(st.volume);
  if (allUnmounted && !hasMountUnder(st.tmpDir)) {
    try {
      fs.rmSync(st.tmpDir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

function killSshd(st: RigState): void {
  const pids = new Set<number>();
  if (st.sshd?.pid && st.sshd.exitCode === null && st.sshd.signalCode === null) pids.add(st.sshd.pid);
  const fromFile = readPid(st.sshdPidFile);
  if (fromFile) pids.add(fromFile);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
}

function hasMountUnder(dir: string): boolean {
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  for (const m of currentMounts()) if (m === dir || m.startsWith(prefix)) return true;
  return false;
}

const liveRigs = new Set<RigState>();
let exitHooked = false;

function hookProcessExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const st of liveRigs) teardownSync(st);
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const st of liveRigs) teardownSync(st);
      // If nobody else handles the signal, die of it as we would have without this hook.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

/**
 * Clean up rigs left behind by test runs that were killed (SIGKILL, crash): temp folders
 * named zcq-rig-<pid>-* whose <pid> is no longer alive. Called by startRig.
 */
export function sweepStaleRigs(): void {
  const tmp = os.tmpdir();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(tmp);
  } catch {
    return;
  }
  for (const e of entries) {
    const m = /^zcq-rig-(\d+)-/.exec(e);
    if (!m) continue;
    const owner = parseInt(m[1]!, 10);
    if (owner === process.pid || pidAlive(owner)) continue;
    const dir = path.join(tmp, e);
    let volume: string | undefined;
    try { volume = (JSON.parse(fs.readFileSync(path.join(dir, 'rig.json'), 'utf8')) as { volume?: string }).volume; } catch { /* no record: an sshfs rig or one that failed early */ }
    const st: RigState = {
      tmpDir: dir,
      mounts: [...currentMounts()].filter((p) => p.startsWith(dir + '/')),
      sshdPidFile: path.join(dir, 'sshd.pid'),
      children: new Set(),
      stopped: false,
      volume,
    };
    teardownSync(st);
  }
}

// ---------------------------------------------------------------------------------------
// GlusterFS: one glusterd for the box (a system daemon other rigs and runs share; started when missing,
// left running), one volume per rig named zcqrig-<owner pid>-<random>, bricks in the rig's temp folder.

const VOLUME_PREFIX = 'zcqrig-';

/** `gluster --mode=script ARGS`; retried while another rig's transaction holds glusterd's cluster lock. */
function glusterSync(args: string[], timeoutMs = 60_000): { ok: boolean; out: string } {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = spawnSync('gluster', ['--mode=script', ...args], { encoding: 'utf8', timeout: 60_000 });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim();
    if (r.status === 0) return { ok: true, out };
    if (/another transaction|locking failed|Locking failed|is in progress/i.test(out) && Date.now() < deadline) { sleepSync(300 + Math.random() * 700); continue; }
    return { ok: false, out };
  }
}

/** glusterd answers, or is started and waited for; throws naming what failed. */
function ensureGlusterd(): void {
  if (spawnSync('gluster', ['--mode=script', 'volume', 'list'], { encoding: 'utf8', timeout: 15_000 }).status === 0) return;
  const r = spawnSync(which('glusterd') ?? 'glusterd', [], { encoding: 'utf8', timeout: 30_000 });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (spawnSync('gluster', ['--mode=script', 'volume', 'list'], { encoding: 'utf8', timeout: 15_000 }).status === 0) return;
    sleepSync(250);
  }
  throw new Error(`rig: glusterd does not answer 'gluster volume list' (started it: status ${r.status} ${r.stderr ?? ''}); see /var/log/glusterfs/glusterd.log`);
}

/** Stop (force) and delete a volume; best effort, synchronous (also run from process 'exit'). */
function removeVolumeSync(volume: string): void {
  glusterSync(['volume', 'stop', volume, 'force'], 30_000);
  glusterSync(['volume', 'delete', volume], 30_000);
}

/** Volumes of rigs whose owner process is gone (a SIGKILLed run): unmount what is left, stop and delete them. */
export function sweepStaleVolumes(): void {
  const r = spawnSync('gluster', ['--mode=script', 'volume', 'list'], { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0) return;
  for (const v of r.stdout.split('\n').map((l) => l.trim())) {
    const m = new RegExp(`^${VOLUME_PREFIX}(\\d+)-`).exec(v);
    if (!m) continue;
    const owner = parseInt(m[1]!, 10);
    if (owner === process.pid || pidAlive(owner)) continue;
    removeVolumeSync(v);
  }
}

/** Pids of processes whose command line has `arg` as one argument and whose name is `comm`. */
function pidsWithArg(comm: string, arg: string): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try { entries = fs.readdirSync('/proc'); } catch { return out; }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/comm`, 'utf8').trim() !== comm) continue;
      if (fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').includes(arg)) out.push(Number(e));
    } catch { /* gone */ }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The rig

export async function startRig(opts: RigOptions): Promise<Rig> {
  const n = opts.machines;
  if (!Number.isInteger(n) || n < 1 || n > MACHINE_LETTERS.length) throw new Error(`startRig: machines must be 1..26, got ${n}`);
  const offsets = Array.from({ length: n }, (_, i) => opts.clockOffsets?.[i] || undefined);
  for (const o of offsets) {
    if (o !== undefined && !OFFSET_RE.test(o)) throw new Error(`startRig: clock offset ${JSON.stringify(o)} is not like '+5m', '-300', '+2h'`);
  }
  const needFaketime = offsets.some((o) => o !== undefined);
  checkRigPrerequisites({ needFaketime, fileSystems: [opts.fs ?? 'sshfs'] });
  const libfaketime = needFaketime ? findLibfaketime() : undefined;
  sweepStaleRigs();

  const kind: FsKind = opts.fs ?? 'sshfs';
  if (!FS_KINDS.includes(kind)) throw new Error(`startRig: fs must be one of ${FS_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  // GlusterFS's FUSE client: attribute-timeout 1 s and entry-timeout 1 s in the kernel, negative-timeout 0,
  // and its own metadata cache (performance.md-cache-timeout, 1 s): the role sshfs's dcache plays.
  const cache: CacheOptions = kind === 'sshfs' ? { ...DEFAULT_CACHE, ...opts.cache } : { ...GLUSTER_CACHE, ...opts.cache };
  cache.dirCacheTimeout = Math.max(0, Math.round(cache.dirCacheTimeout));

  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${process.pid}-`));
  const st: RigState = {
    tmpDir,
    mounts: [],
    sshdPidFile: path.join(tmpDir, 'sshd.pid'),
    children: new Set(),
    stopped: false,
  };
  liveRigs.add(st);
  hookProcessExit();

  try {
    let exportDir: string;
    let port = 0;
    let sshfsOptions = '';
    let mountOptions: string;
    let volume: string | undefined;
    const machines: Machine[] = [];
    if (kind === 'sshfs') {
      // --- keys
      const hostKey = path.join(tmpDir, 'host_key');
      const userKey = path.join(tmpDir, 'user_key');
      for (const k of [hostKey, userKey]) {
        const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'zcq-rig', '-f', k], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
      }
      exportDir = path.join(tmpDir, 'export');
      fs.mkdirSync(exportDir, { mode: 0o755 });
      fs.mkdirSync(RUN_SSHD_DIR, { recursive: true, mode: 0o755 });

      // --- sshd (retry on a port race)
      const sshdBin = which('sshd')!;
      let sshdLog = '';
      for (let attempt = 0; attempt < 5 && !port; attempt++) {
        const p = await freePort();
        const config = path.join(tmpDir, 'sshd_config');
        fs.writeFileSync(
          config,
          [
            `Port ${p}`,
            'ListenAddress 127.0.0.1',
            `HostKey ${hostKey}`,
            'PermitRootLogin prohibit-password',
            'PubkeyAuthentication yes',
            'PasswordAuthentication no',
            'KbdInteractiveAuthentication no',
            'AuthenticationMethods publickey',
            `AuthorizedKeysFile ${userKey}.pub`,
            `PidFile ${st.sshdPidFile}`,
            'UsePAM no',
            'StrictModes no',
            'UseDNS no',
            'PrintMotd no',
            'X11Forwarding no',
            'MaxStartups 100',
            'MaxSessions 100',
            'LogLevel ERROR',
            // In-process sftp server: no dependence on the sftp-server binary path. It offers
            // posix-rename@openssh.com and hardlink@openssh.com, which sshfs uses.
            'Subsystem sftp internal-sftp',
            '',
          ].join('\n'),
        );
        const logFd = fs.openSync(path.join(tmpDir, 'sshd.log'), 'a');
        const child = spawn(sshdBin, ['-D', '-e', '-f', config], { stdio: ['ignore', logFd, logFd], detached: false });
        fs.closeSync(logFd);
        child.on('error', () => {});
        const deadline = Date.now() + 10_000;
        let up = false;
        while (Date.now() < deadline) {
          if (child.exitCode !== null || child.signalCode !== null) break;
          if (await canConnect(p)) {
            up = true;
            break;
          }
          await sleep(50);
        }
        if (up) {
          st.sshd = child;
          port = p;
        } else {
          try {
            child.kill('SIGKILL');
          } catch {
            /* gone */
          }
          sshdLog = fs.readFileSync(path.join(tmpDir, 'sshd.log'), 'utf8');
        }
      }
      if (!port) throw new Error(`sshd did not start; its log:\n${sshdLog}`);

      // --- mounts
      sshfsOptions = [
        `port=${port}`,
        `IdentityFile=${userKey}`,
        'IdentitiesOnly=yes',
        'StrictHostKeyChecking=no',
        'UserKnownHostsFile=/dev/null',
        'BatchMode=yes',
        'LogLevel=ERROR',
        'ServerAliveInterval=5',
        'ServerAliveCountMax=3',
        'reconnect',
        // caching, like an NFS client (see README.md)
        'dir_cache=yes',
        `dcache_timeout=${cache.dirCacheTimeout}`,
        'kernel_cache',
        `attr_timeout=${cache.attrTimeout}`,
        `entry_timeout=${cache.entryTimeout}`,
        `negative_timeout=${cache.negativeTimeout}`,
        ...(opts.extraSshfsOptions ?? []),
      ].join(',');
      for (let i = 0; i < n; i++) {
        const name = `host-${MACHINE_LETTERS[i]}`;
        const mount = path.join(tmpDir, 'mnt', name);
        fs.mkdirSync(mount, { recursive: true });
        const r = spawnSync('sshfs', [`root@127.0.0.1:${exportDir}`, mount, '-o', sshfsOptions], { encoding: 'utf8', timeout: 20_000 });
        if (r.status !== 0 || !isMounted(mount)) {
          throw new Error(`sshfs mount of ${name} failed (status ${r.status}): ${r.stderr}${r.error ? String(r.error) : ''}`);
        }
        st.mounts.push(mount);
        machines.push({ index: i, name, mount, clockOffset: offsets[i] });
      }
      mountOptions = sshfsOptions;
    } else {
      // --- GlusterFS: a volume of two bricks in the temp folder, then one FUSE mount per machine and one
      // more, with the kernel caches off, as the "server's" view for the tests' assertions.
      ensureGlusterd();
      sweepStaleVolumes();
      const host = os.hostname();
      volume = `${VOLUME_PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
      const bricks = ['b1', 'b2'].map((b) => path.join(tmpDir, 'bricks', b));
      for (const b of bricks) fs.mkdirSync(b, { recursive: true });
      const layout = kind === 'gluster-replica' ? ['replica', '2'] : [];
      const created = glusterSync(['volume', 'create', volume, ...layout, ...bricks.map((b) => `${host}:${b}`), 'force']);
      if (!created.ok) throw new Error(`gluster volume create ${volume} failed: ${created.out}`);
      st.volume = volume;
      fs.writeFileSync(path.join(tmpDir, 'rig.json'), JSON.stringify({ ownerPid: process.pid, volume }, null, 2));
      for (const [k, v] of Object.entries({ ...GLUSTER_VOLUME_DEFAULTS, ...opts.glusterVolumeOptions })) {
        const set = glusterSync(['volume', 'set', volume, k, v]);
        if (!set.ok) throw new Error(`gluster volume set ${volume} ${k} ${v} failed: ${set.out}`);
      }
      const started = glusterSync(['volume', 'start', volume]);
      if (!started.ok) throw new Error(`gluster volume start ${volume} failed: ${started.out}`);
      mountOptions = (opts.glusterMountOptions ?? []).join(',');
      const mountGluster = (mnt: string, o: string, clockOffset?: string) => {
        fs.mkdirSync(mnt, { recursive: true });
        // The first mount after a start can race the bricks coming up: try a few times.
        let last = '';
        for (let attempt = 0; attempt < 5; attempt++) {
          // A machine whose clock is off runs its file-system client on that clock too (with features.ctime
          // on, the client's clock is what stamps mtimes). mount(8) drops LD_PRELOAD on the way to the
          // client, so that one is started as mount.glusterfs starts it.
          const r = clockOffset
            ? spawnSync('glusterfs', ['--process-name', 'fuse', `--volfile-server=${host}`, `--volfile-id=/${volume}`, mnt], {
              encoding: 'utf8', timeout: 30_000,
              env: { ...process.env, LD_PRELOAD: libfaketime!, FAKETIME: clockOffset, FAKETIME_DONT_FAKE_MONOTONIC: '1' },
            })
            : spawnSync('mount', ['-t', 'glusterfs', ...(o ? ['-o', o] : []), `${host}:/${volume}`, mnt], { encoding: 'utf8', timeout: 30_000 });
          for (let w = 0; r.status === 0 && !isMounted(mnt) && w < 50; w++) sleepSync(100); // a daemon's mount lands after its parent exits
          if (r.status === 0 && isMounted(mnt)) {
            st.mounts.push(mnt);
            // A fresh client may answer ENOTCONN until it has connected to every brick.
            const deadline = Date.now() + 20_000;
            for (;;) {
              try { fs.readdirSync(mnt); return; } catch (e) { if (Date.now() > deadline) throw new Error(`gluster mount ${mnt}: ${(e as Error).message}`); sleepSync(100); }
            }
          }
          last = `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
          sleepSync(500);
        }
        throw new Error(`mount -t glusterfs ${host}:/${volume} ${mnt} failed: ${last}`);
      };
      exportDir = path.join(tmpDir, 'server');
      mountGluster(exportDir, 'attribute-timeout=0,entry-timeout=0,negative-timeout=0');
      for (let i = 0; i < n; i++) {
        const name = `host-${MACHINE_LETTERS[i]}`;
        const mount = path.join(tmpDir, 'mnt', name);
        mountGluster(mount, mountOptions, offsets[i]);
        machines.push({ index: i, name, mount, clockOffset: offsets[i] });
      }
    }
    if (kind === 'sshfs') fs.writeFileSync(path.join(tmpDir, 'rig.json'), JSON.stringify({ ownerPid: process.pid, sshdPid: st.sshd?.pid, port, mounts: st.mounts }, null, 2));

    // --- the rig relies on hard links and atomic rename-over through the mount: verify.
    probeFeatures(machines[0]!.mount);

    const machineAt = (i: number): Machine => {
      const m = machines[i];
      if (!m) throw new Error(`rig: no machine ${i} (have ${machines.length})`);
      return m;
    };

    const commandFor: Rig['commandFor'] = (i, cmd, args = [], env) => {
      const m = machineAt(i);
      const e: NodeJS.ProcessEnv = { ...process.env, ...env, ZCQ_RIG_MACHINE: m.name, ZCQ_RIG_DIR: tmpDir };
      if (m.clockOffset) {
        const pre = e.LD_PRELOAD ? `${libfaketime}:${e.LD_PRELOAD}` : libfaketime!;
        e.LD_PRELOAD = pre;
        e.FAKETIME = m.clockOffset;
        // Shift only the wall clock. The monotonic clock of a real machine is not affected by
        // its wall-clock skew; libfaketime would otherwise also move CLOCK_MONOTONIC.
        e.FAKETIME_DONT_FAKE_MONOTONIC = '1';
      }
      return {
        file: 'unshare',
        args: ['-u', 'sh', '-c', 'hostname "$0" && exec "$@"', m.name, cmd, ...args],
        env: e,
      };
    };

    const track = (c: ChildProcess): ChildProcess => {
      st.children.add(c);
      c.once('exit', () => st.children.delete(c));
      c.once('error', () => st.children.delete(c));
      return c;
    };

    const rig: Rig = {
      fsKind: kind,
      machines,
      tmpDir,
      exportDir,
      sshPort: port,
      sshfsOptions,
      mountOptions,
      volume,
      cache,
      staleWindowMs: Math.ceil((Math.max(cache.attrTimeout, cache.entryTimeout, cache.negativeTimeout) + cache.dirCacheTimeout + 2) * 1000),
      mountPids: (i) => pidsWithArg(kind === 'sshfs' ? 'sshfs' : 'glusterfs', machineAt(i).mount),
      brickPids: () => (kind === 'sshfs' ? [] : ['b1', 'b2'].flatMap((b) => pidsWithArg('glusterfsd', path.join(tmpDir, 'bricks', b)))),
      async waitVolumeWhole(timeoutMs = 60_000) {
        if (kind === 'sshfs') return;
        const missing = (): string[] => {
          const out: string[] = [];
          for (const mnt of [exportDir, ...machines.map((m) => m.mount)]) {
            for (const c of [0, 1]) {
              let priv = '';
              try { priv = fs.readFileSync(path.join(mnt, '.meta', 'graphs', 'active', `${volume}-client-${c}`, 'private'), 'utf8'); } catch (e) { priv = (e as Error).message; }
              if (!/^connected = 1$/m.test(priv)) out.push(`${mnt} not connected to brick ${c + 1}`);
            }
          }
          if (kind === 'gluster-replica') {
            const h = glusterSync(['volume', 'heal', volume!, 'info']);
            const counts = [...h.out.matchAll(/^Number of entries: (\S+)$/gm)].map((m) => m[1]);
            if (!h.ok || counts.length !== 2 || counts.some((n) => n !== '0')) out.push(`heal info: entries ${counts.join(', ') || h.out.slice(0, 200)}`);
          }
          return out;
        };
        const deadline = performance.now() + timeoutMs;
        for (;;) {
          const m = missing();
          if (m.length === 0) return;
          if (performance.now() > deadline) throw new Error(`rig: volume ${volume} not whole after ${timeoutMs} ms: ${m.join('; ')}`);
          if (kind === 'gluster-replica' && m.some((x) => x.startsWith('heal'))) glusterSync(['volume', 'heal', volume!]);
          await new Promise((r) => setTimeout(r, 250));
        }
      },
      path: (i, ...parts) => path.join(machineAt(i).mount, ...parts),
      commandFor,
      spawn(i, cmd, args = [], o = {}) {
        if (st.stopped) throw new Error('rig: stopped');
        const { cwd, env, input: _input, timeoutMs: _t, ...rest } = o;
        const c = commandFor(i, cmd, args, env);
        return track(spawn(c.file, c.args, { stdio: 'pipe', ...rest, cwd: cwd ?? machineAt(i).mount, env: c.env }));
      },
      run(i, cmd, args = [], o = {}) {
        return new Promise<RunResult>((resolve, reject) => {
          let child: ChildProcess;
          try {
            child = rig.spawn(i, cmd, args, { cwd: o.cwd, env: o.env, stdio: 'pipe' });
          } catch (e) {
            reject(e);
            return;
          }
          let stdout = '';
          let stderr = '';
          child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
          child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
          const timer = setTimeout(() => {
            stderr += `\n[rig] killed after ${o.timeoutMs ?? 30_000} ms`;
            child.kill('SIGKILL');
          }, o.timeoutMs ?? 30_000);
          child.once('error', (e) => {
            clearTimeout(timer);
            reject(e);
          });
          child.once('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
          });
          child.stdin!.on('error', () => {});
          child.stdin!.end(o.input ?? '');
        });
      },
      async stop() {
        if (st.stopped) return;
        // Kill what tests left running and wait for it, so that no cwd/open file keeps a mount busy.
        const waits: Promise<void>[] = [];
        for (const c of st.children) {
          if (c.exitCode !== null || c.signalCode !== null) continue;
          waits.push(new Promise<void>((r) => c.once('close', () => r())));
          try {
            c.kill('SIGKILL');
          } catch {
            /* gone */
          }
        }
        await Promise.race([Promise.all(waits), sleep(5_000)]);
        const sshd = st.sshd;
        teardownSync(st);
        if (sshd && sshd.exitCode === null && sshd.signalCode === null) {
          await Promise.race([new Promise((r) => sshd.once('exit', r)), sleep(3_000)]);
        }
        liveRigs.delete(st);
      },
    };
    return rig;
  } catch (e) {
    teardownSync(st);
    liveRigs.delete(st);
    throw e;
  }
}

/** link(2) and rename(2)-over-existing through the mount; throws if either does not work. */
function probeFeatures(mount: string): void {
  const dir = path.join(mount, `.rig-probe-${process.pid}`);
  fs.mkdirSync(dir);
  try {
    fs.writeFileSync(path.join(dir, 'a'), 'a');
    try {
      fs.linkSync(path.join(dir, 'a'), path.join(dir, 'b'));
    } catch (e) {
      throw new Error(`rig: hard links do not work through sshfs (${(e as Error).message}); the server needs hardlink@openssh.com`);
    }
    fs.writeFileSync(path.join(dir, 'c'), 'c');
    try {
      fs.renameSync(path.join(dir, 'c'), path.join(dir, 'b'));
    } catch (e) {
      throw new Error(`rig: rename over an existing file fails through sshfs (${(e as Error).message}); the server needs posix-rename@openssh.com`);
    }
    if (fs.readFileSync(path.join(dir, 'b'), 'utf8') !== 'c') throw new Error('rig: rename-over did not replace the target');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Vitest helper: starts the rig in beforeAll and stops it in afterAll. The returned object
 * forwards to the running rig (accessing it before beforeAll ran throws).
 */
export function useRig(opts: RigOptions, startTimeoutMs = 60_000): Rig {
  let current: Rig | undefined;
  beforeAll(async () => {
    current = await startRig(opts);
  }, startTimeoutMs);
  afterAll(async () => {
    await current?.stop();
  }, 30_000);
  return new Proxy({} as Rig, {
    get(_t, prop) {
      if (!current) throw new Error(`rig.${String(prop)} used before the rig started (use it inside tests/hooks)`);
      const v = (current as unknown as Record<string | symbol, unknown>)[prop];
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(current) : v;
    },
  });
}
