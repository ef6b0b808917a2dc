/**
 * Quotas: named limits across every machine ("at most N jobs holding NAME run at once, anywhere";
 * zc.async's quotas, BullMQ's global concurrency, Postfix's per-destination concurrency).
 *
 *   quotas/NAME/limit.json   {"limit": N}, 0..10000; written whole (writeReplace), re-read after a poll: a change is live
 *   quotas/NAME/K            a slot, K = 0..N-1: held by the running job whose run token (LEASE/SEQ) it holds
 *   quotas/NAME/w.LEASE      a wait mark: worker LEASE was refused a slot lately (empty; a hint, see WAIT_MARK)
 *
 * A job names its quotas (`zcq put --quota NAME`, the job's "quotas" field). Its worker takes one slot of
 * each after the claim and before the run (transitions/quota-take.ts) and gives them back when the job
 * is recorded (transitions/quota-release.ts); the recovery of a dead lease gives back the slots its
 * jobs held (recover.ts calls releaseLeaseSlots), so a slot held by a worker that died comes back when its
 * lease is recovered, not later. A slot is an exclusive create (O_CREAT|O_EXCL, atomic on NFSv3 and later):
 * of two workers that want slot K one gets it, with no lock and no clock.
 *
 * A quota without limit.json (never set, or removed) limits nothing: its jobs take no slot. Lowering N
 * lets the jobs running over it finish: a new slot is taken only while fewer than N slot files exist.
 * Files here are untrusted like any in the spool: read bounded, never followed (O_NOFOLLOW), and a slot
 * name that is not a number below the bound is not a slot (left alone, reported by `zcq quota ls`).
 */
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errnoOf, isGone, UsageError } from '../errors.js';
import { QUOTA_BOUNDS } from '../defaults.js';
import { QUOTA_NAME, SAFE_NAME } from '../job/format.js';
import { readRegularFileSync, writeReplace, unlinkQuietly } from './fsops.js';
import type { Layout } from './layout.js';
import { makeDir } from './modes.js';

const LIMIT_FILE = 'limit.json';
const SLOT = /^(0|[1-9]\d{0,4})$/;

export interface QuotaUse {
  name: string;
  /** The limit in force; null when none is set (the quota limits nothing). */
  limit: number | null;
  /** Slots held now. */
  used: number;
  /** The run tokens (LEASE/SEQ) holding them. */
  holders: string[];
  /** What in limit.json could not be read (the quota then limits nothing). */
  problem?: string;
}

export function quotaDir(l: Layout, name: string): string { return join(l.quotas, name); }

/** A quota name given by a person: throws UsageError naming `what`. */
export function checkQuotaName(name: string, what = 'quota'): string {
  if (typeof name !== 'string' || !QUOTA_NAME.test(name)) throw new UsageError(`${what} '${String(name).slice(0, 80)}': use letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit`, 'ZCQ_BAD_QUOTA');
  return name;
}

/** A limit given by a person ("3", 3): throws UsageError. */
export function parseLimit(v: string | number): number {
  const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < QUOTA_BOUNDS.limit.min || n > QUOTA_BOUNDS.limit.max) {
    throw new UsageError(`limit '${String(v).slice(0, 40)}': a whole number from ${QUOTA_BOUNDS.limit.min} (none may run) to ${QUOTA_BOUNDS.limit.max}`, 'ZCQ_BAD_QUOTA');
  }
  return n;
}

/** The limit of quota `name`: null when none is set or limit.json cannot be read (then `problem` says why). */
export function readLimit(l: Layout, name: string): { limit: number | null; problem?: string } {
  let r;
  try { r = readRegularFileSync(join(quotaDir(l, name), LIMIT_FILE), 4096); } catch (err) {
    if (isGone(err) || errnoOf(err) === 'ENOTDIR') return { limit: null };
    return { limit: null, problem: `cannot read ${LIMIT_FILE}: ${errnoOf(err) ?? (err as Error).message}` };
  }
  if ('bad' in r) return { limit: null, problem: `${LIMIT_FILE} ${r.bad}` };
  try {
    const v = (JSON.parse(r.text) as { limit?: unknown }).limit;
    if (typeof v === 'number' && Number.isInteger(v) && v >= QUOTA_BOUNDS.limit.min && v <= QUOTA_BOUNDS.limit.max) return { limit: v };
  } catch { /* below */ }
  return { limit: null, problem: `${LIMIT_FILE} does not hold {"limit": 0..${QUOTA_BOUNDS.limit.max}}` };
}

