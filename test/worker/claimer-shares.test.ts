// Claim shares (src/worker/claimer.ts scan): workers reading one folder each take their own share of the
// names first, so they do not try the same files. In-process, real folders, real leases in claimed/:
// - two claimers draining one queue take every job exactly once, with few lost races (each worker tried
//   every name it listed before: about one lost race a claim with two workers);
// - a share whose worker never claims (busy, or dead and not yet recovered) is still taken by the others,
//   at once when the folder holds no name of this worker's share;
// - a higher priority comes first whatever the share;
// - names planted in claimed/ (client leases, odd names, a FIFO, hundreds of lease-shaped names) neither
//   stop nor hide a claim.
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Spool } from '../../dist/client/spool.js';
import { Claimer } from '../../dist/worker/claimer.js';
import { Lease } from '../../dist/spool/lease.js';
import { isWorkerLeaseName, newWorkerId } from '../../dist/spool/ids.js';
import { holderInfoFrom } from '../../dist/spool/lease.js';
import type { ClaimedJob } from '../../dist/spool/transitions/claim.js';
import { cleanupTemp, tempDir } from '../helpers.js';

afterAll(cleanupTemp);

async function spoolWith(n: number, priority?: number) {
  const spool = await Spool.init(join(tempDir('zcq-share-'), 'spool'), { durable: false });
  for (let i = 0; i < n; i += 100) await spool.putMany(Array.from({ length: Math.min(100, n - i) }, () => ({ fn: 'noop.mjs#noop', args: [] })), priority === undefined ? {} : { priority });
  return spool;
}

async function worker(spool: Spool) {
  const lease = await Lease.acquire(spool.layout, { kind: 'worker', leaseMs: 60_000, concurrency: 8 }, false);
  // No watch: every claim comes from a scan, as on a network mount (NFS, FUSE).
  const claimer = new Claimer(spool.layout, null, 8, false, () => {});
  claimer.refreshQueues();
  const got: ClaimedJob[] = [];
  let lost = 0;
  const claim = async (want: number) => {
    claimer.refreshQueues(); claimer.scanDue = true; // each call as after a poll or a freed slot
    const r = await claimer.claimSome(lease, want, () => false, (c) => got.push(c));
    lost += r.seen - r.claimed;
    return r.claimed;
  };
  return { lease, claimer, got, claim, lost: () => lost };
}

