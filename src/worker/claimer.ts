/**
 * The claimer: which pending job a worker takes next, and taking it (transitions/claim.ts).
 *
 * - It reads only the folders of the queues it serves (pending/QUEUE/): a worker serving queue X never
 *   opens, or even lists, a file of queue Y. Paused queues (paused/QUEUE) are skipped.
 * - Priorities are folders (pending/QUEUE/p0/ … p4/, the queue folder itself for 5, p6/ … p9/): a scan
 *   reads them in that order and its candidates keep it, so within a queue the highest priority is taken
 *   first whatever the backlog behind it. Candidates left from an earlier scan are dropped when a folder
 *   of a higher priority than the next candidate's has a job (looked at when a scan is due: each poll or
 *   freed slot; a folder seen empty costs nothing until a change event names a job in it or the shortest
 *   poll interval has passed, then one lstat, and a short read only when its change time moved), so a
 *   priority-0 job put behind a million priority-9 jobs is taken at the next poll.
 * - Claim cost does not grow with the backlog: a scan reads at most SCAN_WINDOW names per queue and claims
 *   many from them (a folder a mount lists without entry types is read whole, by names: scan.ts readNames). Explicit queues are served in the order given (the first that has work wins); with
 *   no list, every queue is served in turn, so one queue's backlog cannot starve another.
 * - Workers reading one folder take their own share of its names first (scan: a hash of the name among
 *   the worker leases in claimed/), so that they do not all try the same files, then help with the rest.
 * - File-change events name the file: a job arriving while the worker has nothing else to look at is
 *   claimed by that name, without reading the folder. Any other wake (the poll timer, a freed slot,
 *   promoted or recovered jobs) sets `scanDue`, so a lost or coalesced event only delays a job to the next poll.
 * - The queues served and the concurrency can change while it runs (live configuration, spool/config.ts):
 *   setQueues takes effect at the next claim.
 * - A job the worker put back because its function does not match the worker's `fn` filter
 *   (transitions/unclaim.ts) is remembered by name and skipped — not claimed, not opened, and not counted
 *   in a scan's window, so that jobs behind a thousand unwanted ones are still found — until the filter
 *   changes (forgetPutBack) or the file is not the one put back (its inode, size or mtime differ: checked
 *   with one lstat at most every PUT_BACK_RECHECK_MS per name).
 */
import * as fs from 'node:fs';
import { setMaxListeners } from 'node:events';
import { basename, join } from 'node:path';
import { WORKER_BOUNDS } from '../defaults.js';
import { isGone } from '../errors.js';
import { queueDir, type Layout } from '../spool/layout.js';
import type { Lease } from '../spool/lease.js';
import { MAX_JOB_BYTES, isRealDir, readRegularFileSync } from '../spool/fsops.js';
import { PRIORITY_FOLDERS, idFromName, parseClaimedName, priorityOfFolder } from '../spool/names.js';
import { isWorkerLeaseName } from '../spool/ids.js';
import { brokenAlone, dirLinksCountFolders, hasNoFolders, listQueues, pausedQueues } from '../spool/queues.js';
import { hasJobs, readNames } from '../spool/scan.js';
import { claimJob, type ClaimedJob } from '../spool/transitions/claim.js';
import { dueIn } from '../spool/transitions/promote.js';

const SCAN_WINDOW = 1000;
/**
 * How long a higher priority folder seen empty is taken as still empty without a look (an lstat), when no
 * change event said otherwise: the shortest poll interval, so that the bound "a job of a higher priority
 * put anywhere is taken at the next poll" holds for every poll a worker may be given.
 */
const HIGHER_RECHECK_MS = WORKER_BOUNDS.pollMs.min;
/**
 * Longest stretch of work without a turn of the event loop before the claim loop — and the worker's loop
 * (worker.ts) — let timers (the heartbeat) and I/O callbacks run.
 */
export const TURN_EVERY_MS = 20;
/** How often a remembered put-back name is looked at (lstat) to see whether it is still the same file. */
const PUT_BACK_RECHECK_MS = 60_000;
/** Names remembered at most; the oldest are forgotten first (and cost one more claim each). */
const PUT_BACK_MAX = 100_000;

