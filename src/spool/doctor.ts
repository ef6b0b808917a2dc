/**
 * `zcq doctor`: check a spool's consistency and, with `repair`, fix what is provably safe to fix — beside
 * live workers. Every repair goes through a transition (recover, promote's adopt, quarantine) or is a
 * chmod/rmdir; nothing is deleted. Found:
 * - a stale lease (heartbeat older than its lease by the file server's clock, lease.ts judgeLease):
 *   repair runs recovery, which judges each lease again just before taking it;
 * - an entry of claimed/ that is not a real folder, a file in a state folder that is not a job (bad name,
 *   symlink, FIFO, invalid JSON, over the limits), a bucket that is not a folder: quarantined with a reason;
 * - a loose job file straight in pending/: filed under its queue (adopt);
 * - a job in two places (a person's copy): when no copy is held by a live lease, the later state is kept
 *   (pending, deferred, hold over done and failed) and the other copy quarantined — both are looked up
 *   again just before, so a job that moved on meanwhile is left alone;
 * - folders whose mode is not the spool's (a co-user's umask): repair chmods them;
 * - crash leftovers older than the safe age; empty deferred buckets more than two minutes old;
 * - a folder of the layout that is gone (`rm -rf done` to clear old records), other than those made when
 *   needed (layout.ts MADE_WHEN_NEEDED): repair makes it again.
 * A file that vanishes while doctor reads it moved on (a worker claimed it): not a problem.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf, isGone } from '../errors.js';
import { parseJob } from '../job/format.js';
import { MAX_JOB_BYTES, createExclusiveSync, readRegularFileSync, renameOrGoneSync } from './fsops.js';
import { cleanLeftovers, findLeftovers } from './housekeeping.js';
import { AUX_DIRS, MADE_WHEN_NEEDED, QUEUED_STATES, STATES, queueDir, type Layout } from './layout.js';
import { judgeLease } from './lease.js';
import { makeDir, rootModeFor } from './modes.js';
import { BUCKET, bucketOf, idFromName, parseDeferredName, priorityOfFolder } from './names.js';
import { quarantine } from './quarantine.js';
import { brokenFolders, listEntries, listQueues } from './queues.js';
import { findExact, pickCurrent, scanState, type Located } from './scan.js';
import type { ServerClock } from './server-clock.js';
import { adoptLoose } from './transitions/promote.js';

export type ProblemKind = 'stale lease' | 'job in two places' | 'loose job' | 'leftover' | 'empty bucket' | 'stray file' | 'wrong mode' | 'quarantine' | 'unreadable queue' | 'missing folder';
export interface Problem { kind: ProblemKind; path: string; detail: string; repaired: boolean }

export interface DoctorHooks {
  clock: ServerClock;
  /** One recovery pass (the client's, under a client lease). */
  recover(): Promise<unknown>;
}

