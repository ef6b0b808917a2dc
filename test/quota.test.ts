// Quotas (issue 13): `zcq quota set NAME N` and `zcq put --quota NAME`: never more than N jobs holding NAME
// run at once across every worker; a slot held by a worker killed with SIGKILL comes back when its lease is
// recovered; a change of N is live. Real `zcq worker` processes; start/end stamps in a ledger the jobs
// append to (test/fixtures/jobs.mjs abortableRecord), on this machine's clock, which jobs and test share.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../dist/index.js';
import { cleanupTemp, killAll, names, startWorker, tempDir, until, zcq } from './helpers.js';
import { readLedger, type LedgerEntry } from './recovery/util.js';

afterEach(killAll);
afterAll(cleanupTemp);

const FAST = ['--poll', '200ms', '--lease', '3s', '--no-scheduler', '--runtime', 'inline'];

async function newSpool(): Promise<Spool> {
  const dir = join(tempDir('zcq-quota-'), 'spool');
  expect(zcq(null, ['init', dir]).code).toBe(0);
  return Spool.open(dir, { durable: false });
}

/** Per job: its start and end stamps (end: Infinity while running or killed). */
function runs(ledger: string): { id: string; start: number; end: number }[] {
  const by = new Map<string, { id: string; start: number; end: number }>();
  for (const e of readLedger(ledger) as LedgerEntry[]) {
    if (e.event === 'start') by.set(e.id, { id: e.id, start: e.at, end: Infinity });
    if ((e.event === 'end' || e.event === 'aborted') && by.has(e.id)) by.get(e.id)!.end = e.at;
  }
  return [...by.values()];
}

