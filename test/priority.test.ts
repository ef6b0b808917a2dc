// Priorities (issue 13): `zcq put --priority N` files a job in pending/QUEUE/pN/ (5 stays in pending/QUEUE/),
// the claimer reads the folders p0 first, p9 last, and a job of priority 0 put behind a backlog of priority 9
// is taken before any further priority-9 job. Real `zcq worker` processes; the start order is read from a
// ledger the jobs append to (test/fixtures/jobs.mjs sleepRecord).
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../dist/index.js';
import { cleanupTemp, killAll, ledgerLines, names, startWorker, tempDir, until, zcq } from './helpers.js';
import { newJob, serializeJob } from '../dist/job/format.js';
import { placeNewJob, publish } from '../dist/spool/transitions/put.js';
import { adoptLoose, promoteDue } from '../dist/spool/transitions/promote.js';
import { unclaimJob } from '../dist/spool/transitions/unclaim.js';
import { claimJob, readClaimed } from '../dist/spool/transitions/claim.js';
import { finishJob } from '../dist/spool/transitions/finish.js';
import { Rig, onStep } from './spool/transitions/util.js';

afterEach(killAll);
afterAll(cleanupTemp);

const FAST = ['--poll', '200ms', '--lease', '3s', '--no-scheduler'];

async function newSpool(): Promise<Spool> {
  const dir = join(tempDir('zcq-prio-'), 'spool');
  expect(zcq(null, ['init', dir]).code).toBe(0);
  return Spool.open(dir, { durable: false });
}

