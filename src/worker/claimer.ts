/**
 * The claimer: which pending job a worker takes next, and taking it (transitions/claim.ts).
 *
 * - It reads only the folders of the queues it serves (pending/QUEUE/): a worker serving queue X never
 *   opens, or even lists, a file of queue Y. Paused queues (paused/QUEUE) are skipped.
 * - Claim cost does not grow with the backlog: a scan reads at most SCAN_WINDOW names per queue and claims
 *   many from them. Explicit queues are served in the order given (the first that has work wins); with
 *   no list, every queue is served in turn, so one queue's backlog cannot starve another.
 * - File-change events name the file: a job arriving while the worker has nothing else to look at is
 *   claimed by that name, without reading the folder. Any other wake (the poll timer, a freed slot,
 *   promoted or recovered jobs) sets `scanDue`, so a lost or coalesced event only delays a job to the next poll.
 */
import { watch as fsWatch } from 'node:fs/promises';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { isGone } from '../errors.js';
import { queueDir, type Layout } from '../spool/layout.js';
import type { Lease } from '../spool/lease.js';
import { MAX_JOB_BYTES, readRegularFileSync } from '../spool/fsops.js';
import { idFromName, parseClaimedName } from '../spool/names.js';
import { listQueues, pausedQueues } from '../spool/queues.js';
import { hasJobs } from '../spool/scan.js';
import { claimJob, type ClaimedJob } from '../spool/transitions/claim.js';
import { dueIn } from '../spool/transitions/promote.js';

const SCAN_WINDOW = 1000;
/** Longest stretch of synchronous claim attempts before the claim loop lets timers (the heartbeat) run. */
const CLAIM_YIELD_MS = 20;

interface Candidate { queue: string; name: string }

export class Claimer {
  /** Names read by the last scan and not yet tried, the next one last (popped). */
  private candidates: Candidate[] = [];
  /** Names that appeared in a served queue folder since the last scan, from change events. */
  private hints: Candidate[] = [];
  /** The queue folders may hold jobs that neither list names: read them before sleeping. */
  scanDue = true;
  /** Queues served now: the configured ones (or all that exist), less the paused ones. */
  private active: string[] = [];
  private readonly watchers = new Map<string, AbortController>();
  private readonly watchAbort = new AbortController();

  constructor(
    private readonly layout: Layout,
    private readonly queues: readonly string[] | null,
    private readonly concurrency: number,
    private readonly watch: boolean,
    private readonly wake: () => void,
  ) {}

  get activeQueues(): readonly string[] { return this.active; }

  /** Re-read which queues exist and which are paused (each poll); watch the new ones. */
  refreshQueues(): void {
    const paused = new Set(pausedQueues(this.layout));
    const exist = listQueues(this.layout.pending).queues;
    const wanted = this.queues ? this.queues.filter((q) => exist.includes(q)) : exist;
    const active = wanted.filter((q) => !paused.has(q));
    if (active.join('\0') !== this.active.join('\0')) { this.active = active; this.candidates = []; this.scanDue = true; }
    if (!this.watch) return;
    if (!this.watchers.has('')) this.watchDir('', this.layout.pending);
    for (const q of active) if (!this.watchers.has(q)) this.watchDir(q, queueDir(this.layout, 'pending', q));
    for (const [q, ac] of this.watchers) if (q !== '' && !active.includes(q)) { ac.abort(); this.watchers.delete(q); }
  }

  stop(): void {
    this.watchAbort.abort();
    for (const ac of this.watchers.values()) ac.abort();
    this.watchers.clear();
  }

  private watchDir(queue: string, dir: string): void {
    const ac = new AbortController();
    // The listener goes with this watcher (signal: ac.signal): a queue paused and resumed, or a folder
    // removed and made again, gets a new watcher each time, and the worker-long signal must not keep them all.
    this.watchAbort.signal.addEventListener('abort', () => ac.abort(), { once: true, signal: ac.signal });
    this.watchers.set(queue, ac);
    void (async () => {
      try {
        // A name's events come in pairs: it arrives (renamed or created in), then leaves (claimed, by us or
        // a sibling). Only the first of a pair is news; the second would cost a claim attempt that fails.
        const odd = new Set<string>();
        for await (const ev of fsWatch(dir, { signal: ac.signal })) {
          const name = ev.filename;
          if (queue === '' || ev.eventType !== 'rename' || !name || idFromName(name) === null) {
            // pending/ itself: a new queue folder or a loose file; or an event without a usable name.
            this.scanDue = true;
          } else {
            if (odd.delete(name)) continue;
            if (odd.size >= 10 * SCAN_WINDOW) { odd.clear(); this.scanDue = true; }
            odd.add(name);
            if (this.hints.length >= SCAN_WINDOW) { this.hints.length = 0; this.scanDue = true; } else this.hints.push({ queue, name });
          }
          this.wake();
        }
      } catch { /* no change events here (NFS, FUSE) or the folder went: polling covers it */ }
      if (this.watchers.get(queue) === ac) this.watchers.delete(queue);
    })();
  }

