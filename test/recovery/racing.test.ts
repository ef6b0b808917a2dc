// Racing claimers: 16 worker processes start together on one pending/ of 5,000 jobs. Each job is claimed,
// and run, exactly once: the ledger the job appends to has 5,000 lines and no id twice.
import { afterAll, afterEach, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, ledgerLines, tempDir } from '../helpers.js';
import { claimedFiles, events, killWorkers, namesIn, newSpool, putMany, worker } from './util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

it('16 processes scanning one pending/ of 5,000 jobs claim each exactly once', async () => {
  const spool = await newSpool();
  const ledger = join(tempDir(), 'ledger');
  const ids = await putMany(spool, 5000, './jobs.mjs#record', [ledger]);
  const t0 = Date.now();
  const ws = Array.from({ length: 16 }, () => worker(spool, ['--exit-when-idle', '--poll', '100ms', '--concurrency', '1', '--lease', '10s'], {}, ['--relaxed']));
  const codes = await Promise.all(ws.map((w) => w.exited));
  const ms = Date.now() - t0;
  expect(codes).toEqual(Array(16).fill(0));
  const runs = ledgerLines(ledger).map((l) => l.split(' ')[0]!);
  const unique = new Set(runs);
  expect(runs.length).toBe(5000);
  expect(unique.size).toBe(5000);
  expect([...unique].sort()).toEqual([...ids].sort());
  expect(readdirSync(join(spool, 'done', 'default'))).toHaveLength(5000);
  expect(namesIn(spool, 'pending')).toEqual([]);
  expect(claimedFiles(spool)).toEqual([]);
  // It was a race: the work was spread over many processes, and their own counts add up.
  const perWorker = ws.map((w) => events(w.output()).find((e) => e.event === 'worker.stop')?.done ?? 0);
  expect(perWorker.reduce((a: number, b: number) => a + b, 0)).toBe(5000);
  expect(perWorker.filter((n: number) => n > 0).length).toBeGreaterThanOrEqual(8);
  console.log(`racing: 5000 jobs, 16 processes, ${ms} ms, per process ${perWorker.join(' ')}`);
}, 120_000);
