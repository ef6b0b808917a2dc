// The model: where each job may be, from what the driver did and what each operation reported, and the checks
// run at each settle (the spool against the model) and over the ledger (no job ran twice at once).
//
// A job's "life" starts at its put, and again each time a finished record is sent back to pending/ (zcq retry,
// or mv done|failed -> pending). Within a life the job's outcome is decided by its own args: attempt a throws
// while a <= failUntil, and a failed attempt is retried while attempts <= retries. So without interruptions a
// life ends done iff failUntil <= retries, else failed (reason "error"). What may widen that, and only that:
//   - an interruption (its worker was SIGKILLed while holding it, or a worker logged its lease lost and a
//     recoverer settled the job): an interrupted attempt counts, so failUntil > retries may also end done;
//     with onInterrupt "fail" it may end failed ("worker lost");
//   - an outstanding cancel request (zcq cancel answered "requested"): failed ("cancelled").
// Modes: 'flow' (pending, deferred or running: it settles to done/failed), 'hold' (stays in hold/ until we
// move it), 'final' (seen in done/ or failed/: nothing but our own operations moves it).
import type { KillRecord, LedgerRun, Place, SpoolScan, WorkerProc } from './rig.js';
import { pidOfLease, readRecord, type WallSteps } from './rig.js';

export type Outcome = 'done' | 'failed:error' | 'failed:cancelled' | 'failed:worker lost';
export type Mode = 'flow' | 'hold' | 'final';

export interface JobSpec { queue: string; retries: number; failUntil: number; ms: number; abortable: boolean; onInterrupt: 'retry' | 'fail'; deferred: boolean; inMs: number }

export class MJob {
  mode: Mode = 'flow';
  life = 1;
  interrupted = false;
  cancelAsked = false;
  /** When final: the outcome seen (state only when seen through an operation's answer: 'done' | 'failed'). */
  seen?: Outcome | 'failed';
  /** The record checked at a settle while final, and untouched since (the driver clears it on every operation). */
  verified?: string;
  constructor(readonly id: string, readonly spec: JobSpec, readonly via: string) {}

  legal(): Set<Outcome> {
    const s = new Set<Outcome>();
    const { failUntil, retries, onInterrupt } = this.spec;
    s.add(failUntil <= retries ? 'done' : 'failed:error');
    if (this.interrupted) {
      if (failUntil > retries) s.add('done');
      if (onInterrupt === 'fail') s.add('failed:worker lost');
    }
    if (this.cancelAsked) s.add('failed:cancelled');
    return s;
  }

  describe(): string {
    const { queue, retries, failUntil, onInterrupt, deferred } = this.spec;
    return `${this.id} [${this.via}, queue ${queue}, failUntil ${failUntil}, retries ${retries}, onInterrupt ${onInterrupt}${deferred ? ', put deferred' : ''}; life ${this.life}, mode ${this.mode}${this.seen ? ` (${this.seen})` : ''}${this.interrupted ? ', interrupted' : ''}${this.cancelAsked ? ', cancel requested' : ''}; legal ${[...this.legal()].join('|')}]`;
  }
}

export class Model {
  readonly jobs = new Map<string, MJob>();
  readonly violations: string[] = [];
  /** Counters for the summary. */
  readonly notes: Record<string, number> = {};
  /** Where the driver is (batch, op): prefixed to every violation. */
  where = '';

  private readonly reported = new Set<string>();
  violate(msg: string): void {
    if (this.reported.has(msg)) return; // the ledger is checked again at every settle
    this.reported.add(msg);
    this.violations.push(`${this.where}: ${msg}`);
  }
  note(k: string, n = 1): void { this.notes[k] = (this.notes[k] ?? 0) + n; }

  add(j: MJob): void {
    if (this.jobs.has(j.id)) this.violate(`put returned an id already used: ${j.id}`);
    this.jobs.set(j.id, j);
  }

  get(id: string): MJob {
    const j = this.jobs.get(id);
    if (!j) throw new Error(`model: unknown job ${id}`);
    return j;
  }

