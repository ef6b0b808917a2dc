// Many worker processes racing over the same pending jobs: every job runs exactly once.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Spool } from '../dist/index.js';
import { cleanupTemp, killAll, ledgerLines, names, startWorker, tempDir } from './helpers.js';

afterEach(killAll);
afterAll(cleanupTemp);

describe('racing workers', () => {
  it('4 worker processes × 1,000 jobs: each job runs once and ends in done/', async () => {
    const dir = join(tempDir(), 'spool');
    const ledger = join(tempDir(), 'ledger');
    const spool = await Spool.open(dir, { durable: false });
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) ids.add((await spool.put('./jobs.mjs#record', [ledger, String(i)])).id);
    const workers = Array.from({ length: 4 }, () => startWorker(dir, ['--exit-when-idle', '--concurrency', '4', '--poll', '50ms']));
    const codes = await Promise.all(workers.map((w) => w.exited));
    expect(codes).toEqual([0, 0, 0, 0]);
    const lines = ledgerLines(ledger);
    const ran = lines.map((l) => l.split(' ')[0]!);
    expect(ran.length).toBe(1000);
    expect(new Set(ran)).toEqual(ids);
    expect(names(join(dir, 'done')).length).toBe(1000);
    expect(names(join(dir, 'pending')).length + names(join(dir, 'failed')).length).toBe(0);
    // the work was shared: more than one worker process ran jobs
    expect(new Set(lines.map((l) => l.split(' ')[2])).size).toBeGreaterThan(1);
  }, 120_000);
});
