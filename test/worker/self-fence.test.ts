// The self-fence (src/worker/self-fence.ts): a worker judges its own lease by its own monotonic clock. Older
// than the lease less the margin: it claims and starts nothing until a renewal succeeds; older than the lease:
// it gives the lease up (its running jobs aborted, none recorded) and takes a new one. In process on a real
// spool for the rule, then a real worker process SIGSTOPped for longer than its lease.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Spool } from '../../dist/index.js';
import { Lease } from '../../dist/spool/lease.js';
import { claimJob } from '../../dist/spool/transitions/claim.js';
import { SelfFence, fenceMarginMs, fenceState } from '../../dist/worker/self-fence.js';
import { WORKER_DEFAULTS } from '../../dist/defaults.js';
import { cleanupTemp, tempDir, until } from '../helpers.js';
import { events, jobIn, killWorkers, newSpool, putMany, readLedger, sleep, worker } from '../recovery/util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

async function leaseOn(spool: string, leaseMs: number): Promise<{ s: Spool; lease: Lease }> {
  const s = await Spool.open(spool, { durable: false });
  return { s, lease: await Lease.acquire(s.layout, { kind: 'worker', leaseMs, concurrency: 1 }, false) };
}

function host(lease: Lease) {
  const log: { event: string; fields: Record<string, unknown> }[] = [];
  let renewals = 0;
  let lost = 0;
  const h = {
    lease,
    loseLease: (l: Lease) => { lost++; l.markLost(); },
    renewNow: () => { renewals++; },
    log: (event: string, fields: Record<string, unknown>) => { log.push({ event, fields }); },
  };
  return { h, log, renewals: () => renewals, lost: () => lost };
}

describe('the rule', () => {
  it('open below lease − margin, closed up to the lease, expired past it or once lost; the margin is at most a quarter of the lease', async () => {
    expect(fenceMarginMs(30_000)).toBe(WORKER_DEFAULTS.selfFenceMarginMs);
    expect(fenceMarginMs(2000)).toBe(500);
    const { lease } = await leaseOn(await newSpool(), 2000);
    const t = 1000; // whole numbers: performance.now() fractions make t + 1500 - t fall short of 1500
    lease.lastRenewed = t;
    expect(fenceState(lease, t + 1499)).toBe('open');
    expect(fenceState(lease, t + 1500)).toBe('closed');
    expect(fenceState(lease, t + 1999)).toBe('closed');
    expect(fenceState(lease, t + 2000)).toBe('expired');
    lease.markLost();
    expect(fenceState(lease, t)).toBe('expired');
  });

  it('closed: no claim, a renewal asked for at once, one lease.fenced line; a renewal opens it again; expired: the lease is given up', async () => {
    const { lease } = await leaseOn(await newSpool(), 2000);
    const { h, log, renewals, lost } = host(lease);
    const fence = new SelfFence(h);
    expect(fence.mayClaim()).toBe(true);
    expect(renewals()).toBe(0);
    lease.lastRenewed = performance.now() - 1600;
    expect(fence.mayClaim()).toBe(false);
    expect(fence.mayClaim()).toBe(false);
    expect(renewals()).toBe(2);
    expect(log.map((l) => l.event)).toEqual(['lease.fenced']);
    lease.lastRenewed = performance.now();
    expect(fence.mayClaim()).toBe(true);
    lease.lastRenewed = performance.now() - 2100;
    expect(fence.mayClaim()).toBe(false);
    expect(lost()).toBe(1);
    expect(lease.isLost).toBe(true);
    expect(log.map((l) => l.event)).toEqual(['lease.fenced', 'lease.stale']);
    expect(log[1]!.fields.sinceRenewMs).toBeGreaterThanOrEqual(2100);
  });

  it('a start waits for the renewal while closed (true once it lands), and is refused once the lease expires', async () => {
    const { lease } = await leaseOn(await newSpool(), 2000);
    const { h } = host(lease);
    let asked = 0;
    h.renewNow = () => { if (asked++ === 0) setTimeout(() => { lease.lastRenewed = performance.now(); }, 120); };
    const fence = new SelfFence(h);
    lease.lastRenewed = performance.now() - 1600;
    expect(await fence.mayStart(lease)).toBe(true);
    // No renewal lands: closed until the lease runs out, then refused (and the lease given up).
    h.renewNow = () => undefined;
    lease.lastRenewed = performance.now() - 1800;
    const t0 = performance.now();
    expect(await fence.mayStart(lease)).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150);
    expect(lease.isLost).toBe(true);
  });

  it('a job kept from starting goes back to pending/ untouched while the folder is ours; once the folder is taken it is left to recovery', async () => {
    const spool = await newSpool();
    const [x, y] = await putMany(spool, 2, './jobs.mjs#add', [1, 2]);
    const { lease } = await leaseOn(spool, 2000);
    const { h, log } = host(lease);
    const fence = new SelfFence(h);
    const cx = claimJob(lease, 'default', `${x}.json`)!;
    expect(cx).not.toBeNull();
    expect(fence.putBack(cx)).toBe(true);
    expect(jobIn(spool, 'pending', x!)).toMatchObject({ id: x, attempts: 0 });
    const cy = claimJob(lease, 'default', `${y}.json`)!;
    // A recoverer takes the folder: the file is its to settle, not ours to move.
    const { renameSync, mkdirSync } = await import('node:fs');
    mkdirSync(join(spool, 'claimed', 'other'));
    renameSync(lease.dir, join(spool, 'claimed', 'other', `${lease.id}.dead`));
    expect(fence.putBack(cy)).toBe(false);
    expect(jobIn(spool, 'pending', y!)).toBeNull();
    expect(existsSync(join(spool, 'claimed', 'other', `${lease.id}.dead`, cy.path.split('/').pop()!))).toBe(true);
    expect(log.map((l) => [l.event, l.fields.id])).toEqual([['job.fenced', x], ['job.fenced', y]]);
  });
});

