// quarantine (src/spool/transitions/quarantine.ts), crash steps: after 2 an empty placeholder and the entry
// where it was (the next pass quarantines it under NAME.RANDOM); after 3 the entry without its .reason.
// (The hostile-co-user cases are in test/spool/quarantine.test.ts.)
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { quarantine } from '../../../dist/spool/transitions/quarantine.js';
import { adoptLoose } from '../../../dist/spool/transitions/promote.js';
import { claimJob, readClaimed } from '../../../dist/spool/transitions/claim.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, crashAfter, onStep } from './util.js';

afterAll(cleanupTemp);

describe('quarantine', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  it('crash after 2: an empty private placeholder, no .reason, the file still loose; the next adopt pass quarantines it as NAME.RANDOM', async () => {
    const p = join(rig.l.pending, 'bad.json');
    fs.writeFileSync(p, 'garbage');
    crashAfter('quarantine', 2);
    const rep = await adoptLoose(rig.l, true);
    expect(rep.errors.map((e) => e.error)).toEqual([expect.stringMatching(/simulated crash/)]);
    const ph = fs.lstatSync(join(rig.l.quarantine, 'bad.json'));
    expect(ph.isFile() && ph.size === 0).toBe(true);
    expect(ph.mode & 0o777).toBe(0o600);
    expect(fs.existsSync(join(rig.l.quarantine, 'bad.json.reason'))).toBe(false);
    expect(fs.readFileSync(p, 'utf8')).toBe('garbage');

    expect((await adoptLoose(rig.l, true)).quarantined).toBe(1);
    expect(fs.existsSync(p)).toBe(false);
    const names = fs.readdirSync(rig.l.quarantine).sort();
    const moved = names.find((n) => /^bad\.json\.[0-9a-f]{12}$/.test(n))!;
    expect(moved).toBeDefined();
    expect(fs.readFileSync(join(rig.l.quarantine, moved), 'utf8')).toBe('garbage');
    expect(fs.readFileSync(join(rig.l.quarantine, `${moved}.reason`), 'utf8')).toMatch(/put in pending\/ by hand/);
    expect(fs.statSync(join(rig.l.quarantine, 'bad.json')).size).toBe(0); // the placeholder stays empty
  });

  it('crash after 2 inside a dead lease: recovery quarantines the claimed file', async () => {
    fs.mkdirSync(join(rig.l.pending, 'q'));
    fs.writeFileSync(join(rig.l.pending, 'q', 'bad.json'), '[]');
    const a = await rig.lease();
    const c = claimJob(a, 'q', 'bad.json')!;
    crashAfter('quarantine', 2);
    await expect(readClaimed(c)).rejects.toThrow(SimulatedCrash);
    expect(rig.where('bad')).toEqual([`claimed/${a.id}/1.bad.json`, 'quarantine/bad.json']);
    expect(fs.statSync(join(rig.l.quarantine, 'bad.json')).size).toBe(0);
    rig.kill(a);
    await rig.recover();
    const q = fs.readdirSync(rig.l.quarantine).filter((n) => /^bad\.json\.[0-9a-f]{12}$/.test(n));
    expect(q).toHaveLength(1);
    expect(fs.readFileSync(join(rig.l.quarantine, q[0]!), 'utf8')).toBe('[]');
    expect(fs.readFileSync(join(rig.l.quarantine, `${q[0]}.reason`), 'utf8')).toMatch(new RegExp(`dead worker ${a.id}`));
  });

  it('crash after 3: the entry is in quarantine/ without its .reason; nothing is left where it was', async () => {
    const p = join(rig.l.pending, 'x.json');
    fs.writeFileSync(p, 'x');
    crashAfter('quarantine', 3);
    await expect(quarantine(rig.l, p, 'x.json', 'why')).rejects.toThrow(SimulatedCrash);
    expect(fs.existsSync(p)).toBe(false);
    expect(fs.readFileSync(join(rig.l.quarantine, 'x.json'), 'utf8')).toBe('x');
    expect(fs.existsSync(join(rig.l.quarantine, 'x.json.reason'))).toBe(false);
    expect(rig.tmp()).toEqual([]);
  });

  it('doctor reports a quarantined entry without its .reason', async () => {
    const p = join(rig.l.pending, 'x.json');
    fs.writeFileSync(p, 'x');
    crashAfter('quarantine', 3);
    await expect(quarantine(rig.l, p, 'x.json', 'why')).rejects.toThrow(SimulatedCrash);
    const problems = await rig.spool.doctor();
    expect(problems.some((pr) => pr.path.includes(join('quarantine', 'x.json')))).toBe(true);
  });
});
