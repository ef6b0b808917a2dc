// A person removes a folder of the layout beside a running worker: `rm -rf SPOOL/tmp` to clear what looks like
// temporary files, `rm -rf SPOOL/hold` to drop held jobs. Before, the first took every heartbeat (its
// temporary could not be created), then the worker's lease and its running job, and failed every put; the
// second failed every `zcq hold` with a raw mkdir ENOENT; without workers/ every heartbeat failed too, without
// claimed/ every new lease, without quarantine/ every quarantine, and without progress/ a job's progress()
// failed the job. Now each is made again by the next write into it
// (fsops.ts remakeWhenGone, layout.ts makeQueueFolders) and nothing is lost.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, until, zcq } from '../helpers.js';
import { claimedOf, events, jobIn, killWorkers, newSpool, putMany, sleep, worker } from './util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

const FAST = ['--lease', '1s', '--heartbeat', '150ms', '--poll', '100ms'];

describe('a folder of the layout removed by hand beside a running worker', () => {
  it('rm -rf tmp/ while a job runs: the worker keeps its lease, the job ends done, later puts and jobs work, tmp/ is back with its mode', async () => {
    const spool = await newSpool();
    const mode = statSync(join(spool, 'tmp')).mode & 0o7777;
    const w = worker(spool, FAST);
    const [slow] = await putMany(spool, 1, './jobs.mjs#sleep', [2_500]);
    await until(() => claimedOf(spool, slow!).length === 1, 10_000);
    rmSync(join(spool, 'tmp'), { recursive: true });
    await sleep(1_500); // more than the lease: every heartbeat in it had to create its temporary
    rmSync(join(spool, 'tmp'), { recursive: true, force: true });
    const put = zcq(spool, ['put', './jobs.mjs#add', '1', '2']);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
    const id = put.stdout.trim();
    await until(() => jobIn(spool, 'done', slow!) !== null && jobIn(spool, 'done', id) !== null, 15_000);
    expect(jobIn(spool, 'done', slow!)!.attempts).toBe(1);
    expect(jobIn(spool, 'done', id)!.result).toBe(3);
    const evs = events(w.output());
    expect(evs.filter((e) => /^lease\.(lost|stale|renew\.failed|fenced)$/.test(e.event))).toEqual([]);
    expect(statSync(join(spool, 'tmp')).mode & 0o7777).toBe(mode);
  });

  it('rm -rf workers/ beside a lone worker: its next beat makes it again, and it keeps its lease and its job', async () => {
    const spool = await newSpool();
    const w = worker(spool, FAST);
    const [slow] = await putMany(spool, 1, './jobs.mjs#sleep', [2_000]);
    await until(() => claimedOf(spool, slow!).length === 1, 10_000);
    rmSync(join(spool, 'workers'), { recursive: true });
    await until(() => jobIn(spool, 'done', slow!) !== null, 15_000);
    expect(jobIn(spool, 'done', slow!)!.attempts).toBe(1);
    expect(statSync(join(spool, 'workers')).isDirectory()).toBe(true);
    const evs = events(w.output());
    expect(evs.filter((e) => /^lease\.(lost|stale|renew\.failed|fenced)$/.test(e.event))).toEqual([]);
  });

  it('rm -rf claimed/, quarantine/ and progress/ beside a worker: it takes a new lease, quarantines a corrupt job, and a job reporting progress ends done', async () => {
    const spool = await newSpool();
    const w = worker(spool, FAST);
    await until(() => events(w.output()).some((e) => e.event === 'worker.start'), 10_000);
    for (const d of ['claimed', 'quarantine', 'progress']) rmSync(join(spool, d), { recursive: true });
    mkdirSync(join(spool, 'pending', 'default'), { recursive: true });
    const corrupt = '0mx8zzzzz-0a7cdxv-1abc';
    writeFileSync(join(spool, 'pending', 'default', `${corrupt}.json`), '{bad');
    const [id] = await putMany(spool, 1, './jobs.mjs#progress', []);
    await until(() => jobIn(spool, 'done', id!) !== null && existsSync(join(spool, 'quarantine', `${corrupt}.json`)), 15_000);
    expect(jobIn(spool, 'done', id!)!.result).toBe('ok');
    expect(JSON.parse(readFileSync(join(spool, 'progress', `${id}.json`), 'utf8')).value).toEqual({ step: 2 });
    expect(readFileSync(join(spool, 'quarantine', `${corrupt}.json.reason`), 'utf8')).toMatch(/not valid JSON/);
    const evs = events(w.output());
    expect(evs.filter((e) => /error|failed/.test(e.event))).toEqual([]);
  });

  it('rm -rf hold/ and pending/: zcq hold and zcq release still work, and the worker runs the released job', async () => {
    const spool = await newSpool();
    const [id] = await putMany(spool, 1, './jobs.mjs#add', [2, 3]);
    rmSync(join(spool, 'hold'), { recursive: true });
    const held = zcq(spool, ['hold', id!]);
    expect(held.stderr).toBe('');
    expect(held.code).toBe(0);
    rmSync(join(spool, 'pending'), { recursive: true });
    const w = worker(spool, FAST);
    await sleep(300);
    const released = zcq(spool, ['release', id!]);
    expect(released.stderr).toBe('');
    expect(released.code).toBe(0);
    await until(() => jobIn(spool, 'done', id!) !== null, 15_000);
    expect(jobIn(spool, 'done', id!)!.result).toBe(5);
    expect(events(w.output()).filter((e) => /error/.test(e.event))).toEqual([]);
  });
});
