/**
 * The spool's folders: what a spool is, where each state lives, and how to open or create one. This is the
 * one list of states and the one place that builds their paths (see man/zcq-spool.5, LAYOUT).
 *
 * A folder is a spool when it holds the marker `zcq-spool.json` with `"format": 2`. Only `initSpool` makes
 * one; opening never creates a spool, so a mistyped path is an error instead of a new spool no worker
 * watches. Job states are folders per queue (`pending/QUEUE/ID.json`): a worker serving queue X never
 * opens a file of queue Y, and folder permissions can be set per queue.
 */
import * as fs from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { NotASpoolError, UsageError, errnoOf } from '../errors.js';
import { EUID, fsyncDirSync, isRealDir, readRegularFileSync, remakeWhenGone, renameOrGoneSync, unlinkQuietly } from './fsops.js';
import { newToken } from './ids.js';
import { PRIVATE_MODES, fixModeSync, makeDir, makeDirs, rootModeFor, markerFields, modesFromMarker, sharedModes, type SpoolModes } from './modes.js';

export const SPOOL_FORMAT = 2;
export const MARKER = 'zcq-spool.json';

/** Job states, each a folder. The order is the order a job usually goes through them. */
export const STATES = ['pending', 'deferred', 'claimed', 'done', 'failed', 'hold', 'waiting'] as const;
export type JobState = (typeof STATES)[number];
/** States whose folders hold one folder per queue. */
export const QUEUED_STATES = ['pending', 'deferred', 'done', 'failed', 'hold', 'waiting'] as const;
export type QueuedState = (typeof QUEUED_STATES)[number];
/** The other folders of a spool. */
export const AUX_DIRS = ['tmp', 'quarantine', 'workers', 'cancel', 'progress', 'cron', 'paused', 'output', 'config', 'groups', 'deps', 'callbacks', 'children', 'quotas', 'rate'] as const;
/**
 * Folders that whoever first writes in them makes when missing (waiting/ by finish and retry, cancel/ by a
 * cancel, tmp/ by the first temporary created in it, …), and that every reader takes as empty when absent:
 * a spool may lack them (one made by an earlier version, or one whose tmp/ a person cleared). The others
 * (the rest of STATES and AUX_DIRS) must be there: a state folder is made again by the next move into it
 * (makeQueueFolders), but its absence says that someone removed jobs, which doctor reports.
 */
export const MADE_WHEN_NEEDED: ReadonlySet<string> = new Set(['tmp', 'waiting', 'cancel', 'cron', 'paused', 'output', 'config', 'groups', 'deps', 'callbacks', 'children', 'quotas', 'rate']);

/** Folders of the root that the next write into them makes again when a person removed them (layoutOf). */
const REMADE_WHEN_GONE = ['tmp', 'workers', 'claimed', 'progress', 'quarantine'] as const;

export { QUEUE_NAME } from '../job/format.js';
export const DEFAULT_QUEUE = 'default';

export interface Layout {
  root: string;
  tmp: string; pending: string; deferred: string; claimed: string; done: string; failed: string; hold: string;
  quarantine: string; workers: string; cancel: string; progress: string; cron: string; paused: string;
  /** Jobs' captured stdout and stderr, output/ID.log. */
  output: string;
  /** Spool-wide settings (config/retention.json). */
  config: string;
  /** Jobs whose dependencies are not met yet: waiting/QUEUE/ID.json (composite jobs, issue 12). */
  waiting: string;
  /** Composite groups: groups/GID/ holds group.json and the fan-in markers (transitions/arrive.ts). */
  groups: string;
  /** Reverse dependency edges: deps/DEPID/QUEUE~ID, one per job waiting on DEPID (transitions/release.ts). */
  deps: string;
  /** Callback run markers: folders callbacks/ID.then/, callbacks/ID.catch/ (transitions/callback.ts). */
  callbacks: string;
  /** children/PARENT/ID: the jobs a running job created (currentJob().put/parallel/serial), for `zcq show`. */
  children: string;
  /** Quotas: quotas/NAME/limit.json and the slots of running jobs, quotas/NAME/K (spool/quota.ts). */
  quotas: string;
  /** Rate limits: rate/NAME/limit.json and the start tokens of the current window, rate/NAME/W.K (spool/rate.ts). */
  rate: string;
  modes: SpoolModes;
}

