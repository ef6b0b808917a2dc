/**
 * The dashboard's read model: the whole spool in one snapshot (jobs per queue and state, rates, running
 * jobs, workers, schedules, quarantine), pages of any state's jobs, and one job in full. It is what
 * `zcq dashboard` serves and what the metrics are made of (client/metrics.ts); it writes nothing.
 *
 * It must stay fast with 1,000,000 jobs in the spool, where one readdir of a folder that size takes 1-2 s
 * on this project's disk. So:
 * - counts come from folder listings only (no job file is opened to count), and a folder is listed again
 *   only when its mtime, ctime or inode changed. A change made in the same mtime tick as our listing would
 *   leave the mtime as it was, so a folder's listing is trusted only once a second look at an unchanged
 *   mtime (a refresh later) has listed it again ("confirmed"): this needs no clock comparison, which on NFS
 *   would compare our clock with the file server's;
 * - listings are read with the asynchronous readdir, which leaves the event loop free while the kernel
 *   lists: requests are answered from the last snapshot while the next is being made;
 * - a folder's names are kept only up to SAMPLE_MAX (sorted): a page of a bigger folder is made from the
 *   first SAMPLE_MAX names in folder order and says so (`partial`); only the page's job files are read.
 *
 * Counters (jobs finished per queue and outcome, lease takeovers, quarantined files) count what changed
 * between two snapshots of this process: the names that appeared in done/QUEUE/ and failed/QUEUE/ (the
 * folder's names are kept while it holds at most TRACK_MAX), heartbeats of expired leases that went away
 * (their jobs were taken over) or dead-lease folders seen in claimed/, new files in quarantine/. They start at
 * zero when the process starts, as Prometheus counters do. Run times come from the new records' last attempt
 * (at most OBSERVE_MAX records read per snapshot, over all queues: beyond that, a finish is counted but not timed).
 *
 * States come from layout.ts's STATES: a state added there shows up here with no change (a flat state is
 * counted as one folder per queue; deferred/ and claimed/ have their own shapes).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { isGone } from '../errors.js';
import { MAX_JOB_BYTES, readRegularFile, readRegularFileSync } from '../spool/fsops.js';
import { QUEUE_NAME, STATES, type JobState, type Layout } from '../spool/layout.js';
import { listQuotas } from '../spool/quota.js';
import { deadLeaseOf } from '../spool/lease.js';
import { BUCKET, idFromName, parseClaimedName, parseDeferredName } from '../spool/names.js';
import { listEntries, listQueues } from '../spool/queues.js';
import type { ScheduleView } from '../schedule/store.js';
import type { JobRecord, Spool, WorkerView } from './spool.js';

/** Names of one folder kept for pages; a bigger folder's pages come from its first SAMPLE_MAX names. */
export const SAMPLE_MAX = 20_000;
/** A done/ or failed/ folder's names are kept (to see which records are new) while it holds at most this many. */
export const TRACK_MAX = 200_000;
/**
 * New finished records read per snapshot for their run time. Reading every record costs a draining worker
 * a share of its throughput (an open and a parse per job, on the same cores); when more finish between two
 * snapshots, these are a sample of them (readdir order, which is no order of time or outcome).
 */
export const OBSERVE_MAX = 100;
/** Running jobs whose files are read per snapshot (a worker's concurrency is at most 1,024). */
export const RUNNING_MAX = 500;
/** Completion and failure rates are over this window. */
export const RATE_WINDOW_MS = 5 * 60_000;
/** Bytes of a string field (message, stack, fn) passed on to the page. */
const TEXT_MAX = 8_192;
/** Bytes of a job's output shown with it (its end). */
const OUTPUT_TAIL = 64 * 1024;

export const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$/;

export interface QueueView {
  name: string;
  paused: boolean;
  counts: Partial<Record<JobState, number>>;
  /** Age of the oldest pending job (by the file server's clock), ms; null when none. */
  oldestPendingMs: number | null;
  /** Jobs finished per minute over the last RATE_WINDOW_MS (or since this process started, when shorter). */
  donePerMin: number;
  failedPerMin: number;
}

export interface RunningView {
  id: string; queue: string | null; fn: string | null; worker: string; workerName: string | null; host: string | null;
  attempt: number | null; startedAt: string | null; elapsedMs: number | null; progress: unknown;
}

export interface QuarantineView { name: string; reason: string | null }

/** One quota's use (slots held) and limit (null: none set), from quotas/NAME/ (spool/quota.ts). */
export interface QuotaUse { name: string; used: number; limit: number | null }