/** The slot numbers held in quota `name` (names only: one readdir). */
export function slotsOf(l: Layout, name: string): number[] {
  try {
    // Never through a symlink planted in the folder's place.
    if (!fs.lstatSync(quotaDir(l, name)).isDirectory()) return [];
  } catch { return []; }
  return quotaEntries(quotaDir(l, name)).slots;
}

/** A quota folder's slot numbers and wait marks (w.LEASE), from one readdir; the caller checked it is a real folder. */
export function quotaEntries(dir: string): { slots: number[]; marks: string[] } {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return { slots: [], marks: [] }; }
  const slots: number[] = [];
  const marks: string[] = [];
  for (const n of names) {
    if (SLOT.test(n)) slots.push(Number(n));
    else if (n.startsWith(WAIT_MARK) && SAFE_NAME.test(n.slice(WAIT_MARK.length))) marks.push(n);
  }
  return { slots, marks };
}

/**
 * Wait marks: quotas/NAME/w.LEASE, an empty file made (or touched) by a worker refused a slot of NAME, and
 * removed by it when it next takes one. A hint for the fair share between machines only (quota-take.ts):
 * never counted as a slot. A mark goes with its lease: the worker removes its own when the lease ends
 * (stopped or lost: Lease.end, markLost), recovery removes a dead lease's (quota-release.ts
 * releaseLeaseSlots), and one left behind all the same (a recoverer that died) is removed by whoever lists
 * the folder next, or by housekeeping once its lease folder is gone.
 */
export const WAIT_MARK = 'w.';

/**
 * Slot inodes: tmp/.qslot-LEASE-RANDOM (transitions/quota-take.ts, "Own inodes"), one per run of LEASE
 * that holds slots, pooled for its next runs. The lease a name belongs to, or null when it is not one.
 */
export function slotInodeLease(name: string): string | null {
  if (!name.startsWith(SLOT_INODE_PREFIX)) return null;
  return /^(.+)-[A-Za-z0-9_-]{16}$/.exec(name.slice(SLOT_INODE_PREFIX.length))?.[1] ?? null;
}
/** The start of a slot inode's name (tmp/.qslot-LEASE-RANDOM): made in quota-take.ts, read here. */
export const SLOT_INODE_PREFIX = '.qslot-';

/** Remove the wait marks this process made for `lease` (it ended: stopped, or lost), and forget them. */
export function dropWaitMarksOf(lease: string): void {
  for (const st of takers.values()) {
    const path = st.marked.get(lease);
    if (path === undefined) continue;
    unlinkQuietly(path);
    st.marked.delete(lease);
  }
}

/** The host part of a lease id or run token (host.pid.rand[/SEQ]: worker ids never put a dot in the host). */
export function hostOfLease(leaseOrToken: string): string {
  const dot = leaseOrToken.indexOf('.');
  return dot < 0 ? leaseOrToken : leaseOrToken.slice(0, dot);
}

/**
 * What this process remembers of a quota between its takes (transitions/quota-take.ts), per quota folder.
 * Hints only: every slot is still an exclusive create, and the full check (a listing) is made again at
 * most QUOTA_RELIST_MS later.
 */
export interface TakerState {
  /** The limit the last listing was checked against. */
  limit: number;
  /** When (performance.now) a listing last found fewer slots than `limit`, none numbered at or over it; -Infinity: list at the next take. */
  listedAt: number;
  /** Slot numbers likely free (freed by this process, or free at the last listing); the next to try is last. */
  free: number[];
  /** The last listing found workers of another machine waiting: list at every take, fair share applies. */
  shared: boolean;
  /** Our wait marks (one per lease of this process: a worker whose lease was lost goes on under a new one). */
  marked: Map<string, string>;
  /** Wait marks of others: their mtime, and when (performance.now) we first saw that mtime. */
  markSeen: Map<string, { mtimeMs: number; at: number }>;
  /** Slots a listing still named but that were gone when opened (freeSlotsNow), and when that was seen. */
  gone: number[];
  goneAt: number;
  /** Where freeSlotsNow's next checks begin among the listed slots. */
  checkFrom: number;
}