export function layoutOf(dir: string, modes: SpoolModes = PRIVATE_MODES): Layout {
  const root = resolve(dir);
  const p = (n: string) => join(root, n);
  // Folders a person may remove by hand beside running workers, made again as init made them by the next
  // write into them (fsops.ts remakeWhenGone): they are in the root, which no co-user may write. The root
  // is fsynced (rare: after a removal only), so that what is then moved into one is not lost with its name.
  for (const d of REMADE_WHEN_GONE) remakeWhenGone(p(d), () => { if (makeDir(modes, p(d))) fsyncDirSync(root); });
  return {
    root, tmp: p('tmp'), pending: p('pending'), deferred: p('deferred'), claimed: p('claimed'), done: p('done'),
    failed: p('failed'), hold: p('hold'), quarantine: p('quarantine'), workers: p('workers'), cancel: p('cancel'),
    progress: p('progress'), cron: p('cron'), paused: p('paused'), output: p('output'), config: p('config'),
    waiting: p('waiting'), groups: p('groups'), deps: p('deps'), callbacks: p('callbacks'), children: p('children'),
    quotas: p('quotas'), rate: p('rate'), modes,
  };
}

/** The folder of `queue` in a queued state. */
export function queueDir(l: Layout, state: QueuedState, queue: string): string {
  return `${l[state]}/${queue}`;
}

/**
 * Make the folders below the state folder `state` down to `dir` (a queue's folder, and its bucket or
 * priority level) where missing, each looked at with lstat (a co-user may have put a symlink in place of a
 * queue folder: makeDir refuses it). Returns the parents that got a new entry, for the caller to fsync in
 * durable mode; `existing` hears the lstat of `dir` when it was there. The state folder itself is made
 * again only when a mkdir below it finds it gone — an operator's `rm -rf SPOOL/hold` — and is never looked
 * at otherwise: it sits in the root, which no co-user may write (modes.ts rootModeFor). Every move into a
 * queue folder goes through here, so a state folder removed by hand stops nothing.
 */
export function makeQueueFolders(l: Layout, state: QueuedState, dir: string, existing?: (st: fs.Stats) => void): string[] {
  const top = l[state];
  const chain: string[] = [];
  for (let d = dir; d !== top && d.length > top.length; d = dirname(d)) chain.unshift(d);
  const made: string[] = [];
  for (const d of chain) {
    let fresh: boolean;
    try {
      fresh = makeDir(l.modes, d, d === dir ? existing : undefined);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT' || d !== chain[0] || isRealDir(top)) throw err;
      if (makeDir(l.modes, top)) made.push(l.root);
      fresh = makeDir(l.modes, d, d === dir ? existing : undefined);
    }
    if (fresh) made.push(dirname(d));
  }
  return made;
}

/**
 * makeQueueFolders for the queue folder one worker moves job after job into (finish: done/QUEUE,
 * failed/QUEUE, pending/QUEUE, waiting/QUEUE), without an lstat before every move where no one else can
 * put something in its place: when its state folder belongs to our effective uid and neither group nor
 * others may write it (a private spool's), only this user or root can rename QUEUE away or plant a symlink
 * there. What one look found (the folder's and its state folder's) is then kept for FOLDER_KEEP_MS;
 * a move into it that fails with ENOENT — the owner's `rm -rf done/QUEUE` within that time — is tried again
 * after forgetQueueFolder, which looks again. In a shared spool (group-writable state folders) every move is
 * looked at, as makeQueueFolders does (docs/security.md, "What remains"). On a network mount each lstat is
 * a round trip to the server, one of the ~13 a job costs there (bench/PROFILE.md).
 * The kept stats also give finish its folder key for the group fsync (group-sync.ts): a folder the owner
 * replaced by hand within that time is fsynced through the old one's descriptor — on the file systems the
 * spool is meant for, which commit metadata in order, the next fsync of any folder makes the move durable.
 */