export interface Snapshot {
  spool: string;
  /** When it was made (ISO, this machine's clock) and how long it took. */
  at: string;
  tookMs: number;
  localClock: boolean;
  states: JobState[];
  totals: Record<JobState, number>;
  queues: QueueView[];
  running: RunningView[];
  workers: (WorkerView & { jobs: string[] })[];
  schedules: ScheduleView[];
  quarantine: { count: number; recent: QuarantineView[] };
  quotas: QuotaUse[];
  /** Counters since this process started: finished jobs per queue and outcome, takeovers, quarantined files. */
  finished: Record<string, { done: number; failed: number }>;
  takeovers: number;
  quarantinedSeen: number;
}

export interface JobSummary {
  id: string; state: JobState; queue: string | null; fn: string | null; attempts: number | null; created: string | null;
  finished: string | null; due: string | null; message: string | null; reason: string | null; worker?: string; corrupt?: string;
  /** A waiting job: what it waits for. */
  waitsFor?: string | null;
}

export interface JobPage { state: JobState; queue: string | null; total: number; offset: number; items: JobSummary[]; partial: boolean }

export interface FinishEvent { queue: string; outcome: 'done' | 'failed'; runSeconds: number | null }

interface FolderLook {
  mtimeNs: bigint; ctimeNs: bigint; ino: bigint; confirmed: boolean;
  count: number;
  /** The smallest name (ids sort by creation time; deferred names by due time). */
  first: string | null;
  /** Names, at most SAMPLE_MAX (the first ones in folder order when the folder has more); sorted when a page needs it. */
  sample: string[];
  sorted: boolean;
  /** All names, for done/ and failed/ folders of at most TRACK_MAX. */
  all?: Set<string>;
}

type NameKind = 'flat' | 'deferred';

export class Overview {
  private readonly looks = new Map<string, FolderLook>();
  private readonly finishedTotals: Record<string, { done: number; failed: number }> = {};
  private readonly rateSamples: { at: number; totals: Record<string, { done: number; failed: number }> }[] = [];
  private takeovers = 0;
  private quarantinedSeen = 0;
  private quarantineNames: Set<string> | null = null;
  private silentLeases = new Set<string>();
  private readonly deadSeen = new Set<string>();
  private first = true;
  /** Records read for their run time in the snapshot being made. */
  private observed = 0;
  private last: Snapshot | null = null;
  private refreshing: Promise<Snapshot> | null = null;
  private readonly listeners: ((e: FinishEvent) => void)[] = [];

  constructor(readonly spool: Spool) {}

  /** Called for each job seen finishing (after the first snapshot, which is the baseline). */
  onFinish(fn: (e: FinishEvent) => void): void { this.listeners.push(fn); }

  /** The last snapshot made, or null before the first. */
  latest(): Snapshot | null { return this.last; }

  /** Make a new snapshot (one at a time: a caller during a refresh gets that refresh's). */
  refresh(): Promise<Snapshot> {
    this.refreshing ??= this.make().finally(() => { this.refreshing = null; });
    return this.refreshing;
  }

