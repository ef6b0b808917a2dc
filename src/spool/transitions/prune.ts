/**
 * prune: remove finished records past their retention, with their output.
 *
 *   done/QUEUE/ID.json, failed/QUEUE/ID.json  ->  tmp/.prune-RANDOM  ->  (removed)
 *   output/ID.log                              ->  (removed)
 *
 * Before: the caller chose what to keep (an age, a count per queue, by the file server's clock; the
 *   retention policy of config/retention.json, see spool/retention.ts, or `zcq prune`'s options).
 * Candidates: the queue folder is read in slices (opendir, 1,000 names at a time, yielding to the event
 *   loop between slices, so that a worker pruning a huge folder goes on claiming). By age: each slice's
 *   names are lstat()ed and its old ones taken, newest first; no more than a slice is held in memory. By
 *   count: the names are counted first, and only a folder holding more than the count is listed whole
 *   (name, mtime, inode) to take its oldest beyond the count, oldest first.
 * Steps, per candidate:
 *   1. take it: ONE rename into tmp/ under a fresh name (ENOENT: a retry or a person moved it first);
 *   2. judge what was taken (lstat: its age by the file server's clock; for the count, whether it is the
 *      very file listed, same inode and mtime) — the file judged is the file taken, so a record that a
 *      retried job wrote again under the same name is never removed unjudged;
 *   3. too young after all (or not a regular file): rename it back (its name is free: a job has one copy,
 *      and we hold it); else unlink output/ID.log and what composite jobs keep for ID (ended.ts
 *      forgetCompositeOf: its group folder, its callback markers, its dependents' edges, its children's
 *      index), then unlink the taken record.
 * Crash after 1: the record sits in tmp/ and is removed with the temporaries after the leftover age —
 *   which is what pruning wanted; its output/ID.log stays (an orphan output file). After 3: done.
 * Fence: none needed; retry and prune race on one rename, and the loser gets ENOENT.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../../errors.js';
import { randomName, renameOrGoneSync, unlinkQuietly } from '../fsops.js';
import { queueDir, type Layout } from '../layout.js';
import { idFromName } from '../names.js';
import { listQueues } from '../queues.js';
import { forgetCompositeOf } from './ended.js';
import { step } from './steps.js';

export interface PruneRule {
  state: 'done' | 'failed';
  /** Remove records older than this (file server's clock); null: no age limit. */
  olderThanMs: number | null;
  /** Keep at most this many per queue (the newest); null: no count limit. */
  keep: number | null;
  queue?: string;
  dryRun?: boolean;
}

export interface PruneOptions {
  /** Names handled per slice (default 1,000); pruneFinishedInSlices lets the event loop run between slices. */
  slice?: number;
  /** List each removed record in the report (default true; false: count only, for housekeeping). */
  collect?: boolean;
  /** Asked between slices by pruneFinishedInSlices: stop early (the worker is stopping). */
  shouldStop?: () => boolean;
}

export interface PruneReport {
  removed: { id: string; queue: string; state: 'done' | 'failed'; ageMs: number }[];
  /** Records removed (or, dry run, that would be). */
  count: number;
  /** Folders that could not be read (EACCES...): skipped, the others pruned. */
  errors: { path: string; error: string }[];
}

export const PRUNE_SLICE = 1000;
/** The longest stretch of pruning between two turns of the event loop (pruneFinishedInSlices). */
const PRUNE_TURN_MS = 2;

/**
 * Prune in one go (the command line's and tests' pass: a hook's SimulatedCrash comes out of this call).
 * For a worker, pruneFinishedInSlices.
 */
export function pruneFinished(l: Layout, serverNowMs: number, rule: PruneRule, opts: PruneOptions = {}): PruneReport {
  const rep: PruneReport = { removed: [], count: 0, errors: [] };
  for (const _ of new Pass(l, serverNowMs, rule, opts, rep).run()) { /* no pause between slices */ }
  return rep;
}

/** Prune a slice at a time, letting the event loop run between slices (setImmediate); stops early on `shouldStop`. */
export async function pruneFinishedInSlices(l: Layout, serverNowMs: number, rule: PruneRule, opts: PruneOptions = {}): Promise<PruneReport> {
  const rep: PruneReport = { removed: [], count: 0, errors: [] };
  // Between slices, the event loop gets a turn once PRUNE_TURN_MS of work has gone by: every asynchronous
  // step of a claim (a thread's message, a file event) waits for the slice under way.
  let since = performance.now();
  for (const _ of new Pass(l, serverNowMs, rule, opts, rep).run()) {
    if (performance.now() - since < PRUNE_TURN_MS) continue;
    await new Promise<void>((res) => setImmediate(res));
    since = performance.now();
    if (opts.shouldStop?.()) break;
  }
  return rep;
}

interface Listed { name: string; mtimeMs: number; ino: number }

/** One pass; its run() yields between slices (the caller decides whether to pause there). */
class Pass {
  private readonly slice: number;
  /** Dry run: names already reported by age, not counted again for the count. */
  private readonly reported = new Set<string>();