/** A job put back: when its file was last looked at, its identity, and the quota it waits for (none: the fn filter refused it). */
interface PutBack { at: number; ident: string | null; quota?: string }

function putBackKey(queue: string, level: string, name: string): string {
  return level ? `${queue}/${level}/${name}` : `${queue}/${name}`;
}

/** How often a scan re-reads which workers share the spool (the lease folders in claimed/); each owns a share of every folder's names. */
const SIBLINGS_RECHECK_MS = 1000;
/** Lease folders counted at most: names planted in claimed/ can only make every share smaller (more races), never stop a claim. */
const SIBLINGS_MAX = 256;
/** A scan's candidates when workers share a folder: the oldest SHARE_CHUNKS × SHARE_CHUNK names of it. */
const SHARE_CHUNK = 128;
const SHARE_CHUNKS = 2;

interface Candidate { queue: string; name: string; /** '' (priority 5) or pN */ level: string }

/** The first `n` of `names` in a random order. */
function shuffleHead(names: string[], n: number): void {
  for (let i = Math.min(names.length, n) - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [names[i], names[j]] = [names[j]!, names[i]!];
  }
}

/** FNV-1a of a name: which worker's share a job name falls in (the same answer on every machine). */
function shareHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) { h ^= name.charCodeAt(i); h = Math.imul(h, 0x01000193); }
  return h >>> 0;
}