  private async make(): Promise<Snapshot> {
    const t0 = performance.now();
    this.observed = 0;
    const l = this.spool.layout;
    const clock = await this.spool.clock();
    const totals = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<JobState, number>;
    const perQueue = new Map<string, Partial<Record<JobState, number>>>();
    const add = (q: string, s: JobState, n: number) => { const c = perQueue.get(q) ?? {}; c[s] = (c[s] ?? 0) + n; perQueue.set(q, c); };
    const oldest = new Map<string, string>();
    const seen = new Set<string>();

    for (const state of STATES) {
      if (state === 'claimed') continue;
      const { queues, odd } = listQueues(l[state]);
      if (state !== 'deferred') for (const e of odd) if (e.kind === 'file' && idFromName(e.name)) totals[state]++;
      for (const q of queues) {
        const qdir = join(l[state], q);
        if (state === 'deferred') {
          for (const b of listEntries(qdir)) {
            if (b.kind !== 'dir' || !BUCKET.test(b.name)) continue;
            const look = await this.look(join(qdir, b.name), 'deferred', false, seen);
            if (look) { totals[state] += look.count; add(q, state, look.count); }
          }
          continue;
        }
        const tracked = state === 'done' || state === 'failed';
        const look = await this.look(qdir, 'flat', tracked, seen, tracked ? { queue: q, outcome: state } : undefined);
        if (!look) continue;
        totals[state] += look.count;
        add(q, state, look.count);
        if (state === 'pending' && look.first) oldest.set(q, join(qdir, look.first));
      }
    }
    // Folders gone since the last snapshot are forgotten.
    for (const dir of this.looks.keys()) if (!seen.has(dir)) this.looks.delete(dir);

    const workers = await this.spool.workers();
    const running = this.running(workers, await clock.now());
    totals.claimed = running.total;
    for (const r of running.items) if (r.queue) add(r.queue, 'claimed', 1);
    this.countTakeovers(workers, running.deadLeases);

    const paused = new Set(this.spool.paused());
    for (const q of paused) if (!perQueue.has(q)) perQueue.set(q, {});
    const now = Date.now();
    this.rateSamples.push({ at: now, totals: structuredClone(this.finishedTotals) });
    while (this.rateSamples.length > 2 && this.rateSamples[1]!.at <= now - RATE_WINDOW_MS) this.rateSamples.shift();
    const base = this.rateSamples[0]!;
    const minutes = Math.max((now - base.at) / 60_000, 1 / 60);
    const queues: QueueView[] = [];
    for (const name of [...perQueue.keys()].sort()) {
      const p = oldest.get(name);
      const age = p ? await clock.ageOf(p).catch(() => null) : null;
      const nowT = this.finishedTotals[name] ?? { done: 0, failed: 0 };
      const then = base.totals[name] ?? { done: 0, failed: 0 };
      queues.push({
        name, paused: paused.has(name), counts: perQueue.get(name)!,
        oldestPendingMs: age === null ? null : Math.max(0, Math.round(age)),
        donePerMin: round1((nowT.done - then.done) / minutes), failedPerMin: round1((nowT.failed - then.failed) / minutes),
      });
    }
    const byLease = new Map<string, string[]>();
    for (const r of running.items) byLease.set(r.worker, [...(byLease.get(r.worker) ?? []), r.id]);
    const quarantine = this.quarantine();
    let schedules: ScheduleView[] = [];
    try { schedules = await this.spool.listSchedules(); } catch { /* no cron folder, or unreadable: none shown */ }
    this.first = false;
    this.last = {
      spool: l.root, at: new Date().toISOString(), tookMs: Math.round(performance.now() - t0), localClock: clock.local,
      states: [...STATES], totals, queues, running: running.items,
      workers: workers.map((w) => ({ ...w, jobs: byLease.get(w.id) ?? [] })),
      schedules, quarantine, quotas: quotaUse(this.spool.layout), finished: structuredClone(this.finishedTotals),
      takeovers: this.takeovers, quarantinedSeen: this.quarantinedSeen,
    };
    return this.last;
  }

  /**
   * A folder's count, smallest name and sample, listed again only when it changed (see the header).
   * For done/ and failed/ (`finish`), names that appeared since the last listing are finishes.
   */
  private async look(dir: string, kind: NameKind, track: boolean, seen: Set<string>, finish?: { queue: string; outcome: 'done' | 'failed' }): Promise<FolderLook | null> {
    let st: fs.BigIntStats;
    try { st = await fsp.stat(dir, { bigint: true }); } catch (err) { if (isGone(err) || unreadable(err)) return null; throw err; }
    seen.add(dir);
    const prev = this.looks.get(dir);
    const same = prev !== undefined && prev.mtimeNs === st.mtimeNs && prev.ctimeNs === st.ctimeNs && prev.ino === st.ino;
    if (same && prev.confirmed) return prev;
    let names: string[];
    try { names = await fsp.readdir(dir); } catch (err) { if (isGone(err) || unreadable(err)) return null; throw err; }
    const look: FolderLook = { mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino, confirmed: same, count: 0, first: null, sample: [], sorted: false };
    const keepAll = track && names.length <= TRACK_MAX;
    const all = keepAll ? new Set<string>() : undefined;
    const fresh: string[] = [];
    for (let i = 0; i < names.length; i++) {
      const n = names[i]!;
      if (kind === 'flat' ? !idFromName(n) : !parseDeferredName(n)) continue;
      look.count++;
      if (look.first === null || n < look.first) look.first = n;
      if (look.sample.length < SAMPLE_MAX) look.sample.push(n);
      // A folder first seen after the baseline holds only new records.
      if (all) { all.add(n); if (prev ? prev.all && !prev.all.has(n) : true) fresh.push(n); }
      // A million names: let requests in between.
      if (i % 10_000 === 9_999) await new Promise((r) => setImmediate(r));
    }
    look.all = all;
    this.looks.set(dir, look);
    if (finish && !this.first) {
      // Without both name sets (first look at this folder, or too big to keep), only growth is seen.
      const n = all && (!prev || prev.all) ? fresh.length : prev ? Math.max(0, look.count - prev.count) : look.count;
      this.finished(finish.queue, finish.outcome, n, fresh.map((f) => join(dir, f)));
    } else if (finish) {
      this.finishedTotals[finish.queue] ??= { done: 0, failed: 0 };
    }
    return look;
  }