export function makeQueueFoldersKept(l: Layout, state: QueuedState, dir: string, existing?: (st: fs.Stats) => void): string[] {
  const now = performance.now();
  const kept = keptOf(l).folders;
  const k = kept.get(dir);
  if (k !== undefined && k.until > now) { existing?.(k.st); return []; }
  let st: fs.Stats | undefined;
  const made = makeQueueFolders(l, state, dir, (s) => { st = s; existing?.(s); });
  if (st !== undefined && dirname(dir) === l[state] && stateFolderIsOnlyOurs(l, state, now)) kept.set(dir, { st, until: now + FOLDER_KEEP_MS });
  return made;
}

/** Forget what makeQueueFoldersKept kept of `dir`: true when it had used it without looking (the caller then looks again). */
export function forgetQueueFolder(l: Layout, dir: string): boolean {
  const { folders, states } = keptOf(l);
  const k = folders.get(dir);
  folders.delete(dir);
  states.delete(dirname(dir));
  return k !== undefined && k.until > performance.now();
}

/**
 * How long one look at a folder that only we may change is trusted (a queue folder, makeQueueFoldersKept; our
 * lease folder, Lease.folderIsOurs): a hand-made change is seen within it.
 */
export const FOLDER_KEEP_MS = 1000;

interface Kept { st: fs.Stats; until: number }
/** Per layout: the queue folders kept, and each state folder's verdict (only ours, or not) with its time. */
const keptByLayout = new WeakMap<Layout, { folders: Map<string, Kept>; states: Map<string, { only: boolean; until: number }> }>();

function keptOf(l: Layout): { folders: Map<string, Kept>; states: Map<string, { only: boolean; until: number }> } {
  let m = keptByLayout.get(l);
  if (m === undefined) { m = { folders: new Map(), states: new Map() }; keptByLayout.set(l, m); }
  return m;
}

/**
 * The state folder belongs to our effective uid and only we may write it: nobody else can put anything in the
 * place of a folder in it. The verdict, either way, holds for FOLDER_KEEP_MS: in a shared spool it is "no"
 * every time, and looking again at each finish would cost the lstat the kept look saves.
 */
export function stateFolderIsOnlyOurs(l: Layout, state: QueuedState | 'claimed', now: number): boolean {
  const states = keptOf(l).states;
  const top = l[state];
  const k = states.get(top);
  if (k !== undefined && k.until > now) return k.only;
  let only = false;
  try {
    const st = fs.lstatSync(top);
    only = EUID !== undefined && st.isDirectory() && st.uid === EUID && (st.mode & 0o022) === 0;
  } catch { /* gone: not kept; the next look finds it made again */ }
  states.set(top, { only, until: now + FOLDER_KEEP_MS });
  return only;
}

/** The folder a pending job of `priority` waits in: pending/QUEUE/ for 5 (the default), else pending/QUEUE/pN/. */
export function pendingDir(l: Layout, queue: string, priority?: number): string {
  return priority === undefined || priority === 5 ? `${l.pending}/${queue}` : `${l.pending}/${queue}/p${priority}`;
}

/** Where a job file sits in a flat-per-queue state (not deferred: see names.ts deferredPath). */
export function jobPath(l: Layout, state: 'pending' | 'done' | 'failed' | 'hold' | 'waiting', queue: string, id: string): string {
  return `${l[state]}/${queue}/${id}.json`;
}

/** Where the CLI and API look when no folder is given: $ZCQ_SPOOL, else ./spool. */
export function defaultSpoolDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.ZCQ_SPOOL && env.ZCQ_SPOOL.length > 0 ? env.ZCQ_SPOOL : 'spool';
}

interface Marker { format?: unknown; migrating?: unknown; group?: unknown; dirMode?: unknown; fileMode?: unknown }

function readMarker(root: string): Marker | null {
  let r;
  try {
    r = readRegularFileSync(join(root, MARKER), 64 * 1024);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return null;
    if (code === 'ENOTDIR') throw new NotASpoolError(root, 'it is a file');
    throw new NotASpoolError(root, `cannot read ${MARKER}: ${code ?? (err as Error).message}`);
  }
  if ('bad' in r) throw new NotASpoolError(root, `${MARKER} ${r.bad}`);
  let m: unknown;
  try { m = JSON.parse(r.text); } catch { throw new NotASpoolError(root, `${MARKER} is not valid JSON`); }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new NotASpoolError(root, `${MARKER} is not a JSON object`);
  return m as Marker;
}

