// quota-take and quota-release (src/spool/transitions/quota-take.ts, quota-release.ts): slots as exclusive
// creates quotas/NAME/K holding the run token; all or none; a crash after each step; recovery of a dead
// lease gives its slots back; a stale holder never frees a slot handed on to another run.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setLimit, slotHolder } from '../../../dist/spool/quota.js';
import { takeSlots } from '../../../dist/spool/transitions/quota-take.js';
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
