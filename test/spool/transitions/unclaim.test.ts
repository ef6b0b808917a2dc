// unclaim (src/spool/transitions/unclaim.ts): claimed/LEASE/SEQ.ID.json -> pending/QUEUE/ID.json, for a job
// the worker's fn filter refuses. Crash after the step, the fence for real, and a retry record put back as it came.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { unclaimJob } from '../../../dist/spool/transitions/unclaim.js';
import { claimJob } from '../../../dist/spool/transitions/claim.js';
import { newJob } from '../../../dist/job/format.js';
import { cleanupTemp } from '../../helpers.js';
import { FN, Rig, SimulatedCrash, crashAfter, onStep, recordSteps } from './util.js';

afterAll(cleanupTemp);

describe('unclaim', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  it('puts the file back in pending/QUEUE byte for byte: no attempt, no interrupt counted; then anyone may claim it', async () => {
    await rig.put('j1', { queue: 'q' });
    const before = fs.readFileSync(join(rig.l.pending, 'q', 'j1.json'), 'utf8');
    const a = await rig.lease();
    const { c } = await rig.claim(a, 'j1', 'q');
    const seen = recordSteps();
    expect(unclaimJob(c)).toBe(true);
    expect(seen).toEqual(['unclaim:1']);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(fs.readFileSync(join(rig.l.pending, 'q', 'j1.json'), 'utf8')).toBe(before);
    const b = await rig.lease();
    expect(claimJob(b, 'q', 'j1.json')).not.toBeNull();
  });

  it('a finished record moved back by hand goes back unchanged (the reset was in memory only): the next claimer resets it', async () => {
    const old = newJob({ id: 'j1', fn: FN, queue: 'q' });
    Object.assign(old, { attempts: 2, result: 3, finished: new Date().toISOString(), run: 'old.1.abc/7' });
    rig.write(join(rig.l.pending, 'q', 'j1.json'), old);
    const a = await rig.lease();
    const { c, retried, job } = await rig.claim(a, 'j1', 'q');
    expect(retried).toBe(true);
    expect(job.attempts).toBe(0);
    expect(unclaimJob(c)).toBe(true);
    expect(rig.read('pending/q/j1.json')).toMatchObject({ attempts: 2, run: 'old.1.abc/7' });
    const again = await rig.claim(await rig.lease(), 'j1', 'q');
    expect(again.retried).toBe(true);
  });

  it('crash after 1: the job is pending; nothing is left in the lease for recovery', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    const { c } = await rig.claim(a, 'j1', 'q');
    crashAfter('unclaim', 1);
    expect(() => unclaimJob(c)).toThrow(SimulatedCrash);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    rig.kill(a);
    expect((await rig.recover()).n).toBe(0);
    expect(rig.read('pending/q/j1.json').interrupts ?? 0).toBe(0);
  });

  it('fence: once a recoverer took the lease folder, unclaim moves nothing (the recoverer settles the job)', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    const { c } = await rig.claim(a, 'j1', 'q');
    rig.kill(a);
    const { me } = await rig.recover();
    expect(unclaimJob(c)).toBe(false);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(rig.read('pending/q/j1.json').interrupts).toBe(1);
    expect(fs.existsSync(me.dir)).toBe(true);
  });

  it('fence: a lease folder swapped for a symlink is refused; nothing is renamed through it', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    const { c } = await rig.claim(a, 'j1', 'q');
    const elsewhere = join(rig.l.root, '..', 'elsewhere');
    fs.renameSync(a.dir, elsewhere);
    fs.symlinkSync(elsewhere, a.dir);
    expect(unclaimJob(c)).toBe(false);
    expect(fs.readdirSync(elsewhere)).toEqual(['1.j1.json']);
    expect(fs.existsSync(join(rig.l.pending, 'q', 'j1.json'))).toBe(false);
  });
});
