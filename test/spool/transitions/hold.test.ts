// hold and release (src/spool/transitions/hold.ts): pending/ or deferred/ -> hold/QUEUE/ID.json and back.
// Crash after 2: not moved; after 3: moved; nothing to complete. Fence: hold vs a claim, on one rename.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { holdJob, releaseJob } from '../../../dist/spool/transitions/hold.js';
import { claimJob, readClaimed } from '../../../dist/spool/transitions/claim.js';
import { promoteDue } from '../../../dist/spool/transitions/promote.js';
import { deferredPath } from '../../../dist/spool/names.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, atStep, crashAfter, onStep } from './util.js';

afterAll(cleanupTemp);

describe('hold and release', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  const pendingPath = (id: string) => join(rig.l.pending, 'q', `${id}.json`);
  const heldPath = (id: string) => join(rig.l.hold, 'q', `${id}.json`);

  it('hold, crash after 2: not moved (the folder exists); a worker may still take it', async () => {
    await rig.put('j1', { queue: 'q' });
    crashAfter('hold', 2);
    expect(() => holdJob(rig.l, pendingPath('j1'), 'q', 'j1', true)).toThrow(SimulatedCrash);
    expect(fs.existsSync(join(rig.l.hold, 'q'))).toBe(true);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    const a = await rig.lease();
    expect(claimJob(a, 'q', 'j1.json')).not.toBeNull();
  });

  it('hold, crash after 3: held; neither a claim nor a promotion pass takes it', async () => {
    await rig.put('j1', { queue: 'q' });
    const text = fs.readFileSync(pendingPath('j1'), 'utf8');
    crashAfter('hold', 3);
    expect(() => holdJob(rig.l, pendingPath('j1'), 'q', 'j1', true)).toThrow(SimulatedCrash);
    expect(rig.where('j1')).toEqual(['hold/q/j1.json']);
    expect(fs.readFileSync(heldPath('j1'), 'utf8')).toBe(text);
    const a = await rig.lease();
    expect(claimJob(a, 'q', 'j1.json')).toBeNull();
    await promoteDue(rig.l, Date.now() + 86_400_000, true);
    expect(rig.where('j1')).toEqual(['hold/q/j1.json']);
  });

  it('hold of a deferred job, crash after 3: held, not promoted when its time comes', async () => {
    const due = Date.now() + 60_000;
    await rig.put('j1', { queue: 'q' }, due);
    crashAfter('hold', 3);
    expect(() => holdJob(rig.l, deferredPath(rig.l, 'q', due, 'j1'), 'q', 'j1', true)).toThrow(SimulatedCrash);
    expect(rig.where('j1')).toEqual(['hold/q/j1.json']);
    expect((await promoteDue(rig.l, due + 1000, true)).promoted).toBe(0);
    expect(rig.where('j1')).toEqual(['hold/q/j1.json']);
  });

  it('release, crash after 2: still held', async () => {
    await rig.put('j1', { queue: 'q' });
    holdJob(rig.l, pendingPath('j1'), 'q', 'j1', true);
    crashAfter('release', 2);
    expect(() => releaseJob(rig.l, heldPath('j1'), 'q', 'j1', Date.now(), true)).toThrow(SimulatedCrash);
    expect(rig.where('j1')).toEqual(['hold/q/j1.json']);
  });

  it('release, crash after 3: back in pending/ and claimable', async () => {
    await rig.put('j1', { queue: 'q' });
    holdJob(rig.l, pendingPath('j1'), 'q', 'j1', true);
    crashAfter('release', 3);
    expect(() => releaseJob(rig.l, heldPath('j1'), 'q', 'j1', Date.now(), true)).toThrow(SimulatedCrash);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    const a = await rig.lease();
    expect(claimJob(a, 'q', 'j1.json')).not.toBeNull();
  });

  it('release while notBefore is still ahead (by the given server time): to its deferred bucket, promoted when due', async () => {
    const due = Date.now() + 60_000;
    await rig.put('j1', { queue: 'q' }, due);
    holdJob(rig.l, deferredPath(rig.l, 'q', due, 'j1'), 'q', 'j1', true);
    crashAfter('release', 3);
    expect(() => releaseJob(rig.l, heldPath('j1'), 'q', 'j1', Date.now(), true)).toThrow(SimulatedCrash);
    expect(rig.where('j1')).toEqual([deferredPath(rig.l, 'q', due, 'j1').slice(rig.l.root.length + 1)]);
    onStep();
    expect((await promoteDue(rig.l, due, true)).promoted).toBe(1);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
  });

  it('release of an unreadable file: to pending/, where the claimer quarantines it', async () => {
    fs.mkdirSync(join(rig.l.hold, 'q'), { recursive: true });
    fs.writeFileSync(heldPath('bad'), '{oops');
    expect(releaseJob(rig.l, heldPath('bad'), 'q', 'bad', Date.now(), true)).toBe('pending');
    const a = await rig.lease();
    const c = claimJob(a, 'q', 'bad.json');
    expect(await readClaimed(c!)).toMatchObject({ quarantined: join(rig.l.quarantine, 'bad.json') });
    expect(rig.where('bad')).toEqual(['quarantine/bad.json']);
  });

  it('fence: a claim first, then hold — the hold gets false and the claim is untouched', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    // The claim lands between hold's folder step and its rename.
    atStep('hold', 2, () => { expect(claimJob(a, 'q', 'j1.json')).not.toBeNull(); });
    expect(holdJob(rig.l, pendingPath('j1'), 'q', 'j1', true)).toBe(false);
    expect(rig.where('j1')).toEqual([`claimed/${a.id}/1.j1.json`]);
  });

  it('fence: hold first, then a claim — the claim gets null and takes nothing', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    let claimed: unknown = 'not run';
    atStep('hold', 3, () => { claimed = claimJob(a, 'q', 'j1.json'); });
    expect(holdJob(rig.l, pendingPath('j1'), 'q', 'j1', true)).toBe(true);
    expect(claimed).toBeNull();
    expect(rig.where('j1')).toEqual(['hold/q/j1.json']);
    expect(fs.readdirSync(a.dir)).toEqual([]);
  });

  it('two holds at once: the job is held exactly once', async () => {
    await rig.put('j1', { queue: 'q' });
    atStep('hold', 3, () => { holdJob(rig.l, pendingPath('j1'), 'q', 'j1', true); });
    expect(holdJob(rig.l, pendingPath('j1'), 'q', 'j1', true)).toBe(true);
    expect(rig.where('j1')).toEqual(['hold/q/j1.json']);
  });

  it('of two holds the second is told it lost', async () => {
    await rig.put('j1', { queue: 'q' });
    let second: boolean | undefined;
    atStep('hold', 3, () => { second = holdJob(rig.l, pendingPath('j1'), 'q', 'j1', true); });
    holdJob(rig.l, pendingPath('j1'), 'q', 'j1', true);
    expect(second).toBe(false);
  });
});
