/**
 * `zcq doctor`: check a spool's consistency and, with `repair`, fix what is safe to fix. Found:
 * - a stale lease (heartbeat older than its lease, by the server's clock): repair runs recovery;
 * - a job in two folders (a crash between the link and the unlink of a move): the later state is kept
 *   (longer history, then newer file, then pending/deferred over done/failed, since every link+unlink move
 *   goes into pending/ or deferred/), the older copy goes to quarantine/ — never deleted; a copy held by a
 *   live lease is reported only (its worker is running it);
 * - crash leftovers older than the safe age (orphan temp files, `.nfs*` files, heartbeats of gone workers):
 *   removed;
 * - empty deferred buckets more than two minutes old: removed;
 * - stray files in state folders (not a job file name, not a regular file, not a valid job): quarantined.
 * Nothing here touches a job held by a live lease.
 */
import { lstat, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseJob } from '../job/format.js';
import { bucketOf, parseDeferredName } from './deferred.js';
import { listNames, readRegularFile } from './fsops.js';
import { cleanLeftovers, findLeftovers } from './housekeeping.js';
import type { Layout } from './layout.js';
import { quarantine } from './quarantine.js';
import { judgeLease } from './recovery.js';
import type { Spool } from './spool.js';

export type ProblemKind = 'stale lease' | 'job in two folders' | 'leftover' | 'empty bucket' | 'stray file';
export interface Problem { kind: ProblemKind; path: string; detail: string; repaired: boolean }

interface Copy { state: string; path: string; history: number; mtimeMs: number; live: boolean }

const BUCKET = /^\d{8}T\d{4}$/;

