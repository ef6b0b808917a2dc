// A put into a queue that has no folder yet makes pending/QUEUE/: the worker's watch of pending/ sees the
// folder arrive and serves the queue at once (claimer.ts, queuesStale), not at its next poll.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { cleanupTemp, ledgerLines, tempDir, until } from '../helpers.js';
import { events, jobIn, killWorkers, newSpool, putMany, worker } from '../recovery/util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

describe('a queue made while a worker runs', () => {
  it('its first job starts long before the worker\'s next poll (--poll 30s)', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const w = worker(spool, ['--poll', '30s', '--concurrency', '2']);
    await until(() => events(w.output()).some((e) => e.event === 'worker.start'), 15_000);
    // The worker has read the queues (none) at its start; its next poll is 30 s away.
    await new Promise((res) => setTimeout(res, 300));
    const [id] = await putMany(spool, 1, './jobs.mjs#record', [ledger, 'ran'], { queue: 'fresh' });
    // 20 s, for a loaded machine: a job found only by the poll (30 s after the worker's start) comes later.
    await until(() => jobIn(spool, 'done', id!) !== null, 20_000, 25)
      .catch((err) => { throw new Error(`${err.message}: the job was not run before the worker's next poll\n${w.output()}`); });
    expect(ledgerLines(ledger).map((l) => l.split(' ')[0])).toEqual([id]);
    w.kill('SIGTERM');
    expect(await w.exited).toBe(0);
  }, 45_000);
});