/** A priority folder's place in claim order: p0 is 0, the queue folder itself 5, p9 9. */
function rankOf(level: string): number { return level === '' ? 5 : Number(level[1]); }

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
  /** Ends every folder watch at stop: one listener per watched folder (queues × priority folders), so no cap. */
  private readonly watchAbort = (() => { const ac = new AbortController(); setMaxListeners(0, ac.signal); return ac; })();
  /** Names put back (queue/[level/]name), not to be claimed again while unchanged. */
  private readonly putBack = new Map<string, PutBack>();
  /** Per served queue, its priority folders that exist, in claim order ('' — the queue folder — always). */
  private levels = new Map<string, string[]>();
  /** Queues whose rate is used up for this window (holdQueues): skipped by scans and hints. */
  private held = new Set<string>();
  /**
   * Priority folders found empty by higherWaiting: their identity and change times then, and when
   * (performance.now) that was last confirmed by an lstat.
   */
  private readonly seenEmpty = new Map<string, { key: string; at: number }>();
  /**
   * higherWaiting found every served folder ranked before `higherEmptyRank` in seenEmpty, the oldest look
   * at one of them made at `higherEmptyAt`: until that look is HIGHER_RECHECK_MS old, a check for that rank
   * or a higher one answers at once, without a path or a map look-up per folder (it runs at each claim).
   * Reset whenever seenEmpty loses an entry or the folders served change.
   */
  private higherEmptyAt = -Infinity;
  private higherEmptyRank = -1;
  /** pending/'s link count told its sub-folders at the last refreshQueues (dirLinksCountFolders). */
  private linksCountFolders = false;
  /** A folder was made or removed in pending/ (a new queue, say) since the queues were read. */
  private queuesStale = false;
  /**
   * Names we claimed from a watched folder whose departure event has not come yet: that event is our own
   * claim, not news. Without this, a worker draining jobs that were there before it started (so it never
   * saw them arrive) took each one's departure for an arrival and tried a rename that failed with ENOENT:
   * one wasted rename a job (a round trip on NFS).
   */
  private readonly ownClaims = new Set<string>();
  /**
   * Per queue/level read by the last scan, the names of others' shares among its oldest SHARE_CHUNK
   * (orphans when seen again). Made anew at each scan, so folders no longer read are forgotten.
   */
  private oldestOthers = new Map<string, Set<string>>();
  /** The worker leases in claimed/ when last read (sorted, ours included), and when (performance.now). */
  private siblings: { at: number; names: string[] } = { at: -Infinity, names: [] };

  constructor(
    private readonly layout: Layout,
    private queues: readonly string[] | null,
    private concurrency: number,
    private readonly watch: boolean,
    private readonly wake: () => void,
  ) {}

  get activeQueues(): readonly string[] { return this.active; }
  get servedQueues(): readonly string[] | null { return this.queues; }

  /** Serve these queues from now on (null: all), in this order of preference. */
  setQueues(queues: readonly string[] | null): void {
    const next = queues && queues.length > 0 ? [...new Set(queues)] : null;
    if (JSON.stringify(next) === JSON.stringify(this.queues)) return;
    this.queues = next;
    this.refreshQueues();
    this.candidates = [];
    this.scanDue = true;
  }

  setConcurrency(n: number): void { this.concurrency = n; }

  /** Do not claim pending/QUEUE/[LEVEL/]NAME again while it is unchanged (called before the file is put back). */
  rememberPutBack(queue: string, name: string, level = '', quota?: string): void {
    const key = putBackKey(queue, level, name);
    this.putBack.delete(key);
    if (this.putBack.size >= PUT_BACK_MAX) this.putBack.delete(this.putBack.keys().next().value!);
    this.putBack.set(key, { at: performance.now(), ident: null, quota });
  }

  /**
   * `n` slots of `quota` (or starts of a rate, `rate:NAME`) may be free: that many of the jobs put back
   * for want of one, the first put back first, may be claimed again — not all of them, which would have
   * every worker claim and put back the whole waiting list at each freed slot.
   */
  quotaFreed(quota: string, n = 1): void {
    let freed = 0;
    for (const [k, e] of this.putBack) {
      if (freed >= n) break;
      if (e.quota === quota) { this.putBack.delete(k); freed++; }
    }
    if (freed > 0) { this.candidates = []; this.scanDue = true; this.forgetEmpty(); }
  }

  /** Take no job of these queues (their rate is used up for the window); null or empty: all may be taken again. */
  holdQueues(queues: ReadonlySet<string>): void {
    const had = this.held.size;
    this.held = new Set(queues);
    if (had > 0 && this.held.size < had) { this.candidates = []; this.scanDue = true; }
  }

  /** Quotas some put-back job waits for. */
  get quotasWaitedFor(): Set<string> {
    const s = new Set<string>();
    for (const e of this.putBack.values()) if (e.quota) s.add(e.quota);
    return s;
  }

  /** The file was put back (its identity now known), or could not be (forget it). */
  putBackDone(queue: string, name: string, ok: boolean, level = ''): void {
    const key = putBackKey(queue, level, name);
    const e = this.putBack.get(key);
    if (!e) return;
    if (!ok) { this.putBack.delete(key); return; }
    e.ident = identOf(join(queueDir(this.layout, 'pending', queue), level, name));
    if (e.ident === null) this.putBack.delete(key);
  }

  /** The filter changed: every job put back for it may be wanted now. */
  forgetPutBack(): void {
    if (this.putBack.size === 0) return;
    for (const [k, e] of this.putBack) if (!e.quota) this.putBack.delete(k);
    this.forgetEmpty();
    this.candidates = [];
    this.scanDue = true;
  }

  get putBackCount(): number { return this.putBack.size; }

  /** Whether pending/QUEUE/[LEVEL/]NAME is a job put back and unchanged since. */
  private isPutBack(queue: string, name: string, level = ''): boolean {
    if (this.putBack.size === 0) return false;
    const key = putBackKey(queue, level, name);
    const e = this.putBack.get(key);
    if (!e) return false;
    const now = performance.now();
    if (now - e.at < PUT_BACK_RECHECK_MS || e.ident === null) return true;
    const ident = identOf(join(queueDir(this.layout, 'pending', queue), level, name));
    if (ident === null || ident !== e.ident) { this.putBack.delete(key); return false; }
    e.at = now;
    return true;
  }

  /** Re-read which queues exist and which are paused (each poll); watch the new ones. */
  refreshQueues(): void {
    const paused = new Set(pausedQueues(this.layout));
    // A queue folder this user may not read (per-queue permissions: `chgrp team-a pending/Q; chmod 2770`)
    // is not served: it belongs to the members of its group.
    const listing = listQueues(this.layout.pending);
    const exist = listing.queues.filter((q) => canRead(queueDir(this.layout, 'pending', q)));
    this.linksCountFolders = dirLinksCountFolders(this.layout.pending, listing.folders);
    const queues = this.queues;
    const wanted = queues ? queues.filter((q) => exist.includes(q)) : exist;
    const active = wanted.filter((q) => !paused.has(q));
    if (active.join('\0') !== this.active.join('\0')) { this.active = active; this.candidates = []; this.scanDue = true; }
    this.refreshLevels();
    if (!this.watch) return;
    if (!this.watchers.has('')) this.watchDir('', '', this.layout.pending);
    const watched = new Set<string>();
    for (const q of active) {
      for (const level of this.levels.get(q) ?? ['']) {
        const key = level ? `${q}/${level}` : q;
        watched.add(key);
        if (!this.watchers.has(key)) this.watchDir(q, level, join(queueDir(this.layout, 'pending', q), level));
      }
    }
    for (const [key, ac] of this.watchers) if (key !== '' && !watched.has(key)) { ac.abort(); this.watchers.delete(key); }
  }

  /**
   * Which priority folders each served queue has: one lstat per possible folder, or, where link counts tell
   * sub-folders, one lstat of the queue folder when it has none (the common case: nine lookups of names
   * that are not there, a round trip each on a network mount, at every scan and poll of every worker).
   */
  private refreshLevels(): void {
    this.higherEmptyAt = -Infinity;
    const next = new Map<string, string[]>();
    for (const q of this.active) {
      const qdir = queueDir(this.layout, 'pending', q);
      if (this.linksCountFolders && hasNoFolders(qdir)) { next.set(q, ['']); continue; }
      next.set(q, PRIORITY_FOLDERS.filter((level) => level === '' || isRealDir(join(qdir, level))));
    }
    this.levels = next;
  }

  /**
   * Whether a served queue has a job in a priority folder ranked before `rank` (a scan would put it
   * ahead of the candidates left). Reads at most the first entries of each such folder.
   */
  private higherWaiting(rank: number): boolean {
    const now = performance.now();
    if (rank <= this.higherEmptyRank && now - this.higherEmptyAt < HIGHER_RECHECK_MS) return false;
    let oldest = now;
    for (const q of this.active) {
      const qdir = queueDir(this.layout, 'pending', q);
      for (const level of this.levels.get(q) ?? ['']) {
        if (rankOf(level) >= rank) break;
        const dir = join(qdir, level);
        // This check runs at each freed slot and most higher folders stay empty. A folder seen empty is
        // taken as still empty for HIGHER_RECHECK_MS after its last look, unless a change event named a job
        // in it (watchDir forgets it then); after that, one lstat, and it is read again only once its change
        // time moved. A job put on another machine (no event here) is thus seen within the shortest poll.
        const seen = this.seenEmpty.get(dir);
        if (seen !== undefined && now - seen.at < HIGHER_RECHECK_MS) { oldest = Math.min(oldest, seen.at); continue; }
        let key: string;
        try { const st = fs.lstatSync(dir); key = `${st.ino}:${st.mtimeMs}:${st.ctimeMs}:${st.size}`; } catch { oldest = -Infinity; continue; }
        if (seen !== undefined && seen.key === key) { seen.at = now; continue; }
        const has = this.putBack.size === 0 ? hasJobs(dir) : readWindow(dir, (name) => this.isPutBack(q, name, level), 1).length > 0;
        if (has) { this.forgetEmpty(dir); return true; }
        if (this.seenEmpty.size > 10_000) this.forgetEmpty();
        this.seenEmpty.set(dir, { key, at: now });
      }
    }
    this.higherEmptyAt = oldest;
    this.higherEmptyRank = rank;
    return false;
  }

  /** Forget that `dir` (or every folder) was seen empty. */
  private forgetEmpty(dir?: string): void {
    if (dir === undefined) this.seenEmpty.clear(); else this.seenEmpty.delete(dir);
    this.higherEmptyAt = -Infinity;
  }

  stop(): void {
    this.watchAbort.abort();
    for (const ac of this.watchers.values()) ac.abort();
    this.watchers.clear();
  }

  private watchDir(queue: string, level: string, dir: string): void {
    const key = queue === '' ? '' : level ? `${queue}/${level}` : queue;
    const ac = new AbortController();
    // The listener goes with this watcher (signal: ac.signal): a queue paused and resumed, or a folder
    // removed and made again, gets a new watcher each time, and the worker-long signal must not keep them all.
    this.watchAbort.signal.addEventListener('abort', () => ac.abort(), { once: true, signal: ac.signal });
    this.watchers.set(key, ac);
    const self = inodeOf(dir);
    // A name's events come in pairs: it arrives (renamed or created in), then leaves (claimed, by us or
    // a sibling). Only the first of a pair is news; the second would cost a claim attempt that fails.
    const odd = new Set<string>();
    const ended = () => {
      if (this.watchers.get(key) === ac) this.watchers.delete(key);
      ac.abort(); // a watch that ended by itself (its folder went) takes its listener off the worker-long signal
    };
    // fs.watch's listener, not fs/promises' iterator: a drain brings one event a job (our own claim leaving
    // the folder), and the iterator paid several promises for each.
    let watcher: fs.FSWatcher | undefined;
    const end = () => { watcher?.close(); ended(); };
    const onEvent = (eventType: string, name: string | null) => {
      // The watched folder itself went (inotify names it: IN_DELETE_SELF, IN_MOVE_SELF): its watch would
      // stay on the dead folder and miss every job put into one made again at the same path. End it; the
      // next refreshQueues watches whatever folder is there then.
      if (name === basename(dir) && inodeOf(dir) !== self) {
        end();
        this.queuesStale = true; this.scanDue = true; this.wake();
        return;
      }
      if (queue === '' || eventType !== 'rename' || !name || idFromName(name) === null) {
        // pending/ itself: a new queue folder or a loose file; or an event without a usable name
        // (in a queue folder: perhaps a priority folder made or removed).
        this.scanDue = true;
        // A priority folder made or removed: refreshQueues re-reads the levels and watches a new one at
        // once (jobs renamed into an unwatched folder would wait for the next poll).
        if (queue !== '' && level === '' && name && priorityOfFolder(name) !== null) this.queuesStale = true;
        // A queue folder made by a put: serve it now rather than at the next poll.
        if (queue === '' && (!name || idFromName(name) === null)) this.queuesStale = true;
      } else {
        if (this.ownClaims.delete(name)) { odd.delete(name); return; }
        // Not our own claim: this folder may hold a job now, whatever higherWaiting last found.
        this.forgetEmpty(dir);
        // A job of a higher priority than the queue folder's: look before taking the next candidate.
        if (level !== '' && rankOf(level) < 5) this.scanDue = true;
        if (odd.delete(name)) return;
        if (odd.size >= 10 * SCAN_WINDOW) { odd.clear(); this.scanDue = true; }
        odd.add(name);
        if (this.hints.length >= SCAN_WINDOW) { this.hints.length = 0; this.scanDue = true; } else this.hints.push({ queue, name, level });
      }
      this.wake();
    };
    try {
      watcher = fs.watch(dir, { signal: ac.signal }, (eventType, name) => {
        try { onEvent(eventType, name); } catch { end(); } // an event we cannot use ends the watch, never the worker
      });
    } catch {
      ended(); // no change events here (NFS, FUSE) or the folder went: polling covers it
      return;
    }
    watcher.on('error', end); // the folder went, or the watch failed: polling covers it
  }

  /**
   * Claim up to `want` jobs, rescanning when the candidates run out. `seen` counts names tried, so the
   * loop can tell "nothing pending" from "others won every race".
   */
  async claimSome(lease: Lease, want: number, stopping: () => boolean, onClaim: (c: ClaimedJob) => void): Promise<{ claimed: number; seen: number }> {
    let claimed = 0;
    let seen = 0;
    let rescanned = false;
    let yieldAt = performance.now() + TURN_EVERY_MS;
    while (claimed < want && !stopping() && !lease.isLost) {
      // Claims are synchronous renames, one file-server round trip each. On a network mount a run of lost
      // races (a stale listing) would hold the event loop for seconds and starve the heartbeat.
      if (performance.now() >= yieldAt) {
        await new Promise<void>((res) => setImmediate(res));
        yieldAt = performance.now() + TURN_EVERY_MS;
      }
      if (this.queuesStale) { this.queuesStale = false; this.refreshQueues(); }
      // A scan is due and candidates are left: a job of a higher priority than the next one's may have come.
      if (this.scanDue && !rescanned && this.candidates.length > 0 && this.higherWaiting(rankOf(this.candidates[this.candidates.length - 1]!.level))) this.candidates = [];
      if (this.candidates.length === 0) {
        if (!this.scanDue && this.hints.length > 0) {
          const active = new Set(this.active);
          // Hints of a higher priority first (a stable sort keeps their arrival order within one).
          this.candidates = this.hints.filter((h) => active.has(h.queue) && !this.isPutBack(h.queue, h.name, h.level))
            .sort((a, b) => rankOf(a.level) - rankOf(b.level)).reverse();
          this.hints.length = 0;
          continue;
        }
        if (rescanned || !this.scanDue) break;
        // The scan sees every file the hints name: drop them rather than try each twice.
        this.hints.length = 0;
        this.scanDue = false;
        if (this.scan(lease.id)) this.scanDue = true;
        rescanned = true;
        if (this.candidates.length === 0) break;
      }
      const c = this.candidates.pop()!;
      if (this.held.has(c.queue)) continue;
      seen++;
      const got = claimJob(lease, c.queue, c.name, c.level);
      if (!got) continue;
      // Remembered only while the folder is watched (its events clear the entries); bounded all the same.
      if (this.watchers.has(c.level ? `${c.queue}/${c.level}` : c.queue)) {
        if (this.ownClaims.size >= 10 * SCAN_WINDOW) this.ownClaims.clear();
        this.ownClaims.add(c.name);
      }
      claimed++;
      onClaim(got);
    }
    return { claimed, seen };
  }

  /**
   * Read up to SCAN_WINDOW names per active queue, its priority folders in order (the window is shared:
   * a full p0/ leaves no room for p9/); true when a window filled (more behind it).
   *
   * Workers reading one folder would each try every name they listed, so with N workers a claim cost N-1
   * lost races (a failed rename and a look: two round trips on a network mount). Instead each worker owns
   * a share of the names — those whose hash modulo the number of worker leases in claimed/ is its rank
   * among them — and takes its share of the oldest names first, oldest first, racing nobody. A name of
   * another share still among the oldest at its next scan is taken too: a busy or dead worker's jobs
   * still run, a scan or two late (put order is kept to within a few SHARE_CHUNKs), and a higher
   * priority folder still comes first.
   */
  private scan(leaseId: string): boolean {
    this.refreshLevels();
    const share = this.shareOf(leaseId);
    const oldestOthers = new Map<string, Set<string>>();
    const perQueue: Candidate[][] = [];
    let full = false;
    for (const queue of this.active) {
      const list: Candidate[] = [];
      const qdir = queueDir(this.layout, 'pending', queue);
      for (const level of this.levels.get(queue) ?? ['']) {
        const room = SCAN_WINDOW - list.length;
        if (room <= 0) { full = true; break; }
        const names = readWindow(join(qdir, level), (name) => this.isPutBack(queue, name, level), room);
        if (names.length >= room) full = true;
        names.sort();
        if (share.of <= 1) {
          // Alone (as far as claimed/ says): the oldest few in a random order all the same, for a worker
          // that started since claimed/ was read.
          shuffleHead(names, Math.max(64, this.concurrency * 16));
          for (const name of names) list.push({ queue, name, level });
          continue;
        }
        // Our share of the oldest names, oldest first, and before it the names of others' shares that were
        // among the oldest at our last scan too (orphans: their worker is busy, dead, or serves other
        // queues; in a random order, as their owner may still be taking them oldest first). Only the
        // oldest SHARE_CHUNKS × SHARE_CHUNK names are candidates, so an orphan waits a scan or two, and
        // nothing of a lower priority is listed while this folder has more. With no name of ours among
        // them, the others' are taken at once: waiting would leave this worker idle until its next poll.
        const key = `${queue}/${level}`;
        const before = this.oldestOthers.get(key);
        const oldest = new Set<string>();
        const chunks: { mine: string[]; others: string[] }[] = [];
        let ours = 0;
        for (let c = 0; c < Math.min(names.length, SHARE_CHUNKS * SHARE_CHUNK); c += SHARE_CHUNK) {
          const chunk = { mine: [] as string[], others: [] as string[] };
          for (const name of names.slice(c, c + SHARE_CHUNK)) {
            if (shareHash(name) % share.of === share.rank) chunk.mine.push(name);
            else { chunk.others.push(name); if (c === 0) oldest.add(name); }
          }
          ours += chunk.mine.length;
          chunks.push(chunk);
        }
        for (const { mine, others } of chunks) {
          const orphans = ours === 0 ? others : others.filter((name) => before?.has(name));
          shuffleHead(orphans, orphans.length);
          for (const name of orphans) list.push({ queue, name, level });
          for (const name of mine) list.push({ queue, name, level });
        }
        oldestOthers.set(key, oldest);
        if (names.length > SHARE_CHUNKS * SHARE_CHUNK) { full = true; break; }
      }
      perQueue.push(list);
      // Explicit queues are a preference order: a queue with work hides the ones after it this round.
      if (this.queues && list.length > 0) break;
    }
    // No list: every queue in turn, so one queue's backlog does not starve another.
    const order: Candidate[] = [];
    for (let i = 0; perQueue.some((l) => i < l.length); i++) for (const l of perQueue) if (i < l.length) order.push(l[i]!);
    this.candidates = order.reverse(); // pop() from the end: no O(n) shift per claim
    this.oldestOthers = oldestOthers;
    return full;
  }

  /**
   * Our share of the names: `rank` among `of` worker leases in claimed/ (re-read at most every
   * SIBLINGS_RECHECK_MS). A stale count only makes shares overlap (more races) or leave gaps (orphans,
   * taken a scan later); it never hides a job.
   */
  private shareOf(leaseId: string): { of: number; rank: number } {
    const now = performance.now();
    if (now - this.siblings.at >= SIBLINGS_RECHECK_MS) {
      let names: string[] = [];
      try { names = readNames(this.layout.claimed, isWorkerLeaseName, SIBLINGS_MAX); } catch { /* unreadable: no shares */ }
      this.siblings = { at: now, names: names.sort() };
    }
    const names = this.siblings.names.includes(leaseId) ? this.siblings.names : [...this.siblings.names, leaseId].sort();
    return { of: names.length, rank: names.indexOf(leaseId) };
  }

  /** Nothing pending or due in the served queues, and no job of theirs held by another lease. */
  idle(lease: Lease, serverNowMs: number): boolean {
    for (const q of this.active) {
      const qdir = queueDir(this.layout, 'pending', q);
      for (const level of PRIORITY_FOLDERS) {
        const dir = join(qdir, level);
        if (this.putBack.size === 0 ? hasJobs(dir) : readWindow(dir, (name) => this.isPutBack(q, name, level), 1).length > 0) return false;
      }
    }
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


/** Whether this user may list `dir`; a folder broken alone (EIO while pending/ lists) is noted for the worker's report. */
function canRead(dir: string): boolean {
  try { fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK); return true; } catch (err) { brokenAlone(dir, err); return false; }
}

/** Up to `max` job names of a folder, in directory order, leaving out those `skip` says (not counted). */
function readWindow(dir: string, skip?: (name: string) => boolean, max = SCAN_WINDOW): string[] {
  try {
    // Only job names count toward the window: a co-user's thousand odd names must not hide the jobs.
    return readNames(dir, (name) => idFromName(name) !== null && !skip?.(name), max);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // EACCES/EPERM: the folder's permissions changed since refreshQueues: skip it this round. EIO while
    // pending/ answers: this folder alone is broken (brokenAlone), and the worker reports it once.
    if (isGone(err) || code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM' || brokenAlone(dir, err)) return [];
    throw err;
  }
}

/** dev:ino:size:mtime of a name (lstat), or null when it is gone. */
function identOf(path: string): string | null {
  try { const st = fs.lstatSync(path); return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`; } catch { return null; }
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

/** dev:ino of the folder at `dir` now (following nothing), null when there is none. */
function inodeOf(dir: string): string | null {
  try { const st = fs.lstatSync(dir); return st.isDirectory() ? `${st.dev}:${st.ino}` : null; } catch { return null; }
}