export async function doctor(spool: Spool, opts: { repair?: boolean; leftoverAgeMs?: number; goneWorkerAgeMs?: number } = {}): Promise<Problem[]> {
  const l = spool.layout;
  const clock = await spool.clock();
  const problems: Problem[] = [];
  const repair = opts.repair ?? false;

  // 1. Stale leases (repair: one recovery pass, which settles them by each job's interrupt policy).
  const live = new Set<string>();
  const stale: Problem[] = [];
  for (const name of await listNames(l.claimed)) {
    if (name.startsWith('.')) continue;
    const dir = join(l.claimed, name);
    if (!(await isDir(dir))) { problems.push(await strayOut(l, dir, name, 'a file directly in claimed/ (only lease folders belong there)', repair)); continue; }
    const { info, ageMs, expired } = await judgeLease(l, clock, name, 30_000);
    if (expired) stale.push({ kind: 'stale lease', path: dir, detail: `heartbeat ${Math.round(ageMs! / 1000)} s old, lease ${info.leaseMs / 1000} s`, repaired: false });
    else live.add(name);
  }
  if (repair && stale.length > 0) {
    await spool.recover();
    for (const p of stale) p.repaired = !(await isDir(p.path));
  }
  problems.push(...stale);

  // 2. Jobs in two folders, and stray files in the state folders.
  const copies = new Map<string, Copy[]>();
  const add = (id: string, c: Copy) => { const list = copies.get(id) ?? []; list.push(c); copies.set(id, list); };
  for (const state of ['pending', 'done', 'failed'] as const) {
    for (const name of await listNames(l[state])) {
      if (name.startsWith('.')) continue;
      const path = join(l[state], name);
      const c = await readCopy(state, path, name.endsWith('.json') ? name.slice(0, -5) : null, false);
      if ('stray' in c) { problems.push(await strayOut(l, path, name, c.stray, repair)); continue; }
      add(c.id, c.copy);
    }
  }
  const nowBucketOld = bucketOf((await clock.now()) - 120_000);
  for (const bucket of await listNames(l.deferred)) {
    if (bucket.startsWith('.')) continue;
    const dir = join(l.deferred, bucket);
    if (!BUCKET.test(bucket) || !(await isDir(dir))) { problems.push(await strayOut(l, dir, bucket, 'not a deferred bucket (YYYYMMDDTHHMM folder)', repair)); continue; }
    const names = (await listNames(dir)).filter((n) => !n.startsWith('.'));
    if (names.length === 0 && bucket < nowBucketOld) {
      let repaired = false;
      if (repair) repaired = await rmdir(dir).then(() => true, () => false);
      problems.push({ kind: 'empty bucket', path: dir, detail: 'empty deferred bucket', repaired });
      continue;
    }
    for (const name of names) {
      const path = join(dir, name);
      const p = parseDeferredName(name);
      const c = await readCopy('deferred', path, p?.id ?? null, false);
      if ('stray' in c) { problems.push(await strayOut(l, path, name, p ? c.stray : 'not named DUEMS.ID.json', repair)); continue; }
      add(c.id, c.copy);
    }
  }
  for (const lease of await listNames(l.claimed)) {
    if (lease.startsWith('.') || !(await isDir(join(l.claimed, lease)))) continue;
    for (const name of await listNames(join(l.claimed, lease))) {
      if (name.startsWith('.') || !name.endsWith('.json')) continue;
      const c = await readCopy('claimed', join(l.claimed, lease, name), name.slice(0, -5), live.has(lease));
      if (!('stray' in c)) add(c.id, c.copy);
    }
  }
  const rank: Record<string, number> = { pending: 2, deferred: 2, claimed: 1, done: 0, failed: 0 };
  for (const [id, list] of copies) {
    if (list.length < 2) continue;
    const sorted = [...list].sort((a, b) => b.history - a.history || b.mtimeMs - a.mtimeMs || rank[b.state]! - rank[a.state]!);
    const keep = sorted[0]!;
    const where = list.map((c) => c.state).join(' and ');
    if (list.some((c) => c.live)) {
      problems.push({ kind: 'job in two folders', path: keep.path, detail: `job ${id} is in ${where}; one copy is held by a live worker: left alone`, repaired: false });
      continue;
    }
    let repaired = repair;
    for (const c of sorted.slice(1)) {
      if (repair) repaired = (await quarantine(l, c.path, `${id}.${c.state}.json`, `older copy of job ${id}; the later state was kept at ${keep.path}`).catch(() => null)) !== null && repaired;
    }
    problems.push({ kind: 'job in two folders', path: keep.path, detail: `job ${id} is in ${where}; keeping ${keep.state}`, repaired });
  }

  // 3. Crash leftovers older than the safe age.
  const ageOpts = { tmpAgeMs: opts.leftoverAgeMs, workerAgeMs: opts.goneWorkerAgeMs ?? opts.leftoverAgeMs };
  const left = repair ? await cleanLeftovers(l, clock, ageOpts) : await findLeftovers(l, clock, ageOpts);
  for (const f of left) problems.push({ kind: 'leftover', path: f.path, detail: `${f.what}, ${Math.round(f.ageMs / 1000)} s old`, repaired: repair });
  return problems;
}

async function readCopy(state: string, path: string, id: string | null, live: boolean): Promise<{ id: string; copy: Copy } | { stray: string }> {
  if (id === null) return { stray: 'not a job file name (ID.json)' };
  let r;
  try { r = await readRegularFile(path); } catch { return { stray: 'unreadable' }; }
  if ('bad' in r) return { stray: r.bad };
  try {
    const job = parseJob(r.text, id);
    return { id, copy: { state, path, history: job.history.length, mtimeMs: r.mtimeMs, live } };
  } catch (err) {
    return { stray: `not a valid job: ${(err as Error).message}` };
  }
}

async function strayOut(l: Layout, path: string, name: string, why: string, repair: boolean): Promise<Problem> {
  let repaired = false;
  if (repair) repaired = (await quarantine(l, path, name, `${why} (found by zcq doctor)`).catch(() => null)) !== null;
  return { kind: 'stray file', path, detail: why, repaired };
}

async function isDir(path: string): Promise<boolean> {
  // lstat, not readdir: no need to read a whole folder to know it is one (and a symlink is not).
  try { return (await lstat(path)).isDirectory(); } catch { return false; }
}
