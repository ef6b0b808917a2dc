// prune (src/spool/transitions/prune.ts): done/ failed/QUEUE/ID.json -> tmp/.prune-RANDOM -> removed.
// Crash after 1: the record sits in tmp/, removed by housekeeping. The file judged is the file taken.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { newJob, serializeJob } from '../../../dist/job/format.js';
import { pruneFinished } from '../../../dist/spool/transitions/prune.js';
import { retryJob } from '../../../dist/spool/transitions/retry.js';
import { cleanLeftovers } from '../../../dist/spool/housekeeping.js';
import { cleanupTemp } from '../../helpers.js';
import { FN, Rig, SimulatedCrash, atStep, crashAfter, onStep } from './util.js';

afterAll(cleanupTemp);

describe('prune', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  function record(id: string, ageMs: number, state: 'done' | 'failed' = 'done', result: unknown = 1): string {
    const job = newJob({ id, fn: FN, queue: 'q' });
    Object.assign(job, { attempts: 1, finished: new Date().toISOString(), result });
    const path = join(rig.l[state], 'q', `${id}.json`);
    rig.write(path, job);
    const t = new Date(Date.now() - ageMs);
    fs.utimesSync(path, t, t);
    return path;
  }

  it('crash after 1: the record sits in tmp/ under .prune-*, in no state; housekeeping removes it after the leftover age', async () => {
    record('j1', 7_200_000);
    const crash = crashAfter('prune', 1);
    expect(() => pruneFinished(rig.l, Date.now(), { state: 'done', olderThanMs: 3_600_000, keep: null })).toThrow(SimulatedCrash);
    expect(crash.fired).toBe(true);
    expect(rig.where('j1')).toEqual([]);
    const taken = rig.tmp('.prune-');
    expect(taken).toHaveLength(1);
    expect(JSON.parse(fs.readFileSync(join(rig.l.tmp, taken[0]!), 'utf8')).id).toBe('j1');
    // The record keeps its old mtime: it is already a leftover by age.
    await cleanLeftovers(rig.l, rig.clock(), { tmpAgeMs: 3_600_000 });
    expect(rig.tmp('.prune-')).toEqual([]);
  });

  it('removes what is past its age or over the count, per queue, and keeps the rest', async () => {
    record('old', 7_200_000);
    record('mid', 120_000);
    record('new', 1_000);
    record('f1', 7_200_000, 'failed');
    const rep = pruneFinished(rig.l, Date.now(), { state: 'done', olderThanMs: 3_600_000, keep: null });
    expect(rep.removed.map((r) => r.id)).toEqual(['old']);
    expect(pruneFinished(rig.l, Date.now(), { state: 'done', olderThanMs: null, keep: 1 }).removed.map((r) => r.id)).toEqual(['mid']);
    expect(rig.where('new')).toEqual(['done/q/new.json']);
    expect(rig.where('f1')).toEqual(['failed/q/f1.json']);
    expect(rig.tmp('.prune-')).toEqual([]);
  });

  it('steps 2-3: the file judged is the file taken — a record written again under the same name meanwhile is put back, not removed', async () => {
    record('a', 7_000_000);
    const b = record('b', 7_200_000); // older: pruned second
    // Right after prune took "a", b is retried, runs and finishes again: a fresh record under the old name.
    const hit = atStep('prune', 1, () => {
      expect(retryJob(rig.l, b, 'q', 'b', true)).toBe(true);
      const pending = join(rig.l.pending, 'q', 'b.json');
      const job = JSON.parse(fs.readFileSync(pending, 'utf8'));
      fs.writeFileSync(pending, serializeJob({ ...job, result: 'second run', finished: new Date().toISOString() }));
      fs.renameSync(pending, b);
    });
    const rep = pruneFinished(rig.l, Date.now(), { state: 'done', olderThanMs: 3_600_000, keep: null });
    expect(hit.fired).toBe(true);
    expect(rep.removed.map((r) => r.id)).toEqual(['a']);
    expect(rig.where('b')).toEqual(['done/q/b.json']);
    expect(rig.read('done/q/b.json').result).toBe('second run');
    expect(rig.tmp('.prune-')).toEqual([]);
  });

  it('fence: a retry that took the record first makes prune skip it (ENOENT)', async () => {
    const p = record('j1', 7_200_000);
    record('j0', 7_000_000); // newer: pruned first; the retry of j1 lands right after
    atStep('prune', 1, () => { expect(retryJob(rig.l, p, 'q', 'j1', true)).toBe(true); });
    const rep = pruneFinished(rig.l, Date.now(), { state: 'done', olderThanMs: 3_600_000, keep: null });
    expect(rep.removed.map((r) => r.id)).toEqual(['j0']);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
  });

  it('a dry run takes nothing', async () => {
    record('j1', 7_200_000);
    const rep = pruneFinished(rig.l, Date.now(), { state: 'done', olderThanMs: 3_600_000, keep: null, dryRun: true });
    expect(rep.removed.map((r) => r.id)).toEqual(['j1']);
    expect(rig.where('j1')).toEqual(['done/q/j1.json']);
  });
});
