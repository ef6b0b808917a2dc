// arrive (src/spool/transitions/arrive.ts): a member's entry, the fan-in tree, the release of the
// postprocess at the root. Arrivals in every order release the postprocess once, after the last member;
// two members arriving together both climb and converge; a crash after each step (through finish, whose
// step 4 precedes arrival) is completed by recovery.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { REOPENED, arriveInGroup, forgetArrival, groupComplete, reArriveEnded, readEntries, treeHeight } from '../../../dist/spool/transitions/arrive.js';
import { finishJob } from '../../../dist/spool/transitions/finish.js';
import { compositeGate } from '../../../dist/worker/composite.js';
import { GroupSync } from '../../../dist/spool/transitions/group-sync.js';
import { sweepWaiting } from '../../../dist/spool/transitions/release.js';
import type { Job } from '../../../dist/job/format.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, atStep, attemptOf, crashAfter, fail, onStep, recordSteps, succeed } from './util.js';

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
  /** Arrive as finish does: with the final record written at a path of its own (a claim, here in tmp/). */
  let n = 0;
  const arrive = (j: Job, state: 'done' | 'failed' = 'done') => {
    const record = join(rig.l.tmp, `record-${n++}`);
    fs.writeFileSync(record, JSON.stringify(j));
    return arriveInGroup(rig.l, j, state, record, true);
  };
  const postAt = (h: { id: string }) => rig.where(h.id);
  const isWaiting = (h: { id: string }) => fs.existsSync(join(rig.l.root, 'waiting', 'pq', `${h.id}.json`));
  /** Claim and finish each member under lease `a`, member i with result `r${i}`. */
  async function endMembers(a: Awaited<ReturnType<typeof rig.lease>>, members: Array<{ id: string }>) {
    for (let i = 0; i < members.length; i++) {
      const m = await rig.claim(a, members[i]!.id, 'q');
      expect(await finishJob(m.c, m.job, succeed(a, m.job, `r${i}`))).toBe('moved');
    }
  }
  /** Claim the postprocess, pass its gate (the built-in one settles it there), run `between`, finish it. */
  async function runPostprocess(a: Awaited<ReturnType<typeof rig.lease>>, h: { id: string }, between?: () => Promise<void>) {
    const p = await rig.claim(a, h.id, 'pq');
    const gate = await compositeGate(rig.l, p.job, attemptOf(a, p.job), () => new Date().toISOString(), Date.now());
    if (gate.run) throw new Error('the built-in postprocess is settled by the gate');
    await between?.();
    return finishJob(p.c, p.job, gate.next);
  }

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
        results.push(arrive(ended(members[i]!, i)));
        if (k < n - 1) expect(groupComplete(rig.l, h.group, n)).toBe(false);
      });
      expect(results.filter((r) => r === 'released')).toHaveLength(1);
      expect(results[results.length - 1]).toBe('released');
      expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
      expect(readEntries(rig.l, h.group, n).map((e) => e.result)).toEqual(members.map((_, i) => i));
    });
  }

  it('an arrival creates no file: every entry, token and slot is a link of a member\'s record (the entry), a slot or token of its own path', async () => {
    const { h, members } = await group(7);
    members.forEach((m, i) => arrive(ended(m, i)));
    const dir = join(rig.l.groups, h.group);
    const names = fs.readdirSync(dir).filter((n) => n !== 'group.json');
    expect(names.length).toBeGreaterThan(7);
    const ids = new Set(members.map((m) => m.id));
    for (const n of names) expect(ids.has(JSON.parse(fs.readFileSync(join(dir, n), 'utf8')).id), n).toBe(true);
  });

  it('two members arriving at once (the other arrives between our entry and our climb): exactly one climbs and releases', async () => {
    const { h, members } = await group(2);
    const other: string[] = [];
    atStep('arrive', 1, () => { onStep(); other.push(arrive(ended(members[1]!, 1))); });
    const mine = arrive(ended(members[0]!, 0));
    expect([mine, ...other].sort()).toEqual(['released', 'stopped']);
    expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
  });

  it('the first arrival at a node run again (recovery) before its sibling arrived stops again: its own link is told from the sibling\'s by its token\'s two links', async () => {
    const { h, members } = await group(2);
    expect(arrive(ended(members[0]!, 0))).toBe('stopped');
    expect(arrive(ended(members[0]!, 0))).toBe('stopped');
    expect(isWaiting(h)).toBe(true);
    expect(arrive(ended(members[1]!, 1))).toBe('released');
    expect(arrive(ended(members[0]!, 0))).toBe('stopped');
    expect(arrive(ended(members[1]!, 1))).toBe('root');
  });

  it('a member run again in a group still under way (retried before the others ended): its new end replaces its entry, nothing released early', async () => {
    const { h, members } = await group(3);
    expect(arrive({ ...members[0]!, failure: { name: 'Error', message: 'x', reason: 'error' }, finished: 'now' }, 'failed')).toBe('stopped');
    expect(arrive(ended(members[0]!, 'again'))).toBe('stopped');
    expect(isWaiting(h)).toBe(true);
    expect(arrive(ended(members[1]!, 1))).toBe('stopped');
    expect(arrive(ended(members[2]!, 2))).toBe('released');
    expect(readEntries(rig.l, h.group, 3).map((e) => [e.state, e.result])).toEqual([['done', 'again'], ['done', 1], ['done', 2]]);
  });

  it('forgetArrival (retry of members of an ended group): the postprocess is released again only when every retried member arrived again', async () => {
    const { h, members } = await group(8);
    for (let i = 0; i < 8; i++) arrive(ended(members[i]!, i));
    expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
    fs.renameSync(join(rig.l.root, 'pending', 'pq', `${h.id}.json`), join(rig.l.root, 'waiting', 'pq', `${h.id}.json`));
    for (const i of [1, 2, 6]) forgetArrival(rig.l, members[i]!.group!);
    expect(groupComplete(rig.l, h.group, 8)).toBe(false);
    expect(arrive(ended(members[6]!, 60))).toBe('stopped');
    expect(arrive(ended(members[1]!, 10))).toBe('stopped');
    expect(isWaiting(h)).toBe(true);
    expect(arrive(ended(members[2]!, 20))).toBe('released');
    expect(readEntries(rig.l, h.group, 8).map((e) => e.result)).toEqual([0, 10, 20, 3, 4, 5, 60, 7]);
  });

  for (const n of [2, 5]) {
    it(`a member retried while the group's last other member climbs past its slot (group of ${n}): the postprocess waits for the member's new end, then runs once with its new record`, async () => {
      const { h, members } = await group(n);
      const a = await rig.lease();
      // Member 0 fails for good through a real claim and finish; the others but the last arrive.
      const m0 = await rig.claim(a, members[0]!.id, 'q');
      expect(await finishJob(m0.c, m0.job, fail(a, m0.job, 'first try'))).toBe('moved');
      for (let i = 1; i < n - 1; i++) arrive(ended(members[i]!, i));
      // The retry has removed member 0's entry and leaf when the last member arrives and climbs through
      // the slot that still holds member 0's side.
      const race = atStep('forget', 1, () => { onStep(); expect(arrive(ended(members[n - 1]!, n - 1))).toBe('released'); });
      expect((await rig.spool.retry([members[0]!.id]))[0]!.ok).toBe(true);
      expect(race.fired).toBe(true);
      expect(rig.where(members[0]!.id)).toEqual([`pending/q/${members[0]!.id}.json`]);
      // The postprocess was released: its gate sends it back to wait for member 0 instead of running it.
      const runPost = async () => {
        const p = await rig.claim(a, h.id, 'pq');
        const gate = await compositeGate(rig.l, p.job, attemptOf(a, p.job), () => new Date().toISOString(), Date.now());
        expect(gate.run).toBe(false);
        if (gate.run) throw new Error('unreachable');
        expect(await finishJob(p.c, p.job, gate.next)).toBe('moved');
        return gate.next.to;
      };
      expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
      expect(await runPost()).toBe('waiting');
      expect(isWaiting(h)).toBe(true);
      expect(fs.readdirSync(join(rig.l.deps, members[0]!.id))).toEqual([`pq~${h.id}`]);
      // Member 0's new end releases it (whether or not its climb reaches the root), and it runs with the new record.
      const m0b = await rig.claim(a, members[0]!.id, 'q');
      expect(await finishJob(m0b.c, m0b.job, succeed(a, m0b.job, 'second try'))).toBe('moved');
      expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
      expect(await runPost()).toBe('done');
      const done = rig.read(`done/pq/${h.id}.json`);
      expect((done.result as Array<{ state: string; result?: unknown }>).map((e) => [e.state, e.result])).toEqual(members.map((_, i) => ['done', i === 0 ? 'second try' : i]));
      expect(groupComplete(rig.l, h.group, n)).toBe(true);
      expect(fs.existsSync(join(rig.l.deps, members[0]!.id))).toBe(false);
      expect(done.after).toBeUndefined();
    });
  }

  it('durable: the folder fsync of an arrival that stopped goes through finish\'s GroupSync at step 6, beside the target folder\'s', async () => {
    const { h, members } = await group(2);
    const a = await rig.lease();
    const seen = recordSteps();
    const synced: string[] = [];
    class Spy extends GroupSync { override sync(dir: string) { synced.push(`${dir}@${seen.length}`); return super.sync(dir); } }
    const { c, job } = await rig.claim(a, members[0]!.id, 'q');
    expect(await finishJob(c, job, succeed(a, job), new Spy())).toBe('moved');
    const gdir = join(rig.l.groups, h.group);
    const at = synced.find((x) => x.startsWith(`${gdir}@`));
    expect(at, JSON.stringify(synced)).toBeDefined();
    // Synced after the move (finish step 5), at once with the target folder.
    const k = Number(at!.split('@').pop());
    expect(seen.slice(0, k)).toContain('arrive:1');
    expect(seen.slice(0, k)).toContain('finish:5');
    expect(synced).toContain(`${join(rig.l.root, 'done', 'q')}@${k}`);
  });

  it('a member in done/ whose arrival a power cut lost (finish step 6 on a file system without ordered metadata): zcq recover\'s full sweep lets it arrive again; a worker\'s sliced sweep does not scan the group', async () => {
    const { h, members } = await group(3);
    const a = await rig.lease();
    for (let i = 0; i < 3; i++) {
      const m = await rig.claim(a, members[i]!.id, 'q');
      expect(await finishJob(m.c, m.job, succeed(a, m.job, `r${i}`))).toBe('moved');
    }
    expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
    // The power cut kept member 1's move to done/ but none of its arrival, nor the release.
    forgetArrival(rig.l, members[1]!.group!);
    fs.renameSync(join(rig.l.root, 'pending', 'pq', `${h.id}.json`), join(rig.l.root, 'waiting', 'pq', `${h.id}.json`));
    expect((await sweepWaiting(rig.l, true, { limit: 200 })).released).toBe(0);
    expect(isWaiting(h)).toBe(true);
    expect((await sweepWaiting(rig.l, true)).released).toBe(1);
    expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
    expect(readEntries(rig.l, h.group, 3).map((e) => e.result)).toEqual(['r0', 'r1', 'r2']);
  });

  for (const when of ['before', 'after'] as const) {
    it(`a member retried while the postprocess runs past its gate (the member ends again ${when} the postprocess ends): the postprocess goes back to waiting and runs again with the new record`, async () => {
      const { h, members } = await group(2);
      const a = await rig.lease();
      await endMembers(a, members);
      const runPost = async (between?: () => Promise<void>) => expect(await runPostprocess(a, h, between)).toBe('moved');
      const rerunMember0 = async () => {
        const m = await rig.claim(a, members[0]!.id, 'q');
        expect(await finishJob(m.c, m.job, succeed(a, m.job, 'new'))).toBe('moved');
      };
      // The retry finds the postprocess running (not ended): it cannot re-open it itself.
      await runPost(async () => {
        expect((await rig.spool.retry([members[0]!.id]))[0]!.ok).toBe(true);
        if (when === 'before') await rerunMember0();
      });
      if (when === 'after') {
        expect(isWaiting(h)).toBe(true);
        await rerunMember0();
      }
      expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
      await runPost();
      const done = rig.read(`done/pq/${h.id}.json`);
      expect((done.result as Array<{ result?: unknown }>).map((e) => e.result)).toEqual(['new', 'r1']);
    });
  }

  it('a member retried while the postprocess ran, and waiting/QUEUE not a folder when the postprocess ends: it ends as it is, the error is reported (not swallowed), and zcq recover re-opens it once the folder is back', async () => {
    const { h, members } = await group(2);
    const a = await rig.lease();
    await endMembers(a, members);
    const m0 = async () => {
      const m = await rig.claim(a, members[0]!.id, 'q');
      expect(await finishJob(m.c, m.job, succeed(a, m.job, 'new'))).toBe('moved');
    };
    const waitingQ = join(rig.l.root, 'waiting', 'pq');
    const p = await rig.claim(a, h.id, 'pq');
    const gate = await compositeGate(rig.l, p.job, attemptOf(a, p.job), () => new Date().toISOString(), Date.now());
    expect((await rig.spool.retry([members[0]!.id]))[0]!.ok).toBe(true);
    await m0();
    // A co-user (or a slip of the hand) leaves a file where the postprocess's waiting folder was.
    fs.rmSync(waitingQ, { recursive: true, force: true });
    fs.writeFileSync(waitingQ, 'not a folder\n');
    const errors: Error[] = [];
    expect(await finishJob(p.c, p.job, gate.next, undefined, (err) => errors.push(err))).toBe('moved');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/waiting/);
    expect(postAt(h)).toEqual([`done/pq/${h.id}.json`]);
    fs.unlinkSync(waitingQ);
    await rig.spool.recover();
    expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
    await runPostprocess(a, h);
    const done = rig.read(`done/pq/${h.id}.json`);
    expect((done.result as Array<{ result?: unknown }>).map((e) => e.result)).toEqual(['new', 'r1']);
  });

  for (const who of ['zcq recover', 'the member\'s next end'] as const) {
    it(`a crash of the postprocess's finish between its move and its check, a member retried while it ran: ${who} sends it back to run again with the new record`, async () => {
      const { h, members } = await group(2);
      const a = await rig.lease();
      await endMembers(a, members);
      const runPost = (between?: () => Promise<void>) => runPostprocess(a, h, between);
      const rerunMember0 = async () => {
        const m = await rig.claim(a, members[0]!.id, 'q');
        expect(await finishJob(m.c, m.job, succeed(a, m.job, 'new'))).toBe('moved');
      };
      const mark = join(rig.l.groups, h.group, REOPENED);
      // The retry finds the postprocess running; its finish moves it to done/ and dies before its check.
      const crash = crashAfter('finish', 5, h.id);
      await expect(runPost(async () => {
        expect((await rig.spool.retry([members[0]!.id]))[0]!.ok).toBe(true);
        if (who === 'zcq recover') await rerunMember0();
      })).rejects.toThrow(SimulatedCrash);
      expect(crash.fired).toBe(true);
      expect(postAt(h)).toEqual([`done/pq/${h.id}.json`]);
      expect(fs.existsSync(mark)).toBe(true);
      if (who === 'zcq recover') await rig.spool.recover();
      else await rerunMember0();
      expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
      expect(await runPost()).toBe('moved');
      expect(fs.existsSync(mark)).toBe(false);
      const done = rig.read(`done/pq/${h.id}.json`);
      expect((done.result as Array<{ result?: unknown }>).map((e) => e.result)).toEqual(['new', 'r1']);
      // Nothing left to re-open: a later zcq recover leaves it done.
      await rig.spool.recover();
      expect(postAt(h)).toEqual([`done/pq/${h.id}.json`]);
    });
  }

  it('zcq recover re-arriving a member with its old record at the instant it is retried: a postprocess that ran with that record runs again once the member ends anew', async () => {
    const { h, members } = await group(2);
    const a = await rig.lease();
    const runPost = async () => {
      const p = await rig.claim(a, h.id, 'pq');
      const gate = await compositeGate(rig.l, p.job, attemptOf(a, p.job), () => new Date().toISOString(), Date.now());
      if (gate.run) throw new Error('the built-in postprocess is settled by the gate');
      expect(await finishJob(p.c, p.job, gate.next)).toBe('moved');
      return gate.next.to;
    };
    const m1 = await rig.claim(a, members[1]!.id, 'q');
    expect(await finishJob(m1.c, m1.job, succeed(a, m1.job, 'r1'))).toBe('moved');
    const m0 = await rig.claim(a, members[0]!.id, 'q');
    expect(await finishJob(m0.c, m0.job, fail(a, m0.job, 'first try'))).toBe('moved');
    expect(await runPost()).toBe('done');
    // The retry has removed member 0's entry (its record is still in failed/) when recover's full sweep
    // re-arrives it: the old record is its entry again, and the postprocess runs with it.
    const race = atStep('forget', 1, () => { onStep(); expect(reArriveEnded(rig.l, h.group, 2, true).arrived).toBe(1); });
    expect((await rig.spool.retry([members[0]!.id]))[0]!.ok).toBe(true);
    expect(race.fired).toBe(true);
    expect(readEntries(rig.l, h.group, 2)[0]).toMatchObject({ state: 'failed' });
    let stale = 0;
    for (let k = 0; k < 3 && postAt(h)[0]?.startsWith('pending/'); k++) if (await runPost() === 'done') stale++;
    expect(stale).toBe(1);
    expect((rig.read(`done/pq/${h.id}.json`).result as Array<{ state: string }>)[0]!.state).toBe('failed');
    // Member 0's new end replaces the stale entry and re-opens the postprocess, which runs again with it.
    const m0b = await rig.claim(a, members[0]!.id, 'q');
    expect(await finishJob(m0b.c, m0b.job, succeed(a, m0b.job, 'second try'))).toBe('moved');
    expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
    expect(await runPost()).toBe('done');
    const done = rig.read(`done/pq/${h.id}.json`);
    expect((done.result as Array<{ state: string; result?: unknown }>).map((e) => [e.state, e.result])).toEqual([['done', 'second try'], ['done', 'r1']]);
  });

  it('recovery re-running a member\'s finish (its record rewritten: a new inode, the same run) replaces the entry without re-opening the group', async () => {
    const { h, members } = await group(2);
    const run = { run: 'L/1' };
    expect(arrive({ ...ended(members[0]!, 0), ...run })).toBe('stopped');
    expect(arrive({ ...ended(members[0]!, 0), ...run })).toBe('stopped');
    expect(fs.existsSync(join(rig.l.groups, h.group, REOPENED))).toBe(false);
    expect(arrive({ ...ended(members[0]!, 0), run: 'L/2' })).toBe('stopped');
    expect(fs.existsSync(join(rig.l.groups, h.group, REOPENED))).toBe(true);
  });

  it('arriving again (recovery re-running finish) releases nothing twice', async () => {
    const { h, members } = await group(3);
    for (let i = 0; i < 3; i++) arrive(ended(members[i]!, i));
    expect(arrive(ended(members[2]!, 2))).toBe('root');
    expect(postAt(h)).toEqual([`pending/pq/${h.id}.json`]);
  });

  for (const [k, detail] of [[1, undefined], [2, undefined], [3, undefined]] as const) {
    it(`crash of the last member's finish after arrive step ${k}: recovery completes finish and the release, once`, async () => {
      const { h, members } = await group(4);
      for (let i = 0; i < 3; i++) arrive(ended(members[i]!, i));
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

  it('a record gone from its claim (the lease was taken) arrives as lost, leaving no leaf', async () => {
    const { h, members } = await group(2);
    expect(arriveInGroup(rig.l, ended(members[0]!, 0), 'done', join(rig.l.tmp, 'no-such-record'), true)).toBe('lost');
    expect(fs.readdirSync(join(rig.l.groups, h.group))).toEqual(['group.json']);
  });

  it('the leaf is the record itself (a hard link): moving or pruning the record later leaves the entry', async () => {
    const { h, members } = await group(1);
    const record = join(rig.l.tmp, 'rec');
    fs.writeFileSync(record, JSON.stringify(ended(members[0]!, 42)));
    arriveInGroup(rig.l, ended(members[0]!, 42), 'done', record, true);
    expect(fs.statSync(join(rig.l.groups, h.group, "e.0")).ino).toBe(fs.statSync(record).ino);
    fs.unlinkSync(record);
    expect(readEntries(rig.l, h.group, 1)).toEqual([{ id: members[0]!.id, state: 'done', result: 42 }]);
  });

  it('a symbolic link planted where the group folder was: the member still ends (the hook is skipped, nothing written through it)', async () => {
    const { h, members } = await group(2);
    const elsewhere = join(rig.l.root, '..', 'elsewhere');
    fs.mkdirSync(elsewhere);
    fs.rmSync(join(rig.l.groups, h.group), { recursive: true });
    fs.symlinkSync(elsewhere, join(rig.l.groups, h.group));
    const a = await rig.lease();
    const { c, job } = await rig.claim(a, members[0]!.id, 'q');
    expect(await finishJob(c, job, succeed(a, job))).toBe('moved');
    expect(rig.where(job.id)).toEqual([`done/q/${job.id}.json`]);
    expect(fs.readdirSync(elsewhere)).toEqual([]);
  });

  it('an entry of a failed member carries its failure', async () => {
    const { h, members } = await group(1);
    arrive({ ...members[0]!, failure: { name: 'Error', message: 'x', reason: 'error' }, finished: 'now' }, 'failed');
    expect(readEntries(rig.l, h.group, 1)).toEqual([{ id: members[0]!.id, state: 'failed', failure: { name: 'Error', message: 'x', reason: 'error' } }]);
  });
});
