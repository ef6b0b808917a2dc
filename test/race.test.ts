// Many worker processes racing over the same pending jobs: every job runs exactly once, and each outcome
// lands in its own file although outcomes are written into recycled inodes.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync, linkSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../dist/index.js';
import { cleanupTemp, donePath, idsIn, killAll, ledgerLines, names, readJob, startWorker, tempDir, whereIs } from './helpers.js';

afterEach(killAll);
afterAll(cleanupTemp);

describe('racing workers', () => {
  it('4 worker processes × 1,000 jobs: each job runs once and ends in done/', async () => {
    const dir = join(tempDir(), 'spool');
    const ledger = join(tempDir(), 'ledger');
    const spool = await Spool.init(dir, { durable: false });
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) ids.add((await spool.put('./jobs.mjs#record', [ledger, String(i)])).id);
    const workers = Array.from({ length: 4 }, () => startWorker(dir, ['--exit-when-idle', '--concurrency', '4', '--poll', '50ms']));
    const codes = await Promise.all(workers.map((w) => w.exited));
    expect(codes).toEqual([0, 0, 0, 0]);
    const lines = ledgerLines(ledger);
    const ran = lines.map((l) => l.split(' ')[0]!);
    expect(ran.length).toBe(1000);
    expect(new Set(ran)).toEqual(ids);
    expect(idsIn(dir, 'done', 'default')).toEqual([...ids].sort());
    expect(idsIn(dir, 'pending').length + idsIn(dir, 'failed').length + idsIn(dir, 'claimed').length).toBe(0);
    expect(names(join(dir, 'claimed'))).toEqual([]); // every lease folder was given up
    // the work was shared: more than one worker process ran jobs
    expect(new Set(lines.map((l) => l.split(' ')[2])).size).toBeGreaterThan(1);
    // Outcomes are written into recycled inodes (Lease spares): each done/ file is its own job's record,
    // with no second name anywhere, and the workers left no spare behind in tmp/.
    // The final record carries its run token LEASE/SEQ (the lease that ran it, its claim number).
    const leases = new Set<string>();
    for (const id of ids) {
      const path = donePath(dir, id);
      const job = readJob(path);
      expect(job.id).toBe(id);
      expect(job.history.at(-1).outcome).toBe('done');
      expect(job.run).toMatch(/^[^/]+\/\d+$/);
      leases.add(job.run.split('/')[0]);
      expect(statSync(path).nlink).toBe(1);
    }
    expect(leases.size).toBeGreaterThan(1);
    expect(whereIs(dir, [...ids][0]!)).toEqual([`done/default/${[...ids][0]}.json`]);
    expect(readdirSync(join(dir, 'tmp')).filter((n) => !n.startsWith('.probe-'))).toEqual([]);
  }, 120_000);
});

describe('spare inodes', () => {
  it('are written only while nothing else names them', async () => {
    const { writeSpare } = await import('../dist/spool/transitions/finish.js');
    const d = tempDir();
    const live = join(d, 'live.json');
    const spare = join(d, '.spare');
    writeFileSync(live, '{"live":true}');
    linkSync(live, spare); // a spare that still names a live job file (a crash between link and replace)
    expect(await writeSpare(spare, '{"outcome":1}', true)).toBe(false);
    expect(readFileSync(live, 'utf8')).toBe('{"live":true}');
    expect(existsSync(spare)).toBe(false);
    writeFileSync(spare, 'x'.repeat(100));
    expect(await writeSpare(spare, '{"outcome":2}', false)).toBe(true);
    expect(readFileSync(spare, 'utf8')).toBe('{"outcome":2}');
    expect(await writeSpare(join(d, 'gone'), '{}', false)).toBe(false);
  });
});