export async function doctor(l: Layout, hooks: DoctorHooks, opts: { repair?: boolean; leftoverAgeMs?: number; goneWorkerAgeMs?: number } = {}): Promise<Problem[]> {
  const { clock } = hooks;
  const problems: Problem[] = [];
  const repair = opts.repair ?? false;
  const startedAt = performance.now();

  // 0. The layout's folders: one removed by hand stops every move into it (finish makes its own again).
  for (const name of [...STATES, ...AUX_DIRS]) {
    if (MADE_WHEN_NEEDED.has(name)) continue;
    const dir = l[name];
    try { fs.lstatSync(dir); continue; } catch (err) { if (!isGone(err)) continue; }
    let repaired = false;
    if (repair) { try { makeDir(l.modes, dir); repaired = true; } catch { /* reported as found */ } }
    problems.push({ kind: 'missing folder', path: dir, detail: "a folder of the spool's layout is gone (removed by hand?)", repaired });
  }

  // 1. Leases.
  const stale: Problem[] = [];
  for (const e of listEntries(l.claimed)) {
    if (e.name.startsWith('.')) continue;
    const dir = join(l.claimed, e.name);
    if (e.kind !== 'dir') { problems.push(await strayOut(l, dir, e.name, `a ${e.kind} in claimed/ (only lease folders belong there)`, repair)); continue; }
    const { info, ageMs, expired } = await judgeLease(l, clock, e.name, 30_000);
    if (expired) stale.push({ kind: 'stale lease', path: dir, detail: `heartbeat ${Math.round(ageMs! / 1000)} s old, lease ${info.leaseMs / 1000} s`, repaired: false });
  }
  if (repair && stale.length > 0) {
    await hooks.recover();
    for (const p of stale) { p.repaired = !exists(p.path); if (p.repaired) p.detail += '; its jobs were settled by recovery'; }
  }
  problems.push(...stale);

  // 2. Entries of the state folders that are not queues or jobs.
  for (const state of QUEUED_STATES) {
    const { queues, odd } = listQueues(l[state]);
    for (const e of odd) {
      const path = join(l[state], e.name);
      if ((state === 'pending' || state === 'hold') && e.kind === 'file' && idFromName(e.name)) {
        if (state === 'pending') problems.push({ kind: 'loose job', path, detail: 'a job file straight in pending/ (workers file it under its queue)', repaired: false });
        continue;
      }
      problems.push(await strayOut(l, path, e.name, `not a queue folder in ${state}/ (${e.kind})`, repair));
    }
    for (const q of queues) {
      const qdir = queueDir(l, state, q);
      let entries;
      try { entries = listEntries(qdir); } catch (err) {
        const code = errnoOf(err);
        if (code !== 'EACCES' && code !== 'EPERM') throw err;
        // A queue of another group (per-queue permissions): reported, not checked, not fatal.
        problems.push({ kind: 'unreadable queue', path: qdir, detail: `cannot be listed by this user (${code}): not checked`, repaired: false });
        continue;
      }
      for (const e of entries) {
        if (e.name.startsWith('.')) continue;
        const path = join(qdir, e.name);
        if (state === 'deferred') {
          if (e.kind !== 'dir' || !BUCKET.test(e.name)) { problems.push(await strayOut(l, path, `${q}_${e.name}`, 'not a deferred bucket (YYYYMMDDTHHMM folder)', repair)); continue; }
          const inBucket = listEntries(path).filter((x) => !x.name.startsWith('.'));
          if (inBucket.length === 0 && e.name < bucketOf((await clock.now()) - 120_000)) {
            let repaired = false;
            if (repair) { try { fs.rmdirSync(path); repaired = true; } catch { /* refilled meanwhile */ } }
            problems.push({ kind: 'empty bucket', path, detail: 'empty deferred bucket', repaired });
            continue;
          }
          for (const x of inBucket) {
            const p = parseDeferredName(x.name);
            const why = p ? checkJobFile(join(path, x.name), p.id) : 'not named DUEMS.ID.json';
            if (why) problems.push(await strayOut(l, join(path, x.name), x.name, why, repair));
          }
          continue;
        }
        if (state === 'pending' && e.kind === 'dir' && priorityOfFolder(e.name) !== null) {
          // pending/QUEUE/pN/: the jobs of priority N.
          for (const x of listEntries(path)) {
            if (x.name.startsWith('.')) continue;
            const xid = idFromName(x.name);
            const why = xid ? checkJobFile(join(path, x.name), xid) : 'not a job file name (ID.json)';
            if (why) problems.push(await strayOut(l, join(path, x.name), `${q}_${e.name}_${x.name}`, why, repair));
          }
          continue;
        }
        const id = idFromName(e.name);
        const why = id ? checkJobFile(path, id) : 'not a job file name (ID.json)';
        if (why) problems.push(await strayOut(l, path, e.name, why, repair));
      }
    }
  }
  if (repair && problems.some((p) => p.kind === 'loose job')) {
    await adoptLoose(l, true);
    for (const p of problems) if (p.kind === 'loose job') { p.repaired = !exists(p.path); if (p.repaired) p.detail += '; filed under its queue'; }
  }

  // 3. Jobs in two places.
  const seen = new Map<string, number>();
  for (const state of STATES) for (const loc of scanState(l, state)) seen.set(loc.id, (seen.get(loc.id) ?? 0) + 1);
  for (const [id, n] of seen) {
    if (n < 2) continue;
    const copies = findExact(l, id);
    if (copies.length < 2) continue; // it moved on while we looked: one copy
    const p = await twoPlaces(l, clock, id, copies, repair);
    if (p) problems.push(p); // null: one file that moved while we looked, no problem
  }

  // 4. Folder modes.
  for (const dir of [l.root, ...modeCheckedDirs(l)]) {
    let st: fs.Stats;
    try { st = fs.lstatSync(dir); } catch { continue; }
    if (!st.isDirectory()) continue;
    const want = (dir === l.root ? rootModeFor(l.modes) : l.modes.dirMode) & 0o7777;
    const have = st.mode & 0o7777;
    if ((have & 0o777) === (want & 0o777) && (have & 0o2000) === (want & 0o2000)) continue;
    let repaired = false;
    if (repair) { try { fs.chmodSync(dir, want); repaired = true; } catch { /* not ours: its owner must */ } }
    problems.push({ kind: 'wrong mode', path: dir, detail: `mode ${have.toString(8)}, ${dir === l.root ? 'the spool root is' : "the spool's folders are"} ${want.toString(8)}${repaired ? '' : repair ? ' (not ours to chmod: its owner must run doctor --repair)' : ''}`, repaired });
  }

  // 5. Quarantine cut short: an entry without its .reason, or the empty placeholder reserved for one.
  problems.push(...(await quarantineProblems(l, clock, repair, opts.leftoverAgeMs ?? 3_600_000)));

  // 6. Crash leftovers older than the safe age.
  const ageOpts = { tmpAgeMs: opts.leftoverAgeMs, workerAgeMs: opts.goneWorkerAgeMs ?? opts.leftoverAgeMs };
  const left = repair ? await cleanLeftovers(l, clock, ageOpts) : await findLeftovers(l, clock, ageOpts);
  for (const f of left) problems.push({ kind: 'leftover', path: f.path, detail: `${f.what}, ${Math.round(f.ageMs / 1000)} s old`, repaired: repair });

  // 7. Folders that failed to list in this run while their parent listed (queues.ts brokenAlone): skipped above.
  for (const [path, error] of brokenFolders(startedAt)) {
    if (!path.startsWith(l.root + '/')) continue;
    problems.push({ kind: 'unreadable queue', path, detail: `answers ${error} while its parent lists: not checked, and workers skip it (on GlusterFS a folder in gfid split-brain: docs/nfs.md)`, repaired: false });
  }
  return problems;
}

