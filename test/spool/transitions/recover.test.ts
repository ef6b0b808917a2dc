// recover (src/spool/transitions/recover.ts): a dead lease's jobs are settled, each exactly once.
// Crash after step 1 and during step 2, then the next recoverer (which takes the crashed recoverer's
// folder with DEAD.dead nested in it) completes; and the fence: a recoverer taken over mid-settle writes nothing.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { claimJob } from '../../../dist/spool/transitions/claim.js';
import { finishJob } from '../../../dist/spool/transitions/finish.js';
import { LeaseLooks, recoverDeadLeases, settleDeadFolder } from '../../../dist/spool/transitions/recover.js';
import { judgeLease } from '../../../dist/spool/lease.js';
import { ServerClock } from '../../../dist/spool/server-clock.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, atStep, crashAfter, onStep, succeed } from './util.js';

afterAll(cleanupTemp);

describe('recover', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  /** A dead holder with `ids` claimed (running) from queue q. */
  async function deadHolder(ids: string[], fields = {}, kind: 'worker' | 'client' = 'worker') {
    for (const id of ids) await rig.put(id, { queue: 'q', ...fields });
    const a = await rig.lease(kind);
    for (const id of ids) expect(claimJob(a, 'q', `${id}.json`)).not.toBeNull();
    rig.kill(a);
    return a;
  }

  it('crash after 1: the dead folder sits in the recoverer\'s lease as DEAD.dead; the next recoverer settles it, each job once, counted once', async () => {
    const a = await deadHolder(['j1', 'j2']);
    const crash = crashAfter('recover', 1);
    const r = await rig.recover();
    expect(crash.fired).toBe(true);
    expect(r.events.some((e) => e.event === 'recovery.skipped' && /simulated crash/.test(e.reason ?? ''))).toBe(true);
    expect(rig.where('j1')).toEqual([`claimed/${r.me.id}/${a.id}.dead/1.j1.json`]);
    expect(rig.where('j2')).toEqual([`claimed/${r.me.id}/${a.id}.dead/2.j2.json`]);
    expect(fs.existsSync(a.dir)).toBe(false);
    expect(fs.existsSync(a.heartbeatFile)).toBe(true); // step 3 did not run

    rig.kill(r.me);
    const t = await rig.recover();
    expect(t.n).toBe(2);
    for (const id of ['j1', 'j2']) {
      expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
      expect(rig.read(`pending/q/${id}.json`)).toMatchObject({ interrupts: 1, attempts: 1 });
      expect(rig.read(`pending/q/${id}.json`).history[0].worker).toBe(a.id);
    }
    expect(fs.existsSync(r.me.dir)).toBe(false);
    expect(fs.existsSync(r.me.heartbeatFile)).toBe(false);
    expect(fs.existsSync(a.heartbeatFile)).toBe(false); // the nested dead lease's too: nothing left
  });

  it('crash during 2 (after the first job): one job settled, the other still in DEAD.dead; the next recoverer settles the rest', async () => {
    const a = await deadHolder(['j1', 'j2']);
    crashAfter('recover', 2);
    const r = await rig.recover();
    const settled = ['j1', 'j2'].filter((id) => rig.where(id)[0] === `pending/q/${id}.json`);
    expect(settled).toHaveLength(1);
    const rest = settled[0] === 'j1' ? 'j2' : 'j1';
    expect(rig.where(rest)[0]).toMatch(new RegExp(`^claimed/${r.me.id}/${a.id}\\.dead/\\d\\.${rest}\\.json$`));
    rig.kill(r.me);
    await rig.recover();
    for (const id of ['j1', 'j2']) {
      expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
      expect(rig.read(`pending/q/${id}.json`).interrupts).toBe(1);
    }
  });

  it('a record the dead recoverer had already finalised (run = DEAD/SEQ) is moved, not run again nor counted twice', async () => {
    const a = await deadHolder(['j1'], { onInterrupt: 'fail' });
    // The recoverer writes the "worker lost" record over the claim, and dies before moving it.
    crashAfter('finish', 4);
    const r = await rig.recover();
    const at = `claimed/${r.me.id}/${a.id}.dead/1.j1.json`;
    expect(rig.where('j1')).toEqual([at]);
    const record = fs.readFileSync(join(rig.l.root, at), 'utf8');
    expect(JSON.parse(record)).toMatchObject({ run: `${a.id}/1`, interrupts: 1, failure: { reason: 'worker lost' } });
    rig.kill(r.me);
    await rig.recover();
    expect(rig.where('j1')).toEqual(['failed/q/j1.json']);
    expect(fs.readFileSync(join(rig.l.failed, 'q', 'j1.json'), 'utf8')).toBe(record);
  });

  it('the same for a retry record: the dead recoverer\'s "back to pending" record is moved once, one interrupt', async () => {
    const a = await deadHolder(['j1']);
    crashAfter('finish', 4);
    const r = await rig.recover();
    expect(rig.read(`claimed/${r.me.id}/${a.id}.dead/1.j1.json`)).toMatchObject({ interrupts: 1, run: `${a.id}/1` });
    rig.kill(r.me);
    await rig.recover();
    expect(rig.where('j1')).toHaveLength(1);
    const at = rig.where('j1')[0]!;
    expect(at).toMatch(/^(pending\/q\/j1\.json|deferred\/q\/.*\.j1\.json)$/);
    expect(rig.read(at)).toMatchObject({ interrupts: 1, attempts: 1 });
  });

  it('a holder\'s final record, then a recoverer that died after step 1: the third actor moves it to done/ unchanged', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    const { c, job } = await rig.claim(a, 'j1', 'q');
    crashAfter('finish', 4);
    await expect(finishJob(c, job, succeed(a, job))).rejects.toThrow(SimulatedCrash);
    const record = fs.readFileSync(c.path, 'utf8');
    rig.kill(a);
    crashAfter('recover', 1);
    const r = await rig.recover();
    rig.kill(r.me);
    await rig.recover();
    expect(rig.where('j1')).toEqual(['done/q/j1.json']);
    expect(fs.readFileSync(join(rig.l.done, 'q', 'j1.json'), 'utf8')).toBe(record);
  });

  it('a client lease\'s jobs go back to pending uncounted; not-a-job entries go to quarantine/', async () => {
    const c = await deadHolder(['j1'], {}, 'client');
    fs.writeFileSync(join(c.dir, '9.junk.json'), 'not json');
    fs.symlinkSync('/etc/passwd', join(c.dir, '10.link.json'));
    const before = rig.read(`claimed/${c.id}/1.j1.json`);
    await rig.recover();
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    const job = rig.read('pending/q/j1.json');
    expect(job).toMatchObject({ attempts: before.attempts, interrupts: 0 });
    expect(job.history).toEqual([]);
    expect(rig.where('junk')).toEqual(['quarantine/junk.json']);
    expect(rig.where('link')).toEqual(['quarantine/link.json']);
    expect(fs.lstatSync(join(rig.l.quarantine, 'link.json')).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(join(rig.l.quarantine, 'junk.json.reason'), 'utf8')).toMatch(new RegExp(`dead worker ${c.id}`));
  });

  it('a live lease is left alone; only an expired heartbeat (by the file server\'s clock) is judged dead', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    claimJob(a, 'q', 'j1.json');
    expect((await rig.recover()).n).toBe(0);
    expect(rig.where('j1')).toEqual([`claimed/${a.id}/1.j1.json`]);
  });

  it('with looks kept across passes (a worker\'s), a lease found alive is not read again before half of what was left of it has passed', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease('worker', 2_000);
    claimJob(a, 'q', 'j1.json');
    const me = await rig.lease('worker');
    const clock = rig.clock();
    const looks = new LeaseLooks();
    const pass = () => recoverDeadLeases(rig.l, clock, me, () => {}, looks);
    expect(await pass()).toBe(0); // alive, ~2 s left: good for ~1 s
    rig.kill(a); // its heartbeat an hour old from now on: any read of it judges it dead
    expect(await pass()).toBe(0); // not read
    expect(rig.where('j1')).toEqual([`claimed/${a.id}/1.j1.json`]);
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await pass()).toBe(1);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
  });

  it('with looks, a lease that stops beating is still taken within a pass of its expiry (passes every 50 ms, a lease of 1.5 s)', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease('worker', 1_500);
    claimJob(a, 'q', 'j1.json');
    const beat = fs.statSync(a.heartbeatFile).mtimeMs; // its last beat, on this machine's clock (one machine here)
    const me = await rig.lease('worker');
    const clock = rig.clock();
    const looks = new LeaseLooks();
    const events: string[] = [];
    while (rig.where('j1')[0] !== 'pending/q/j1.json') {
      await recoverDeadLeases(rig.l, clock, me, (e) => events.push(e.event), looks);
      // lease + 1 s: a pass every 50 ms, though on a loaded machine one may come late
      expect(Date.now() - beat, 'taken by lease + 1 s').toBeLessThan(2_500);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(Date.now() - beat).toBeGreaterThanOrEqual(1_500);
    expect(events).toContain('lease.expired');
  });

  it('two recoverers at once: one takes the folder, each job is settled exactly once', async () => {
    await deadHolder(['j1', 'j2', 'j3']);
    const [r1, r2] = [await rig.lease(), await rig.lease()];
    const [n1, n2] = await Promise.all([
      recoverDeadLeases(rig.l, rig.clock(), r1, () => {}),
      recoverDeadLeases(rig.l, rig.clock(), r2, () => {}),
    ]);
    expect(n1 + n2).toBe(3);
    for (const id of ['j1', 'j2', 'j3']) {
      expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
      expect(rig.read(`pending/q/${id}.json`).interrupts).toBe(1);
    }
  });

  it('step 3: a folder that will not go (a name the listing missed) is listed again and what appears is settled', async () => {
    const a = await deadHolder(['j1']);
    await rig.put('j2', { queue: 'q' });
    const r = await rig.lease();
    const taken = join(r.dir, `${a.id}.dead`);
    fs.renameSync(a.dir, taken);
    // A name the first listing did not show (a distributed volume listing a folder just renamed): it
    // appears once the first job is settled, so rmdir fails with ENOTEMPTY.
    atStep('recover', 2, () => fs.renameSync(join(rig.l.pending, 'q', 'j2.json'), join(taken, '7.j2.json')));
    const info = { worker: a.id, host: a.info.host, pid: a.info.pid, leaseMs: 30_000, kind: 'worker' as const };
    expect(await settleDeadFolder(rig.l, r, taken, info, () => {})).toBe(2);
    for (const id of ['j1', 'j2']) expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
    expect(fs.existsSync(taken)).toBe(false);
  });

  it('fence: a recoverer whose own folder is taken mid-settle stops with ENOENT and writes nothing; the taker settles the rest once', async () => {
    const a = await deadHolder(['j1', 'j2'], {}, 'client');
    const r = await rig.lease();
    const t = await rig.lease();
    // r judged a dead (the judgement recovery makes before taking it) ...
    const info = { worker: a.id, host: a.info.host, pid: a.info.pid, leaseMs: 30_000, kind: 'client' as const };
    const taken = join(r.dir, `${a.id}.dead`);
    fs.renameSync(a.dir, taken);
    // ... and while it settles, t takes r's folder (r was judged dead in turn) right after r's first job.
    let inT = '';
    atStep('recover', 2, () => { inT = join(t.dir, `${r.id}.dead`); fs.renameSync(r.dir, inT); });
    const n = await settleDeadFolder(rig.l, r, taken, info, () => {});
    expect(n).toBe(1);
    const first = ['j1', 'j2'].find((id) => rig.where(id)[0] === `pending/q/${id}.json`)!;
    const second = first === 'j1' ? 'j2' : 'j1';
    expect(rig.where(second)[0]).toMatch(new RegExp(`^claimed/${t.id}/${r.id}\\.dead/${a.id}\\.dead/\\d\\.${second}\\.json$`));
    expect(rig.read(rig.where(second)[0]!)).toMatchObject({ interrupts: 0, history: [] }); // untouched by r
    // t settles what it took: the nested client lease's job goes back to pending uncounted.
    await settleDeadFolder(rig.l, t, inT, { worker: r.id, host: r.info.host, pid: r.info.pid, leaseMs: 30_000, kind: 'worker' }, () => {});
    for (const id of ['j1', 'j2']) {
      expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
      expect(rig.read(`pending/q/${id}.json`)).toMatchObject({ interrupts: 0, attempts: 0 });
    }
  });

  it('fence: after a full pass that was itself taken over, the dead client\'s heartbeat is kept for the taker to judge its jobs by', async () => {
    const a = await deadHolder(['j1', 'j2'], {}, 'client');
    const t = await rig.lease();
    let me = '';
    // The recoverer's own folder is taken (by t) right after it settled the first job.
    atStep('recover', 2, () => {
      me = fs.readdirSync(rig.l.claimed).find((n) => n !== t.id && n !== a.id)!;
      fs.renameSync(join(rig.l.claimed, me), join(t.dir, `${me}.dead`));
    });
    await rig.recover();
    expect(me).not.toBe('');
    await settleDeadFolder(rig.l, t, join(t.dir, `${me}.dead`), { worker: me, host: 'h', pid: 1, leaseMs: 30_000, kind: 'worker' }, () => {});
    for (const id of ['j1', 'j2']) {
      expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
      // A client never ran them: uncounted, whoever settled them.
      expect(rig.read(`pending/q/${id}.json`)).toMatchObject({ interrupts: 0, attempts: 0 });
    }
  });

  it("a forward jump of the server's clock (a frozen machine) is grace for one lease time: a holder that had no time to beat again is not taken; one that still does not beat is, after a lease", async () => {
    // The whole machine froze 3 s (a paused VM): this recoverer's monotonic clock did not count it, the file
    // server's clock did, and the holder's last beat, 0.5 s before the freeze, now reads 3.5 s old.
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease('worker', 2_000);
    expect(claimJob(a, 'q', 'j1.json')).not.toBeNull();
    let frozen = 0;
    const clock = new ServerClock(rig.l.tmp, `test-jump-${process.pid}`, 2_000, { monotonic: () => performance.now() - frozen });
    rig.clocks.push(clock);
    await clock.sample();
    expect(clock.jumpsSeen).toBe(0);
    const beat = new Date(Date.now() - 3_500);
    fs.utimesSync(a.heartbeatFile, beat, beat);
    frozen += 3_000;
    await clock.sample();
    expect(clock.jumpsSeen).toBe(1);
    expect(clock.jumps[0]!.jumpMs).toBeGreaterThanOrEqual(2_990);
    expect(clock.jumps[0]!.jumpMs).toBeLessThan(3_500);
    const j = await judgeLease(rig.l, clock, a.id, 30_000);
    expect(j.expired).toBe(false);
    expect(j.ageMs!).toBeGreaterThan(300);
    expect(j.ageMs!).toBeLessThan(1_000);
    const me = await rig.lease('worker');
    expect(await recoverDeadLeases(rig.l, clock, me, () => undefined)).toBe(0);
    expect(rig.where('j1')).toEqual([`claimed/${a.id}/1.j1.json`]);

    // A clock that first sampled after the jump cannot know of it: that is the limit docs/nfs.md states.
    const late = rig.clock();
    expect((await judgeLease(rig.l, late, a.id, 30_000)).expired).toBe(true);

    // The holder is dead after all: once a lease time has passed on our monotonic clock, the jump no longer counts.
    frozen -= 2_100;
    const after = await judgeLease(rig.l, clock, a.id, 30_000);
    expect(after.expired).toBe(true);
    expect(await recoverDeadLeases(rig.l, clock, me, () => undefined)).toBe(1);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
  });

  it('a sample held up 400 ms between its write and the read of our clock after it is not taken for a jump', async () => {
    let calls = 0;
    let stallAt = -1;
    const clock = new ServerClock(rig.l.tmp, `test-slow-${process.pid}`, 2_000, {
      monotonic: () => {
        if (++calls === stallAt) { const t = performance.now(); while (performance.now() - t < 400) { /* descheduled */ } }
        return performance.now();
      },
    });
    rig.clocks.push(clock);
    await clock.sample();
    stallAt = calls + 2; // this sample's read of our clock after its fstat (the first is before its write)
    await clock.sample();
    expect(stallAt).toBeLessThanOrEqual(calls);
    await new Promise((r) => setTimeout(r, 300));
    await clock.sample();
    expect(clock.jumpsSeen).toBe(0);
  });

  it('no jump is seen while the server\'s clock keeps pace with ours, nor for a backward step', async () => {
    let frozen = 0;
    const clock = new ServerClock(rig.l.tmp, `test-nojump-${process.pid}`, 2_000, { monotonic: () => performance.now() - frozen });
    rig.clocks.push(clock);
    for (let i = 0; i < 5; i++) { await clock.sample(); await new Promise((r) => setTimeout(r, 30)); }
    frozen -= 3_000; // our clock ran 3 s ahead of the server's: the server's clock stepped back
    await clock.sample();
    expect(clock.jumpsSeen).toBe(0);
    expect(clock.jumpAllowance(0, 60_000)).toBe(0);
  });
});
