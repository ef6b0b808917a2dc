// Shared rig for the per-transition tests: a real spool in a temp folder, crashes after a chosen step
// (the steps.ts hook), leases made to look dead by the file server's clock, and a look at every place a
// job can be. In-process: each test crashes a transition where it stands, then runs the actor its header
// names and checks where the job ends.
import * as fs from 'node:fs';
import { join, relative } from 'node:path';
import { Spool } from '../../../dist/index.js';
import { newJob, serializeJob, type Job } from '../../../dist/job/format.js';
import { recordSuccess, recordError, type Next } from '../../../dist/job/policy.js';
import { Lease } from '../../../dist/spool/lease.js';
import type { Layout } from '../../../dist/spool/layout.js';
import { ServerClock } from '../../../dist/spool/server-clock.js';
import { claimJob, readClaimed, type ClaimedJob } from '../../../dist/spool/transitions/claim.js';
import { placeNewJob, publish } from '../../../dist/spool/transitions/put.js';
import { recoverDeadLeases, type RecoveryEvent } from '../../../dist/spool/transitions/recover.js';
import { onStep, SimulatedCrash } from '../../../dist/spool/transitions/steps.js';
import { tempDir } from '../../helpers.js';

export { onStep, SimulatedCrash };

/** Arm a crash after step `k` of `transition` (optionally only for `detail`). It fires once, then the hook stays quiet. */
export function crashAfter(transition: string, k: number, detail?: string): { fired: boolean } {
  const state = { fired: false };
  onStep((t, s, d) => {
    if (state.fired || t !== transition || s !== k || (detail !== undefined && d !== detail)) return;
    state.fired = true;
    throw new SimulatedCrash(t, s);
  });
  return state;
}

/** Run `fn` at step `k` of `transition` (once), without stopping it: a racing actor acting at that instant. */
export function atStep(transition: string, k: number, fn: () => void): { fired: boolean } {
  const state = { fired: false };
  onStep((t, s) => {
    if (state.fired || t !== transition || s !== k) return;
    state.fired = true;
    fn();
  });
  return state;
}

/** Every step mark passed, in order ("name:k"). */
export function recordSteps(): string[] {
  const seen: string[] = [];
  onStep((t, s) => { seen.push(`${t}:${s}`); });
  return seen;
}

export const FN = './jobs.mjs#add';

export class Rig {
  readonly clocks: ServerClock[] = [];
  readonly events: RecoveryEvent[] = [];
  private constructor(readonly spool: Spool, readonly l: Layout) {}

  /** A spool in a new temporary folder, or in `parent` (a file system of the test's own, e.g. a small tmpfs). */
  static async make(parent?: string): Promise<Rig> {
    const spool = await Spool.init(join(parent ?? tempDir('zcq-tr-'), 'spool'), { durable: true });
    return new Rig(spool, spool.layout);
  }

  /** Publish a job of `queue` into pending/ (or deferred/ when `dueMs`) through put's own publish. */
  async put(id: string, fields: Partial<Parameters<typeof newJob>[0]> = {}, dueMs: number | null = null): Promise<Job> {
    const job = newJob({ id, fn: FN, args: [1, 2], ...fields });
    if (dueMs !== null) job.notBefore = new Date(dueMs).toISOString();
    await publish(this.l.tmp, [placeNewJob(this.l, job.queue, id, serializeJob(job), dueMs)], true, this.l.modes);
    return job;
  }

  /** Write a job file straight at `path` (a finished record, a hand-made file). */
  write(path: string, job: Job): void {
    fs.mkdirSync(join(path, '..'), { recursive: true });
    fs.writeFileSync(path, serializeJob(job));
  }

  async lease(kind: 'worker' | 'client' = 'worker', leaseMs = 30_000): Promise<Lease> {
    return Lease.acquire(this.l, { kind, leaseMs }, true);
  }

