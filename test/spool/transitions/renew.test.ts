// renew (src/spool/transitions/renew.ts): the heartbeat workers/LEASE.json rewritten (a fresh server mtime).
// Crash after 1: a temporary in tmp/, the heartbeat as it was; after 2: renewed. Fence: a recoverer that
// took our folder makes the next beat fail (lease lost), and nothing is written into a folder not ours.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { renewLease } from '../../../dist/spool/transitions/renew.js';
import { claimJob } from '../../../dist/spool/transitions/claim.js';
import { judgeLease } from '../../../dist/spool/lease.js';
import { cleanLeftovers } from '../../../dist/spool/housekeeping.js';
import { LeaseLostError } from '../../../dist/errors.js';
import { REMAKES_MAX } from '../../../dist/spool/fsops.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, crashAfter, onStep } from './util.js';

afterAll(cleanupTemp);

describe('renew', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  it('crash after 1: a temporary .hb-LEASE-* in tmp/, the heartbeat not renewed (still judged by its old age); housekeeping removes the temporary', async () => {
    const a = await rig.lease();
    rig.kill(a); // the last beat an hour ago
    crashAfter('renew', 1);
    await expect(renewLease(a)).rejects.toThrow(SimulatedCrash);
    expect(rig.tmp(`.hb-${a.id}-`)).toHaveLength(1);
    expect((await judgeLease(rig.l, rig.clock(), a.id, 30_000)).expired).toBe(true);
    rig.ageTmp();
    await cleanLeftovers(rig.l, rig.clock(), { tmpAgeMs: 60_000 });
    expect(rig.tmp(`.hb-${a.id}-`)).toEqual([]);
    expect(fs.existsSync(a.heartbeatFile)).toBe(true);
  });

  it('crash after 2: renewed — a fresh server mtime, the lease is alive again, no temporary left', async () => {
    const a = await rig.lease();
    rig.kill(a);
    crashAfter('renew', 2);
    await expect(renewLease(a, { running: 1 })).rejects.toThrow(SimulatedCrash);
    const j = await judgeLease(rig.l, rig.clock(), a.id, 30_000);
    expect(j.expired).toBe(false);
    expect(j.ageMs!).toBeLessThan(10_000);
    expect(JSON.parse(fs.readFileSync(a.heartbeatFile, 'utf8'))).toMatchObject({ id: a.id, running: 1, kind: 'worker' });
    expect(rig.tmp(`.hb-${a.id}-`)).toEqual([]);
    expect((await rig.recover()).n).toBe(0);
    expect(fs.existsSync(a.dir)).toBe(true);
  });

  it('fence: a recoverer took our folder — the next beat marks the lease lost (LeaseLostError) and writes nothing into the folder', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    expect(claimJob(a, 'q', 'j1.json')).not.toBeNull();
    rig.kill(a);
    const r = await rig.recover();
    expect(r.n).toBe(1);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    await expect(renewLease(a)).rejects.toBeInstanceOf(LeaseLostError);
    expect(a.isLost).toBe(true);
    expect(fs.existsSync(a.dir)).toBe(false); // never re-created
    expect(fs.existsSync(a.heartbeatFile)).toBe(false);
    expect(claimJob(a, 'q', 'j1.json')).toBeNull();
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    await expect(renewLease(a)).rejects.toBeInstanceOf(LeaseLostError);
  });

  it('a heartbeat that looks missing is looked for again, past a mount\'s entry cache, before its folder\'s age condemns the lease', async () => {
    // Through another machine's GlusterFS mount a heartbeat being renamed over can look missing for up to
    // 1 s (docs/nfs.md). Here it is really missing at first and back 300 ms later: the lease is judged by
    // the heartbeat that came back, not by its folder (an hour old, which would say "expired").
    const a = await rig.lease();
    const hourAgo = new Date(Date.now() - 3_600_000);
    fs.utimesSync(a.dir, hourAgo, hourAgo);
    fs.unlinkSync(a.heartbeatFile);
    const back = new Promise<void>((r) => setTimeout(() => { void renewLease(a).then(() => r()); }, 300));
    const j = await judgeLease(rig.l, rig.clock(), a.id, 30_000);
    await back;
    expect(j.expired).toBe(false);
    expect(j.ageMs!).toBeLessThan(10_000);
    // Really gone: judged by the folder's age once the second look found nothing either.
    fs.unlinkSync(a.heartbeatFile);
    const gone = await judgeLease(rig.l, rig.clock(), a.id, 30_000);
    expect(gone.expired).toBe(true);
    expect(gone.ageMs!).toBeGreaterThan(3_500_000);
    // A young folder without a heartbeat is alive without a second look.
    fs.utimesSync(a.dir, new Date(), new Date());
    expect((await judgeLease(rig.l, rig.clock(), a.id, 30_000)).expired).toBe(false);
  });

  it('tmp/ removed by hand between the steps, twice in a row (a person\'s rm -rf racing the remake): the beat renews, tmp/ is back with its mode', async () => {
    const a = await rig.lease();
    rig.kill(a);
    const tmpDir = rig.l.tmp;
    const mode = fs.statSync(tmpDir).mode & 0o7777;
    let removed = 0;
    onStep((t, k) => { if (t === 'renew' && k === 1 && removed < 2) { removed++; fs.rmSync(tmpDir, { recursive: true }); } });
    await renewLease(a);
    onStep();
    expect(removed).toBe(2);
    const j = await judgeLease(rig.l, rig.clock(), a.id, 30_000);
    expect(j.expired).toBe(false);
    expect(fs.statSync(tmpDir).mode & 0o7777).toBe(mode);
    expect(rig.tmp(`.hb-${a.id}-`)).toEqual([]);
  });

  it('a removal at every beat\'s step 1 ends the beat after REMAKES_MAX more tries, the error naming what was removed: tmp/ (the temporary), or workers/', async () => {
    const a = await rig.lease();
    const before = fs.readFileSync(a.heartbeatFile, 'utf8');
    let removed = 0;
    onStep((t, k) => { if (t === 'renew' && k === 1) { removed++; fs.rmSync(rig.l.tmp, { recursive: true }); } });
    await expect(renewLease(a)).rejects.toThrow(/temporary in .*tmp was removed before its rename, 4 times in a row/);
    expect(removed).toBe(REMAKES_MAX + 1);
    expect(fs.readFileSync(a.heartbeatFile, 'utf8')).toBe(before);
    removed = 0;
    onStep((t, k) => { if (t === 'renew' && k === 1) { removed++; fs.rmSync(rig.l.workers, { recursive: true }); } });
    await expect(renewLease(a)).rejects.toThrow(/workers\/ was removed again each time it was made/);
    onStep();
    expect(removed).toBe(REMAKES_MAX + 1);
    expect(rig.tmp(`.hb-${a.id}-`)).toEqual([]);
    // Left alone, the next beat renews.
    await renewLease(a);
    expect(JSON.parse(fs.readFileSync(a.heartbeatFile, 'utf8')).id).toBe(a.id);
  });
});