  /** An operation's answer says the job was finished (done/failed, reason maybe known): it must be legal. */
  sawFinished(j: MJob, state: 'done' | 'failed', reason: string | undefined, how: string): void {
    const outcome = (state === 'done' ? 'done' : reason ? `failed:${reason}` : 'failed') as Outcome | 'failed';
    if (j.mode === 'hold') { this.violate(`${how}: ${j.id} was held, yet was found ${outcome}: ${j.describe()}`); return; }
    if (j.mode === 'final') {
      const same = j.seen === outcome || (j.seen === 'failed' && outcome.startsWith('failed')) || (outcome === 'failed' && j.seen?.startsWith('failed'));
      if (!same) this.violate(`${how}: ${j.id} was seen ${j.seen}, now found ${outcome} though nothing of ours moved it`);
      if (outcome !== 'failed') j.seen = outcome;
      return;
    }
    const legal = j.legal();
    const ok = outcome === 'failed' ? [...legal].some((o) => o.startsWith('failed')) : legal.has(outcome);
    if (!ok) this.violate(`${how}: ${j.id} ended ${outcome}, not one of ${[...legal].join('|')}: ${j.describe()}`);
    j.mode = 'final';
    j.seen = outcome;
  }

  /** A finished record went back to pending/: a new life. */
  newLife(j: MJob): void {
    j.mode = 'flow';
    j.life++;
    j.interrupted = false;
    j.cancelAsked = false; // a retry starts clean: requests of the life before were dropped when it ended
    j.seen = undefined;
  }

  /** An operation's answer says the job is in an unfinished state now (pending, deferred, claimed, hold). */
  sawUnfinished(j: MJob, state: string, how: string): void {
    if (j.mode === 'final') this.violate(`${how}: ${j.id} was seen ${j.seen} (final), now reported ${state}`);
    else if (j.mode === 'hold' && state !== 'hold') this.violate(`${how}: ${j.id} is held, yet reported ${state}`);
    else if (j.mode === 'flow' && state === 'hold') this.violate(`${how}: ${j.id} was never held, yet reported in hold/`);
  }

  // ---- the settle check ----

  /** The quiet spool against the model; every job leaves it in mode hold or final. */
  checkSettled(scan: SpoolScan, runs: Map<string, LedgerRun>): void {
    if (scan.quarantine.length > 0) this.violate(`quarantine/ is not empty: ${scan.quarantine.slice(0, 10).join(', ')}`);
    if (scan.strays.length > 0) this.violate(`entries that are not jobs or folders of the layout: ${scan.strays.slice(0, 10).join(', ')}`);
    for (const [id, places] of scan.places) {
      if (!this.jobs.has(id)) this.violate(`a job nobody put: ${id} at ${places.map((p) => p.path).join(', ')}`);
    }
    for (const j of this.jobs.values()) {
      const places = scan.places.get(j.id) ?? [];
      if (places.length === 0) { this.violate(`job in no place: ${j.describe()}`); continue; }
      if (places.length > 1) { this.violate(`job in ${places.length} places (${places.map((p) => p.path).join(', ')}): ${j.describe()}`); continue; }
      const p = places[0]!;
      this.checkPlace(j, p, runs);
    }
    // A cancel request is answered (removed) when the job it asks about ends, read or not: one left for a
    // finished job would cancel its next life, a retry that promises a fresh start. A held job's request
    // still stands (its life goes on).
    for (const j of this.jobs.values()) {
      if (j.mode === 'final' && scan.cancels.has(j.id)) this.violate(`a cancel request is left in cancel/ for ${j.id}, which ended ${j.seen}: it would cancel a retry`);
      if (!scan.cancels.has(j.id)) j.cancelAsked = false;
    }
  }

  /** Pids the driver killed and leases their workers logged lost, for judging `interrupted` history entries. */
  killedPids = new Set<number>();
  lostLeases = new Set<string>();