const takers = new Map<string, TakerState>();

export function takerState(dir: string): TakerState {
  let st = takers.get(dir);
  if (!st) {
    if (takers.size >= 1000) takers.clear();
    st = { limit: -1, listedAt: -Infinity, free: [], shared: false, marked: new Map(), markSeen: new Map(), gone: [], goneAt: -Infinity, checkFrom: 0 };
    takers.set(dir, st);
  }
  return st;
}

/**
 * How many slots of quota `name` (limit `limit`) are free now, for a worker whose jobs wait for one (each
 * poll). A listing can be stale — a network client's directory cache (NFS acdirmin, sshfs's cache: 2 s on
 * the test rig) still names a slot another machine freed — so when it shows the quota full, with no slot
 * numbered at or over the limit, listed slots are opened (close-to-open: the open asks the file server)
 * and the ones gone count as free; the next take tries them (quota-take.ts). At most FRESH_CHECKS opens
 * a call, taking the slots in turn from one call to the next, and only while jobs wait and the listing
 * says full: a file server is not asked about every slot of a large quota at every poll of every waiter.
 */
export function freeSlotsNow(l: Layout, name: string, limit: number): number {
  const dir = quotaDir(l, name);
  try { if (!fs.lstatSync(dir).isDirectory()) return limit; } catch { return limit; }
  const { slots } = quotaEntries(dir);
  if (slots.length < limit) return limit - slots.length;
  if (slots.some((k) => k >= limit)) return 0;
  const st = takerState(dir);
  slots.sort((a, b) => a - b);
  const from = st.checkFrom % slots.length;
  const pick = slots.length <= FRESH_CHECKS ? slots : [...slots, ...slots].slice(from, from + FRESH_CHECKS);
  st.checkFrom = from + pick.length;
  const gone = pick.filter((k) => slotGone(join(dir, String(k))));
  if (gone.length > 0) {
    st.gone = gone;
    st.goneAt = performance.now();
  }
  return gone.length;
}

/** Slots freeSlotsNow opens at most per call. */
const FRESH_CHECKS = 8;

/** Whether slot `path` is gone by an open (fresh on NFS and FUSE, where lstat may answer from a cache). */
function slotGone(path: string): boolean {
  try {
    fs.closeSync(fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK));
    return false;
  } catch (err) {
    return isGone(err);
  }
}

/** Slot `path` was freed by this process: its number is the first to try at the next take. */
export function slotFreed(path: string): void {
  const st = takers.get(dirname(path));
  if (!st) return;
  const k = Number(basename(path));
  if (!Number.isInteger(k) || k >= st.limit || st.free.includes(k)) return;
  if (st.free.length >= 16) st.free.shift();
  st.free.push(k);
}

/** The run token a slot file holds, or null (gone, not a regular file, odd content). */
export function slotHolder(path: string): string | null {
  try {
    const r = readRegularFileSync(path, 1024);
    if ('bad' in r) return null;
    const t = r.text.trim();
    return t.length > 0 && t.length <= 300 ? t : null;
  } catch { return null; }
}

/** Every quota with a folder: its limit and use. */
export function listQuotas(l: Layout): QuotaUse[] {
  let names: string[];
  try { names = fs.readdirSync(l.quotas); } catch { return []; }
  const out: QuotaUse[] = [];
  for (const name of names.filter((n) => QUOTA_NAME.test(n)).sort()) {
    try { if (!fs.lstatSync(quotaDir(l, name)).isDirectory()) continue; } catch { continue; }
    const { limit, problem } = readLimit(l, name);
    const slots = slotsOf(l, name);
    const holders = slots.map((k) => slotHolder(join(quotaDir(l, name), String(k)))).filter((t): t is string => t !== null);
    out.push({ name, limit, used: slots.length, holders, ...(problem ? { problem } : {}) });
  }
  return out;
}

