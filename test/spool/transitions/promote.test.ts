// promote (src/spool/transitions/promote.ts): deferred/QUEUE/BUCKET/DUEMS.ID.json -> pending/QUEUE/ID.json
// when due, and adoptLoose: pending/ID.json -> pending/QUEUE/ID.json. Crash at any marked step: each job in
// exactly one place; the next pass goes on.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { newJob, serializeJob } from '../../../dist/job/format.js';
import { adoptLoose, promoteDue } from '../../../dist/spool/transitions/promote.js';
import { bucketOf } from '../../../dist/spool/names.js';
import { cleanupTemp } from '../../helpers.js';
import { FN, Rig, atStep, crashAfter, onStep } from './util.js';

afterAll(cleanupTemp);

describe('promote', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  // Due times in the past, in one old bucket (old enough to be removed once emptied): the start of a minute,
  // so that base + 2 ms is in the same minute's folder.
  const base = Math.floor((Date.now() - 600_000) / 60_000) * 60_000;
  async function deferThree() {
    for (const [i, id] of ['a', 'b', 'c'].entries()) await rig.put(id, { queue: 'q' }, base + i);
    await rig.put('later', { queue: 'q' }, Date.now() + 3_600_000);
  }
  const everyOnce = (ids: string[]) => { for (const id of ids) expect(rig.where(id)).toHaveLength(1); };

  it('crash after 1: pending/QUEUE made, nothing moved; the next pass promotes all that are due', async () => {
    await deferThree();
    const crash = crashAfter('promote', 1);
    const rep = await promoteDue(rig.l, Date.now(), true);
    expect(crash.fired).toBe(true);
    expect(rep.errors.map((e) => e.error)).toEqual([expect.stringMatching(/simulated crash/)]);
    expect(fs.readdirSync(join(rig.l.pending, 'q'))).toEqual([]);
    everyOnce(['a', 'b', 'c', 'later']);
    expect((await promoteDue(rig.l, Date.now(), true)).promoted).toBe(3);
    for (const id of ['a', 'b', 'c']) expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
    expect(rig.where('later')[0]).toMatch(/^deferred\/q\//);
  });

  it('crash after 2 (the first move): that job pending, the others still due in deferred/; the next pass moves the rest', async () => {
    await deferThree();
    crashAfter('promote', 2);
    await promoteDue(rig.l, Date.now(), true);
    expect(rig.where('a')).toEqual(['pending/q/a.json']);
    for (const id of ['b', 'c']) expect(rig.where(id)[0]).toMatch(new RegExp(`^deferred/q/${bucketOf(base)}/\\d{15}\\.${id}\\.json$`));
    everyOnce(['a', 'b', 'c', 'later']);
    expect((await promoteDue(rig.l, Date.now(), true)).promoted).toBe(2);
    for (const id of ['a', 'b', 'c']) expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
  });

  it('crash after 3: all due jobs pending, the emptied bucket left (step 4 did not run); doctor --repair removes it', async () => {
    await deferThree();
    crashAfter('promote', 3);
    await promoteDue(rig.l, Date.now(), true);
    for (const id of ['a', 'b', 'c']) expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
    const bucket = join(rig.l.deferred, 'q', bucketOf(base));
    expect(fs.readdirSync(bucket)).toEqual([]);
    const problems = await rig.spool.doctor({ repair: true });
    expect(problems).toContainEqual(expect.objectContaining({ kind: 'empty bucket', path: bucket, repaired: true }));
    expect(fs.existsSync(bucket)).toBe(false);
  });

  it('without a crash the emptied old bucket is removed, a bucket still holding later jobs is kept', async () => {
    await deferThree();
    expect((await promoteDue(rig.l, Date.now(), true)).promoted).toBe(3);
    expect(fs.existsSync(join(rig.l.deferred, 'q', bucketOf(base)))).toBe(false);
    expect(rig.where('later')).toHaveLength(1);
  });

  it('two promoters at once: every due job promoted exactly once', async () => {
    await deferThree();
    let inner: Promise<{ promoted: number }> | undefined;
    atStep('promote', 2, () => { inner = promoteDue(rig.l, Date.now(), true); });
    const outer = await promoteDue(rig.l, Date.now(), true);
    await inner;
    for (const id of ['a', 'b', 'c']) expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
    expect(outer.errors).toEqual([]);
  });

  describe('adoptLoose', () => {
    function loose(id: string, queue: string) {
      fs.writeFileSync(join(rig.l.pending, `${id}.json`), serializeJob(newJob({ id, fn: FN, queue })));
    }

    it('crash after 1 (checked, folder made): still loose; the next pass files it under its queue', async () => {
      loose('j1', 'q');
      crashAfter('adopt', 1);
      const rep = await adoptLoose(rig.l, true);
      expect(rep.errors).toHaveLength(1);
      expect(rig.where('j1')).toEqual(['pending/j1.json']);
      expect(fs.existsSync(join(rig.l.pending, 'q'))).toBe(true);
      expect((await adoptLoose(rig.l, true)).adopted).toBe(1);
      expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    });

    it('crash after 2: adopted; the next pass has nothing to do; a claim takes it', async () => {
      loose('j1', 'q');
      crashAfter('adopt', 2);
      await adoptLoose(rig.l, true);
      expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
      expect((await adoptLoose(rig.l, true)).adopted).toBe(0);
      const a = await rig.lease();
      await rig.claim(a, 'j1', 'q');
      expect(rig.where('j1')).toEqual([`claimed/${a.id}/1.j1.json`]);
    });

    it('a loose file that is not a job, a symlink or a badly named file goes to quarantine/ with its reason', async () => {
      fs.writeFileSync(join(rig.l.pending, 'bad.json'), '{no');
      fs.symlinkSync('/etc/passwd', join(rig.l.pending, 'link.json'));
      fs.writeFileSync(join(rig.l.pending, 'odd name.txt'), 'x');
      const rep = await adoptLoose(rig.l, true);
      expect(rep.quarantined).toBe(3);
      expect(rig.where('bad')).toEqual(['quarantine/bad.json']);
      expect(fs.lstatSync(join(rig.l.quarantine, 'link.json')).isSymbolicLink()).toBe(true);
      expect(fs.readFileSync(join(rig.l.quarantine, 'bad.json.reason'), 'utf8')).toMatch(/put in pending\/ by hand/);
      expect(fs.readFileSync('/etc/passwd', 'utf8').length).toBeGreaterThan(0);
    });

    it('two adopters at once: the file is filed exactly once', async () => {
      loose('j1', 'q');
      let inner: Promise<unknown> | undefined;
      atStep('adopt', 1, () => { inner = adoptLoose(rig.l, true); });
      await adoptLoose(rig.l, true);
      await inner;
      expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    });
  });
});