  clock(): ServerClock {
    const c = new ServerClock(this.l.tmp, `test-${process.pid}-${this.clocks.length}`);
    this.clocks.push(c);
    return c;
  }

  /**
   * Make `lease` look dead the way a crashed holder does: its folder stays, its heartbeat stops. The
   * heartbeat's mtime is set an hour back, so judgeLease finds it expired by the file server's clock.
   */
  kill(lease: Lease): void {
    const past = new Date(Date.now() - 3_600_000);
    fs.utimesSync(lease.heartbeatFile, past, past);
  }

  /** One recovery pass by a fresh worker lease (kept: a crashed recoverer is killed in turn by the test). */
  async recover(): Promise<{ n: number; me: Lease; events: RecoveryEvent[] }> {
    const me = await this.lease('worker');
    const events: RecoveryEvent[] = [];
    const n = await recoverDeadLeases(this.l, this.clock(), me, (e) => { events.push(e); this.events.push(e); });
    return { n, me, events };
  }

  /** Claim `id` of `queue` into `lease` and read it (claim steps 1–3). */
  async claim(lease: Lease, id: string, queue = 'default'): Promise<{ c: ClaimedJob; job: Job; retried: boolean }> {
    const c = claimJob(lease, queue, `${id}.json`);
    if (!c) throw new Error(`claim of ${id} failed`);
    const r = await readClaimed(c);
    if (!('job' in r)) throw new Error(`claimed ${id} is not a job: ${JSON.stringify(r)}`);
    return { c, job: r.job, retried: r.retried };
  }

  /** Every place a file of job `id` sits (relative to the spool), tmp/ and aux folders excluded. */
  where(id: string): string[] {
    const out: string[] = [];
    const walk = (dir: string): void => {
      let entries: fs.Dirent[];
      try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name === `${id}.json` || e.name.endsWith(`.${id}.json`)) out.push(relative(this.l.root, p));
      }
    };
    for (const s of ['pending', 'deferred', 'claimed', 'done', 'failed', 'hold', 'quarantine']) walk(join(this.l.root, s));
    return out.sort();
  }

  /** The one place of `id` (fails the test unless there is exactly one). */
  only(id: string): string {
    const w = this.where(id);
    if (w.length !== 1) throw new Error(`job ${id} is in ${w.length} places: ${JSON.stringify(w)}`);
    return w[0]!;
  }

  read(rel: string): Job {
    return JSON.parse(fs.readFileSync(join(this.l.root, rel), 'utf8')) as Job;
  }

  /** Names in tmp/ starting with `prefix` (the clock probes excluded). */
  tmp(prefix = ''): string[] {
    return fs.readdirSync(this.l.tmp).filter((n) => n.startsWith(prefix) && !n.startsWith('.probe-')).sort();
  }

  /** Backdate every entry of tmp/ (except clock probes) by an hour: leftovers for housekeeping. */
  ageTmp(): void {
    const past = new Date(Date.now() - 3_600_000);
    for (const n of this.tmp()) fs.utimesSync(join(this.l.tmp, n), past, past);
  }

  async dispose(): Promise<void> {
    onStep();
    for (const c of this.clocks.splice(0)) await c.dispose();
    await this.spool.close();
  }
}

/** An attempt record for `lease`, as the worker starts one. */
export function attemptOf(lease: Lease, job: Job) {
  job.attempts += 1;
  return { attempt: job.attempts, worker: lease.id, host: lease.info.host, pid: lease.info.pid, start: new Date().toISOString() };
}

/** The worker's outcome of a run that succeeded with `result`. */
export function succeed(lease: Lease, job: Job, result: unknown = 3): Next {
  return recordSuccess(job, attemptOf(lease, job), result, new Date().toISOString());
}

/** The worker's outcome of a run that threw. */
export function fail(lease: Lease, job: Job, message = 'boom'): Next {
  return recordError(job, attemptOf(lease, job), { name: 'Error', message }, 'error', new Date().toISOString(), Date.now());
}