/**
 * Open an existing spool. Throws NotASpoolError (exit 2) for a missing spool, another format, or a
 * migration under way. Creates nothing: readers work on a read-only spool, and missing state folders read
 * as empty (transitions make the folders they publish into).
 */
export function openLayout(dir: string): Layout {
  const root = resolve(dir);
  const m = readMarker(root);
  if (m === null) throw NotASpoolError.missing(root);
  if (m.format === 1) throw NotASpoolError.otherFormat(root, 1);
  if (m.format !== SPOOL_FORMAT) throw new NotASpoolError(root, `${MARKER} has format ${JSON.stringify(m.format)}, this zcq reads format ${SPOOL_FORMAT}`);
  if (m.migrating) throw NotASpoolError.migrating(root);
  return layoutOf(root, modesFromMarker(m));
}

/**
 * Create a spool in a missing or empty folder (or complete one: rerunning is harmless). A non-empty folder
 * without the marker is someone else's data and is refused. `group` makes a spool shared by that Unix
 * group: setgid, group-writable folders (see modes.ts).
 */
export function initSpool(dir: string, opts: { group?: string | null } = {}): Layout {
  const root = resolve(dir);
  // Only the spool's own folder is made: a mistyped parent path must not grow a tree somewhere unexpected.
  const parent = dirname(root);
  try {
    if (!fs.statSync(parent).isDirectory()) throw new UsageError(`${root}: ${parent} is not a folder; pick another spool path`, 'ZCQ_NO_PARENT');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    if (errnoOf(err) === 'ENOENT') throw new UsageError(`${root}: the folder ${parent} does not exist; create it first (zcq init makes only the spool folder itself)`, 'ZCQ_NO_PARENT');
    if (errnoOf(err) === 'ENOTDIR') throw new UsageError(`${root}: ${parent} is not a folder; pick another spool path`, 'ZCQ_NO_PARENT');
    throw err;
  }
  const existing = readMarker(root);
  if (existing !== null) {
    const l = openLayout(root);
    makeDirs(l.modes, [l.root, ...STATES.map((s) => l[s]), ...AUX_DIRS.map((a) => l[a])]);
    return l;
  }
  let entries: string[] = [];
  try {
    if (!fs.lstatSync(root).isDirectory()) throw new NotASpoolError(root, 'it is not a folder');
    entries = fs.readdirSync(root);
  } catch (err) {
    if (err instanceof NotASpoolError) throw err;
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  const known = new Set<string>([...STATES, ...AUX_DIRS]);
  const foreign = entries.filter((e) => !known.has(e) && !e.startsWith('.'));
  if (foreign.length > 0) throw new NotASpoolError(root, `folder is not empty and has no ${MARKER} (found '${foreign[0]}')`);
  const modes: SpoolModes = opts.group ? sharedModes(opts.group) : PRIVATE_MODES;
  const l = layoutOf(root, modes);
  makeDirs(modes, [root]);
  // The root gets the group (and setgid, so everything made below inherits it) before anything else,
  // and no group write (see rootModeFor).
  if (modes.group !== null) fixModeSync(root, modes);
  fs.chmodSync(root, rootModeFor(modes));
  makeDirs(modes, [...STATES.map((s) => l[s]), ...AUX_DIRS.map((a) => l[a])]);
  const marker = { format: SPOOL_FORMAT, created: new Date().toISOString(), ...markerFields(modes) };
  const tmp = join(l.tmp, `.marker-${newToken()}`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, modes.fileMode);
  try {
    fs.writeFileSync(fd, JSON.stringify(marker) + '\n');
    fs.fchmodSync(fd, modes.fileMode);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  if (!renameOrGoneSync(tmp, join(root, MARKER))) { unlinkQuietly(tmp); throw new NotASpoolError(root, `could not write ${MARKER}`); }
  fsyncDirSync(root);
  return l;
}