  /**
   * Claim up to `want` jobs, rescanning when the candidates run out. `seen` counts names tried, so the
   * loop can tell "nothing pending" from "others won every race".
   */
  async claimSome(lease: Lease, want: number, stopping: () => boolean, onClaim: (c: ClaimedJob) => void): Promise<{ claimed: number; seen: number }> {
    let claimed = 0;
    let seen = 0;
    let rescanned = false;
    let yieldAt = performance.now() + CLAIM_YIELD_MS;
    while (claimed < want && !stopping() && !lease.isLost) {
      // Claims are synchronous renames, one file-server round trip each. On a network mount a run of lost
      // races (a stale listing) would hold the event loop for seconds and starve the heartbeat.
      if (performance.now() >= yieldAt) {
        await new Promise<void>((res) => setImmediate(res));
        yieldAt = performance.now() + CLAIM_YIELD_MS;
      }
      if (this.candidates.length === 0) {
        if (!this.scanDue && this.hints.length > 0) {
          const active = new Set(this.active);
          this.candidates = this.hints.filter((h) => active.has(h.queue)).reverse();
          this.hints.length = 0;
          continue;
        }
        if (rescanned || !this.scanDue) break;
        // The scan sees every file the hints name: drop them rather than try each twice.
        this.hints.length = 0;
        this.scanDue = false;
        if (this.scan()) this.scanDue = true;
        rescanned = true;
        if (this.candidates.length === 0) break;
      }
      const c = this.candidates.pop()!;
      seen++;
      const got = claimJob(lease, c.queue, c.name);
      if (!got) continue;
      claimed++;
      onClaim(got);
    }
    return { claimed, seen };
  }

  /** Read up to SCAN_WINDOW names per active queue; true when a window filled (more behind it). */
  private scan(): boolean {
    const perQueue: Candidate[][] = [];
    let full = false;
    for (const queue of this.active) {
      const names = readWindow(queueDir(this.layout, 'pending', queue));
      if (names.length >= SCAN_WINDOW) full = true;
      names.sort();
      // Every claimer wants the oldest names, so N workers reading one folder collide on the same few files.
      // Take the oldest few in a random order instead: order stays roughly FIFO and racing workers rarely meet.
      const head = Math.min(names.length, Math.max(64, this.concurrency * 16));
      for (let i = head - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [names[i], names[j]] = [names[j]!, names[i]!];
      }
      perQueue.push(names.map((name) => ({ queue, name })));
      // Explicit queues are a preference order: a queue with work hides the ones after it this round.
      if (this.queues && names.length > 0) break;
    }
    // No list: every queue in turn, so one queue's backlog does not starve another.
    const order: Candidate[] = [];
    for (let i = 0; perQueue.some((l) => i < l.length); i++) for (const l of perQueue) if (i < l.length) order.push(l[i]!);
    this.candidates = order.reverse(); // pop() from the end: no O(n) shift per claim
    return full;
  }

  /** Nothing pending or due in the served queues, and no job of theirs held by another lease. */
  idle(lease: Lease, serverNowMs: number): boolean {
    for (const q of this.active) if (hasJobs(queueDir(this.layout, 'pending', q))) return false;
    if (listQueues(this.layout.pending).odd.some((e) => idFromName(e.name) !== null)) return false; // loose jobs, adopted next pass
    const deferred = listQueues(this.layout.deferred).queues.filter((q) => !this.queues || this.queues.includes(q));
    for (const q of deferred) if (dueIn(this.layout, q, serverNowMs, 1).due.length > 0) return false;
    for (const w of safeNames(this.layout.claimed)) {
      if (w === lease.id || w.startsWith('.')) continue;
      for (const name of safeNames(join(this.layout.claimed, w))) {
        if (!this.queues) return false;
        if (parseClaimedName(name) === null) return false; // a dead recoverer's folder: settle first
        if (this.queues.includes(queueOfClaimed(join(this.layout.claimed, w, name)))) return false;
      }
    }
    return true;
  }
}

function readWindow(dir: string): string[] {
  const names: string[] = [];
  let d: fs.Dir;
  try { d = fs.opendirSync(dir, { bufferSize: 256 }); } catch (err) { if (isGone(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return names; throw err; }
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) {
      if (e.name.startsWith('.')) continue;
      names.push(e.name);
      if (names.length >= SCAN_WINDOW) break;
    }
  } catch (err) {
    if (!isGone(err)) throw err;
  } finally {
    d.closeSync();
  }
  return names;
}

function safeNames(dir: string): string[] {
  try { return fs.readdirSync(dir); } catch { return []; }
}

/** The queue a claimed file records ('default' when unreadable): for idleness only. */
function queueOfClaimed(path: string): string {
  try {
    const r = readRegularFileSync(path, MAX_JOB_BYTES);
    if ('text' in r) { const q = (JSON.parse(r.text) as { queue?: unknown }).queue; if (typeof q === 'string') return q; }
  } catch { /* gone or torn */ }
  return 'default';
}
