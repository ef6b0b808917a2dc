// zcq/testing: the helpers users get for their own suites, on real temp spools with real job modules.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JobNotFoundError } from '../dist/index.js';
import { createTestSpool, JobNotFinishedError, NotIdleError, type TestSpool } from '../dist/testing/index.js';
import { cleanupTemp, FIXTURES, readJob, ROOT, tempDir, whereIs } from './helpers.js';

const made: TestSpool[] = [];
async function testSpool(): Promise<TestSpool> {
  const t = await createTestSpool();
  made.push(t);
  return t;
}
afterEach(async () => { for (const t of made.splice(0)) await t.cleanup(); });
afterAll(cleanupTemp);

const roots = [FIXTURES];

describe('zcq/testing', () => {
  it('runUntilIdle runs a put job to done; result() returns its record', async () => {
    const t = await testSpool();
    expect(t.spool.durable).toBe(false);
    expect(t.spool.dir).toBe(join(t.tempDir, 'spool'));
    expect(readJob(join(t.spool.dir, 'zcq-spool.json'))).toMatchObject({ format: 2 });
    const job = await t.spool.put('./jobs.mjs#add', [2, 3]);
    expect(await t.idsIn('pending')).toEqual([job.id]);
    const summary = await t.runUntilIdle({ roots });
    expect(summary).toMatchObject({ done: 1, failed: 0, retried: 0 });
    const rec = await t.result(job.id);
    expect(rec.state).toBe('done');
    expect(rec.job.result).toBe(5);
    expect(await t.idsIn('done')).toEqual([job.id]);
    expect(await t.jobsIn('pending')).toEqual([]);
    expect(await t.jobsIn('claimed')).toEqual([]);
  });

  it('a failing job ends in failed/ with its error', async () => {
    const t = await testSpool();
    const bad = await t.spool.put('./jobs.mjs#boom', ['the disk is on fire']);
    const good = await t.spool.put('./jobs.mjs#echo', ['x']);
    const summary = await t.runUntilIdle({ roots });
    expect(summary).toMatchObject({ done: 1, failed: 1 });
    const failed = await t.jobsIn('failed');
    expect(failed.map((r) => r.id)).toEqual([bad.id]);
    const rec = await t.result(bad.id);
    expect(rec.state).toBe('failed');
    expect(rec.job.failure).toMatchObject({ name: 'Error', message: 'the disk is on fire', reason: 'error' });
    expect(rec.job.result).toBeUndefined();
    expect((await t.result(good.id)).job.result).toEqual(['x']);
  });

  it('result() of an unfinished or unknown job throws a typed error', async () => {
    const t = await testSpool();
    const job = await t.spool.put('./jobs.mjs#add', [1, 1]);
    const err = await t.result(job.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobNotFinishedError);
    expect(err).toMatchObject({ code: 'ZCQ_NOT_FINISHED', id: job.id, state: 'pending' });
    expect((err as Error).message).toContain(job.id);
    await expect(t.result('0000000000')).rejects.toBeInstanceOf(JobNotFoundError);
  });

  it('runUntilIdle times out with NotIdleError naming the open job, and stops its worker', async () => {
    const t = await testSpool();
    const fast = await t.spool.put('./jobs.mjs#add', [1, 2]);
    const slow = await t.spool.put('./jobs.mjs#sleep', [20_000]); // ignores its AbortSignal: the thread is terminated
    const started = Date.now();
    const err = await t.runUntilIdle({ roots, timeoutMs: 1500 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(err).toBeInstanceOf(NotIdleError);
    const e = err as InstanceType<typeof NotIdleError>;
    expect(e.code).toBe('ZCQ_NOT_IDLE');
    expect(e.message).toContain(slow.id);
    expect(e.message).toContain('./jobs.mjs#sleep');
    expect(e.message).not.toContain(fast.id);
    expect(e.open.map((j) => j.id)).toEqual([slow.id]);
    expect(e.summary.done).toBe(1);
    // The stopped worker handed the job back: pending, not stuck in a lease, and no attempt charged.
    expect(await t.idsIn('pending')).toEqual([slow.id]);
    expect(await t.idsIn('claimed')).toEqual([]);
    expect(whereIs(t.spool.dir, slow.id)).toEqual([`pending/default/${slow.id}.json`]);
    expect((await t.spool.get(slow.id)).job!.attempts).toBe(0);
  });

  it('deferred jobs wait until advanceDeferred() makes them due, then run', async () => {
    const t = await testSpool();
    const soon = await t.spool.put('./jobs.mjs#add', [1, 1], { in: '1h' });
    const later = await t.spool.put('./jobs.mjs#add', [2, 2], { at: new Date(Date.now() + 86_400_000) });
    expect(await t.runUntilIdle({ roots })).toMatchObject({ done: 0 }); // not due: idle at once
    expect(await t.idsIn('deferred')).toEqual([soon.id, later.id]);

    expect(await t.advanceDeferred('2h')).toBe(1); // as if two hours had passed: only `soon` is due
    expect(await t.idsIn('deferred')).toEqual([later.id]);
    expect(await t.runUntilIdle({ roots })).toMatchObject({ done: 1 });
    expect((await t.result(soon.id)).job.result).toBe(2);
    await expect(t.result(later.id)).rejects.toMatchObject({ code: 'ZCQ_NOT_FINISHED', state: 'deferred' });

    expect(await t.advanceDeferred()).toBe(1); // everything
    expect(await t.advanceDeferred()).toBe(0);
    expect(await t.runUntilIdle({ roots })).toMatchObject({ done: 1 });
    expect((await t.result(later.id)).job.result).toBe(4);
    expect(await t.idsIn('deferred')).toEqual([]);
  });

  it('runUntilIdle({ advanceDeferred: true }) runs retries through their backoff', async () => {
    const t = await testSpool();
    const job = await t.spool.put('./jobs.mjs#flaky', [3], { retries: 5, backoff: '1h' });
    const summary = await t.runUntilIdle({ roots, advanceDeferred: true });
    expect(summary).toMatchObject({ done: 1, retried: 2, failed: 0 });
    const rec = await t.result(job.id);
    expect(rec.job.result).toBe(3);
    expect(rec.job.history.map((a) => a.outcome)).toEqual(['retry', 'retry', 'done']);
  });

  it('cleanup stops a background worker, removes the temp folder, and is safe to call twice', async () => {
    const t = await createTestSpool();
    const job = await t.spool.put('./jobs.mjs#abortable', [20_000]);
    const worker = await t.startWorker({ roots });
    for (let i = 0; i < 200 && (await t.idsIn('claimed')).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await t.idsIn('claimed')).toEqual([job.id]);
    expect(existsSync(t.tempDir)).toBe(true);
    await Promise.all([t.cleanup(), t.cleanup()]);
    await t.cleanup();
    expect(existsSync(t.tempDir)).toBe(false);
    await expect(worker.done).resolves.toBeDefined();
    await expect(t.runUntilIdle({ roots })).rejects.toMatchObject({ code: 'ZCQ_USAGE' });
  });

  it("the package export 'zcq/testing' resolves to the built helpers", () => {
    expect(existsSync(join(ROOT, 'dist', 'testing', 'index.js'))).toBe(true);
    expect(readFileSync(join(ROOT, 'dist', 'testing', 'index.d.ts'), 'utf8')).toContain('createTestSpool');
    // A consumer project: node_modules/zcq -> this package, a script importing 'zcq/testing' by name.
    const app = tempDir('zcq-consumer-');
    mkdirSync(join(app, 'node_modules'));
    symlinkSync(ROOT, join(app, 'node_modules', 'zcq'), 'dir');
    writeFileSync(join(app, 'check.mjs'), `
      import * as testing from 'zcq/testing';
      const t = await testing.createTestSpool();
      const job = await t.spool.put('./jobs.mjs#add', [20, 22]);
      const summary = await t.runUntilIdle({ roots: [${JSON.stringify(FIXTURES)}] });
      const rec = await t.result(job.id);
      await t.cleanup();
      console.log(JSON.stringify({ exports: Object.keys(testing).sort(), done: summary.done, result: rec.job.result }));
    `);
    const r = spawnSync(process.execPath, [join(app, 'check.mjs')], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      exports: ['JobNotFinishedError', 'NotIdleError', 'TestSpool', 'createTestSpool'],
      done: 1,
      result: 42,
    });
  });
});
