// A real `zcq worker` process audits its own lease folder (transitions/audit.ts): a job moved by hand into
// its claimed folder under a claim number it will not use, and a dead lease left nested in it, would wait
// there for ever (recovery takes only dead leases). Each runs within a few heartbeats, once.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, ledgerLines, tempDir, until } from '../helpers.js';
import { events, jobIn, killWorkers, newSpool, putMany, worker } from '../recovery/util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

const HEARTBEAT_MS = 200;

describe('a live worker\'s own lease folder', () => {
  it('a job moved into it by hand (999999.ID.json), and a dead lease left nested in it, both run within a few heartbeats, once; its own running job is left alone', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    // The jobs are made in a second spool and moved in by hand: the worker never saw them pending.
    const other = await newSpool();
    const [stray, nested] = await putMany(other, 2, './jobs.mjs#record', [ledger, 'ran']);
    // A job of its own that runs across several audits: held all along, never given back.
    const [own] = await putMany(spool, 1, './jobs.mjs#sleepRecord', [ledger, 2000]);
    const w = worker(spool, ['--lease', '6s', '--heartbeat', `${HEARTBEAT_MS}ms`, '--poll', '100ms', '--concurrency', '3']);
    await until(() => events(w.output()).some((e) => e.event === 'worker.start'), 8000);
    const lease = events(w.output()).find((e) => e.event === 'worker.start')!.worker as string;
    const mine = join(spool, 'claimed', lease);

    const dead = join(mine, 'host-x.4242.abcdef.dead');
    mkdirSync(dead);
    renameSync(join(other, 'pending', 'default', `${nested}.json`), join(dead, `3.${nested}.json`));
    renameSync(join(other, 'pending', 'default', `${stray}.json`), join(mine, `999999.${stray}.json`));
    const t0 = performance.now();

    // Audits run every 3 heartbeats; a stray goes back at its second: about 6 heartbeats, plus a claim.
    await until(() => jobIn(spool, 'done', stray!) !== null && jobIn(spool, 'done', nested!) !== null, 20 * HEARTBEAT_MS + 4000, 50)
      .catch((err) => { throw new Error(`${err.message}\n${w.output()}`); });
    const ms = Math.round(performance.now() - t0);
    await until(() => jobIn(spool, 'done', own!) !== null, 5000, 50);
    console.log(`[stray] a stray and a nested dead lease in a live worker's folder (heartbeat ${HEARTBEAT_MS} ms): both done ${ms} ms after the mv`);

    w.kill('SIGTERM');
    expect(await w.exited).toBe(0);
    expect(ledgerLines(ledger).map((l) => l.split(' ')[0]).sort()).toEqual([stray, nested, own].sort());
    expect(jobIn(spool, 'done', own!)).toMatchObject({ attempts: 1, interrupts: 0 });
    const log = events(w.output());
    expect(log.filter((e) => e.event === 'lease.stray').map((e) => [e.id ?? e.lease, e.to])).toEqual(expect.arrayContaining([[stray, 'pending'], ['host-x.4242.abcdef', 'recovered']]));
    expect(log.filter((e) => e.event === 'lease.stray')).toHaveLength(2);
    expect(log.filter((e) => e.event === 'job.recovered').map((e) => [e.worker, e.id, e.to])).toEqual([['host-x.4242.abcdef', nested, 'pending']]);
    // The stray never ran before: one attempt, nothing counted against it. The nested job was a dead worker's run: an interrupted attempt, then this one.
    expect(jobIn(spool, 'done', stray!)).toMatchObject({ attempts: 1, interrupts: 0 });
    expect(jobIn(spool, 'done', nested!)).toMatchObject({ attempts: 2, interrupts: 1 });
    expect(readdirSync(join(spool, 'claimed'))).toEqual([]);
  }, 15_000);
});
