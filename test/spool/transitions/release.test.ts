// release (src/spool/transitions/release.ts) and ended (the hooks finish runs between its steps 4 and 5):
// a waiting job is released once its dependencies ended, by the putter or by the dependency's finisher,
// whichever comes second; a crash after each step is completed by recovery or by the sweep of
// `zcq recover`; callbacks are put once however often the hook runs.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { finishJob } from '../../../dist/spool/transitions/finish.js';
import { addEdges, settleWaiting, sweepWaiting } from '../../../dist/spool/transitions/release.js';
import { readEntries } from '../../../dist/spool/transitions/arrive.js';
import { cancelJob } from '../../../dist/spool/transitions/cancel.js';
import { recordAwait } from '../../../dist/job/policy.js';
import { attemptOf } from './util.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, crashAfter, fail, onStep, succeed } from './util.js';

afterAll(cleanupTemp);

describe('release', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  const state = (id: string, q = 'q') => {
    for (const s of ['waiting', 'pending', 'done', 'failed']) if (fs.existsSync(join(rig.l.root, s, q, `${id}.json`))) return s;
    return rig.where(id)[0]?.split('/')[0] ?? 'nowhere';
  };
  const edges = (dep: string) => { try { return fs.readdirSync(join(rig.l.deps, dep)); } catch { return []; } };

  /** A dependency claimed and run by a fresh lease, its outcome decided. */
  async function ran(id: string, outcome: 'done' | 'failed' = 'done') {
    await rig.put(id, { queue: 'q' });
    const a = await rig.lease();
    const { c, job } = await rig.claim(a, id, 'q');
    const next = outcome === 'done' ? succeed(a, job) : fail(a, job);
    return { a, c, job, next };
  }

  it('put with after: edges first, the job waits; the finisher of the last dependency releases it and removes the edges', async () => {
    const d1 = await ran('d1');
    const d2 = await ran('d2');
    const w = await rig.spool.put('./jobs.mjs#add', [1, 1], { queue: 'q', after: ['d1', 'd2'] });
    expect(state(w.id)).toBe('waiting');
    expect(edges('d1')).toEqual([`q~${w.id}`]);
    await finishJob(d1.c, d1.job, d1.next);
    expect(state(w.id)).toBe('waiting');
    await finishJob(d2.c, d2.job, d2.next);
    expect(state(w.id)).toBe('pending');
    expect(edges('d1')).toEqual([]);
    expect(edges('d2')).toEqual([]);
  });

  it('a failed dependency releases at once (the worker then fails the job); with afterAnyOutcome it waits for all', async () => {
    const d1 = await ran('d1', 'failed');
    await rig.put('d2', { queue: 'q' });
    const strict = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: ['d1', 'd2'] });
    const any = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: ['d1', 'd2'], afterAnyOutcome: true });
    await finishJob(d1.c, d1.job, d1.next);
    expect(state(strict.id)).toBe('pending');
    expect(state(any.id)).toBe('waiting');
  });

  it('no lost wakeup: a job put while its dependency sits between finish steps 4 and 5 sees the final record and is released at put', async () => {
    const d = await ran('d1');
    crashAfter('finish', 4);
    await expect(finishJob(d.c, d.job, d.next)).rejects.toThrow(SimulatedCrash);
    onStep();
    const w = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: ['d1'] });
    expect(state(w.id)).toBe('pending');
    rig.kill(d.a);
    await rig.recover();
    expect(rig.where('d1')).toEqual(['done/q/d1.json']);
    expect(state(w.id)).toBe('pending');
  });

  it('crash after release step 1 (decided, nothing moved): the finish completes by recovery, which settles again', async () => {
    const d = await ran('d1');
    const w = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: ['d1'] });
    crashAfter('release', 1);
    await expect(finishJob(d.c, d.job, d.next)).rejects.toThrow(SimulatedCrash);
    expect(state(w.id)).toBe('waiting');
    rig.kill(d.a);
    await rig.recover();
    expect(state(w.id)).toBe('pending');
    expect(rig.where('d1')).toEqual(['done/q/d1.json']);
  });

  it('crash after release step 2 (released, edges left): recovery finishes the dependency; a later settle finds nothing to do', async () => {
    const d = await ran('d1');
    const w = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: ['d1'] });
    crashAfter('release', 2);
    await expect(finishJob(d.c, d.job, d.next)).rejects.toThrow(SimulatedCrash);
    expect(state(w.id)).toBe('pending');
    expect(edges('d1')).toEqual([`q~${w.id}`]);
    rig.kill(d.a);
    await rig.recover();
    expect(state(w.id)).toBe('pending');
    expect(settleWaiting(rig.l, 'q', w.id, true)).toBe('gone');
  });

  it('a putter that died between publishing and settling: the sweep of zcq recover releases the job', async () => {
    const d = await ran('d1');
    await finishJob(d.c, d.job, d.next);
    // What the putter left: the edge and the job in waiting/, no settle.
    const w = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: ['d1'] });
    fs.renameSync(join(rig.l.root, 'pending', 'q', `${w.id}.json`), join(rig.l.root, 'waiting', 'q', `${w.id}.json`));
    expect(state(w.id)).toBe('waiting');
    expect((await sweepWaiting(rig.l, true)).released).toBe(1);
    expect(state(w.id)).toBe('pending');
    expect((await sweepWaiting(rig.l, true)).released).toBe(0);
  });

  for (const k of [1, 2, 3]) {
    it(`ended: crash after step ${k} of the hooks (member arrival, callback, dependents) — recovery runs them again, each effect once`, async () => {
      const h = await rig.spool.parallel([{ fn: './jobs.mjs#add', args: [1, 2], queue: 'q' }], { queue: 'q' });
      const member = h.members[0]!;
      // The member gets a then callback and a dependent.
      const file = join(rig.l.root, 'pending', 'q', `${member}.json`);
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), then: { fn: './jobs.mjs#echo' } }));
      const dep = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: [member] });
      const a = await rig.lease();
      const { c, job } = await rig.claim(a, member, 'q');
      const next = succeed(a, job, 7);
      crashAfter('ended', k);
      await expect(finishJob(c, job, next)).rejects.toThrow(SimulatedCrash);
      rig.kill(a);
      await rig.recover();
      expect(rig.where(member)).toEqual([`done/q/${member}.json`]);
      expect(state(h.id)).toBe('pending');
      expect(rig.where(`${member}.then`)).toEqual([`pending/q/${member}.then.json`]);
      expect(rig.read(`pending/q/${member}.then.json`)).toMatchObject({ args: [7, member], retries: 5, parent: member });
      expect(state(dep.id)).toBe('pending');
    });
  }

  it('a worker\'s sweep settles a slice at a time and comes round: every waiting job whose dependencies ended is released', async () => {
    const d = await ran('d1');
    await finishJob(d.c, d.job, d.next);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const w = await rig.spool.put('./jobs.mjs#add', [], { queue: i % 2 ? 'q' : 'r', after: ['d1'] });
      fs.mkdirSync(join(rig.l.root, 'waiting', w.queue), { recursive: true });
      fs.renameSync(join(rig.l.root, 'pending', w.queue, `${w.id}.json`), join(rig.l.root, 'waiting', w.queue, `${w.id}.json`));
      ids.push(w.id);
    }
    let from = '';
    const released: number[] = [];
    for (let pass = 0; pass < 3; pass++) { const r = await sweepWaiting(rig.l, true, { limit: 2, from }); released.push(r.released); from = r.next; }
    expect(released).toEqual([2, 2, 1]);
    for (const [i, id] of ids.entries()) expect(state(id, i % 2 ? 'q' : 'r')).toBe('pending');
  });

  for (const k of [4, 5]) {
    it(`a job that returned a composite: crash after finish step ${k} on its way to waiting/; recovery (or the sweep) completes it and it is released once the postprocess ended`, async () => {
      const post = await ran('post');
      await finishJob(post.c, post.job, post.next);
      await rig.put('p1', { queue: 'q' });
      const a = await rig.lease();
      const { c, job } = await rig.claim(a, 'p1', 'q');
      const next = recordAwait(job, attemptOf(a, job), 'post', new Date().toISOString());
      addEdges(rig.l, ['post'], 'q', 'p1');
      crashAfter('finish', k);
      await expect(finishJob(c, job, next)).rejects.toThrow(SimulatedCrash);
      onStep();
      if (k === 4) {
        rig.kill(a);
        await rig.recover();
      } else {
        expect(state('p1')).toBe('waiting');
        expect((await sweepWaiting(rig.l, true)).released).toBe(1);
      }
      expect(state('p1')).toBe('pending');
      expect(rig.read('pending/q/p1.json')).toMatchObject({ awaits: 'post', after: ['post'] });
    });
  }

  it('callback: crash between its marker and its publication is completed by recovery; never put twice', async () => {
    const p = await rig.put('p1', { queue: 'q' });
    const file = join(rig.l.root, 'pending', 'q', 'p1.json');
    fs.writeFileSync(file, JSON.stringify({ ...p, catch: { fn: './jobs.mjs#echo', queue: 'cb', retries: 2 } }));
    const a = await rig.lease();
    const { c, job } = await rig.claim(a, 'p1', 'q');
    const next = fail(a, job);
    crashAfter('callback', 1);
    await expect(finishJob(c, job, next)).rejects.toThrow(SimulatedCrash);
    expect(fs.existsSync(join(rig.l.callbacks, 'p1.catch'))).toBe(true);
    expect(rig.where('p1.catch')).toEqual([]);
    rig.kill(a);
    await rig.recover();
    expect(rig.where('p1')).toEqual(['failed/q/p1.json']);
    expect(rig.where('p1.catch')).toEqual(['pending/cb/p1.catch.json']);
    expect(rig.read('pending/cb/p1.catch.json')).toMatchObject({ args: [{ message: 'boom', reason: 'error' }, 'p1'], retries: 2 });
  });

  it('callback: crash after its publication, the callback runs and is pruned before recovery re-runs the hook: never put a second time', async () => {
    const p = await rig.put('p1', { queue: 'q' });
    const file = join(rig.l.root, 'pending', 'q', 'p1.json');
    fs.writeFileSync(file, JSON.stringify({ ...p, then: { fn: './jobs.mjs#echo' } }));
    const a = await rig.lease();
    const { c, job } = await rig.claim(a, 'p1', 'q');
    crashAfter('callback', 2);
    await expect(finishJob(c, job, succeed(a, job, 3))).rejects.toThrow(SimulatedCrash);
    onStep();
    expect(rig.where('p1.then')).toEqual(['pending/q/p1.then.json']);
    // The callback ran, ended and was pruned: nothing of it is left in the spool but its parent's marker.
    fs.unlinkSync(join(rig.l.root, 'pending', 'q', 'p1.then.json'));
    rig.kill(a);
    await rig.recover();
    expect(rig.where('p1')).toEqual(['done/q/p1.json']);
    expect(rig.where('p1.then')).toEqual([]);
    expect(fs.readdirSync(join(rig.l.callbacks, 'p1.then'))).toEqual(['put']);
  });

  it('the sweep (and zcq recover) sets aside in quarantine/ what in waiting/ is not a job, with its reason, and releases the others', async () => {
    const d = await ran('d1');
    await finishJob(d.c, d.job, d.next);
    const w = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: ['d1'] });
    fs.renameSync(join(rig.l.root, 'pending', 'q', `${w.id}.json`), join(rig.l.root, 'waiting', 'q', `${w.id}.json`));
    const wq = join(rig.l.root, 'waiting', 'q');
    fs.writeFileSync(join(wq, 'broken.json'), '{ not json');
    fs.writeFileSync(join(wq, 'notes.txt'), 'hello');
    fs.writeFileSync(join(wq, 'other.json'), JSON.stringify({ ...rig.read(`waiting/q/${w.id}.json`), id: 'someone-else' }));
    const outside = join(rig.l.root, '..', `outside-${process.pid}`);
    fs.writeFileSync(outside, 'keep me');
    fs.symlinkSync(outside, join(wq, 'link.json'));
    fs.writeFileSync(join(wq, '.nfs000123'), '');
    const r = await sweepWaiting(rig.l, true);
    expect(r).toMatchObject({ released: 1, quarantined: 4 });
    expect(state(w.id)).toBe('pending');
    expect(fs.readdirSync(wq)).toEqual(['.nfs000123']);
    const q = fs.readdirSync(rig.l.quarantine).sort();
    expect(q).toEqual(['broken.json', 'broken.json.reason', 'link.json', 'link.json.reason', 'notes.txt', 'notes.txt.reason', 'other.json', 'other.json.reason']);
    expect(fs.readFileSync(join(rig.l.quarantine, 'broken.json'), 'utf8')).toBe('{ not json');
    expect(fs.lstatSync(join(rig.l.quarantine, 'link.json')).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(outside, 'utf8')).toBe('keep me');
    expect(fs.readFileSync(join(rig.l.quarantine, 'notes.txt.reason'), 'utf8')).toMatch(/not a job file name \(ID\.json\) in waiting\/q\//);
    expect(fs.readFileSync(join(rig.l.quarantine, 'broken.json.reason'), 'utf8')).toMatch(/found in waiting\/q\//);
    fs.unlinkSync(outside);
    // zcq recover does the same.
    fs.writeFileSync(join(wq, 'again.json'), 'x');
    const events = await rig.spool.recover();
    expect(events.some((e) => e.event === 'job.quarantined')).toBe(true);
    expect(fs.existsSync(join(rig.l.quarantine, 'again.json.reason'))).toBe(true);
  });

  it('cancel of a waiting job removes its edges (and the edge folders it emptied); the dependency ends with no dependents left', async () => {
    await rig.put('d1', { queue: 'q' });
    await rig.put('d2', { queue: 'q' });
    const w = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: ['d1', 'd2'] });
    const other = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: ['d2'] });
    expect(state(w.id)).toBe('waiting');
    expect(edges('d1')).toEqual([`q~${w.id}`]);
    const [res] = await rig.spool.cancel([w.id]);
    expect(res).toMatchObject({ result: 'cancelled', was: 'waiting' });
    expect(state(w.id)).toBe('failed');
    expect(fs.existsSync(join(rig.l.deps, 'd1'))).toBe(false);
    expect(edges('d2')).toEqual([`q~${other.id}`]);
  });

  it('retry of a member while its group is under way: the group completes only once the retried member ended again, and the postprocess sees its new entry', async () => {
    const h = await rig.spool.parallel([{ fn: './jobs.mjs#add', args: [1, 0], queue: 'q' }, { fn: './jobs.mjs#add', args: [2, 0], queue: 'q' }], { queue: 'q' });
    const [m0, m1] = h.members as [string, string];
    const a = await rig.lease();
    const first = await rig.claim(a, m0, 'q');
    await finishJob(first.c, first.job, fail(a, first.job));
    expect(rig.where(m0)).toEqual([`failed/q/${m0}.json`]);
    const [r] = await rig.spool.retry([m0]);
    expect(r).toMatchObject({ ok: true });
    const other = await rig.claim(a, m1, 'q');
    await finishJob(other.c, other.job, succeed(a, other.job, 2));
    expect(state(h.id)).toBe('waiting');
    const again = await rig.claim(a, m0, 'q');
    await finishJob(again.c, again.job, succeed(a, again.job, 1));
    expect(state(h.id)).toBe('pending');
    expect(readEntries(rig.l, h.group, 2).map((e) => e.state)).toEqual(['done', 'done']);
  });

  it('cancel of a waiting job, crash after ended step 3 (edges not yet removed): recovery completes the cancel and removes them', async () => {
    await rig.put('d1', { queue: 'q' });
    const w = await rig.spool.put('./jobs.mjs#add', [], { queue: 'q', after: ['d1'] });
    const c = await rig.lease('client');
    crashAfter('ended', 3);
    await expect(cancelJob(c, join(rig.l.root, 'waiting', 'q', `${w.id}.json`), 'q', w.id)).rejects.toThrow(SimulatedCrash);
    onStep();
    expect(edges('d1')).toEqual([`q~${w.id}`]);
    rig.kill(c);
    await rig.recover();
    expect(state(w.id)).toBe('failed');
    expect(fs.existsSync(join(rig.l.deps, 'd1'))).toBe(false);
  });
});