  constructor(private readonly l: Layout, private readonly now: number, private readonly rule: PruneRule, opts: PruneOptions, private readonly rep: PruneReport) {
    this.slice = Math.max(1, opts.slice ?? PRUNE_SLICE);
    this.collect = opts.collect !== false;
  }

  private readonly collect: boolean;

  *run(): Generator<void> {
    for (const queue of listQueues(this.l[this.rule.state]).queues) {
      if (this.rule.queue && queue !== this.rule.queue) continue;
      const dir = queueDir(this.l, this.rule.state, queue);
      try {
        if (this.rule.olderThanMs !== null) yield* this.byAge(dir, queue, this.rule.olderThanMs);
        if (this.rule.keep !== null) yield* this.byCount(dir, queue, this.rule.keep);
      } catch (err) {
        // A folder we may not read (EACCES), or gone: skipped and reported; anything else is not ours to hide.
        const code = errnoOf(err);
        if (code === undefined) throw err;
        this.rep.errors.push({ path: dir, error: code });
      }
    }
  }

  /** The job names of `dir`, at most a slice at a time (opendir: the folder is never read whole). */
  private *batches(dir: string): Generator<string[]> {
    let d: fs.Dir;
    try { d = fs.opendirSync(dir, { bufferSize: 128 }); } catch (err) { if (errnoOf(err) === 'ENOENT') return; throw err; }
    try {
      for (;;) {
        const batch: string[] = [];
        let e: fs.Dirent | null = null;
        while (batch.length < this.slice && (e = d.readSync()) !== null) if (idFromName(e.name) !== null) batch.push(e.name);
        if (batch.length > 0) yield batch;
        if (e === null) return;
      }
    } finally {
      d.closeSync();
    }
  }

  /** By age: each slice's old records, newest first (as one listing would be), taken and judged. */
  private *byAge(dir: string, queue: string, olderThanMs: number): Generator<void> {
    for (const batch of this.batches(dir)) {
      const old: Listed[] = [];
      for (const name of batch) {
        try {
          const st = fs.lstatSync(join(dir, name));
          if (st.isFile() && this.now - st.mtimeMs > olderThanMs) old.push({ name, mtimeMs: st.mtimeMs, ino: st.ino });
        } catch { /* moved */ }
      }
      old.sort((a, b) => b.mtimeMs - a.mtimeMs);
      for (const f of old) this.take(dir, queue, f.name, (taken) => this.now - taken.mtimeMs > olderThanMs, f);
      yield;
    }
  }

  /** By count: count the names; only when over the count, list them all and take the oldest beyond it. */
  private *byCount(dir: string, queue: string, keep: number): Generator<void> {
    let n = 0;
    for (const batch of this.batches(dir)) {
      for (const name of batch) if (!this.reported.has(name)) n++;
      yield;
    }
    if (n <= keep) return;
    const all: Listed[] = [];
    for (const batch of this.batches(dir)) {
      for (const name of batch) {
        if (this.reported.has(name)) continue;
        try { const st = fs.lstatSync(join(dir, name)); if (st.isFile()) all.push({ name, mtimeMs: st.mtimeMs, ino: st.ino }); } catch { /* moved */ }
      }
      yield;
    }
    all.sort((a, b) => b.mtimeMs - a.mtimeMs);
    // The oldest first: a pass cut short (the worker stopping) has removed the ones most surely past the count.
    for (let i = all.length - 1, k = 1; i >= keep; i--, k++) {
      const f = all[i]!;
      this.take(dir, queue, f.name, (taken) => taken.ino === f.ino && taken.mtimeMs === f.mtimeMs, f);
      if (k % this.slice === 0) yield;
    }
  }

  /** Steps 1-3 for one name; `remove` judges the file taken. */
  private take(dir: string, queue: string, name: string, remove: (taken: fs.Stats) => boolean, listed: Listed): void {
    const id = idFromName(name)!;
    if (this.rule.dryRun) {
      this.reported.add(name);
      this.report(id, queue, listed.mtimeMs);
      return;
    }
    const from = join(dir, name);
    const taken = join(this.l.tmp, randomName('.prune-'));
    if (!renameOrGoneSync(from, taken)) return;
    step('prune', 1, id);
    let st: fs.Stats;
    try { st = fs.lstatSync(taken); } catch { return; }
    step('prune', 2, id);
    if (!st.isFile() || !remove(st)) { renameOrGoneSync(taken, from); return; }
    unlinkQuietly(join(this.l.output, `${id}.log`));
    forgetCompositeOf(this.l, id);
    unlinkQuietly(taken);
    step('prune', 3, `${this.rule.state}/${queue}/${id}`);
    this.report(id, queue, st.mtimeMs);
  }

  private report(id: string, queue: string, mtimeMs: number): void {
    this.rep.count++;
    if (this.collect) this.rep.removed.push({ id, queue, state: this.rule.state, ageMs: Math.round(this.now - mtimeMs) });
  }
}