describe('a worker process stopped for longer than its lease (SIGSTOP, SIGCONT)', () => {
  const LEASE = ['--lease', '2s', '--heartbeat', '300ms', '--poll', '100ms', '--concurrency', '2'];

  it('woken with a job put while it slept: claims nothing under the stale lease; the job runs once, under the new lease', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const a = worker(spool, LEASE);
    await until(() => events(a.output()).some((e) => e.event === 'worker.start'), 15_000);
    const stale = events(a.output()).find((e) => e.event === 'worker.start')!.worker as string;
    a.kill('SIGSTOP');
    await sleep(2600); // past the 2 s lease (its last beat was at most 300 ms before the stop)
    // Put while it sleeps: the folder's change event is the first thing it sees when it wakes.
    const [x] = await putMany(spool, 1, './jobs.mjs#abortableRecord', [ledger, 600, 600]);
    a.kill('SIGCONT');
    await until(() => jobIn(spool, 'done', x!) !== null, 15_000);
    const ev = events(a.output());
    const lines = readLedger(ledger).filter((l) => l.id === x);
    // One start and one end, in that order: never a run under the stale lease, and so never two at once.
    expect(lines.map((l) => l.event)).toEqual(['start', 'end']);
    const done = jobIn(spool, 'done', x!)!;
    expect(done.history.map((h: { outcome: string }) => h.outcome)).toEqual(['done']);
    const fresh = ev.find((e) => e.event === 'lease.new')!;
    expect(fresh.previous).toBe(stale);
    expect(done.history[0].worker).toBe(fresh.worker);
    expect(ev.some((e) => e.event === 'lease.stale' && e.worker === stale)).toBe(true);
    // Nothing was claimed into the stale lease: no abandoned job, no job.start under it.
    expect(ev.filter((e) => e.event === 'job.abandoned')).toEqual([]);
    expect(ev.filter((e) => e.event === 'job.start' && e.worker === stale)).toEqual([]);
    a.kill('SIGTERM');
    expect(await a.exited).toBe(0);
  }, 40_000);
});