/** The most runs at once over the stamps (an end at the same ms as a start counts first). */
function maxOverlap(rs: { start: number; end: number }[], from = -Infinity): number {
  const marks = rs.filter((r) => r.end > from).flatMap((r) => [[Math.max(r.start, from), 1], [r.end, -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let n = 0, max = 0;
  for (const [, d] of marks) { n += d; max = Math.max(max, n); }
  return max;
}

describe('zcq quota: the commands', () => {
  it('set, ls, rm; the files; bad input exits 2 with one line and writes nothing', async () => {
    const spool = await newSpool();
    let r = zcq(spool.dir, ['quota', 'set', 'gpu', '3']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('gpu\tlimit=3\tused=0\n');
    expect(JSON.parse(readFileSync(join(spool.dir, 'quotas', 'gpu', 'limit.json'), 'utf8'))).toEqual({ limit: 3 });
    r = zcq(spool.dir, ['--json', 'quota', 'ls']);
    expect(JSON.parse(r.stdout)).toEqual([{ name: 'gpu', limit: 3, used: 0, holders: [] }]);
    for (const args of [['quota', 'set', 'gpu', '-1'], ['quota', 'set', 'gpu', '10001'], ['quota', 'set', 'gpu', 'x'], ['quota', 'set', '../x', '1'], ['quota', 'rm', '.x'], ['put', '--quota', 'a/b', './jobs.mjs#add']]) {
      const b = zcq(spool.dir, args);
      expect(b.code, args.join(' ')).toBe(2);
      expect(b.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
    expect(JSON.parse(readFileSync(join(spool.dir, 'quotas', 'gpu', 'limit.json'), 'utf8'))).toEqual({ limit: 3 });
    expect(names(join(spool.dir, 'quotas'))).toEqual(['gpu']);
    expect(names(join(spool.dir, 'pending'))).toEqual([]);
    const st = zcq(spool.dir, ['status']);
    expect(st.stdout).toMatch(/QUOTA\s+USED\s+LIMIT\n\s*gpu\s+0\s+3/);
    expect(zcq(spool.dir, ['quota', 'rm', 'gpu']).stdout).toBe('gpu\tremoved\n');
    expect(zcq(spool.dir, ['quota', 'rm', 'gpu']).stdout).toBe('gpu\thad no limit\n');
    expect(existsSync(join(spool.dir, 'quotas', 'gpu'))).toBe(false);
    // The library: typed, the same checks.
    await expect(spool.quota.set('gpu', 1.5)).rejects.toThrow(/limit/);
    expect((await spool.quota.set('gpu', 2)).limit).toBe(2);
    const j = await spool.put('./jobs.mjs#add', [1, 2], { quota: ['gpu', 'disk', 'gpu'] });
    expect(j.quotas).toEqual(['gpu', 'disk']);
  });
});

describe('quota: real workers', () => {
  it('quota 2, three workers of concurrency 3: never more than 2 at once; raised to 4 live: more run, never over 4', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    zcq(spool.dir, ['quota', 'set', 'q', '2']);
    await spool.putMany(Array.from({ length: 24 }, () => ({ fn: './jobs.mjs#abortableRecord', args: [ledger, 400] })), { quota: 'q' });
    // Unlimited jobs beside them: the quota holds back only its own.
    const free = await spool.putMany(Array.from({ length: 6 }, () => ({ fn: './jobs.mjs#abortableRecord', args: [ledger, 400] })));
    const ws = [0, 1, 2].map(() => startWorker(spool.dir, [...FAST, '--concurrency', '3']));
    const freeIds = new Set(free.map((j) => j.id));
    const quota = () => runs(ledger).filter((r) => !freeIds.has(r.id));
    await until(() => quota().filter((r) => r.end < Infinity).length >= 8, 30_000);
    const raisedAt = Date.now();
    zcq(spool.dir, ['quota', 'set', 'q', '4']);
    await until(() => quota().filter((r) => r.end < Infinity).length === 24, 60_000);
    for (const w of ws) w.kill('SIGTERM');
    await Promise.all(ws.map((w) => w.exited));
    const before = quota().filter((r) => r.start < raisedAt);
    expect(maxOverlap(before)).toBeLessThanOrEqual(2);
    expect(maxOverlap(quota())).toBeLessThanOrEqual(4);
    expect(maxOverlap(quota(), raisedAt + 1000)).toBeGreaterThan(2);
    expect(runs(ledger).filter((r) => freeIds.has(r.id))).toHaveLength(6);
    // Every slot given back. A wait mark (w.LEASE) of a stopped worker may stay: a hint, removed by the next lister.
    expect(names(join(spool.dir, 'quotas', 'q')).filter((n) => !n.startsWith('w.'))).toEqual(['limit.json']);
  }, 120_000);

  it('a queue default through zcq config set queue:QUEUE quotas=NAME: every job of the queue holds the quota', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    expect(zcq(spool.dir, ['quota', 'set', 'one', '1']).code).toBe(0);
    const set = zcq(spool.dir, ['config', 'set', 'queue:qd', 'quotas=one', 'rate=100/1s']);
    expect(set.stderr).toBe('');
    expect(set.stdout).toBe('queue:qd\tquotas=one\trate=100/1s\n');
    expect(zcq(spool.dir, ['config', 'set', 'queue:qd', 'quotas=a/b']).code).toBe(2);
    expect(zcq(spool.dir, ['config', 'set', 'queue:qd', 'concurrency=3']).code).toBe(2);
    expect(zcq(spool.dir, ['config', 'get', 'queue:qd']).stdout).toBe('queue:qd\tquotas=one\trate=100/1s\n');
    await spool.putMany(Array.from({ length: 5 }, () => ({ fn: './jobs.mjs#abortableRecord', args: [ledger, 300] })), { queue: 'qd' });
    const ws = [0, 1].map(() => startWorker(spool.dir, [...FAST, '--concurrency', '3']));
    await until(() => runs(ledger).filter((r) => r.end < Infinity).length === 5, 30_000);
    for (const w of ws) w.kill('SIGTERM');
    await Promise.all(ws.map((w) => w.exited));
    expect(maxOverlap(runs(ledger))).toBe(1);
    expect(zcq(spool.dir, ['config', 'rm', 'queue:qd']).stdout).toBe('queue:qd\t(no settings)\n');
  }, 60_000);

  it('SIGKILL of a slot holder: the slot comes back when its lease is recovered, and the next job runs', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    zcq(spool.dir, ['quota', 'set', 'one', '1']);
    const a = startWorker(spool.dir, [...FAST, '--concurrency', '2']);
    const [first] = await spool.putMany([{ fn: './jobs.mjs#abortableRecord', args: [ledger, 60_000, 200] }], { quota: 'one', onInterrupt: 'fail' });
    await until(() => runs(ledger).length === 1, 20_000);
    const second = await spool.put('./jobs.mjs#abortableRecord', [ledger, 200], { quota: 'one' });
    const slot = readFileSync(join(spool.dir, 'quotas', 'one', '0'), 'utf8').trim();
    expect(slot).toMatch(/\/\d+$/);
    // What a's lease keeps for its next takes: the slot's inode in tmp/, and a wait mark for the second job.
    const leaseA = slot.slice(0, slot.lastIndexOf('/'));
    const kept = (lease: string) => [...readdirSync(join(spool.dir, 'tmp')).filter((n) => n.startsWith(`.qslot-${lease}-`)), ...names(join(spool.dir, 'quotas', 'one')).filter((n) => n === `w.${lease}`)];
    await until(() => kept(leaseA).length === 2, 10_000);
    a.kill('SIGKILL');
    await a.exited;
    const killedAt = Date.now();
    const b = startWorker(spool.dir, [...FAST, '--concurrency', '2']);
    const [r2] = await spool.wait([second.id]);
    expect(r2!.state).toBe('done');
    const started = runs(ledger).find((r) => r.id === second.id)!.start;
    // Lease 3 s: recovered once 3 s pass without a heartbeat; then a poll or two.
    expect(started - killedAt).toBeLessThan(3000 + 5000);
    const [r1] = await spool.wait([first!.id]);
    expect(r1!.state).toBe('failed'); // onInterrupt fail: the killed run is not run again
    // Recovery removed the dead lease's inode and mark; the live worker keeps its pooled inode until it stops.
    expect(kept(leaseA)).toEqual([]);
    const [leaseB] = names(join(spool.dir, 'claimed'));
    expect(kept(leaseB!)).toHaveLength(1);
    b.kill('SIGTERM');
    await b.exited;
    expect(kept(leaseB!)).toEqual([]);
    expect(names(join(spool.dir, 'quotas', 'one'))).toEqual(['limit.json']);
    expect(b.output()).toMatch(/lease\.expired/);
  }, 60_000);
});