  private finished(queue: string, outcome: 'done' | 'failed', n: number, paths: string[]): void {
    const t = (this.finishedTotals[queue] ??= { done: 0, failed: 0 });
    t[outcome] += n;
    for (let i = 0; i < n; i++) {
      let runSeconds: number | null = null;
      if (i < paths.length && this.observed < OBSERVE_MAX) { this.observed++; runSeconds = runSecondsOf(paths[i]!); }
      for (const fn of this.listeners) fn({ queue, outcome, runSeconds });
    }
  }

  /** The jobs in claimed/: read (they are few), with their worker and latest progress. */
  private running(workers: WorkerView[], serverNow: number): { items: RunningView[]; total: number; deadLeases: string[] } {
    const l = this.spool.layout;
    const byId = new Map(workers.map((w) => [w.id, w]));
    const items: RunningView[] = [];
    const deadLeases: string[] = [];
    let total = 0;
    const visit = (dir: string, lease: string, depth: number) => {
      for (const e of listEntries(dir)) {
        const c = parseClaimedName(e.name);
        if (c && e.kind === 'file') {
          total++;
          if (items.length < RUNNING_MAX) items.push(this.runningJob(join(dir, e.name), c.id, lease, byId.get(lease), serverNow));
          continue;
        }
        const inner = deadLeaseOf(e.name);
        if (inner && e.kind === 'dir' && depth < 4) { deadLeases.push(inner); visit(join(dir, e.name), inner, depth + 1); }
      }
    };
    for (const e of listEntries(l.claimed)) if (e.kind === 'dir' && !e.name.startsWith('.')) visit(join(l.claimed, e.name), e.name, 0);
    items.sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? ''));
    return { items, total, deadLeases };
  }

  /**
   * A running job: its worker, the attempt it runs (the claimed file holds the attempts before it), since when
   * (the claim's rename set the file's ctime, stamped by the file server: compared with the server's now),
   * and its latest progress.
   */
  private runningJob(path: string, id: string, lease: string, w: WorkerView | undefined, serverNow: number): RunningView {
    const j = readLoose(path);
    let claimedAt: number | null = null;
    try { claimedAt = fs.lstatSync(path).ctimeMs; } catch { /* settled meanwhile */ }
    let progress: unknown = null;
    const p = readRegularFileSafe(join(this.spool.layout.progress, `${id}.json`), 64 * 1024);
    if (p) { try { progress = (JSON.parse(p) as { value?: unknown }).value ?? null; } catch { /* torn or odd: none */ } }
    return {
      id, queue: j && typeof j.queue === 'string' && QUEUE_NAME.test(j.queue) ? j.queue : null, fn: j ? text(j.fn) : null,
      worker: lease, workerName: w?.name ?? null, host: w?.host ?? null,
      attempt: j && typeof j.attempts === 'number' ? j.attempts + 1 : null,
      startedAt: claimedAt === null ? null : new Date(claimedAt).toISOString(),
      elapsedMs: claimedAt === null ? null : Math.max(0, Math.round(serverNow - claimedAt)), progress,
    };
  }

  /**
   * Takeovers: a lease seen expired that is gone at the next snapshot was taken over (recovery removes the
   * heartbeat once its jobs are settled), and so was a dead-lease folder seen inside another lease.
   */
  private countTakeovers(workers: WorkerView[], deadLeases: string[]): void {
    const present = new Set(workers.map((w) => w.id));
    for (const id of this.silentLeases) if (!present.has(id) && !this.deadSeen.has(id)) { this.deadSeen.add(id); if (!this.first) this.takeovers++; }
    for (const id of deadLeases) if (!this.deadSeen.has(id)) { this.deadSeen.add(id); if (!this.first) this.takeovers++; }
    this.silentLeases = new Set(workers.filter((w) => !w.alive).map((w) => w.id));
    if (this.deadSeen.size > 10_000) this.deadSeen.clear();
  }

  /** quarantine/: how many files, the newest reasons, and new names since the last snapshot (a counter). */
  private quarantine(): Snapshot['quarantine'] {
    let names: string[] = [];
    try { names = fs.readdirSync(this.spool.layout.quarantine).filter((n) => !n.endsWith('.reason') && !n.startsWith('.')); } catch { /* none */ }
    const now = new Set(names);
    if (this.quarantineNames && !this.first) for (const n of now) if (!this.quarantineNames.has(n)) this.quarantinedSeen++;
    this.quarantineNames = now;
    const recent = names.sort().slice(-50).reverse().map((name) => ({
      name: text(name)!, reason: text(readRegularFileSafe(join(this.spool.layout.quarantine, `${name}.reason`), 4096)?.trim() ?? null),
    }));
    return { count: names.length, recent };
  }

  /**
   * A page of one state's jobs (one queue or all), from the last snapshot's listings: done and failed
   * newest first, deferred by due time, the others oldest first. Only the page's files are read.
   */
  async jobs(q: { state: JobState; queue?: string; offset?: number; limit?: number }): Promise<JobPage> {
    const snap = this.last ?? (await this.refresh());
    const offset = Math.max(0, q.offset ?? 0);
    const limit = Math.min(Math.max(1, q.limit ?? 50), 200);
    const l = this.spool.layout;
    if (q.state === 'claimed') {
      const rs = snap.running.filter((r) => !q.queue || r.queue === q.queue);
      return {
        state: 'claimed', queue: q.queue ?? null, total: rs.length, offset, partial: rs.length < snap.totals.claimed,
        items: await Promise.all(rs.slice(offset, offset + limit).map(async (r) => ({ ...(await this.summaryAt(this.claimedPath(r), r.id, 'claimed', r.queue)), worker: r.worker }))),
      };
    }
    const queues = q.queue ? [q.queue] : listQueues(l[q.state]).queues;
    const folders: { dir: string; look: FolderLook; queue: string }[] = [];
    for (const queue of queues) {
      const qdir = join(l[q.state], queue);
      const dirs = q.state === 'deferred'
        ? listEntries(qdir).filter((b) => b.kind === 'dir' && BUCKET.test(b.name)).map((b) => join(qdir, b.name)).sort()
        : [qdir];
      for (const dir of dirs) {
        const look = this.looks.get(dir);
        if (!look) continue;
        // Sorted once per listing, when first paged (most listings are never paged: a snapshot lists every folder).
        if (!look.sorted) { look.sample.sort(); look.sorted = true; }
        folders.push({ dir, look, queue });
      }
    }
    const total = folders.reduce((n, f) => n + f.look.count, 0);
    const partial = folders.some((f) => f.look.sample.length < f.look.count);
    const newestFirst = q.state === 'done' || q.state === 'failed';
    // One folder's sample is sorted already (the common case: a queue chosen): only the page is sliced out.
    // Several (all queues; deferred buckets, which sort among themselves) are merged first.
    let names: { dir: string; name: string; queue: string }[];
    if (folders.length === 1) {
      const f = folders[0]!;
      const n = f.look.sample.length;
      const idx = Array.from({ length: Math.max(0, Math.min(limit, n - offset)) }, (_, i) => (newestFirst ? n - 1 - offset - i : offset + i));
      names = idx.map((i) => ({ dir: f.dir, name: f.look.sample[i]!, queue: f.queue }));
    } else {
      // Each sample is sorted: only its first (or last) offset+limit names can be on the page.
      const keep = offset + limit;
      const all = folders.flatMap((f) => (newestFirst ? f.look.sample.slice(-keep) : f.look.sample.slice(0, keep)).map((name) => ({ dir: f.dir, name, queue: f.queue })));
      all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      if (newestFirst) all.reverse();
      names = all.slice(offset, offset + limit);
    }
    // The page's files are read at once: on a cold cache (a big backlog) their disk waits overlap.
    const items = await Promise.all(names.map(async (n) => {
      const due = q.state === 'deferred' ? parseDeferredName(n.name) : null;
      const id = due ? due.id : idFromName(n.name)!;
      return { ...(await this.summaryAt(join(n.dir, n.name), id, q.state, n.queue)), due: due ? new Date(due.dueMs).toISOString() : null };
    }));
    return { state: q.state, queue: q.queue ?? null, total, offset, items, partial };
  }

  private claimedPath(r: RunningView): string {
    for (const loc of [join(this.spool.layout.claimed, r.worker)]) {
      try { for (const n of fs.readdirSync(loc)) if (parseClaimedName(n)?.id === r.id) return join(loc, n); } catch { /* settled meanwhile */ }
    }
    return join(this.spool.layout.claimed, r.worker, `?.${r.id}.json`);
  }

  private async summaryAt(path: string, id: string, state: JobState, queue: string | null): Promise<JobSummary> {
    let j: Record<string, unknown> | null = null;
    try { const r = await readRegularFile(path); if ('text' in r) j = looseObject(r.text); } catch { /* moved since the listing */ }
    const f = j && typeof j.failure === 'object' && j.failure !== null ? (j.failure as Record<string, unknown>) : null;
    return {
      id, state, queue, fn: j ? text(j.fn) : null, attempts: j && typeof j.attempts === 'number' ? j.attempts : null,
      created: j ? text(j.created) : null, finished: j ? text(j.finished) : null, due: null,
      message: f ? text(f.message) : null, reason: f ? text(f.reason) : null,
      ...(j && state === 'waiting' ? { waitsFor: text(waitsFor(j)) } : {}),
      ...(j ? {} : { corrupt: 'moved or unreadable since the listing' }),
    };
  }

  /** One job in full, as `zcq show` gives it: the record, its latest progress, the end of its output. */
  async job(id: string): Promise<{ record: JobRecord; progress: unknown; output: { bytes: number; tail: string; truncated: boolean } | null }> {
    const record = await this.spool.get(id);
    const progress = await this.spool.progress(record.id).catch(() => null);
    const out = this.spool.output(record.id);
    let output = null;
    if (out) {
      const fd = await fsp.open(out.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK).catch(() => null);
      if (fd) {
        try {
          const st = await fd.stat();
          if (st.isFile()) {
            const len = Math.min(st.size, OUTPUT_TAIL);
            const buf = Buffer.alloc(len);
            await fd.read(buf, 0, len, st.size - len);
            output = { bytes: st.size, tail: buf.toString('utf8'), truncated: st.size > len };
          }
        } finally { await fd.close(); }
      }
    }
    return { record, progress, output };
  }
}

