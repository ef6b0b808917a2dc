// A state folder removed by hand (`rm -rf SPOOL/hold` to drop held jobs, `rm -rf SPOOL/deferred`): every
// transition that moves a job into a queue folder of that state makes the state folder again, with the
// spool's mode, instead of failing with ENOENT (layout.ts makeQueueFolders). finish has its own tests
// (finish.test.ts); here: hold, release to pending/ and to deferred/, retry, a postprocess re-opened into
// waiting/, release of a waiting job, promote, adopt, unclaim — and `zcq hold` from a shell.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { holdJob, releaseJob } from '../../../dist/spool/transitions/hold.js';
import { retryJob, reopenPostprocess } from '../../../dist/spool/transitions/retry.js';
import { releaseWaiting } from '../../../dist/spool/transitions/release.js';
import { adoptLoose, promoteDue } from '../../../dist/spool/transitions/promote.js';
import { unclaimJob } from '../../../dist/spool/transitions/unclaim.js';
import { claimJob } from '../../../dist/spool/transitions/claim.js';
import { newJob, serializeJob } from '../../../dist/job/format.js';
import { cleanupTemp, zcq } from '../../helpers.js';
import { Rig, onStep } from './util.js';

afterAll(cleanupTemp);

describe('a state folder removed by hand is made again by the next move into it', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  const mode = (p: string) => fs.statSync(p).mode & 0o7777;
  const gone = (state: string) => { fs.rmSync(join(rig.l.root, state), { recursive: true }); expect(fs.existsSync(join(rig.l.root, state))).toBe(false); };
  const rootMode = () => mode(rig.l.pending); // a state folder left alone: the mode a re-made one must have

  it('hold into a removed hold/, then release into a removed pending/', async () => {
    await rig.put('j1', { queue: 'q' });
    const want = rootMode();
    gone('hold');
    expect(holdJob(rig.l, join(rig.l.pending, 'q', 'j1.json'), 'q', 'j1', true)).toBe(true);
    expect(rig.where('j1')).toEqual(['hold/q/j1.json']);
    expect(mode(rig.l.hold)).toBe(want);
    gone('pending');
    expect(releaseJob(rig.l, join(rig.l.hold, 'q', 'j1.json'), 'q', 'j1', Date.now(), true)).toBe('pending');
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(mode(rig.l.pending)).toBe(want);
  });

  it('release of a job due later into a removed deferred/, and promote into a removed pending/ (a priority level too)', async () => {
    const due = Date.now() + 1_000;
    rig.write(join(rig.l.hold, 'q', 'j1.json'), Object.assign(newJob({ id: 'j1', fn: './jobs.mjs#add', args: [], queue: 'q', priority: 2 }), { notBefore: new Date(due).toISOString() }));
    gone('deferred');
    expect(releaseJob(rig.l, join(rig.l.hold, 'q', 'j1.json'), 'q', 'j1', Date.now(), true)).toBe('deferred');
    expect(rig.where('j1')).toHaveLength(1);
    expect(rig.where('j1')[0]).toMatch(/^deferred\/q\/\d{8}T\d{4}\/\d+\.j1\.json$/);
    gone('pending');
    const rep = await promoteDue(rig.l, due + 60_000, true);
    expect(rep.errors).toEqual([]);
    expect(rep.promoted).toBe(1);
    expect(rig.where('j1')).toEqual(['pending/q/p2/j1.json']);
  });

  it('retry of a failed record into a removed pending/', async () => {
    rig.write(join(rig.l.failed, 'q', 'j1.json'), newJob({ id: 'j1', fn: './jobs.mjs#add', args: [], queue: 'q' }));
    gone('pending');
    expect(retryJob(rig.l, join(rig.l.failed, 'q', 'j1.json'), 'q', 'j1', true)).toBe(true);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
  });

  it('a postprocess re-opened into a removed waiting/, then released into a removed pending/', async () => {
    rig.write(join(rig.l.done, 'q', 'j1.json'), newJob({ id: 'j1', fn: './jobs.mjs#add', args: [], queue: 'q' }));
    fs.rmSync(rig.l.waiting, { recursive: true, force: true });
    expect(reopenPostprocess(rig.l, join(rig.l.done, 'q', 'j1.json'), 'q', 'j1', true)).toBe(true);
    expect(fs.existsSync(join(rig.l.waiting, 'q', 'j1.json'))).toBe(true);
    gone('pending');
    expect(releaseWaiting(rig.l, 'q', 'j1', true)).toBe(true);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
  });

  it('adopt of a loose file, and unclaim, into a removed pending/', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    const c = claimJob(a, 'q', 'j1.json');
    expect(c).not.toBeNull();
    gone('pending');
    expect(unclaimJob(c!)).toBe(true);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);

    const loose = newJob({ id: 'j2', fn: './jobs.mjs#add', args: [], queue: 'r' });
    gone('pending');
    fs.mkdirSync(rig.l.pending);
    fs.writeFileSync(join(rig.l.pending, 'j2.json'), serializeJob(loose));
    const rep = await adoptLoose(rig.l, true);
    expect(rep.errors).toEqual([]);
    expect(rig.where('j2')).toEqual(['pending/r/j2.json']);
  });

  it('`zcq hold` and `zcq retry` after `rm -rf` of hold/ and pending/: exit 0, the job where asked', async () => {
    await rig.put('j1', { queue: 'q' });
    gone('hold');
    const held = zcq(rig.l.root, ['hold', 'j1']);
    expect(held.stderr).toBe('');
    expect(held.code).toBe(0);
    expect(rig.where('j1')).toEqual(['hold/q/j1.json']);
    fs.renameSync(join(rig.l.hold, 'q', 'j1.json'), join(rig.l.failed, 'j1.json.tmp'));
    fs.mkdirSync(join(rig.l.failed, 'q'), { recursive: true });
    fs.renameSync(join(rig.l.failed, 'j1.json.tmp'), join(rig.l.failed, 'q', 'j1.json'));
    gone('pending');
    const retried = zcq(rig.l.root, ['retry', 'j1']);
    expect(retried.code).toBe(0);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
  });
});