describe('claim shares', () => {
  it('two claimers draining one queue take each job once and rarely race for a name', async () => {
    const n = 600;
    const spool = await spoolWith(n);
    const a = await worker(spool);
    const b = await worker(spool);
    try {
      // In turn, 8 at a time (a worker's free slots), as two worker processes would.
      for (let idle = 0; idle < 3;) {
        const got = (await a.claim(8)) + (await b.claim(8));
        idle = got === 0 ? idle + 1 : 0;
      }
      const ids = [...a.got, ...b.got].map((c) => c.id);
      expect(new Set(ids).size).toBe(n);
      expect(ids.length).toBe(n);
      // Both worked: neither was starved by the other's share.
      expect(Math.min(a.got.length, b.got.length)).toBeGreaterThan(n / 4);
      // Without shares each claimer tried the names the other had taken: ~n lost races here.
      expect(a.lost() + b.lost()).toBeLessThan(n / 10);
    } finally {
      a.claimer.stop(); b.claimer.stop();
    }
  }, 60_000);

  it('a share whose worker never claims is taken by the others, a few hundred jobs behind put order at most', async () => {
    const n = 1000; // one scan window: put order is what the claimer can see
    const spool = await spoolWith(n);
    const order = new Map(fs.readdirSync(join(spool.layout.pending, 'default')).sort().map((f, i) => [f.slice(0, -5), i]));
    const a = await worker(spool);
    const idle = await Lease.acquire(spool.layout, { kind: 'worker', leaseMs: 60_000 }, false); // busy, dead, or serving other queues
    expect(fs.existsSync(idle.dir)).toBe(true);
    try {
      for (let i = 0; i < 2 * n && a.got.length < n; i++) await a.claim(8);
      expect(a.got.length).toBe(n);
      // How far a job started after its place in put order: the idle share waits, but only a scan or two
      // (taking our whole share first left the idle share ~500 places behind here).
      const lag = Math.max(...a.got.map((c, k) => k - order.get(c.id)!));
      expect(lag).toBeLessThan(400);
    } finally {
      a.claimer.stop();
    }
  }, 60_000);

  it('a folder with no name of ours is served at the first look, not a poll later', async () => {
    const spool = await spoolWith(0);
    const a = await worker(spool);
    await Lease.acquire(spool.layout, { kind: 'worker', leaseMs: 60_000 }, false);
    try {
      // One job at a time: about half of them fall in the idle lease's share.
      for (let i = 0; i < 12; i++) {
        const job = await spool.put('noop.mjs#noop', []);
        expect(await a.claim(8)).toBe(1);
        expect(a.got.at(-1)!.id).toBe(job.id);
      }
    } finally {
      a.claimer.stop();
    }
  }, 60_000);

  it('a higher priority is claimed first, whichever worker\'s share it is in', async () => {
    const spool = await spoolWith(120, 5);
    for (let i = 0; i < 40; i += 20) await spool.putMany(Array.from({ length: 20 }, () => ({ fn: 'noop.mjs#noop', args: [] })), { priority: 0 });
    const a = await worker(spool);
    await Lease.acquire(spool.layout, { kind: 'worker', leaseMs: 60_000 }, false);
    await Lease.acquire(spool.layout, { kind: 'worker', leaseMs: 60_000 }, false);
    try {
      for (let i = 0; i < 200 && a.got.length < 160; i++) await a.claim(1);
      expect(a.got.length).toBe(160);
      const levels = a.got.map((c) => c.level);
      expect(levels.slice(0, 40).every((l) => l === 'p0')).toBe(true);
      expect(levels.slice(40).every((l) => l === '')).toBe(true);
    } finally {
      a.claimer.stop();
    }
  }, 60_000);

  it('names planted in claimed/ neither stop nor hide a claim', async () => {
    const spool = await spoolWith(200);
    const c = spool.layout.claimed;
    // A client's lease, odd names, a FIFO, a symlink, and more lease-shaped names than are ever counted.
    fs.mkdirSync(join(c, 'h.1.abcdef-client'));
    fs.writeFileSync(join(c, 'not a lease'), '');
    execFileSync('mkfifo', [join(c, 'h.2.fifo00')]);
    fs.symlinkSync('/etc', join(c, 'h.3.link00'));
    for (let i = 0; i < 400; i++) fs.writeFileSync(join(c, `planted.${i}.${String(i).padStart(6, '0')}`), '');
    expect(isWorkerLeaseName('h.1.abcdef-client')).toBe(false);
    expect(isWorkerLeaseName('not a lease')).toBe(false);
    expect(isWorkerLeaseName('planted.7.000007')).toBe(true);
    // The one reading of a lease id: what newWorkerId makes, and what a recoverer reads of a holder.
    expect(isWorkerLeaseName(newWorkerId('worker'))).toBe(true);
    expect(isWorkerLeaseName(newWorkerId('client'))).toBe(false);
    expect(isWorkerLeaseName('.h.1.abcdef')).toBe(false);
    expect(holderInfoFrom(`web_1.${process.pid}.abc123-client`, undefined, 30_000)).toMatchObject({ host: 'web_1', pid: process.pid, kind: 'client' });
    expect(holderInfoFrom('odd name', undefined, 30_000)).toMatchObject({ host: '?', pid: 0, kind: 'worker' });
    const a = await worker(spool);
    const b = await worker(spool);
    try {
      for (let i = 0; i < 200 && a.got.length + b.got.length < 200; i++) { await a.claim(8); await b.claim(8); }
      const ids = [...a.got, ...b.got].map((x) => x.id);
      expect(ids.length).toBe(200);
      expect(new Set(ids).size).toBe(200);
      expect(fs.readlinkSync(join(c, 'h.3.link00'))).toBe('/etc');
    } finally {
      a.claimer.stop(); b.claimer.stop();
    }
  }, 60_000);
});
