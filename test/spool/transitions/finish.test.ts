// finish (src/spool/transitions/finish.ts): claimed/LEASE/SEQ.ID.json -> done/ failed/ deferred/ pending/.
// Crash after each marked step (2-5), then recovery completes it; and the fence, with a recoverer taking the
// holder's folder at each step for real.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { finishJob } from '../../../dist/spool/transitions/finish.js';
import { cleanLeftovers } from '../../../dist/spool/housekeeping.js';
import { settleDeadFolder } from '../../../dist/spool/transitions/recover.js';
import type { Lease } from '../../../dist/spool/lease.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, atStep, crashAfter, fail, onStep, succeed } from './util.js';

afterAll(cleanupTemp);

describe('finish', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  /** A job of queue q claimed by a fresh lease, run, with the worker's outcome decided. */
  async function running(fields = {}, outcome: 'done' | 'failed' = 'done') {
    await rig.put('j1', { queue: 'q', ...fields });
    const a = await rig.lease();
    const { c, job } = await rig.claim(a, 'j1', 'q');
    const claimedText = fs.readFileSync(c.path, 'utf8');
    const next = outcome === 'done' ? succeed(a, job) : fail(a, job);
    return { a, c, job, next, claimedText };
  }

  /** Take `holder`'s folder into a lease of our own the way recovery's step 1 does (one rename). */
  function takeFolder(holder: Lease, into: Lease): string {
    const to = join(into.dir, `${holder.id}.dead`);
    fs.renameSync(holder.dir, to);
    return to;
  }

  it('crash after 2: a temporary in tmp/, the claimed file untouched; recovery settles it by the interrupt policy; housekeeping removes the temporary', async () => {
    const { a, c, job, next, claimedText } = await running();
    crashAfter('finish', 2);
    await expect(finishJob(c, job, next)).rejects.toThrow(SimulatedCrash);
    const temps = rig.tmp('.fin-j1-');
    expect(temps).toHaveLength(1);
    expect(fs.readFileSync(c.path, 'utf8')).toBe(claimedText);
    expect(JSON.parse(fs.readFileSync(join(rig.l.tmp, temps[0]!), 'utf8')).result).toBe(3);

    rig.kill(a);
    expect((await rig.recover()).n).toBe(1);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    const back = rig.read('pending/q/j1.json');
    expect(back.interrupts).toBe(1);
    expect(back.result).toBeUndefined();
    expect(back.finished).toBeUndefined();

    rig.ageTmp();
    await cleanLeftovers(rig.l, rig.clock(), { tmpAgeMs: 60_000 });
    expect(rig.tmp('.fin-j1-')).toEqual([]);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
  });

  it('crash after 3: the record in tmp/ and a spare that is the claimed inode; recovery settles it; both are leftovers once the lease is gone', async () => {
    const { a, c, job, next, claimedText } = await running();
    crashAfter('finish', 3);
    await expect(finishJob(c, job, next)).rejects.toThrow(SimulatedCrash);
    expect(rig.tmp('.fin-j1-')).toHaveLength(1);
    const spares = rig.tmp(`.spare-${a.id}-`);
    expect(spares).toHaveLength(1);
    const spare = fs.statSync(join(rig.l.tmp, spares[0]!));
    expect(spare.ino).toBe(fs.statSync(c.path).ino);
    expect(spare.nlink).toBe(2);
    expect(fs.readFileSync(c.path, 'utf8')).toBe(claimedText);

    rig.kill(a);
    await rig.recover();
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(rig.read('pending/q/j1.json').interrupts).toBe(1);

    rig.ageTmp();
    await cleanLeftovers(rig.l, rig.clock(), { tmpAgeMs: 60_000 });
    expect(rig.tmp('.fin-j1-')).toEqual([]);
    expect(rig.tmp(`.spare-${a.id}-`)).toEqual([]);
  });

  it('crash after 4 (done): the claimed file is the final record with run = LEASE/SEQ; recovery moves it to done/ unchanged, never runs it again', async () => {
    const { a, c, job, next } = await running();
    crashAfter('finish', 4);
    await expect(finishJob(c, job, next)).rejects.toThrow(SimulatedCrash);
    expect(rig.where('j1')).toEqual([`claimed/${a.id}/1.j1.json`]);
    const record = fs.readFileSync(c.path, 'utf8');
    expect(JSON.parse(record)).toMatchObject({ result: 3, run: `${a.id}/1`, attempts: 1 });

    rig.kill(a);
    expect((await rig.recover()).n).toBe(1);
    expect(rig.where('j1')).toEqual(['done/q/j1.json']);
    expect(fs.readFileSync(join(rig.l.done, 'q', 'j1.json'), 'utf8')).toBe(record);
    const done = rig.read('done/q/j1.json');
    expect(done.interrupts).toBe(0);
    expect(done.history).toHaveLength(1);
  });

  it('crash after 4 (failed): the final failure record goes to failed/ unchanged', async () => {
    const { a, c, job, next } = await running({ retries: 0 }, 'failed');
    expect(next.to).toBe('failed');
    crashAfter('finish', 4);
    await expect(finishJob(c, job, next)).rejects.toThrow(SimulatedCrash);
    const record = fs.readFileSync(c.path, 'utf8');
    rig.kill(a);
    await rig.recover();
    expect(rig.where('j1')).toEqual(['failed/q/j1.json']);
    expect(fs.readFileSync(join(rig.l.failed, 'q', 'j1.json'), 'utf8')).toBe(record);
    expect(rig.read('failed/q/j1.json')).toMatchObject({ run: `${a.id}/1`, interrupts: 0, failure: { reason: 'error' } });
  });

  it('crash after 4 (a retry after a backoff): recovery completes the move to deferred/, counts no interrupt, keeps the due time', async () => {
    const { a, c, job, next } = await running({ retries: 3, onInterrupt: 'fail' }, 'failed');
    expect(next.to).toBe('deferred');
    crashAfter('finish', 4);
    await expect(finishJob(c, job, next)).rejects.toThrow(SimulatedCrash);
    const record = JSON.parse(fs.readFileSync(c.path, 'utf8'));
    rig.kill(a);
    await rig.recover();
    const [at] = rig.where('j1');
    expect(rig.where('j1')).toHaveLength(1);
    expect(at).toMatch(/^deferred\/q\/\d{8}T\d{4}\/\d{15}\.j1\.json$/);
    const moved = rig.read(at!);
    expect(moved.interrupts).toBe(0);
    expect(moved.attempts).toBe(1);
    expect(moved.notBefore).toBe(record.notBefore);
    expect(moved.failure).toBeUndefined;
  });

  it('crash after 5: done; recovery finds an empty folder and nothing to do', async () => {
    const { a, c, job, next } = await running();
    crashAfter('finish', 5);
    await expect(finishJob(c, job, next)).rejects.toThrow(SimulatedCrash);
    expect(rig.where('j1')).toEqual(['done/q/j1.json']);
    const record = fs.readFileSync(join(rig.l.done, 'q', 'j1.json'), 'utf8');
    expect(fs.readdirSync(a.dir)).toEqual([]);
    rig.kill(a);
    expect((await rig.recover()).n).toBe(0);
    expect(rig.where('j1')).toEqual(['done/q/j1.json']);
    expect(fs.readFileSync(join(rig.l.done, 'q', 'j1.json'), 'utf8')).toBe(record);
    expect(fs.existsSync(a.dir)).toBe(false);
  });

  it('fence: a holder whose folder a recoverer took finishes "lost" and writes nothing; the next recoverer settles the job once', async () => {
    const { a, c, job, next, claimedText } = await running();
    rig.kill(a);
    // The recoverer takes the folder and dies right after (recover step 1).
    crashAfter('recover', 1);
    const r = await rig.recover();
    onStep();
    const taken = join(r.me.dir, `${a.id}.dead`, '1.j1.json');
    expect(rig.where('j1')).toEqual([`claimed/${r.me.id}/${a.id}.dead/1.j1.json`]);
    // The frozen holder wakes up and finishes.
    expect(await finishJob(c, job, next)).toBe('lost');
    expect(a.isLost).toBe(true);
    expect(fs.readFileSync(taken, 'utf8')).toBe(claimedText);
    expect(rig.tmp('.fin-j1-')).toEqual([]);
    expect(rig.where('j1')).toEqual([`claimed/${r.me.id}/${a.id}.dead/1.j1.json`]);
    // The recoverer is dead in turn; the next one settles the nested folder.
    rig.kill(r.me);
    await rig.recover();
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(rig.read('pending/q/j1.json')).toMatchObject({ interrupts: 1 });
    expect(rig.read('pending/q/j1.json').result).toBeUndefined();
  });

  it('fence at step 4: the folder taken between the spare link and the rename: "lost", the claimed file is not replaced', async () => {
    const { a, c, job, next, claimedText } = await running();
    const r = await rig.lease();
    let taken = '';
    const hit = atStep('finish', 3, () => { taken = takeFolder(a, r); });
    expect(await finishJob(c, job, next)).toBe('lost');
    expect(hit.fired).toBe(true);
    expect(fs.readFileSync(join(taken, '1.j1.json'), 'utf8')).toBe(claimedText);
    expect(rig.tmp('.fin-j1-')).toEqual([]);
    expect(rig.tmp(`.spare-${a.id}-`)).toEqual([]);
    // The recoverer (who judged a dead before taking it) settles what it took.
    await settleDeadFolder(rig.l, r, taken, { worker: a.id, host: a.info.host, pid: a.info.pid, leaseMs: 30_000, kind: 'worker' }, () => {});
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(rig.read('pending/q/j1.json').interrupts).toBe(1);
  });

  it('fence at step 5: the folder taken after the record replaced the claim: "lost"; the recoverer moves the final record to done/', async () => {
    const { a, c, job, next } = await running();
    const r = await rig.lease();
    let taken = '';
    atStep('finish', 4, () => { taken = takeFolder(a, r); });
    expect(await finishJob(c, job, next)).toBe('lost');
    const record = fs.readFileSync(join(taken, '1.j1.json'), 'utf8');
    expect(JSON.parse(record)).toMatchObject({ result: 3, run: `${a.id}/1` });
    expect(rig.where('j1')).toEqual([`claimed/${r.id}/${a.id}.dead/1.j1.json`]);
    await settleDeadFolder(rig.l, r, taken, { worker: a.id, host: a.info.host, pid: a.info.pid, leaseMs: 30_000, kind: 'worker' }, () => {});
    expect(rig.where('j1')).toEqual(['done/q/j1.json']);
    expect(fs.readFileSync(join(rig.l.done, 'q', 'j1.json'), 'utf8')).toBe(record);
  });

  it('done/ removed by hand (`rm -rf done`) while the job ran: finish makes it again, with the spool\'s mode, and moves the record; the lease is kept', async () => {
    const { a, c, job, next } = await running();
    fs.rmSync(rig.l.done, { recursive: true });
    expect(await finishJob(c, job, next)).toBe('moved');
    expect(rig.where('j1')).toEqual(['done/q/j1.json']);
    expect(rig.read('done/q/j1.json').result).toBe(3);
    expect(fs.lstatSync(rig.l.done).mode & 0o7777).toBe(rig.l.modes.dirMode);
    expect(a.isLost).toBe(false);
  });

  /** Finish j0a and j0b first: the first makes done/q, the second finds it there and keeps that look (layout.ts makeQueueFoldersKept). */
  async function finishedOne(a: Lease) {
    for (const id of ['j0a', 'j0b']) {
      await rig.put(id, { queue: 'q' });
      const zero = await rig.claim(a, id, 'q');
      expect(await finishJob(zero.c, zero.job, succeed(a, zero.job))).toBe('moved');
    }
  }

  it('done/q kept from the last finish, then removed by hand (`rm -rf done/q`, then `rm -rf done`): the next finish looks again, makes it and moves the record; the lease is kept', async () => {
    await rig.put('j1', { queue: 'q' });
    await rig.put('j2', { queue: 'q' });
    const a = await rig.lease();
    await finishedOne(a);
    const one = await rig.claim(a, 'j1', 'q');
    fs.rmSync(join(rig.l.done, 'q'), { recursive: true });
    expect(await finishJob(one.c, one.job, succeed(a, one.job))).toBe('moved');
    expect(rig.where('j1')).toEqual(['done/q/j1.json']);
    const two = await rig.claim(a, 'j2', 'q');
    fs.rmSync(rig.l.done, { recursive: true });
    expect(await finishJob(two.c, two.job, succeed(a, two.job))).toBe('moved');
    expect(rig.where('j2')).toEqual(['done/q/j2.json']);
    expect(fs.lstatSync(join(rig.l.done, 'q')).mode & 0o7777).toBe(rig.l.modes.dirMode);
    expect(a.isLost).toBe(false);
  });

  it('fence at step 5 with done/q kept: "lost" (the look again finds the folder, the claim is gone), the recoverer moves the final record to done/', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    await finishedOne(a);
    const { c, job } = await rig.claim(a, 'j1', 'q');
    const r = await rig.lease();
    let taken = '';
    atStep('finish', 4, () => { taken = takeFolder(a, r); });
    expect(await finishJob(c, job, succeed(a, job))).toBe('lost');
    expect(a.isLost).toBe(true);
    expect(JSON.parse(fs.readFileSync(join(taken, '3.j1.json'), 'utf8'))).toMatchObject({ result: 3, run: `${a.id}/3` });
    await settleDeadFolder(rig.l, r, taken, { worker: a.id, host: a.info.host, pid: a.info.pid, leaseMs: 30_000, kind: 'worker' }, () => {});
    expect(rig.where('j1')).toEqual(['done/q/j1.json']);
  });

  it('done/ writable by others (a shared spool\'s 2775): every finish looks at done/q — a symlink put in its place between two finishes is refused, nothing lands where it points', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    fs.chmodSync(rig.l.done, 0o2775);
    await finishedOne(a);
    const { c, job } = await rig.claim(a, 'j1', 'q');
    const elsewhere = join(rig.l.root, '..', 'elsewhere');
    fs.mkdirSync(elsewhere);
    fs.renameSync(join(rig.l.done, 'q'), join(rig.l.done, 'q.old'));
    fs.symlinkSync(elsewhere, join(rig.l.done, 'q'));
    await expect(finishJob(c, job, succeed(a, job))).rejects.toThrow(/symbolic link/);
    expect(fs.readdirSync(elsewhere)).toEqual([]);
    expect(rig.where('j1')).toHaveLength(1);
    expect(rig.where('j1')[0]).toMatch(/^claimed\//);
  });

  it('failed/ removed the same way: a failure record still reaches failed/QUEUE/', async () => {
    const { c, job, next } = await running({}, 'failed');
    fs.rmSync(rig.l.failed, { recursive: true });
    expect(await finishJob(c, job, next)).toBe('moved');
    expect(rig.where('j1')).toEqual(['failed/q/j1.json']);
  });

  it('"taken": the claimed file moved away by hand before finish; the lease stays held and the moved file is untouched', async () => {
    const { a, c, job, next, claimedText } = await running();
    fs.mkdirSync(join(rig.l.hold, 'q'), { recursive: true });
    fs.renameSync(c.path, join(rig.l.hold, 'q', 'j1.json'));
    expect(await finishJob(c, job, next)).toBe('taken');
    expect(a.isLost).toBe(false);
    expect(rig.where('j1')).toEqual(['hold/q/j1.json']);
    expect(fs.readFileSync(join(rig.l.hold, 'q', 'j1.json'), 'utf8')).toBe(claimedText);
    expect(rig.tmp('.fin-j1-')).toEqual([]);
  });

  it('a spare inode of an earlier outcome is reused for the next record, and never written through while it has another name', async () => {
    await rig.put('j1', { queue: 'q' });
    await rig.put('j2', { queue: 'q' });
    const a = await rig.lease();
    const one = await rig.claim(a, 'j1', 'q');
    expect(await finishJob(one.c, one.job, succeed(a, one.job))).toBe('moved');
    expect(a.spares).toHaveLength(1);
    const spareIno = fs.statSync(a.spares[0]!).ino;
    const two = await rig.claim(a, 'j2', 'q');
    expect(await finishJob(two.c, two.job, succeed(a, two.job, 7))).toBe('moved');
    expect(fs.statSync(join(rig.l.done, 'q', 'j2.json')).ino).toBe(spareIno);
    expect(rig.read('done/q/j2.json').result).toBe(7);
    expect(rig.read('done/q/j1.json').result).toBe(3);
  });

  it('without spare inodes (a networked file system): a new record file each time, no spare left in tmp/, and "taken" still told by an lstat', async () => {
    await rig.put('j1', { queue: 'q' });
    await rig.put('j2', { queue: 'q' });
    const a = await rig.lease();
    a.spareInodes = false;
    const one = await rig.claim(a, 'j1', 'q');
    expect(await finishJob(one.c, one.job, succeed(a, one.job))).toBe('moved');
    expect(a.spares).toEqual([]);
    expect(fs.readdirSync(rig.l.tmp).filter((n) => n.startsWith('.spare-') || n.startsWith('.fin-'))).toEqual([]);
    expect(rig.read('done/q/j1.json').result).toBe(3);
    const two = await rig.claim(a, 'j2', 'q');
    fs.mkdirSync(join(rig.l.hold, 'q'), { recursive: true });
    fs.renameSync(two.c.path, join(rig.l.hold, 'q', 'j2.json'));
    expect(await finishJob(two.c, two.job, succeed(a, two.job))).toBe('taken');
    expect(a.isLost).toBe(false);
    expect(rig.where('j2')).toEqual(['hold/q/j2.json']);
    expect(rig.tmp('.fin-j2-')).toEqual([]);
  });
});
