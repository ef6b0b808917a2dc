/**
 * prune: remove finished records past their retention, with their output.
 *
 *   done/QUEUE/ID.json, failed/QUEUE/ID.json  ->  tmp/.prune-RANDOM  ->  (removed)
 *   output/ID.log                              ->  (removed)
 *
 * Before: the caller chose what to keep (an age, a count per queue, by the file server's clock; the
 *   retention policy of config/retention.json, see spool/retention.ts, or `zcq prune`'s options).
 * Candidates: the queue folder is read in slices (opendir, 1,000 names at a time, yielding to the event
 *   loop between slices, so that a worker pruning a huge folder goes on claiming). By age: each name is
 *   lstat()ed and judged as it comes, nothing is kept in memory. By count: the names are counted first,
 *   and only a folder holding more than the count is listed whole (name, mtime, inode) to find its oldest.
 * Steps, per candidate:
 *   1. take it: ONE rename into tmp/ under a fresh name (ENOENT: a retry or a person moved it first);
 *   2. judge what was taken (lstat: its age by the file server's clock; for the count, whether it is the
 *      very file listed, same inode and mtime) — the file judged is the file taken, so a record that a
 *      retried job wrote again under the same name is never removed unjudged;
 *   3. too young after all (or not a regular file): rename it back (its name is free: a job has one copy,
 *      and we hold it); else unlink output/ID.log, then unlink the taken record.
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
  /** Names handled between two yields to the event loop (default 1,000). */
  slice?: number;
  /** List each removed record in the report (default true; false: count only, for housekeeping). */
  collect?: boolean;
  /** Asked between slices: stop early (the worker is stopping). */
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

const yieldNow = () => new Promise<void>((res) => setImmediate(res));

export async function pruneFinished(l: Layout, serverNowMs: number, rule: PruneRule, opts: PruneOptions = {}): Promise<PruneReport> {
  const rep: PruneReport = { removed: [], count: 0, errors: [] };
  const p = new Pass(l, serverNowMs, rule, opts, rep);
  for (const queue of listQueues(l[rule.state]).queues) {
    if (rule.queue && queue !== rule.queue) continue;
    const dir = queueDir(l, rule.state, queue);
    try {
      if (rule.olderThanMs !== null) await p.byAge(dir, queue, rule.olderThanMs);
      if (rule.keep !== null && !p.stopped()) await p.byCount(dir, queue, rule.keep);
    } catch (err) {
      rep.errors.push({ path: dir, error: errnoOf(err) ?? (err as Error).message });
    }
    if (p.stopped()) break;
  }
  return rep;
}

interface Listed { name: string; mtimeMs: number; ino: number }

class Pass {
  private handled = 0;
  private readonly slice: number;
  /** Dry run: names already reported by age, not counted again for the count. */
  private readonly reported = new Set<string>();

  constructor(private readonly l: Layout, private readonly now: number, private readonly rule: PruneRule, private readonly opts: PruneOptions, private readonly rep: PruneReport) {
    this.slice = Math.max(1, opts.slice ?? PRUNE_SLICE);
  }

  stopped(): boolean { return this.opts.shouldStop?.() ?? false; }

  /** Count one name handled; every `slice` names, let the event loop run. */
  private async tick(): Promise<void> {
    if (++this.handled % this.slice === 0) await yieldNow();
  }

  /** The job names of `dir`, a slice at a time (opendir: the folder is never read whole). */
  private async *names(dir: string): AsyncGenerator<string> {
    let d: fs.Dir;
    try { d = fs.opendirSync(dir, { bufferSize: 128 }); } catch (err) { if (errnoOf(err) === 'ENOENT') return; throw err; }
    try {
      for (;;) {
        const e = d.readSync();
        if (e === null) return;
        if (idFromName(e.name) === null) continue;
        yield e.name;
        await this.tick();
        if (this.stopped()) return;
      }
    } finally {
      d.closeSync();
    }
  }

  async byAge(dir: string, queue: string, olderThanMs: number): Promise<void> {
    for await (const name of this.names(dir)) {
      let st: fs.Stats;
      try { st = fs.lstatSync(join(dir, name)); } catch { continue; /* moved */ }
      if (!st.isFile() || this.now - st.mtimeMs <= olderThanMs) continue;
      this.take(dir, queue, name, (taken) => this.now - taken.mtimeMs > olderThanMs, st);
    }
  }

  async byCount(dir: string, queue: string, keep: number): Promise<void> {
    let n = 0;
    for await (const name of this.names(dir)) if (!this.reported.has(name)) n++;
    if (n <= keep || this.stopped()) return;
    const all: Listed[] = [];
    for await (const name of this.names(dir)) {
      if (this.reported.has(name)) continue;
      try { const st = fs.lstatSync(join(dir, name)); if (st.isFile()) all.push({ name, mtimeMs: st.mtimeMs, ino: st.ino }); } catch { /* moved */ }
    }
    all.sort((a, b) => b.mtimeMs - a.mtimeMs);
    // The oldest first: a pass cut short (stopping) has removed the ones most surely past the count.
    for (let i = all.length - 1; i >= keep; i--) {
      const f = all[i]!;
      this.take(dir, queue, f.name, (taken) => taken.ino === f.ino && taken.mtimeMs === f.mtimeMs, f);
      await this.tick();
      if (this.stopped()) return;
    }
  }

  /** Steps 1-3 for one name; `remove` judges the file taken. */
  private take(dir: string, queue: string, name: string, remove: (taken: fs.Stats) => boolean, listed: { mtimeMs: number }): void {
    const id = idFromName(name)!;
    const state = this.rule.state;
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
    unlinkQuietly(taken);
    step('prune', 3, `${state}/${queue}/${id}`);
    this.report(id, queue, st.mtimeMs);
  }

  private report(id: string, queue: string, mtimeMs: number): void {
    this.rep.count++;
    if (this.opts.collect !== false) this.rep.removed.push({ id, queue, state: this.rule.state, ageMs: Math.round(this.now - mtimeMs) });
  }
}
