// retry (src/spool/transitions/retry.ts): failed/ or done/QUEUE/ID.json -> pending/QUEUE/ID.json, one rename.
// Crash after 2: pending, and the claim treats the finished record as a retry. Fences: two retries, retry vs prune.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { newJob } from '../../../dist/job/format.js';
import { retryJob } from '../../../dist/spool/transitions/retry.js';
import { pruneFinished } from '../../../dist/spool/transitions/prune.js';
import { cleanupTemp } from '../../helpers.js';
import { FN, Rig, SimulatedCrash, atStep, crashAfter, onStep } from './util.js';

afterAll(cleanupTemp);

describe('retry', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  function finished(state: 'done' | 'failed', id = 'j1', ageMs = 0): string {
    const job = newJob({ id, fn: FN, queue: 'q', retries: 1 });
    Object.assign(job, { attempts: 2, interrupts: 1, finished: new Date().toISOString(), run: 'h.1.a/3', deadline: new Date(Date.now() - 5000).toISOString(), notBefore: new Date(Date.now() - 9000).toISOString() });
    if (state === 'done') job.result = 42; else job.failure = { name: 'Error', message: 'no', reason: 'error' };
    const path = join(rig.l[state], 'q', `${id}.json`);
    rig.write(path, job);
    if (ageMs > 0) { const t = new Date(Date.now() - ageMs); fs.utimesSync(path, t, t); }
    return path;
  }

  for (const state of ['failed', 'done'] as const) {
    it(`crash after 2 (from ${state}/): the record is in pending/, and its claim starts it over with fresh attempts`, async () => {
      const from = finished(state);
      const text = fs.readFileSync(from, 'utf8');
      const crash = crashAfter('retry', 2);
      expect(() => retryJob(rig.l, from, 'q', 'j1', true)).toThrow(SimulatedCrash);
      expect(crash.fired).toBe(true);
      expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
      expect(fs.readFileSync(join(rig.l.pending, 'q', 'j1.json'), 'utf8')).toBe(text); // not rewritten
      const a = await rig.lease();
      const { job, retried } = await rig.claim(a, 'j1', 'q');
      expect(retried).toBe(true);
      expect(job).toMatchObject({ attempts: 0, interrupts: 0, deadline: null, notBefore: null });
      expect(job.finished).toBeUndefined();
      expect(job.result).toBeUndefined();
      expect(job.failure).toBeUndefined();
      expect(job.run).toBeUndefined();
    });
  }

  it('makes pending/QUEUE when it is missing', async () => {
    const from = finished('failed');
    expect(fs.existsSync(join(rig.l.pending, 'q'))).toBe(false);
    expect(retryJob(rig.l, from, 'q', 'j1', true)).toBe(true);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
  });

  it('fence: two retries of one job — one rename moves it, the job is pending exactly once, never copied', async () => {
    const from = finished('failed');
    const text = fs.readFileSync(from, 'utf8');
    // The second retry runs at the instant the first has renamed.
    let second: boolean | undefined;
    atStep('retry', 2, () => { second = retryJob(rig.l, from, 'q', 'j1', true); });
    const first = retryJob(rig.l, from, 'q', 'j1', true);
    expect(first).toBe(true);
    expect(second).toBeDefined();
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(fs.readFileSync(join(rig.l.pending, 'q', 'j1.json'), 'utf8')).toBe(text);
  });

  it('of two retries the loser is told it lost', async () => {
    const from = finished('failed');
    let second: boolean | undefined;
    atStep('retry', 2, () => { second = retryJob(rig.l, from, 'q', 'j1', true); });
    retryJob(rig.l, from, 'q', 'j1', true);
    expect(second).toBe(false);
  });

  it('fence: retry vs prune on the same done record, prune first: the retry loses (ENOENT), nothing is left half-way', async () => {
    const from = finished('done', 'j1', 3_600_000);
    let retried: boolean | undefined;
    atStep('prune', 1, () => { retried = retryJob(rig.l, from, 'q', 'j1', true); });
    const rep = pruneFinished(rig.l, Date.now(), { state: 'done', olderThanMs: 60_000, keep: null });
    expect(retried).toBe(false);
    expect(rep.removed.map((r) => r.id)).toEqual(['j1']);
    expect(rig.where('j1')).toEqual([]);
  });

  it('fence: retry vs prune, retry first: prune finds nothing to take and removes nothing', async () => {
    const from = finished('done', 'j1', 3_600_000);
    const other = finished('done', 'j0', 3_500_000); // newer: pruned first
    atStep('prune', 1, () => { expect(retryJob(rig.l, from, 'q', 'j1', true)).toBe(true); });
    const rep = pruneFinished(rig.l, Date.now(), { state: 'done', olderThanMs: 60_000, keep: null });
    expect(rep.removed.map((r) => r.id)).toEqual(['j0']);
    expect(fs.existsSync(other)).toBe(false);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(rig.tmp('.prune-')).toEqual([]);
  });
});