async function quarantineProblems(l: Layout, clock: ServerClock, repair: boolean, placeholderAgeMs: number): Promise<Problem[]> {
  const out: Problem[] = [];
  const entries = listEntries(l.quarantine);
  const names = new Set(entries.map((e) => e.name));
  for (const e of entries) {
    if (e.name.endsWith('.reason') || e.name.startsWith('.') || names.has(`${e.name}.reason`)) continue;
    const path = join(l.quarantine, e.name);
    let st: fs.Stats;
    try { st = fs.lstatSync(path); } catch { continue; }
    if (st.isFile() && st.size === 0) {
      // A name reserved for a quarantine that did not happen (the reserving process died before its rename).
      const age = (await clock.now()) - st.mtimeMs;
      if (age < placeholderAgeMs) continue;
      let repaired = false;
      if (repair) { try { fs.unlinkSync(path); repaired = true; } catch { /* gone */ } }
      out.push({ kind: 'quarantine', path, detail: `empty placeholder of a quarantine cut short, ${Math.round(age / 1000)} s old${repaired ? '; removed' : ''}`, repaired });
      continue;
    }
    let repaired = false;
    if (repair) {
      try {
        // Written under a fresh name, then put in place by one rename of the file we just created.
        const tmp = createExclusiveSync(l.quarantine, '.reason-', `${new Date().toISOString()} reason lost: the quarantine of this entry was cut short before its reason was written (found by zcq doctor)\n`, { mode: l.modes.fileMode });
        repaired = renameOrGoneSync(tmp, `${path}.reason`);
      } catch { /* read-only spool: reported only */ }
    }
    out.push({ kind: 'quarantine', path, detail: `quarantined without a .reason (a quarantine cut short)${repaired ? '; reason written' : ''}`, repaired });
  }
  return out;
}

