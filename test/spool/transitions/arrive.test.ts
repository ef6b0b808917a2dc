// arrive (src/spool/transitions/arrive.ts): a member's entry, the fan-in tree, the release of the
// postprocess at the root. Arrivals in every order release the postprocess once, after the last member;
// two members arriving together both climb and converge; a crash after each step (through finish, whose
// step 4 precedes arrival) is completed by recovery.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { arriveInGroup, groupComplete, readEntries, treeHeight } from '../../../dist/spool/transitions/arrive.js';
import { finishJob } from '../../../dist/spool/transitions/finish.js';
import type { Job } from '../../../dist/job/format.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, atStep, crashAfter, onStep, succeed } from './util.js';

afterAll(cleanupTemp);

describe('arrive', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  async function group(n: number) {
    const h = await rig.spool.parallel(Array.from({ length: n }, (_, i) => ({ fn: './jobs.mjs#add', args: [i, 0], queue: 'q' })), { queue: 'pq' });
    const members = h.members.map((id) => rig.read(`pending/q/${id}.json`));
    return { h, members };
  }
  const ended = (j: Job, i: number): Job => ({ ...j, result: i, finished: new Date().toISOString() });
  const postAt = (h: { id: string }) => rig.where(h.id);
  const isWaiting = (h: { id: string }) => fs.existsSync(join(rig.l.root, 'waiting', 'pq', `${h.id}.json`));

  it('tree height is ceil(log2 n)', () => {
    expect([1, 2, 3, 4, 5, 8, 9, 100, 10_000].map(treeHeight)).toEqual([0, 1, 2, 2, 3, 3, 4, 7, 14]);
  });

  for (const n of [1, 2, 3, 5, 8, 13]) {
    it(`a group of ${n}, members arriving in a shuffled order: released once, only by the last arrival`, async () => {
      const { h, members } = await group(n);
      const order = members.map((_, i) => i).sort(() => Math.random() - 0.5);
      const results: string[] = [];
      order.forEach((i, k) => {
        expect(isWaiting(h)).toBe(true);
        results.push(arriveInGroup(rig.l, ended(members[i]!, i), 'done', true));
        if (k < n - 1) expect(groupComplete(rig.l, h.group, n)).toBe(false);
      });
      expect(results.filter((r) => r === 'released')).toHaveLength(1);
      expect(results[results.length - 1]).toBe('released');
      expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
      expect(readEntries(rig.l, h.group, n).map((e) => e.result)).toEqual(members.map((_, i) => i));
    });
  }

  it('two members arriving at once (the other arrives between our leaf and our look): both climb, one release', async () => {
    const { h, members } = await group(2);
    const other: string[] = [];
    atStep('arrive', 1, () => { onStep(); other.push(arriveInGroup(rig.l, ended(members[1]!, 1), 'done', true)); });
    const mine = arriveInGroup(rig.l, ended(members[0]!, 0), 'done', true);
    expect([mine, ...other].sort()).toEqual(['released', 'root']);
    expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
  });

  it('arriving again (recovery re-running finish) changes nothing and releases nothing twice', async () => {
    const { h, members } = await group(3);
    for (let i = 0; i < 3; i++) arriveInGroup(rig.l, ended(members[i]!, i), 'done', true);
    expect(arriveInGroup(rig.l, ended(members[2]!, 2), 'done', true)).toBe('root');
    expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
  });

  for (const [k, detail] of [[1, undefined], [2, undefined], [3, undefined]] as const) {
    it(`crash of the last member's finish after arrive step ${k}: recovery completes finish and the release, once`, async () => {
      const { h, members } = await group(4);
      for (let i = 0; i < 3; i++) arriveInGroup(rig.l, ended(members[i]!, i), 'done', true);
      const a = await rig.lease();
      const { c, job } = await rig.claim(a, members[3]!.id, 'q');
      const next = succeed(a, job, 'last');
      crashAfter('arrive', k, detail);
      await expect(finishJob(c, job, next)).rejects.toThrow(SimulatedCrash);
      expect(rig.where(job.id)).toHaveLength(1);
      expect(rig.where(job.id)[0]).toMatch(/^claimed\//);
      expect(isWaiting(h) ? 'waiting' : 'pending').toBe(k === 3 ? 'pending' : 'waiting');
      rig.kill(a);
      await rig.recover();
      expect(rig.where(job.id)).toEqual([`done/q/${job.id}.json`]);
      expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
      expect(readEntries(rig.l, h.group, 4)[3]).toMatchObject({ id: job.id, state: 'done', result: 'last' });
    });
  }

  it('an entry of a failed member carries its failure', async () => {
    const { h, members } = await group(1);
    arriveInGroup(rig.l, { ...members[0]!, failure: { name: 'Error', message: 'x', reason: 'error' }, finished: 'now' }, 'failed', true);
    expect(readEntries(rig.l, h.group, 1)).toEqual([{ id: members[0]!.id, state: 'failed', failure: { name: 'Error', message: 'x', reason: 'error' } }]);
  });
});
