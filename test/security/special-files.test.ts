// FIFOs, a JSON bomb and plain files where folders belong, planted by one member (zcqb): the other
// member's worker (zcqa) and every reading command finish in bounded time, the worker keeps running other
// jobs and stops promptly on SIGTERM, and every job runs exactly once.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BOUND_MS, canRun, ledgerCounts, plantFifo, plantFile, putRecord, runAs, setup, snapshot, startWorker,
  stopWorker, teardown, until, whereIs, zcq, type Rig,
} from './rig.js';

let r: Rig;
beforeAll(() => { r = setup('special'); });
afterAll(() => teardown());

/** Reading commands as `who`: each exits within the bound, without a stack trace. */
function readersFinish(who: 'zcqa' | 'zcqb' | 'root', extra: string[][] = []): void {
  for (const args of [['status'], ['ls'], ['ls', 'claimed'], ['ls', 'deferred'], ['doctor'], ['--json', 'status'], ...extra]) {
    const res = zcq(r, who, args);
    expect(res.timedOut, `zcq ${args.join(' ')} as ${who} hung`).toBe(false);
    expect(res.signal, `zcq ${args.join(' ')}`).toBe(null);
    expect(res.stderr, `zcq ${args.join(' ')}`).not.toMatch(/^\s+at /m);
  }
}