describe('priority: where jobs wait', () => {
  it('5 (the default) in pending/QUEUE/, others in pending/QUEUE/pN/; ls and show see them all', async () => {
    const spool = await newSpool();
    const a = await spool.put('./jobs.mjs#add', [1, 2], { priority: 0 });
    const b = await spool.put('./jobs.mjs#add', [1, 2]);
    const c = await spool.put('./jobs.mjs#add', [1, 2], { priority: 9, queue: 'q' });
    expect(existsSync(join(spool.dir, 'pending', 'default', 'p0', `${a.id}.json`))).toBe(true);
    expect(existsSync(join(spool.dir, 'pending', 'default', `${b.id}.json`))).toBe(true);
    expect(existsSync(join(spool.dir, 'pending', 'q', 'p9', `${c.id}.json`))).toBe(true);
    expect(JSON.parse(readFileSync(join(spool.dir, 'pending', 'default', 'p0', `${a.id}.json`), 'utf8')).priority).toBe(0);
    expect(JSON.parse(readFileSync(join(spool.dir, 'pending', 'default', `${b.id}.json`), 'utf8')).priority).toBeUndefined();
    const listed = (await spool.list({ states: ['pending'] })).map((r) => r.id).sort();
    expect(listed).toEqual([a.id, b.id, c.id].sort());
    const show = zcq(spool.dir, ['show', c.id]);
    expect(show.code).toBe(0);
    // doctor does not take a priority folder for a stray
    const doc = zcq(spool.dir, ['doctor']);
    expect(doc.stdout + doc.stderr).not.toMatch(/p0|p9/);
  });

  it('a bad priority: exit 2, one line naming --priority, nothing written', async () => {
    const spool = await newSpool();
    for (const v of ['10', '-1', 'x', '1.5']) {
      const r = zcq(spool.dir, ['put', '--priority', v, './jobs.mjs#add', '1', '2']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--priority/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    await expect(spool.put('./jobs.mjs#add', [], { priority: 12 })).rejects.toThrow(/--priority 12/);
    expect(names(join(spool.dir, 'pending'))).toEqual([]);
    const r = zcq(spool.dir, ['put', '--priority', '2', './jobs.mjs#add', '1', '2']);
    expect(r.code).toBe(0);
    expect(names(join(spool.dir, 'pending', 'default', 'p2'))).toEqual([`${r.stdout.trim()}.json`]);
  });

  it('a deferred job is promoted into the folder of its priority; a retry goes back there', async () => {
    const spool = await newSpool();
    const d = await spool.put('./jobs.mjs#add', [1, 2], { priority: 1, in: '1s' });
    const ledger = join(tempDir(), 'ledger');
    const f = await spool.put('./jobs.mjs#flakyRecord', [ledger, 2], { priority: 8, retries: 1, backoff: 0 });
    // Not --exit-when-idle: a job due later does not keep a worker from being idle.
    const w = startWorker(spool.dir, [...FAST, '--concurrency', '1']);
    const [rd, rf] = await spool.wait([d.id, f.id]);
    w.kill('SIGTERM');
    await w.exited;
    expect(rd!.state).toBe('done');
    expect(rf!.state).toBe('done');
    expect(rf!.job!.attempts).toBe(2);
    expect(w.output()).toMatch(/job\.retry/);
  });

  it('zcq retry of a finished job and zcq release of a held one file it by its priority again', async () => {
    const spool = await newSpool();
    const a = await spool.put('./jobs.mjs#add', [1, 2], { priority: 2 });
    const b = await spool.put('./jobs.mjs#add', [1, 2], { priority: 7 });
    // a finished: its record in failed/ (the state retry starts from; the record is the job as put)
    mkdirSync(join(spool.dir, 'failed', 'default'), { recursive: true });
    renameSync(join(spool.dir, 'pending', 'default', 'p2', `${a.id}.json`), join(spool.dir, 'failed', 'default', `${a.id}.json`));
    expect(zcq(spool.dir, ['retry', a.id]).code).toBe(0);
    expect(existsSync(join(spool.dir, 'pending', 'default', 'p2', `${a.id}.json`))).toBe(true);
    expect(zcq(spool.dir, ['hold', b.id]).code).toBe(0);
    expect(existsSync(join(spool.dir, 'hold', 'default', `${b.id}.json`))).toBe(true);
    fs.rmSync(join(spool.dir, 'pending', 'default', 'p7'), { recursive: true, force: true });
    expect(zcq(spool.dir, ['release', b.id]).code).toBe(0);
    expect(existsSync(join(spool.dir, 'pending', 'default', 'p7', `${b.id}.json`))).toBe(true);
  });
});

describe('priority: the transitions file a job by its priority (in-process)', () => {
  it('promote into pN/, adopt into pN/, unclaim back to the folder it came from, a retry now back to pN/', async () => {
    const rig = await Rig.make();
    try {
      const l = rig.l;
      // promote: a deferred job of priority 2, due now
      const due = Date.now() - 1000;
      const d = newJob({ id: 'd1', fn: './jobs.mjs#add', priority: 2 });
      await publish(l.tmp, [placeNewJob(l, 'default', 'd1', serializeJob(d), due, 2)], true, l.modes);
      expect(rig.where('d1')[0]).toMatch(/^deferred\/default\//);
      const rep = await promoteDue(l, Date.now(), true);
      expect(rep.promoted).toBe(1);
      expect(rig.where('d1')).toEqual(['pending/default/p2/d1.json']);
      // adopt: a loose file of priority 7
      fs.writeFileSync(join(l.pending, 'a1.json'), serializeJob(newJob({ id: 'a1', fn: './jobs.mjs#add', priority: 7, queue: 'q' })));
      expect((await adoptLoose(l, true)).adopted).toBe(1);
      expect(rig.where('a1')).toEqual(['pending/q/p7/a1.json']);
      // unclaim: back where it was claimed from
      const lease = await rig.lease();
      const c = claimJob(lease, 'default', 'd1.json', 'p2')!;
      expect(c).not.toBeNull();
      expect(unclaimJob(c)).toBe(true);
      expect(rig.where('d1')).toEqual(['pending/default/p2/d1.json']);
      // finish to pending (an uncounted put-back, a retry now): the folder of its priority field
      const c2 = claimJob(lease, 'q', 'a1.json', 'p7')!;
      const r = await readClaimed(c2);
      if (!('job' in r)) throw new Error('not a job');
      expect(await finishJob(c2, r.job, { to: 'pending' })).toBe('moved');
      expect(rig.where('a1')).toEqual(['pending/q/p7/a1.json']);
    } finally { onStep(); await rig.dispose(); }
  });
});

describe('priority: a real worker takes the highest first', () => {
  it('10,000 at priority 9, then 20 at 0: the 20 start before any further priority-9 job (those already claimed excepted)', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const CONC = 4;
    const low = await spool.putMany(Array.from({ length: 10_000 }, () => ({ fn: './jobs.mjs#sleepRecord', args: [ledger, 5] })), { priority: 9 });
    expect(names(join(spool.dir, 'pending', 'default', 'p9'))).toHaveLength(10_000);
    const w = startWorker(spool.dir, [...FAST, '--concurrency', String(CONC), '--runtime', 'inline']);
    await until(() => ledgerLines(ledger).length >= 50, 30_000);
    const high = await spool.putMany(Array.from({ length: 20 }, () => ({ fn: './jobs.mjs#sleepRecord', args: [ledger, 5] })), { priority: 0 });
    const before = ledgerLines(ledger).length; // starts seen once the 20 were all published
    const highIds = new Set(high.map((j) => j.id));
    await until(() => ledgerLines(ledger).filter((l) => highIds.has(l.split(' ')[0]!)).length === 20, 30_000);
    w.kill('SIGTERM');
    await w.exited;
    const starts = ledgerLines(ledger).map((l) => l.split(' ')[0]!);
    const lastHigh = Math.max(...starts.map((id, i) => (highIds.has(id) ? i : -1)));
    // Priority-9 jobs started after the 20 were published and before the last of them started: at most the
    // jobs already claimed (the concurrency) plus those claimed while the batch was being published.
    const lowBetween = starts.slice(before, lastHigh + 1).filter((id) => !highIds.has(id)).length;
    expect(lowBetween).toBeLessThanOrEqual(2 * CONC);
    expect(low.length).toBe(10_000);
  }, 90_000);

  it('a job moved by hand into pending/QUEUE/ is priority 5: after p4, before p6', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const p6 = await spool.put('./jobs.mjs#sleepRecord', [ledger, 1], { priority: 6 });
    const p4 = await spool.put('./jobs.mjs#sleepRecord', [ledger, 1], { priority: 4 });
    const hand = await spool.put('./jobs.mjs#sleepRecord', [ledger, 1], { priority: 1 });
    mkdirSync(join(spool.dir, 'pending', 'default'), { recursive: true });
    renameSync(join(spool.dir, 'pending', 'default', 'p1', `${hand.id}.json`), join(spool.dir, 'pending', 'default', `${hand.id}.json`));
    const w = startWorker(spool.dir, [...FAST, '--exit-when-idle', '--concurrency', '1', '--runtime', 'inline']);
    expect(await w.exited).toBe(0);
    expect(ledgerLines(ledger).map((l) => l.split(' ')[0])).toEqual([p4.id, hand.id, p6.id]);
  });
});
