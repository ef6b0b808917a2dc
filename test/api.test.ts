// The typed API: the same operations as the CLI, in-process, on a real folder.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { existsSync, writeFileSync } from 'node:fs';
import { Spool, UsageError, JobNotFoundError, NotASpoolError } from '../dist/index.js';
import { cleanupTemp, FIXTURES, idsIn, names, tempDir } from './helpers.js';

afterAll(cleanupTemp);

describe('Spool API', () => {
  it('put, get, list, runWorker, wait', async () => {
    const spool = await Spool.init(join(tempDir(), 'spool'));
    const a = await spool.put('./jobs.mjs#add', [1, 2], { queue: 'math' });
    const b = await spool.put('./jobs.mjs#progress', []);
    expect((await spool.get(a.id)).state).toBe('pending');
    expect((await spool.list({ states: ['pending'], queue: 'math' })).map((r) => r.id)).toEqual([a.id]);
    const worker = await spool.runWorker({ roots: [FIXTURES], concurrency: 2, pollMs: 50, exitWhenIdle: true });
    const [ra, rb] = await spool.wait([a.id, b.id], { timeoutMs: 20_000 });
    expect(ra!.state).toBe('done');
    expect(ra!.job!.result).toBe(3);
    expect(rb!.job!.result).toBe('ok');
    expect((await spool.progress(b.id))?.value).toEqual({ step: 2 });
    const summary = await worker.done;
    expect(summary.done).toBe(2);
    expect(names(join(spool.dir, 'claimed'))).toEqual([]);
    expect(idsIn(spool.dir, 'done', 'math')).toEqual([a.id]);
    expect(idsIn(spool.dir, 'done', 'default')).toEqual([b.id]);
  });

  it('status counts states and queues (done and hold too) and sees a live worker', async () => {
    // Spool.open creates only when asked to (create: true), as `zcq init` does.
    const spool = await Spool.open(join(tempDir(), 'spool'), { create: true });
    await spool.put('./jobs.mjs#sleep', [1500], { queue: 'slow' });
    await spool.put('./jobs.mjs#add', [1, 1], { queue: 'fast', in: '1h' });
    const held = await spool.put('./jobs.mjs#add', [2, 2], { queue: 'fast' });
    expect((await spool.hold([held.id]))[0]).toMatchObject({ ok: true, to: 'hold' });
    const worker = await spool.runWorker({ roots: [FIXTURES], concurrency: 1, pollMs: 50 });
    await new Promise((r) => setTimeout(r, 400));
    const s = await spool.status();
    expect(s.counts).toEqual({ pending: 0, claimed: 1, deferred: 1, done: 0, failed: 0, hold: 1, waiting: 0 });
    // Counted from folders: a claimed job's queue is not in its name (claimed/LEASE/SEQ.ID.json).
    expect(s.queues.fast).toEqual({ deferred: 1, hold: 1 });
    expect(s.queues.slow).toBeUndefined();
    expect(s.workers.filter((w) => w.alive)).toHaveLength(1);
    await worker.stop();
    // stop() drained the running job (within the grace period) rather than abandoning it
    expect((await spool.list({ states: ['done'] })).length).toBe(1);
    const after = await spool.status();
    expect(after.counts).toMatchObject({ claimed: 0, done: 1, hold: 1 });
    expect(after.queues.slow).toEqual({ done: 1 });
  });

  it('typed errors with codes for bad input', async () => {
    const spool = await Spool.init(join(tempDir(), 'spool'));
    await expect(spool.put('nohash', [])).rejects.toBeInstanceOf(UsageError);
    await expect(spool.put('./a.mjs#f', [], { retries: -1 })).rejects.toMatchObject({ code: 'ZCQ_USAGE' });
    await expect(spool.put('./a.mjs#f', [], { timeout: 'forever' })).rejects.toMatchObject({ code: 'ZCQ_BAD_DURATION' });
    await expect(spool.put('./a.mjs#f', [10n] as unknown[])).rejects.toThrow(/not JSON-serialisable/);
    await expect(spool.get('0000000000')).rejects.toBeInstanceOf(JobNotFoundError);
    const notSpool = tempDir();
    writeFileSync(join(notSpool, 'x'), '');
    await expect(Spool.open(notSpool)).rejects.toBeInstanceOf(NotASpoolError);
    // A missing spool is never created by open (only by init or create: true), with or without the option.
    const missing = join(tempDir(), 'missing');
    await expect(Spool.open(missing)).rejects.toMatchObject({ code: 'ZCQ_NO_SPOOL', exitCode: 2 });
    await expect(Spool.open(missing, { create: false })).rejects.toBeInstanceOf(NotASpoolError);
    expect(existsSync(missing)).toBe(false);
    // An empty folder is not a spool either until init.
    const empty = tempDir();
    await expect(Spool.open(empty)).rejects.toMatchObject({ code: 'ZCQ_NO_SPOOL' });
    expect(names(empty)).toEqual([]);
    expect(idsIn(spool.dir, 'pending')).toEqual([]);
  });

  it('a deferred job waits in deferred/ and a past --at means now', async () => {
    const spool = await Spool.init(join(tempDir(), 'spool'));
    const later = await spool.put('./jobs.mjs#add', [2, 2], { in: 600 });
    const past = await spool.put('./jobs.mjs#add', [3, 3], { at: new Date(Date.now() - 3600_000) });
    expect((await spool.get(later.id)).state).toBe('deferred');
    expect((await spool.get(past.id)).state).toBe('pending');
    expect(idsIn(spool.dir, 'deferred', 'default')).toEqual([later.id]);
    expect(idsIn(spool.dir, 'pending', 'default')).toEqual([past.id]);
    const worker = await spool.runWorker({ roots: [FIXTURES], pollMs: 50 });
    const [r] = await spool.wait([later.id], { timeoutMs: 10_000 });
    expect(r!.job!.result).toBe(4);
    const started = Date.parse(r!.job!.history[0]!.start);
    expect(started).toBeGreaterThanOrEqual(Date.parse(later.notBefore!) - 50);
    await worker.stop();
  });
});