/** Why a job file is not a job, or null when it is one; a file that moved away meanwhile is fine (null). */
function checkJobFile(path: string, id: string): string | null {
  try {
    const r = readRegularFileSync(path, MAX_JOB_BYTES);
    if ('bad' in r) return r.bad;
    parseJob(r.text, id);
    return null;
  } catch (err) {
    if (isGone(err)) return null;
    return `not a valid job: ${(err as Error).message}`;
  }
}

async function twoPlaces(l: Layout, clock: ServerClock, id: string, copies: Located[], repair: boolean): Promise<Problem | null> {
  const keep = pickCurrent(copies);
  const where = copies.map((c) => (c.queue ? `${c.state}/${c.queue}` : c.state)).join(' and ');
  for (const c of copies) {
    if (c.state !== 'claimed' || !c.worker) continue;
    const j = await judgeLease(l, clock, c.worker, 30_000).catch(() => null);
    if (!j || !j.expired) return { kind: 'job in two places', path: keep.path, detail: `job ${id} is in ${where}; one copy is held by a live lease (${c.worker}): left alone`, repaired: false };
  }
  if (copies.some((c) => c.state === 'claimed')) return { kind: 'job in two places', path: keep.path, detail: `job ${id} is in ${where}; a copy is in a dead lease: recovery settles it first`, repaired: false };
  // One file seen twice is not two copies: a job renamed between our looks (a person's hold, pending/Q ->
  // hold/Q) keeps its inode, and quarantining the "other copy" would take the only one. A second copy
  // (cp) has its own inode; hard links (nlink > 1) are two names of one file, either may go.
  const keys = copies.map((c) => { try { const st = fs.lstatSync(c.path); return st.nlink > 1 ? `link:${c.path}` : `${st.dev}:${st.ino}`; } catch { return null; } });
  if (keys.some((k) => k === null) || new Set(keys).size < keys.length) return null;
  const moved: string[] = [];
  if (repair) {
    for (const c of copies) {
      if (c === keep) continue;
      const to = await quarantine(l, c.path, `${id}.${c.state}.json`, `second copy of job ${id}; the copy in ${keep.state}/ was kept at ${keep.path}`).catch(() => null);
      if (to) moved.push(`${c.path} -> ${to}`);
    }
  }
  return { kind: 'job in two places', path: keep.path, detail: `job ${id} is in ${where}; keeping ${keep.state}${moved.length ? `; moved ${moved.join(', ')}` : ''}`, repaired: repair && moved.length === copies.length - 1 };
}

async function strayOut(l: Layout, path: string, name: string, why: string, repair: boolean): Promise<Problem> {
  let to: string | null = null;
  if (repair) to = await quarantine(l, path, name, `${why} (found by zcq doctor)`).catch(() => null);
  return { kind: 'stray file', path, detail: to ? `${why}; moved to ${to}` : why, repaired: to !== null };
}

/** The folders whose mode doctor checks: the state and other top-level folders, and every queue folder. */
function modeCheckedDirs(l: Layout): string[] {
  const out: string[] = [...STATES.map((s) => l[s]), ...AUX_DIRS.map((a) => l[a])];
  for (const state of QUEUED_STATES) for (const q of listQueues(l[state]).queues) out.push(queueDir(l, state, q));
  return out;
}

function exists(path: string): boolean {
  try { fs.lstatSync(path); return true; } catch { return false; }
}