function expectDoneOnce(ids: string[]): void {
  const counts = ledgerCounts(r);
  for (const id of ids) expect(counts.get(id), `job ${id} runs once`).toBe(1);
  for (const id of ids) expect(whereIs(r, id)).toEqual([expect.stringMatching(/^done\//)]);
}

describe.runIf(canRun)('special files planted by a co-member', () => {
  it('FIFOs at workers/x.json (with a lease folder claimed/x/), in tmp/ and as pending/default/ID.json: nothing blocks', async () => {
    const first = [putRecord(r, 'zcqa'), putRecord(r, 'zcqb')];
    const before = snapshot(r);
    const sp = r.spool;
    const lease = 'evilhost.4242.fifofi';
    expect(runAs(r, 'zcqb', ['mkdir', '-m', '2775', join(sp, 'claimed', lease)]).code).toBe(0);
    plantFifo(r, 'zcqb', join(sp, 'workers', `${lease}.json`));
    expect(runAs(r, 'zcqb', ['touch', '-h', '-d', '1 hour ago', join(sp, 'claimed', lease)]).code).toBe(0);
    plantFifo(r, 'zcqb', join(sp, 'tmp', 'fifo'));
    plantFifo(r, 'zcqb', join(sp, 'tmp', '.hb-fifo'));
    plantFifo(r, 'zcqb', join(sp, 'pending', 'default', 'fifojob.json'));
    plantFifo(r, 'zcqb', join(sp, 'pending', 'loosefifo.json'));
    readersFinish('zcqa', [['show', 'fifojob'], ['show', first[0]!], ['wait', '--timeout', '1s', first[0]!]]);
    readersFinish('root');
    const w = startWorker(r, 'zcqa');
    await until(() => first.every((id) => ledgerCounts(r).get(id) === 1), BOUND_MS, 'the first jobs', () => w.output());
    // The worker goes on with new jobs after meeting the FIFOs.
    const later = [putRecord(r, 'zcqb'), putRecord(r, 'zcqa')];
    await until(() => later.every((id) => whereIs(r, id)[0]?.startsWith('done/')), BOUND_MS, 'later jobs', () => w.output());
    // The FIFO job was quarantined as itself (a FIFO), with a reason.
    await until(() => !fs.existsSync(join(sp, 'pending', 'default', 'fifojob.json')), BOUND_MS, 'the FIFO job set aside');
    const q = fs.readdirSync(join(sp, 'quarantine'));
    const fifo = q.find((n) => n.startsWith('fifojob.json') && !n.endsWith('.reason'));
    expect(fifo && fs.lstatSync(join(sp, 'quarantine', fifo)).isFIFO()).toBe(true);
    expect(fs.readFileSync(join(sp, 'quarantine', `${fifo}.reason`), 'utf8')).toMatch(/FIFO/);
    const stopped = await stopWorker(w);
    expect(stopped.signal, 'stops on SIGTERM without a kill').toBe(null);
    expect(stopped.ms).toBeLessThan(BOUND_MS);
    readersFinish('zcqb');
    expect(snapshot(r)).toEqual(before);
    expectDoneOnce([...first, ...later]);
  });

  it("a deeply nested job file ('[' x 100000) is quarantined with a reason; other jobs run; nothing aborts", async () => {
    const good = [putRecord(r, 'zcqa')];
    const pend = join(r.spool, 'pending', 'default');
    plantFile(r, 'zcqb', join(pend, 'bomb1.json'), '['.repeat(100_000));
    // Valid JSON, nested 100000 deep where a job field is expected: the parser must not recurse into it.
    plantFile(r, 'zcqb', join(pend, 'bomb2.json'), `{"zcq":1,"id":"bomb2","fn":"./jobs.mjs#record","args":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    // ... and as a loose file in pending/ (adopted, or quarantined, by the periodic pass).
    plantFile(r, 'zcqb', join(r.spool, 'pending', 'bomb3.json'), `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    good.push(putRecord(r, 'zcqb'));
    readersFinish('zcqa');
    // `zcq show` of a job nested 100000 deep says it is not a job (the depth limit, src/job/json-limits.ts), in one line.
    const show = zcq(r, 'zcqa', ['show', 'bomb2']);
    expect(show.timedOut).toBe(false);
    expect(show.stderr).not.toMatch(/^\s+at /m);
    const w = startWorker(r, 'zcqa');
    await until(() => good.every((id) => whereIs(r, id)[0]?.startsWith('done/')), BOUND_MS, 'the good jobs', () => w.output());
    await until(() => ['bomb1', 'bomb2'].every((b) => !fs.existsSync(join(pend, `${b}.json`))) && !fs.existsSync(join(r.spool, 'pending', 'bomb3.json')), BOUND_MS, 'the bombs set aside', () => w.output());
    const after = [putRecord(r, 'zcqb')];
    await until(() => after.every((id) => whereIs(r, id)[0]?.startsWith('done/')), BOUND_MS, 'a job after the bombs', () => w.output());
    const stopped = await stopWorker(w);
    expect(stopped.signal, w.output()).toBe(null);
    const log = w.output();
    expect(log).not.toMatch(/Maximum call stack|RangeError|job\.error/);
    const q = join(r.spool, 'quarantine');
    for (const b of ['bomb1', 'bomb3']) {
      const n = fs.readdirSync(q).find((x) => x.startsWith(`${b}.json`) && !x.endsWith('.reason'));
      expect(n, `${b} quarantined`).toBeDefined();
      expect(fs.readFileSync(join(q, `${n}.reason`), 'utf8').length).toBeGreaterThan(10);
    }
    // bomb2 is valid JSON nested past the depth limit (src/job/json-limits.ts): quarantined with a reason, never lost.
    const where2 = whereIs(r, 'bomb2');
    expect(where2, `bomb2 is in exactly one place: ${where2}`).toEqual([expect.stringMatching(/^quarantine\/bomb2\.json/)]);
    const n2 = fs.readdirSync(q).find((x) => x.startsWith('bomb2.json') && !x.endsWith('.reason'))!;
    expect(fs.readFileSync(join(q, `${n2}.reason`), 'utf8')).toMatch(/nested deeper than/);
    expectDoneOnce([...good, ...after]);
  });

  it('plain files named like deferred buckets (deferred/default/20200101T0000, deferred/20200101T0000): promotion, recovery and cron go on', async () => {
    const d0 = zcq(r, 'zcqa', ['put', '--in', '1s', './jobs.mjs#record', r.ledger]).stdout.trim();
    expect(whereIs(r, d0)).toEqual([expect.stringMatching(/^deferred\/default\//)]);
    plantFile(r, 'zcqb', join(r.spool, 'deferred', 'default', '20200101T0000'), 'not a folder\n');
    plantFile(r, 'zcqb', join(r.spool, 'deferred', '20200101T0000'), 'not a folder either\n');
    // A job deferred for 1 s, another put later, a cron schedule, and a dead lease to recover.
    const ids = [d0, zcq(r, 'zcqb', ['put', '--in', '1s', './jobs.mjs#record', r.ledger]).stdout.trim(), putRecord(r, 'zcqa')];
    expect(zcq(r, 'zcqb', ['cron', 'add', 'b', '*/1 * * * * *', './jobs.mjs#record', r.ledger]).code).toBe(0);
    readersFinish('zcqa', [['show', ids[0]!], ['ls', 'deferred']]);
    const ran0 = ledgerCounts(r).size;
    const w = startWorker(r, 'zcqa');
    await until(() => ids.every((id) => whereIs(r, id)[0]?.startsWith('done/')), BOUND_MS, 'the deferred job promoted and run', () => w.output());
    await until(() => ledgerCounts(r).size >= ran0 + 4, BOUND_MS, 'cron runs', () => w.output());
    readersFinish('zcqb', [['show', ids[0]!]]);
    expect((await stopWorker(w)).signal).toBe(null);
    expect(zcq(r, 'zcqb', ['cron', 'rm', 'b']).code).toBe(0);
    for (const [id, n] of ledgerCounts(r)) expect(n, id).toBe(1);
    // The odd files were set aside (or left), never made to fail the passes.
    expect(w.output()).not.toMatch(/ENOTDIR.*ENOTDIR.*ENOTDIR/s);
  });

  it("a FIFO or a file where a queue's folder belongs: the other member's put fails in one line naming it and what to do, nothing written", () => {
    plantFifo(r, 'zcqb', join(r.spool, 'pending', 'fq'));
    plantFile(r, 'zcqb', join(r.spool, 'pending', 'pq'), 'not a folder\n');
    for (const [queue, input] of [['fq', undefined], ['pq', undefined], ['pq', `{"fn":"./jobs.mjs#record","args":[${JSON.stringify(r.ledger)}]}\n{"fn":"./jobs.mjs#record","args":[${JSON.stringify(r.ledger)}]}\n`]] as const) {
      const tmpBefore = fs.readdirSync(join(r.spool, 'tmp')).length;
      const res = input === undefined
        ? zcq(r, 'zcqa', ['put', '-q', queue, './jobs.mjs#record', r.ledger])
        : zcq(r, 'zcqa', ['put', '-q', queue, '-'], { input });
      expect(res.timedOut, `put -q ${queue} hung on what stands at pending/${queue}`).toBe(false);
      expect(res.code).toBe(1);
      expect(res.stdout).toBe('');
      const lines = res.stderr.trim().split('\n');
      expect(lines, res.stderr).toHaveLength(1);
      // The path, the errno, and a remedy that fits it (not "free space or fix permissions").
      expect(lines[0]).toContain(join(r.spool, 'pending', queue));
      expect(lines[0]).toMatch(/cannot write \(EEXIST\); nothing was published — something that is not a folder stands on that path: see `ls -l` and remove it/);
      expect(fs.readdirSync(join(r.spool, 'tmp')).length).toBe(tmpBefore);
    }
    expect(fs.lstatSync(join(r.spool, 'pending', 'fq')).isFIFO()).toBe(true);
    expect(fs.readFileSync(join(r.spool, 'pending', 'pq'), 'utf8')).toBe('not a folder\n');
    fs.rmSync(join(r.spool, 'pending', 'fq'));
    fs.rmSync(join(r.spool, 'pending', 'pq'));
  });
});

