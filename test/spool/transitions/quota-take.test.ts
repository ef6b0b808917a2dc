// quota-take and quota-release (src/spool/transitions/quota-take.ts, quota-release.ts): slots as exclusive
// creates quotas/NAME/K holding the run token; all or none; a crash after each step; recovery of a dead
// lease gives its slots back; a stale holder never frees a slot handed on to another run.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { freeSlotsNow, setLimit, slotHolder, takerState } from '../../../dist/spool/quota.js';
import { takeSlots, type Slot } from '../../../dist/spool/transitions/quota-take.js';
import type { Lease } from '../../../dist/spool/lease.js';
import { releaseLeaseSlots, releaseSlots } from '../../../dist/spool/transitions/quota-release.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, crashAfter, onStep, recordSteps } from './util.js';

afterAll(cleanupTemp);

describe('quota-take / quota-release', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  const slots = (q: string) => fs.readdirSync(join(rig.l.quotas, q)).filter((n) => /^\d+$/.test(n)).sort();

  it('takes the first free slot of each quota, in name order, holding the run token; none over the limit; release gives them back', async () => {
    await setLimit(rig.l, 'a', 2, true);
    await setLimit(rig.l, 'b', 1, true);
    const seen = recordSteps();
    const r1 = takeSlots(rig.l, ['b', 'a', 'unset'], 'L1/1');
    expect(seen).toEqual(['quota-take:1', 'quota-take:2', 'quota-take:1', 'quota-take:2']);
    expect('slots' in r1 && r1.slots.map((s) => s.quota)).toEqual(['a', 'b']);
    expect(slotHolder(join(rig.l.quotas, 'a', '0'))).toBe('L1/1');
    // b is full: nothing is kept of a run that cannot have all its slots
    const r2 = takeSlots(rig.l, ['a', 'b'], 'L2/1');
    expect(r2).toEqual({ blocked: 'b', limit: 1 });
    expect(slots('a')).toEqual(['0']);
    const r3 = takeSlots(rig.l, ['a'], 'L2/2');
    expect('slots' in r3 && r3.slots[0]!.path).toBe(join(rig.l.quotas, 'a', '1'));
    expect(takeSlots(rig.l, ['a'], 'L2/3')).toEqual({ blocked: 'a', limit: 2 });
    // release: only a slot still holding the token
    if (!('slots' in r1)) throw new Error('unreachable');
    expect(releaseSlots(r1.slots, 'someone-else/9')).toEqual([]);
    expect(releaseSlots(r1.slots, 'L1/1')).toEqual(['a', 'b']);
    expect(slots('a')).toEqual(['1']);
    expect(slots('b')).toEqual([]);
  });

  it('a lowered limit: no new slot while as many slot files exist as the new limit, whatever their numbers', async () => {
    await setLimit(rig.l, 'a', 3, true);
    takeSlots(rig.l, ['a'], 'L/1'); takeSlots(rig.l, ['a'], 'L/2'); takeSlots(rig.l, ['a'], 'L/3');
    releaseSlots([{ quota: 'a', path: join(rig.l.quotas, 'a', '0') }], 'L/1');
    await setLimit(rig.l, 'a', 2, true);
    expect(takeSlots(rig.l, ['a'], 'L/4')).toEqual({ blocked: 'a', limit: 2 }); // slots 1 and 2 held
    releaseSlots([{ quota: 'a', path: join(rig.l.quotas, 'a', '2') }], 'L/3');
    expect('slots' in takeSlots(rig.l, ['a'], 'L/5')).toBe(true); // slot 0 again
    expect(slots('a')).toEqual(['0', '1']);
  });

  it('crash after step 1: nothing written. After step 2: the slot is held under the lease; recovery of the lease releases it', async () => {
    await setLimit(rig.l, 'a', 1, true);
    const j = await rig.put('j1');
    const lease = await rig.lease();
    const { c } = await rig.claim(lease, j.id);
    crashAfter('quota-take', 1);
    expect(() => takeSlots(rig.l, ['a'], c.token)).toThrow(SimulatedCrash);
    expect(slots('a')).toEqual([]);
    crashAfter('quota-take', 2);
    expect(() => takeSlots(rig.l, ['a'], c.token)).toThrow(SimulatedCrash);
    expect(slots('a')).toEqual(['0']);
    onStep();
    expect(takeSlots(rig.l, ['a'], 'other/1')).toEqual({ blocked: 'a', limit: 1 });
    rig.kill(lease);
    const { n } = await rig.recover();
    expect(n).toBe(1);
    expect(slots('a')).toEqual([]);
    expect(rig.only('j1')).toBe('pending/default/j1.json'); // interrupted before it ran: back by its policy
  });

  it('crash after quota-release step 1 (one of two slots released): recovery of the lease releases the other', async () => {
    await setLimit(rig.l, 'a', 1, true);
    await setLimit(rig.l, 'b', 1, true);
    const lease = await rig.lease();
    const token = `${lease.id}/1`;
    const r = takeSlots(rig.l, ['a', 'b'], token);
    if (!('slots' in r)) throw new Error('no slots');
    crashAfter('quota-release', 1);
    expect(() => releaseSlots(r.slots, token)).toThrow(SimulatedCrash);
    onStep();
    expect(slots('a')).toEqual([]);
    expect(slots('b')).toEqual(['0']);
    rig.kill(lease);
    await rig.recover();
    expect(slots('b')).toEqual([]);
  });

  it('release while the lease folder is still the holder\'s: no read; once it is not: only a slot holding the token', async () => {
    await setLimit(rig.l, 'a', 2, true);
    const r = takeSlots(rig.l, ['a'], 'L/1');
    if (!('slots' in r)) throw new Error('no slot');
    expect(releaseSlots(r.slots, 'L/1', () => true)).toEqual(['a']);
    expect(slots('a')).toEqual([]);
    // The lease was taken (folder not ours) and the slot handed on: left alone.
    const r2 = takeSlots(rig.l, ['a'], 'L/2');
    if (!('slots' in r2)) throw new Error('no slot');
    fs.writeFileSync(r2.slots[0]!.path, 'other/9\n');
    expect(releaseSlots(r2.slots, 'L/2', () => false)).toEqual([]);
    expect(slots('a')).toEqual(['0']);
  });

  it('releaseLeaseSlots takes only the slots of that lease (not a lease whose name it prefixes)', async () => {
    await setLimit(rig.l, 'a', 3, true);
    takeSlots(rig.l, ['a'], 'host.1.abc/1');
    takeSlots(rig.l, ['a'], 'host.1.abcd/1');
    takeSlots(rig.l, ['a'], 'host.1.abc/2');
    expect(releaseLeaseSlots(rig.l, 'host.1.abc')).toBe(2);
    expect(slots('a').map((k) => slotHolder(join(rig.l.quotas, 'a', k)))).toEqual(['host.1.abcd/1']);
  });

  it('fast path: a slot this process freed is taken again with one create and no listing; taken meanwhile, the listing finds another', async () => {
    await setLimit(rig.l, 'a', 3, true);
    const r1 = takeSlots(rig.l, ['a'], 'L/1');
    if (!('slots' in r1)) throw new Error('no slot');
    expect(r1.slots[0]!.path).toBe(join(rig.l.quotas, 'a', '0'));
    releaseSlots(r1.slots, 'L/1');
    // A slot numbered over the limit appears (no worker makes one within a second of a listing that found
    // none unless the limit was just lowered): only a listing would see it, and the fast path makes none.
    fs.writeFileSync(join(rig.l.quotas, 'a', '7'), 'X/1\n');
    const fast = takeSlots(rig.l, ['a'], 'L/2');
    expect('slots' in fast && fast.slots[0]!.path).toBe(join(rig.l.quotas, 'a', '0'));
    fs.unlinkSync(join(rig.l.quotas, 'a', '7'));
    if (!('slots' in fast)) throw new Error('no slot');
    releaseSlots(fast.slots, 'L/2');
    // Another worker took slot 0 since: EEXIST, then the listing, then the first free number.
    fs.writeFileSync(join(rig.l.quotas, 'a', '0'), 'other/1\n');
    const r3 = takeSlots(rig.l, ['a'], 'L/3');
    expect('slots' in r3 && r3.slots[0]!.path).toBe(join(rig.l.quotas, 'a', '1'));
    expect(slotHolder(join(rig.l.quotas, 'a', '0'))).toBe('other/1');
    // A changed limit is never taken on the fast path: the listing counts 2 held against the new limit 2.
    const r4 = takeSlots(rig.l, ['a'], 'L/4', () => 2);
    expect(r4).toEqual({ blocked: 'a', limit: 2 });
  });

  it('fast path, crash after step 1: nothing written; after step 2: the slot is held', async () => {
    await setLimit(rig.l, 'a', 2, true);
    const r = takeSlots(rig.l, ['a'], 'L/1');
    if (!('slots' in r)) throw new Error('no slot');
    releaseSlots(r.slots, 'L/1');
    crashAfter('quota-take', 1);
    expect(() => takeSlots(rig.l, ['a'], 'L/2')).toThrow(SimulatedCrash);
    expect(slots('a')).toEqual([]);
    crashAfter('quota-take', 2);
    expect(() => takeSlots(rig.l, ['a'], 'L/3')).toThrow(SimulatedCrash);
    expect(slots('a').map((k) => slotHolder(join(rig.l.quotas, 'a', k)))).toEqual(['L/3']);
  });

  it('fair share: while a live worker of another machine waits, a machine takes slots only below limit / machines', async () => {
    await setLimit(rig.l, 'a', 4, true);
    const [hostA1, hostA2, hostB] = ['hosta.1.aaaaaa', 'hosta.2.bbbbbb', 'hostb.3.cccccc'];
    for (const id of [hostA1, hostA2, hostB]) fs.mkdirSync(join(rig.l.claimed, id), { recursive: true });
    // Alone, machine A takes every slot (its own marks never hold it back).
    const a = [1, 2, 3, 4].map((i) => takeSlots(rig.l, ['a'], `${i % 2 ? hostA1 : hostA2}/${i}`));
    expect(a.every((r) => 'slots' in r)).toBe(true);
    expect(takeSlots(rig.l, ['a'], `${hostA2}/5`)).toEqual({ blocked: 'a', limit: 4 });
    expect(fs.existsSync(join(rig.l.quotas, 'a', `w.${hostA2}`))).toBe(true);
    expect(takeSlots(rig.l, ['a'], `${hostB}/1`)).toEqual({ blocked: 'a', limit: 4 }); // B waits: its mark
    expect(fs.existsSync(join(rig.l.quotas, 'a', `w.${hostB}`))).toBe(true);
    // A frees two slots: it holds 2 = ceil(4 / 2 machines), so it takes none of them while B waits.
    for (const r of a.slice(0, 2)) if ('slots' in r) releaseSlots(r.slots, r.slots[0]!.path.endsWith('0') ? `${hostA1}/1` : `${hostA2}/2`);
    expect(slots('a')).toEqual(['2', '3']);
    expect(takeSlots(rig.l, ['a'], `${hostA1}/6`)).toEqual({ blocked: 'a', limit: 4 });
    const b = takeSlots(rig.l, ['a'], `${hostB}/2`);
    expect('slots' in b).toBe(true);
    expect(fs.existsSync(join(rig.l.quotas, 'a', `w.${hostB}`))).toBe(false); // taken: its mark goes
    // B no longer waits: A takes the last free slot.
    expect('slots' in takeSlots(rig.l, ['a'], `${hostA1}/7`)).toBe(true);
    expect(slots('a')).toEqual(['0', '1', '2', '3']);
  });

  it('a wait mark of a lease whose folder is gone counts for nothing and is removed by the next lister', async () => {
    await setLimit(rig.l, 'a', 2, true);
    fs.mkdirSync(join(rig.l.claimed, 'hosta.1.aaaaaa'), { recursive: true });
    fs.mkdirSync(join(rig.l.quotas, 'a'), { recursive: true });
    fs.writeFileSync(join(rig.l.quotas, 'a', 'w.hostb.9.gone00'), ''); // hostb's worker stopped or was recovered
    expect('slots' in takeSlots(rig.l, ['a'], 'hosta.1.aaaaaa/1')).toBe(true);
    expect('slots' in takeSlots(rig.l, ['a'], 'hosta.1.aaaaaa/2')).toBe(true); // not held to 1 of 2
    expect(fs.existsSync(join(rig.l.quotas, 'a', 'w.hostb.9.gone00'))).toBe(false);
  });

  it('a slot is a hard link to an inode of the run, reused for the next run only once no slot links it', async () => {
    await setLimit(rig.l, 'a', 3, true);
    await setLimit(rig.l, 'b', 3, true);
    const r1 = takeSlots(rig.l, ['a', 'b'], 'L/1');
    if (!('slots' in r1)) throw new Error('no slot');
    const own = r1.slots[0]!.own!;
    expect(own.startsWith(join(rig.l.tmp, '.qslot-L-'))).toBe(true);
    expect(r1.slots.map((x) => x.own)).toEqual([own, own]); // one inode, a name in each quota
    expect(fs.statSync(own).nlink).toBe(3);
    expect(slotHolder(r1.slots[1]!.path)).toBe('L/1');
    releaseSlots(r1.slots, 'L/1');
    expect(fs.statSync(own).nlink).toBe(1);
    // The next run writes its token into the same inode (a longer old token is padded, read trimmed).
    const r2 = takeSlots(rig.l, ['a'], 'L/22');
    if (!('slots' in r2)) throw new Error('no slot');
    expect(r2.slots[0]!.own).toBe(own);
    expect(slotHolder(r2.slots[0]!.path)).toBe('L/22');
    releaseSlots(r2.slots, 'L/22');
    const r3 = takeSlots(rig.l, ['a'], 'L/3');
    if (!('slots' in r3)) throw new Error('no slot');
    expect(slotHolder(r3.slots[0]!.path)).toBe('L/3');
    // A slot left linked (say its unlink failed): the inode is not written through; a new one is made.
    releaseSlots(r3.slots, 'other/1'); // not our token: left alone, yet the inode goes back to the pool
    expect(fs.statSync(own).nlink).toBe(2);
    const r4 = takeSlots(rig.l, ['a'], 'L/4');
    if (!('slots' in r4)) throw new Error('no slot');
    expect(r4.slots[0]!.own).not.toBe(own);
    expect(slotHolder(r3.slots[0]!.path)).toBe('L/3');
    expect(slotHolder(r4.slots[0]!.path)).toBe('L/4');
    // The pool's inode removed by housekeeping (an orphan temp file): the take makes another.
    releaseSlots(r4.slots, 'L/4');
    fs.unlinkSync(r4.slots[0]!.own!);
    const r5 = takeSlots(rig.l, ['a'], 'L/5');
    expect('slots' in r5 && slotHolder(r5.slots[0]!.path)).toBe('L/5');
  });

  // What a lease keeps for its next takes (slot inodes in tmp/, wait marks) goes with the lease.
  const inodesOf = (lease: Lease) => rig.tmp(`.qslot-${lease.id}-`);
  const marksIn = (q: string) => fs.readdirSync(join(rig.l.quotas, q)).filter((n) => n.startsWith('w.')).sort();
  /** Quota b's one slot held by a run of a live lease. */
  async function fillB(): Promise<void> {
    const other = await rig.lease();
    expect('slots' in takeSlots(rig.l, ['b'], `${other.id}/1`)).toBe(true);
  }
  /** `lease` holds a/0 (its run 1), has a pooled inode (run 2's, released), and waits for b (run 3: a mark). */
  async function holderAndWaiter(lease: Lease): Promise<{ run1: Slot[] }> {
    const r1 = takeSlots(rig.l, ['a'], `${lease.id}/1`);
    const r2 = takeSlots(rig.l, ['c'], `${lease.id}/2`);
    if (!('slots' in r1) || !('slots' in r2)) throw new Error('no slot');
    releaseSlots(r2.slots, `${lease.id}/2`);
    expect(takeSlots(rig.l, ['b'], `${lease.id}/3`)).toEqual({ blocked: 'b', limit: 1 });
    expect(inodesOf(lease)).toHaveLength(2);
    expect(marksIn('b')).toContain(`w.${lease.id}`);
    return { run1: r1.slots };
  }

  it('recovery of a dead lease removes its wait marks and slot inodes too; a live lease keeps its own', async () => {
    await setLimit(rig.l, 'a', 2, true);
    await setLimit(rig.l, 'b', 1, true);
    await setLimit(rig.l, 'c', 2, true);
    const [dead, live] = [await rig.lease(), await rig.lease()];
    await fillB(); // b is full from here on
    await holderAndWaiter(dead);
    await holderAndWaiter(live);
    rig.kill(dead);
    const seen = recordSteps();
    await rig.recover();
    expect(seen.filter((x) => x.startsWith('quota-release'))).toEqual(['quota-release:1', 'quota-release:2']);
    expect(slots('a').map((k) => slotHolder(join(rig.l.quotas, 'a', k)))).toEqual([`${live.id}/1`]);
    expect(inodesOf(dead)).toEqual([]);
    expect(marksIn('b')).toEqual([`w.${live.id}`]);
    expect(inodesOf(live)).toHaveLength(2);
  });

  it('crash before quota-release step 2 in a recovery: housekeeping removes the dead lease\'s marks and inodes once 10 s old, not a live one\'s', async () => {
    const { cleanLeftovers } = await import('../../../dist/spool/housekeeping.js');
    await setLimit(rig.l, 'a', 2, true);
    await setLimit(rig.l, 'b', 1, true);
    await setLimit(rig.l, 'c', 2, true);
    const [dead, live] = [await rig.lease(), await rig.lease()];
    await fillB();
    await holderAndWaiter(dead);
    await holderAndWaiter(live);
    rig.kill(dead);
    crashAfter('quota-release', 1);
    await rig.recover();
    onStep();
    expect(slots('a').map((k) => slotHolder(join(rig.l.quotas, 'a', k)))).toEqual([`${live.id}/1`]);
    expect(inodesOf(dead)).toHaveLength(2);
    expect(marksIn('b')).toHaveLength(2);
    // Young (a lease made after claimed/ was listed has young ones): kept.
    await cleanLeftovers(rig.l, rig.clock(), {});
    expect(inodesOf(dead)).toHaveLength(2);
    const past = new Date(Date.now() - 60_000);
    for (const p of [...rig.tmp('.qslot-').map((n) => join(rig.l.tmp, n)), ...marksIn('b').map((n) => join(rig.l.quotas, 'b', n))]) fs.utimesSync(p, past, past);
    const report = await cleanLeftovers(rig.l, rig.clock(), {});
    expect(report.filter((r) => r.removed).map((r) => r.what).sort()).toEqual(['quota slot inode of a gone lease', 'quota slot inode of a gone lease', 'wait mark of a gone lease']);
    expect(inodesOf(dead)).toEqual([]);
    expect(marksIn('b')).toEqual([`w.${live.id}`]);
    expect(inodesOf(live)).toHaveLength(2);
  });

  it('a lease that ends (lost, or given up) removes its pooled inodes and wait marks; a run that outlived it leaves neither', async () => {
    await setLimit(rig.l, 'a', 2, true);
    await setLimit(rig.l, 'b', 1, true);
    await setLimit(rig.l, 'c', 2, true);
    await fillB();
    const lost = await rig.lease();
    const { run1 } = await holderAndWaiter(lost);
    lost.markLost();
    expect(inodesOf(lost)).toEqual([run1[0]!.own!.slice(rig.l.tmp.length + 1)]); // still linked as a/0: its run holds it
    expect(marksIn('b')).toEqual([]);
    // The run ends after its lease: slot and inode name both go, nothing is pooled.
    releaseSlots(run1, `${lost.id}/1`);
    expect(inodesOf(lost)).toEqual([]);
    expect(slots('a')).toEqual([]);
    // A take under the ended lease makes its slot directly (no inode of its own), and leaves no mark.
    const late = takeSlots(rig.l, ['a'], `${lost.id}/4`);
    expect('slots' in late && slotHolder(late.slots[0]!.path)).toBe(`${lost.id}/4`);
    expect(takeSlots(rig.l, ['b'], `${lost.id}/5`)).toEqual({ blocked: 'b', limit: 1 });
    expect(inodesOf(lost)).toEqual([]);
    expect(marksIn('b')).toEqual([]);
    // Given up (a worker that stops): the same.
    const ended = await rig.lease();
    const r = await holderAndWaiter(ended);
    releaseSlots(r.run1, `${ended.id}/1`);
    await ended.end();
    expect(inodesOf(ended)).toEqual([]);
    expect(marksIn('b')).toEqual([]);
  });

  it('freeSlotsNow: a full listing is checked by opening its slots; a slot seen gone is tried at the next take, and refuses it if taken again', async () => {
    await setLimit(rig.l, 'a', 2, true);
    await setLimit(rig.l, 'big', 100, true);
    const dir = join(rig.l.quotas, 'a');
    expect(freeSlotsNow(rig.l, 'a', 2)).toBe(2); // no folder yet: nothing held
    const r1 = takeSlots(rig.l, ['a'], 'L1/1');
    const r2 = takeSlots(rig.l, ['a'], 'L2/1');
    if (!('slots' in r1) || !('slots' in r2)) throw new Error('no slot');
    expect(freeSlotsNow(rig.l, 'a', 2)).toBe(0);
    expect(freeSlotsNow(rig.l, 'a', 3)).toBe(1);
    expect(freeSlotsNow(rig.l, 'a', 1)).toBe(0); // a lowered limit: slot 1 is over it, nothing is free
    // What a stale listing leads to: slot 0 was seen gone, yet another run holds it by the take: the link is refused.
    const st = takerState(dir);
    st.gone = [0];
    st.goneAt = performance.now();
    expect(takeSlots(rig.l, ['a'], 'L3/1')).toEqual({ blocked: 'a', limit: 2 });
    expect(slots('a').map((k) => slotHolder(join(dir, k)))).toEqual(['L1/1', 'L2/1']);
    expect(st.gone).toEqual([]); // used once
    releaseSlots(r1.slots, 'L1/1');
    expect(freeSlotsNow(rig.l, 'a', 2)).toBe(1);
    // A large quota: 8 slots opened a call, in turn; a freed one is found within limit / 8 calls.
    const big = Array.from({ length: 100 }, (_, i) => takeSlots(rig.l, ['big'], `B/${i}`));
    const freed = big[57]!;
    if (!('slots' in freed)) throw new Error('no slot');
    releaseSlots(freed.slots, 'B/57');
    big.forEach((r) => expect('slots' in r).toBe(true));
    expect(freeSlotsNow(rig.l, 'big', 100)).toBe(1); // the listing is fresh here: 99 < 100
    expect('slots' in takeSlots(rig.l, ['big'], 'B/100')).toBe(true);
    expect(freeSlotsNow(rig.l, 'big', 100)).toBe(0);
  });

  it('a symlink in place of the quota folder: no slot is created through it', async () => {
    const outside = join(rig.l.root, '..', 'outside');
    fs.mkdirSync(outside);
    fs.mkdirSync(rig.l.quotas, { recursive: true });
    fs.symlinkSync(outside, join(rig.l.quotas, 'evil'));
    fs.writeFileSync(join(outside, 'limit.json'), '{"limit":5}');
    const r = takeSlots(rig.l, ['evil'], 'L/1');
    expect('blocked' in r || ('slots' in r && r.slots.length === 0)).toBe(true);
    expect(fs.readdirSync(outside)).toEqual(['limit.json']);
  });
});
