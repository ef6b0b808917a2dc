// The worker's loop gives the event loop a turn every TURN_EVERY_MS (worker.ts loop). Jobs that end with no
// I/O to wait for — the inline runtime in relaxed mode — otherwise chain claim, run and finish through
// promises alone, and the worker's timers (its heartbeat among them) wait for the whole drain. A real
// `zcq worker` process; the probe is a timer the job module starts in it (test/fixtures/jobs.mjs spinProbe).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Spool } from '../../dist/index.js';
import { cleanupTemp, idsIn, tempDir, until } from '../helpers.js';
import { events, killWorkers, newSpool, sleep, worker } from '../recovery/util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

describe('the worker\'s event loop', () => {
  it('inline, relaxed: a timer in the worker process still fires at least once a second through a drain of 2,000 jobs that never yield (each 1 ms of work)', async () => {
    const spool = await newSpool();
    const probe = join(tempDir(), 'gap');
    const s = await Spool.open(spool, { durable: false });
    await s.putMany(Array.from({ length: 2000 }, () => ({ fn: './jobs.mjs#spinProbe', args: [probe, 1] })));
    await s.close();
    const w = worker(spool, ['--runtime', 'inline', '--concurrency', '8', '--poll', '100ms'], {}, ['--relaxed']);
    await until(() => idsIn(spool, 'done').length === 2000, 90_000, 200);
    // The probe ticks again after the drain, so a drain it never saw a tick in is measured whole.
    await until(() => existsSync(probe), 5_000);
    await sleep(300);
    const gap = Number(readFileSync(probe, 'utf8'));
    w.kill('SIGTERM');
    await w.exited;
    // 2,000 × 1 ms on one thread: the drain took at least 2 s, so a gap under 1 s means the loop turned.
    expect(gap).toBeLessThan(1000);
    expect(events(w.output()).filter((e) => e.event === 'lease.fenced')).toEqual([]);
  }, 120_000);
});