/** Set (or change) a quota's limit: one whole-file replace. Running workers apply it within a poll. */
export async function setLimit(l: Layout, name: string, limit: number, durable: boolean): Promise<void> {
  makeDir(l.modes, l.quotas);
  makeDir(l.modes, quotaDir(l, name));
  await writeReplace(join(quotaDir(l, name), LIMIT_FILE), JSON.stringify({ limit }) + '\n', { tmpDir: l.tmp, durable, mode: l.modes.fileMode });
}

/** Remove a quota's limit (its jobs are no longer limited). Slots held stay until their jobs end. False when none was set. */
export function removeLimit(l: Layout, name: string): boolean {
  const path = join(quotaDir(l, name), LIMIT_FILE);
  try { fs.lstatSync(path); } catch { return false; }
  unlinkQuietly(path);
  // Wait marks are hints for a limit that is gone now.
  for (const m of quotaEntries(quotaDir(l, name)).marks) unlinkQuietly(join(quotaDir(l, name), m));
  // The folder goes too once no slot is held (a slot file keeps it: rmdir fails, which is fine).
  try { fs.rmdirSync(quotaDir(l, name)); } catch { /* slots held, or a stray */ }
  return true;
}

/*
 * Queue defaults: quotas every job of a queue holds, besides its own (`zcq config set queue:QUEUE quotas=a,b`).
 *
 *   config/queues/QUEUE.json   {"quotas": ["a", "b"]}
 *
 * Workers read them each poll and apply them at the start of a job of that queue (put-time needs no
 * look-up, and a change applies to jobs already pending). Read bounded, O_NOFOLLOW; bad content is
 * reported and the queue then has no default.
 */
const MAX_QUEUE_QUOTAS = 8;

export function queueConfigDir(l: Layout): string { return join(l.config, 'queues'); }

/** Every queue's default quotas, and what could not be read. */
export function readQueueQuotas(l: Layout): { quotas: Map<string, string[]>; problems: string[] } {
  const quotas = new Map<string, string[]>();
  const problems: string[] = [];
  let names: string[];
  try { names = fs.readdirSync(queueConfigDir(l)); } catch { return { quotas, problems }; }
  for (const file of names) {
    if (!file.endsWith('.json')) continue;
    const queue = file.slice(0, -5);
    if (!QUOTA_NAME.test(queue)) continue;
    const path = join(queueConfigDir(l), file);
    try {
      const r = readRegularFileSync(path, 4096);
      if ('bad' in r) { problems.push(`${path}: ${r.bad}`); continue; }
      const v = (JSON.parse(r.text) as { quotas?: unknown }).quotas;
      if (!Array.isArray(v) || v.length > MAX_QUEUE_QUOTAS || v.some((q) => typeof q !== 'string' || !QUOTA_NAME.test(q))) { problems.push(`${path}: "quotas" must be an array of at most ${MAX_QUEUE_QUOTAS} quota names`); continue; }
      if (v.length > 0) quotas.set(queue, v as string[]);
    } catch (err) {
      if (!isGone(err)) problems.push(`${path}: ${(err as Error).message}`);
    }
  }
  return { quotas, problems };
}

/** Set (a list) or remove (null) the default quotas of `queue`. */
export async function setQueueQuotas(l: Layout, queue: string, quotas: string[] | null, durable: boolean): Promise<void> {
  const path = join(queueConfigDir(l), `${queue}.json`);
  if (quotas === null || quotas.length === 0) { unlinkQuietly(path); return; }
  if (quotas.length > MAX_QUEUE_QUOTAS) throw new UsageError(`quotas: at most ${MAX_QUEUE_QUOTAS} per queue`, 'ZCQ_BAD_QUOTA');
  for (const q of quotas) checkQuotaName(q, 'quotas');
  makeDir(l.modes, l.config);
  makeDir(l.modes, queueConfigDir(l));
  await writeReplace(path, JSON.stringify({ quotas: [...new Set(quotas)] }) + '\n', { tmpDir: l.tmp, durable, mode: l.modes.fileMode });
}