  private checkPlace(j: MJob, p: Place, runs: Map<string, LedgerRun>): void {
    if (p.state === 'pending' || p.state === 'deferred' || p.state === 'claimed') {
      this.violate(`job still ${p.state} after the settle: ${p.path}: ${j.describe()}`);
      return;
    }
    if (p.queue !== j.spec.queue) { this.violate(`job in queue folder ${p.queue ?? '(loose)'} of ${p.state}/, put in ${j.spec.queue}: ${j.describe()}`); }
    if (j.mode === 'final' && j.verified === p.path) return; // read at an earlier settle; nothing of ours moved it since
    const rec = readRecord(p.path);
    if (!rec) { this.violate(`unreadable record ${p.path}: ${j.describe()}`); return; }
    if (rec.id !== j.id) this.violate(`record ${p.path} has id ${rec.id}`);
    for (const h of Array.isArray(rec.history) ? rec.history : []) {
      if (h.outcome !== 'interrupted') continue;
      const pid = pidOfLease(String(h.worker));
      if ((pid === null || !this.killedPids.has(pid)) && !this.lostLeases.has(String(h.worker))) this.violate(`history of ${j.id} says attempt ${h.attempt} was interrupted on ${h.worker} (${h.error}), a worker neither killed nor ever without its lease`);
    }
    if (p.state === 'hold') {
      if (j.mode !== 'hold') this.violate(`job in hold/ that was never held (or was released): ${j.describe()}`);
      return;
    }
    if (j.mode === 'hold') { this.violate(`held job left hold/ for ${p.state}/ though nobody released it: ${j.describe()}`); return; }
    if (p.state === 'done') {
      if (rec.result === undefined || !rec.finished) this.violate(`done record without result or finished: ${p.path}`);
      // The result names the run that produced it: the ledger must hold that run, ended ok, same pid and attempt.
      const r = runs.get(String(rec.result?.run));
      if (!r || r.id !== j.id || r.outcome !== 'ok' || r.pid !== rec.result?.pid || r.attempt !== rec.result?.attempt) {
        this.violate(`done record of ${j.id} names run ${JSON.stringify(rec.result)}, which the ledger does not hold as an ok run of it (${r ? JSON.stringify({ ...r, startNs: String(r.startNs), endNs: String(r.endNs) }) : 'no such run'})`);
      }
    }
    if (p.state === 'failed' && (!rec.failure || !rec.finished)) this.violate(`failed record without failure or finished: ${p.path}`);
    // This life's attempts: the history from its last first attempt on. An interruption there that the model
    // did not see must be a stall (a lease its worker logged lost, seen by a recovery we could not watch,
    // such as doctor's); one by a killed worker means the kill's listing missed a job.
    const hist: any[] = Array.isArray(rec.history) ? rec.history : [];
    let from = -1;
    for (let i = hist.length - 1; i >= 0; i--) if (hist[i]?.attempt === 1) { from = i; break; }
    const cut = hist.slice(Math.max(0, from)).filter((h) => h?.outcome === 'interrupted');
    if (j.mode === 'flow' && !j.interrupted && cut.length > 0) {
      const byKill = cut.find((h) => this.killedPids.has(pidOfLease(String(h.worker)) ?? -1));
      if (byKill) this.violate(`history of ${j.id} shows an interruption by killed ${byKill.worker} that the kill's listing did not show: ${j.describe()}`);
      else this.note('interruption by a lost lease, seen in history');
      j.interrupted = true;
    }
    // Attempts are counted as the policy says: without an interruption, a life that ends done took exactly
    // failUntil + 1 attempts, and one that failed with an error exactly retries + 1.
    const life = j.mode === 'flow' && !j.interrupted;
    if (life && p.state === 'done' && rec.attempts !== j.spec.failUntil + 1) this.violate(`done after ${rec.attempts} attempts, expected ${j.spec.failUntil + 1}: ${j.describe()}`);
    if (life && p.state === 'failed' && rec.failure?.reason === 'error' && rec.attempts !== j.spec.retries + 1) this.violate(`failed after ${rec.attempts} attempts, expected ${j.spec.retries + 1}: ${j.describe()}`);
    this.sawFinished(j, p.state, p.state === 'failed' ? rec.failure?.reason : undefined, 'settle');
    j.verified = p.path;
  }

  // ---- the ledger ----

