// Clock skew on one file system: workers whose wall clocks are 5 minutes ahead and behind (libfaketime,
// Debian package `faketime`) neither steal a live lease from a normal worker nor keep a dead one alive.
// Lease ages are judged by file mtimes (stamped by the kernel / file server) plus monotonic time, so the
// skewed clocks never enter the comparison. FAKETIME_DONT_FAKE_MONOTONIC=1 keeps CLOCK_MONOTONIC real, as a
// wall-clock skew or step does on a real machine.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, tempDir, until } from '../helpers.js';
import { events, jobIn, killWorkers, newSpool, putMany, readLedger, worker } from './util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

const LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const skewed = (offset: string) => ({ LD_PRELOAD: LIB, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' });
const LEASE = ['--lease', '2s', '--heartbeat', '300ms', '--poll', '100ms'];

describe.skipIf(!existsSync(LIB))('clock skew (faketime ±5 min)', () => {
  it('skewed workers do not steal a live lease, and take a dead one within the lease bound', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    // Skewed workers serve another queue, so every job here is held by a normal worker; recovery is not
    // filtered by queue, so they still judge (and could steal) every lease.
    const ahead = worker(spool, [...LEASE, '--queue', 'other'], skewed('+5m'));
    const behind = worker(spool, [...LEASE, '--queue', 'other'], skewed('-5m'));
    await until(() => events(ahead.output()).some((e) => e.event === 'worker.start') && events(behind.output()).some((e) => e.event === 'worker.start'), 15_000);
    // Their clocks really are skewed: the time on their log lines.
    const skewOf = (p: typeof ahead) => Date.parse(events(p.output()).find((e) => e.event === 'worker.start')!.time) - Date.now();
    expect(skewOf(ahead)).toBeGreaterThan(290_000);
    expect(skewOf(behind)).toBeLessThan(-290_000);

    // 1. A live lease: a normal worker runs a 5 s job (2.5 leases) while the skewed ones watch.
    const [long] = await putMany(spool, 1, './jobs.mjs#abortableRecord', [ledger, 5000]);
    const normal = worker(spool, LEASE);
    await until(() => jobIn(spool, 'done', long!) !== null, 20_000);
    const j = jobIn(spool, 'done', long!)!;
    expect(j.history.map((h: any) => [h.outcome, h.pid])).toEqual([['done', normal.pid]]);
    expect(readLedger(ledger).filter((e) => e.id === long).map((e) => e.event)).toEqual(['start', 'end']);
    for (const p of [ahead, behind]) expect(events(p.output()).filter((e) => e.event === 'lease.expired' || e.event === 'job.recovered')).toEqual([]);

    // 2. A dead lease: a normal worker is SIGKILLed holding a job; only skewed workers are left to notice.
    normal.kill('SIGTERM');
    expect(await normal.exited).toBe(0);
    const [held] = await putMany(spool, 1, './jobs.mjs#abortableRecord', [ledger, 30_000], { queue: 'victim' });
    const victim = worker(spool, [...LEASE, '--queue', 'victim']);
    await until(() => readLedger(ledger).some((e) => e.id === held && e.event === 'start'), 15_000);
    victim.kill('SIGKILL');
    const killedAt = Date.now();
    await until(() => jobIn(spool, 'pending', held!) !== null, 10_000, 20);
    const tookMs = Date.now() - killedAt;
    // Not before the lease can have lapsed (last beat ≤ 300 ms before the kill), and within lease + poll + slack.
    expect(tookMs).toBeGreaterThan(1600);
    expect(tookMs).toBeLessThan(2000 + 100 + 1500);
    // The recoverer logs job.recovered just after the move this test saw: its line may still be on the way.
    const recoveredBy = () => [ahead, behind].filter((p) => events(p.output()).some((e) => e.event === 'job.recovered' && e.id === held));
    await until(() => recoveredBy().length > 0, 5_000).catch(() => {});
    const by = recoveredBy();
    expect(by).toHaveLength(1);
    const back = jobIn(spool, 'pending', held!)!;
    expect(back.history.map((h: any) => [h.outcome, h.pid])).toEqual([['interrupted', victim.pid]]);
    console.log(`skew: live 5 s job under a 2 s lease kept by its normal worker with workers at +5m/-5m watching; dead lease taken ${tookMs} ms after SIGKILL by the ${by[0] === ahead ? '+5m' : '-5m'} worker`);
  }, 60_000);
});
