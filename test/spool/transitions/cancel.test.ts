// cancel (src/spool/transitions/cancel.ts): a job nobody runs is claimed into a CLIENT lease and finished
// to failed/ ("cancelled"); a running one gets a request. Crash after 1 (and inside its finish), then
// recovery puts a client's claim back uncounted or completes the final record; and the fences.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CancelRequestDrops, cancelJob, requestCancel } from '../../../dist/spool/transitions/cancel.js';
import { claimJob } from '../../../dist/spool/transitions/claim.js';
import { judgeLease } from '../../../dist/spool/lease.js';
import { settleDeadFolder } from '../../../dist/spool/transitions/recover.js';
import { deferredPath } from '../../../dist/spool/names.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, atStep, crashAfter, onStep } from './util.js';

afterAll(cleanupTemp);

describe('cancel', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  const pendingPath = (id: string) => join(rig.l.pending, 'q', `${id}.json`);

  it('ends a pending, a deferred and a held job in failed/ with reason "cancelled", not counted as an attempt', async () => {
    await rig.put('p1', { queue: 'q' });
    const due = Date.now() + 3_600_000;
    await rig.put('d1', { queue: 'q' }, due);
    await rig.put('h1', { queue: 'q' });
    fs.mkdirSync(join(rig.l.hold, 'q'));
    fs.renameSync(pendingPath('h1'), join(rig.l.hold, 'q', 'h1.json'));
    const c = await rig.lease('client');
    expect(await cancelJob(c, pendingPath('p1'), 'q', 'p1')).toBe('moved');
    expect(await cancelJob(c, deferredPath(rig.l, 'q', due, 'd1'), 'q', 'd1')).toBe('moved');
    expect(await cancelJob(c, join(rig.l.hold, 'q', 'h1.json'), 'q', 'h1')).toBe('moved');
    for (const id of ['p1', 'd1', 'h1']) {
      expect(rig.where(id)).toEqual([`failed/q/${id}.json`]);
      expect(rig.read(`failed/q/${id}.json`)).toMatchObject({ attempts: 0, failure: { reason: 'cancelled' } });
    }
  });

  it('crash after 1: the job sits in the client lease; when it expires recovery returns it to pending/ uncounted', async () => {
    const put = await rig.put('j1', { queue: 'q' });
    const c = await rig.lease('client');
    crashAfter('cancel', 1);
    await expect(cancelJob(c, pendingPath('j1'), 'q', 'j1')).rejects.toThrow(SimulatedCrash);
    expect(rig.where('j1')).toEqual([`claimed/${c.id}/1.j1.json`]);
    rig.kill(c);
    expect((await rig.recover()).n).toBe(1);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    const back = rig.read('pending/q/j1.json');
    expect(back).toMatchObject({ attempts: 0, interrupts: 0, history: [] });
    expect(back.failure).toBeUndefined();
    expect(back.args).toEqual(put.args);
    // "cancel again" works.
    const c2 = await rig.lease('client');
    expect(await cancelJob(c2, pendingPath('j1'), 'q', 'j1')).toBe('moved');
    expect(rig.where('j1')).toEqual(['failed/q/j1.json']);
  });

  it('crash inside its finish before the record replaced the claim (finish 2): back to pending/ uncounted', async () => {
    await rig.put('j1', { queue: 'q' });
    const c = await rig.lease('client');
    crashAfter('finish', 2);
    await expect(cancelJob(c, pendingPath('j1'), 'q', 'j1')).rejects.toThrow(SimulatedCrash);
    rig.kill(c);
    await rig.recover();
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(rig.read('pending/q/j1.json')).toMatchObject({ attempts: 0, interrupts: 0 });
  });

  it('crash inside its finish after the record replaced the claim (finish 4): recovery completes the cancel to failed/', async () => {
    await rig.put('j1', { queue: 'q' });
    const c = await rig.lease('client');
    crashAfter('finish', 4);
    await expect(cancelJob(c, pendingPath('j1'), 'q', 'j1')).rejects.toThrow(SimulatedCrash);
    const record = fs.readFileSync(join(c.dir, '1.j1.json'), 'utf8');
    expect(JSON.parse(record)).toMatchObject({ run: `${c.id}/1`, failure: { reason: 'cancelled' } });
    rig.kill(c);
    await rig.recover();
    expect(rig.where('j1')).toEqual(['failed/q/j1.json']);
    expect(fs.readFileSync(join(rig.l.failed, 'q', 'j1.json'), 'utf8')).toBe(record);
  });

  it('fence: a worker claimed it first — "moved-away", the worker\'s claim untouched; a running job gets a request instead', async () => {
    await rig.put('j1', { queue: 'q' });
    const w = await rig.lease();
    expect(claimJob(w, 'q', 'j1.json')).not.toBeNull();
    const c = await rig.lease('client');
    expect(await cancelJob(c, pendingPath('j1'), 'q', 'j1')).toBe('moved-away');
    expect(rig.where('j1')).toEqual([`claimed/${w.id}/1.j1.json`]);
    expect(fs.readdirSync(c.dir)).toEqual([]);
    requestCancel(rig.l, 'j1', true);
    expect(fs.readdirSync(rig.l.cancel).filter((n) => n.startsWith('j1.'))).toHaveLength(1);
  });

  it('fence: the client\'s folder taken (it was judged dead) right after the claim: "lost", and the job goes back uncounted', async () => {
    await rig.put('j1', { queue: 'q' });
    const c = await rig.lease('client');
    const r = await rig.lease();
    rig.kill(c);
    const judged = await judgeLease(rig.l, rig.clock(), c.id, 30_000);
    expect(judged.expired).toBe(true);
    expect(judged.info.kind).toBe('client');
    const taken = join(r.dir, `${c.id}.dead`);
    atStep('cancel', 1, () => { fs.renameSync(c.dir, taken); });
    expect(await cancelJob(c, pendingPath('j1'), 'q', 'j1')).toBe('lost');
    expect(rig.where('j1')).toEqual([`claimed/${r.id}/${c.id}.dead/1.j1.json`]);
    expect(rig.read(`claimed/${r.id}/${c.id}.dead/1.j1.json`).failure).toBeUndefined();
    await settleDeadFolder(rig.l, r, taken, judged.info, () => {});
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(rig.read('pending/q/j1.json')).toMatchObject({ attempts: 0, interrupts: 0 });
  });

  it('an unreadable file is put back where it was found, for the worker to quarantine', async () => {
    fs.mkdirSync(join(rig.l.pending, 'q'), { recursive: true });
    fs.writeFileSync(pendingPath('bad'), '{broken');
    const c = await rig.lease('client');
    expect(await cancelJob(c, pendingPath('bad'), 'q', 'bad')).toBe('unreadable');
    expect(rig.where('bad')).toEqual(['pending/q/bad.json']);
  });

  it('CancelRequestDrops: removes the ended job\'s requests only, and sees a request made after a listing it reuses', async () => {
    const cancels = () => fs.readdirSync(rig.l.cancel).sort();
    // A server clock well ahead: the folder's mtime counts as settled, so its listing is reused while the folder is unchanged.
    const drops = new CancelRequestDrops(rig.l, () => Date.now() + 60_000);
    drops.drop('a'); // no cancel/ folder yet: nothing to do
    requestCancel(rig.l, 'a', false);
    requestCancel(rig.l, 'a', false);
    requestCancel(rig.l, 'b', false);
    drops.drop('c');
    expect(cancels()).toHaveLength(3);
    drops.drop('a');
    expect(cancels().map((f) => f.split('.')[0])).toEqual(['b']);
    drops.drop('x'); // listed afresh (our unlinks changed the folder) and remembered
    requestCancel(rig.l, 'x', false); // the folder changes: the remembered listing is not used
    drops.drop('x');
    expect(cancels().map((f) => f.split('.')[0])).toEqual(['b']);
    drops.drop('b');
    expect(cancels()).toEqual([]);
  });

  it('CancelRequestDrops.dropSoon: the jobs ended in one turn are dropped together after it, and flush drops at once', async () => {
    const cancels = () => fs.readdirSync(rig.l.cancel).map((f) => f.split('.')[0]).sort();
    const drops = new CancelRequestDrops(rig.l, () => Date.now() + 60_000);
    for (const id of ['a', 'b', 'c', 'd']) requestCancel(rig.l, id, false);
    drops.dropSoon('a');
    drops.dropSoon('b');
    expect(cancels()).toEqual(['a', 'b', 'c', 'd']); // not in the turn that recorded them
    await new Promise((res) => setImmediate(res));
    expect(cancels()).toEqual(['c', 'd']);
    drops.dropSoon('c');
    drops.flush();
    expect(cancels()).toEqual(['d']);
    await new Promise((res) => setImmediate(res)); // nothing left to do
    expect(cancels()).toEqual(['d']);
  });

  it('CancelRequestDrops: a symlink planted in place of cancel/ is not listed or removed through', async () => {
    requestCancel(rig.l, 'a', false);
    const elsewhere = join(rig.l.root, '..', 'elsewhere');
    fs.mkdirSync(elsewhere);
    const victim = fs.readdirSync(rig.l.cancel)[0]!;
    fs.renameSync(join(rig.l.cancel, victim), join(elsewhere, victim));
    fs.rmdirSync(rig.l.cancel);
    fs.symlinkSync(elsewhere, rig.l.cancel);
    new CancelRequestDrops(rig.l, () => Date.now() + 60_000).drop('a');
    expect(fs.readdirSync(elsewhere)).toEqual([victim]);
  });

});