/** Each quota's use, from its slot files (one listing per quota), not from job files. */
export function quotaUse(l: Layout): QuotaUse[] {
  return listQuotas(l).map((q) => ({ name: q.name, used: q.used, limit: q.limit }));
}

/** What a waiting job waits for, from its untrusted record: its dependencies, the composite it returned, or its group. */
function waitsFor(j: Record<string, unknown>): string | null {
  if (Array.isArray(j.after)) return `after ${j.after.filter((a) => typeof a === 'string').slice(0, 20).join(', ')}`;
  if (typeof j.awaits === 'string') return `the composite it returned (postprocess ${j.awaits})`;
  const p = j.postprocessOf as Record<string, unknown> | undefined;
  if (p && typeof p === 'object' && typeof p.size === 'number') return `the ${p.size} members of its group`;
  return null;
}

function round1(n: number): number { return Math.round(n * 10) / 10; }

function unreadable(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM';
}

/** A string field of an untrusted file, cut to TEXT_MAX; null when it is not a string. */
function text(v: unknown): string | null {
  return typeof v === 'string' ? (v.length > TEXT_MAX ? v.slice(0, TEXT_MAX) + '…' : v) : null;
}

function readRegularFileSafe(path: string, max: number): string | null {
  try { const r = readRegularFileSync(path, max); return 'text' in r ? r.text : null; } catch { return null; }
}

/** A job file as a loose object (any shape: fields are checked where used); null when unreadable. */
function readLoose(path: string): Record<string, unknown> | null {
  const t = readRegularFileSafe(path, MAX_JOB_BYTES);
  return t === null ? null : looseObject(t);
}

function looseObject(t: string): Record<string, unknown> | null {
  try { const o = JSON.parse(t) as unknown; return typeof o === 'object' && o !== null && !Array.isArray(o) ? (o as Record<string, unknown>) : null; } catch { return null; }
}

/** The run time of a finished record's last attempt, seconds; null when its history does not say. */
function runSecondsOf(path: string): number | null {
  const j = readLoose(path);
  const h = j && Array.isArray(j.history) ? (j.history[j.history.length - 1] as { start?: unknown; end?: unknown } | undefined) : undefined;
  if (!h || typeof h !== 'object' || typeof h.start !== 'string' || typeof h.end !== 'string') return null;
  const ms = Date.parse(h.end) - Date.parse(h.start);
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : null;
}
