// A finished job moved back by hand (`mv done/Q/ID.json pending/Q/`, or from failed/) is a retry. The
// worker that claims it holds the OLD final record, with the old "run" token, until it records a new one.
// When that worker is SIGKILLed mid-run, recovery must not take the old record for the dead claim's own
// final record and "complete" it back into done/ (or failed/) with its old result: the token differs, so
// the job goes back to pending/ and runs again to a new result. The job counts its runs in a ledger
// (test/fixtures/runs.mjs), which attempts (reset by a retry) cannot hide.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, tempDir, until, zcq } from '../helpers.js';
import { claimedOf, events, jobIn, killWorkers, newSpool, pathsIn, putMany, readLedger, sleep, worker } from './util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

const FAST = ['--lease', '1s', '--heartbeat', '150ms', '--poll', '100ms'];
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('a finished job moved back to pending/ by hand, its new run killed', () => {
  it.each([
    { from: 'done' as const, plan: [0, 30_000, 0] },
    { from: 'failed' as const, plan: ['fail', 30_000, 0] },
  ])('from $from/: recovery does not put the old record back; the job runs again and ends with a new result', async ({ from, plan }) => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const [id] = await putMany(spool, 1, './runs.mjs#counted', [ledger, plan]);
    const starts = () => readLedger(ledger).filter((e) => e.event === 'start');

    // Run 1 ends in done/ (or failed/).
    const w1 = worker(spool, [...FAST, '--exit-when-idle']);
    expect(await w1.exited).toBe(0);
    const old = jobIn(spool, from, id!)!;
    expect(old).not.toBeNull();
    const lease1 = events(w1.output()).find((e) => e.event === 'worker.start')!.worker;
    expect(old.run).toMatch(new RegExp(`^${esc(lease1)}/\\d+$`));
    if (from === 'done') expect(old.result).toEqual({ run: 1, pid: w1.pid, attempt: 1 });
    else expect(old.failure.message).toBe('run 1 fails');

    // A person moves it back: one rename, as `zcq retry` does.
    renameSync(join(spool, from, 'default', `${id}.json`), join(spool, 'pending', 'default', `${id}.json`));

    // Run 2 starts under a new worker, which is SIGKILLed mid-run.
    const w2 = worker(spool, FAST);
    await until(() => starts().length === 2, 15_000);
    const lease2 = events(w2.output()).find((e) => e.event === 'worker.start')!.worker;
    expect(events(w2.output()).some((e) => e.event === 'job.retried' && e.id === id)).toBe(true);
    w2.kill('SIGKILL');
    await w2.exited;
    // The dangerous state: the dead lease holds the old final record (nothing is written at claim), and
    // its run token names run 1's claim, not this one.
    const held = claimedOf(spool, id!);
    expect(held).toHaveLength(1);
    expect(held[0]).toMatch(new RegExp(`/claimed/${esc(lease2)}/\\d+\\.${esc(id!)}\\.json$`));
    const heldJob = JSON.parse(readFileSync(held[0]!, 'utf8'));
    expect(heldJob.finished).toBeTruthy();
    expect(heldJob.run).toBe(old.run);

    await sleep(1300); // the 1 s lease lapses
    const r = zcq(spool, ['recover']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`job.recovered\t${lease2}\t${id}\t→ pending`);
    // Not back in done/ or failed/ with run 1's record: in pending/, started over and interrupted once.
    expect(jobIn(spool, 'done', id!)).toBeNull();
    expect(jobIn(spool, 'failed', id!)).toBeNull();
    expect(pathsIn(spool, 'pending', id!)).toEqual([join(spool, 'pending', 'default', `${id}.json`)]);
    const back = jobIn(spool, 'pending', id!)!;
    for (const k of ['finished', 'result', 'failure']) expect(back[k], k).toBeUndefined();
    // Its record now names the dead claim it was settled under, no longer run 1's.
    expect(back.run).toMatch(new RegExp(`^${esc(lease2)}/\\d+$`));
    expect(back.interrupts).toBe(1);
    expect(back.history.at(-1)).toMatchObject({ outcome: 'interrupted', worker: lease2, pid: w2.pid });

    // Run 3 ends with a new result, under a new run token.
    const w3 = worker(spool, FAST);
    await until(() => jobIn(spool, 'done', id!) !== null, 15_000);
    const lease3 = events(w3.output()).find((e) => e.event === 'worker.start')!.worker;
    w3.kill('SIGTERM');
    expect(await w3.exited).toBe(0);
    const done = jobIn(spool, 'done', id!)!;
    expect(done.result.run).toBe(3);
    expect(done.result.pid).toBe(w3.pid);
    expect(done.run).toMatch(new RegExp(`^${esc(lease3)}/\\d+$`));
    expect(done.run).not.toBe(old.run);
    expect(done.history.slice(-2).map((h: any) => [h.outcome, h.worker])).toEqual([['interrupted', lease2], ['done', lease3]]);
    expect(jobIn(spool, 'failed', id!)).toBeNull();
    expect(jobIn(spool, 'pending', id!)).toBeNull();
    expect(claimedOf(spool, id!)).toEqual([]);
    // The ledger: runs 1, 2 and 3, each once, by the three workers in turn.
    expect(starts().map((e) => [e.extra, e.pid])).toEqual([['run=1', w1.pid], ['run=2', w2.pid], ['run=3', w3.pid]]);
  }, 40_000);
});