  /**
   * No job ran twice at once: for each job, its runs ordered by start never overlap — a run that ended
   * ended before the next began; a run that never ended was on a worker we SIGKILLed, and the next run began
   * after the kill, and after that worker's last heartbeat + the lease (recovery waited for the lease to
   * expire). An overlap is excused only when the earlier run's worker logged its lease lost (a stalled
   * worker: the function cannot be stopped at once), and counted. `quietNs`: runs of live workers that began
   * before it must have ended (the spool is settled).
   */
  checkLedger(runs: Map<string, LedgerRun>, kills: KillRecord[], workers: WorkerProc[], leaseMs: number, quietNs: bigint, steps?: WallSteps): void {
    const killedAt = new Map(kills.map((k) => [k.pid, k]));
    const lostPids = new Set<number>();
    for (const w of workers) if (w.events.some((e) => e.event === 'lease.lost' || e.event === 'lease.stale')) lostPids.add(w.pid);
    const byJob = new Map<string, LedgerRun[]>();
    for (const r of runs.values()) {
      if (r.startNs < 0n) { this.violate(`ledger: run ${r.run} of ${r.id} ended without a start line`); continue; }
      if (!this.jobs.has(r.id)) { this.violate(`ledger: a run of a job nobody put: ${r.id}`); continue; }
      const l = byJob.get(r.id);
      if (l) l.push(r); else byJob.set(r.id, [r]);
    }
    const slackNs = 100_000_000n; // mtime stamping and the hrtime/wall-clock pairing
    for (const [id, list] of byJob) {
      list.sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
      for (let i = 0; i < list.length; i++) {
        const a = list[i]!;
        const b = list[i + 1];
        const kill = killedAt.get(a.pid);
        if (a.endNs === undefined) {
          if (!kill) {
            if (a.startNs < quietNs) this.violate(`ledger: run ${a.run} of ${id} (pid ${a.pid}, attempt ${a.attempt}) never ended, and its worker was not killed`);
            continue;
          }
          if (b && b.startNs <= kill.sentNs) this.violate(`ledger: job ${id} ran twice at once: run ${b.run} (pid ${b.pid}) began ${ms(kill.sentNs - b.startNs)} ms before pid ${a.pid}, still running ${a.run}, was killed`);
          continue;
        }
        if (b && b.startNs < a.endNs) {
          if (lostPids.has(a.pid)) this.note('overlap excused by a lost lease');
          else this.violate(`ledger: job ${id} ran twice at once: run ${b.run} (pid ${b.pid}, attempt ${b.attempt}) began ${ms(a.endNs - b.startNs)} ms before run ${a.run} (pid ${a.pid}, attempt ${a.attempt}) ended, and pid ${a.pid} never lost its lease`);
        }
      }
    }
    // A job a kill interrupted ran again only after the killed worker's lease had expired.
    for (const k of kills) {
      if (k.lastBeatNs === null || lostPids.has(k.pid)) continue;
      for (const id of k.jobs) {
        const next = (byJob.get(id) ?? []).find((r) => r.startNs > k.sentNs);
        if (!next) continue;
        // A forward step of the wall clock after the kill ages the heartbeat by the step at once: by the file
        // server's clock, which leases are judged by, the lease ran out that much sooner. (A step before the
        // kill is in lastBeatNs already: it was converted through the wall clock after the step.)
        const steppedMs = steps ? steps.forwardMs(k.sentNs, next.startNs) : 0;
        if (steppedMs > 20) this.note('wall clock stepped forward between a kill and its rerun (ms)', Math.round(steppedMs));
        const earliest = k.lastBeatNs + BigInt(leaseMs) * 1_000_000n - slackNs - BigInt(Math.round(steppedMs * 1e6));
        if (next.startNs < earliest) this.violate(`ledger: job ${id}, interrupted by the kill of pid ${k.pid}, ran again (pid ${next.pid}) ${ms(next.startNs - k.lastBeatNs)} ms after that worker's last heartbeat; the lease is ${leaseMs} ms`);
      }
    }
  }

  /** A recovery (by a worker, zcq recover or doctor) settled `id` from dead lease `lease`: explained, and interrupting? */
  recovered(id: string, lease: string, to: string, killedPids: Set<number>, lostLeases: Set<string>, how: string): void {
    const pid = pidOfLease(lease);
    const j = this.jobs.get(id);
    if (!j) { this.violate(`${how}: recovered a job nobody put: ${id}`); return; }
    if (pid === null || (!killedPids.has(pid) && !lostLeases.has(lease))) {
      this.violate(`${how}: job ${id} recovered from lease ${lease}, whose worker was neither killed nor ever lost its lease`);
      return;
    }
    if (to === 'pending' || to === 'failed') {
      if (!killedPids.has(pid)) this.note('interrupt by a lost lease');
      // A final record moved for its dead holder is no interruption, but we cannot tell it apart from here
      // when it went to failed/: interrupting widens the legal set only by what an interruption may do.
      if (j.mode === 'flow') j.interrupted = true;
    }
  }
}

function ms(ns: bigint): number { return Number(ns / 1_000_000n); }
