// put (src/spool/transitions/put.ts): (nothing) -> pending/QUEUE/ID.json or deferred/QUEUE/BUCKET/DUEMS.ID.json.
// Crash after 1: empty folders; after 2: temporaries only (housekeeping removes them); during 3: a prefix
// published; after 3: all published. putOnce: crash after its first link, completed by publishMarker.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { newJob, serializeJob } from '../../../dist/job/format.js';
import { PublishError, placeNewJob, publish, publishMarker, putOnce } from '../../../dist/spool/transitions/put.js';
import { cleanLeftovers } from '../../../dist/spool/housekeeping.js';
import { bucketOf, deferredName } from '../../../dist/spool/names.js';
import { cleanupTemp } from '../../helpers.js';
import { FN, Rig, SimulatedCrash, crashAfter, onStep } from './util.js';

afterAll(cleanupTemp);

const DIST = resolve(__dirname, '../../../dist');

describe('put', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  const ids = ['j1', 'j2', 'j3'];
  const batch = (queue = 'q', dueMs: number | null = null) =>
    ids.map((id) => placeNewJob(rig.l, queue, id, serializeJob(newJob({ id, fn: FN, queue })), dueMs));

  it('crash after 1: the new queue folder exists, empty; no temporary, nothing published', async () => {
    crashAfter('put', 1);
    await expect(publish(rig.l.tmp, batch(), true, rig.l.modes)).rejects.toThrow(SimulatedCrash);
    expect(fs.readdirSync(join(rig.l.pending, 'q'))).toEqual([]);
    expect(rig.tmp()).toEqual([]);
    for (const id of ids) expect(rig.where(id)).toEqual([]);
  });

  it('crash after 2: every temporary written in tmp/, nothing published; housekeeping removes them after the leftover age', async () => {
    crashAfter('put', 2);
    await expect(publish(rig.l.tmp, batch(), true, rig.l.modes)).rejects.toThrow(SimulatedCrash);
    const temps = rig.tmp();
    expect(temps).toHaveLength(3);
    // Fresh random names (nobody can plant one in advance), each starting with its job's id.
    for (const id of ids) expect(temps.filter((t) => t.startsWith(`.put-${id}.`))).toHaveLength(1);
    expect(JSON.parse(fs.readFileSync(join(rig.l.tmp, temps.find((t) => t.startsWith('.put-j2.'))!), 'utf8')).id).toBe('j2');
    for (const id of ids) expect(rig.where(id)).toEqual([]);
    // Young temporaries are kept (a put may be under way) ...
    await cleanLeftovers(rig.l, rig.clock(), { tmpAgeMs: 3_600_000 });
    expect(rig.tmp()).toHaveLength(3);
    // ... old ones go.
    rig.ageTmp();
    await cleanLeftovers(rig.l, rig.clock(), { tmpAgeMs: 60_000 });
    expect(rig.tmp()).toEqual([]);
    for (const id of ids) expect(rig.where(id)).toEqual([]);
  });

  it('during 3 (after the first rename): the published prefix is reported and stays (a worker may run it); the rest is not', async () => {
    crashAfter('put', 3, 'j1');
    const err = await publish(rig.l.tmp, batch(), true, rig.l.modes).catch((e) => e);
    expect(err).toBeInstanceOf(PublishError);
    expect((err as PublishError).published).toBe(1);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(rig.where('j2')).toEqual([]);
    expect(rig.where('j3')).toEqual([]);
    expect(rig.tmp()).toEqual([]); // the unpublished temporaries were removed
  });

  it('crash after 3 (the last rename): all published, no temporaries left', async () => {
    crashAfter('put', 3, 'j3');
    await expect(publish(rig.l.tmp, batch(), true, rig.l.modes)).rejects.toThrow(SimulatedCrash);
    for (const id of ids) expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
    expect(rig.tmp()).toEqual([]);
  });

  it('the queue folder removed after 1 (`rm -rf pending/q`, or on GlusterFS a folder other machines were making, looked up stale): made again, every job published', async () => {
    onStep((t, k) => { if (t === 'put' && k === 2) { onStep(); fs.rmSync(join(rig.l.pending, 'q'), { recursive: true }); } });
    await publish(rig.l.tmp, batch(), true, rig.l.modes);
    for (const id of ids) expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
    expect(fs.lstatSync(join(rig.l.pending, 'q')).mode & 0o7777).toBe(rig.l.modes.dirMode);
    expect(rig.tmp()).toEqual([]);
    // A queue folder removed between two renames of a batch too (after the first is published).
    onStep((t, k, id) => { if (t === 'put' && k === 3 && id === 'k1') { onStep(); fs.rmSync(join(rig.l.pending, 'r'), { recursive: true }); } });
    const more = ['k1', 'k2'].map((id) => placeNewJob(rig.l, 'r', id, serializeJob(newJob({ id, fn: FN, queue: 'r' })), null));
    await publish(rig.l.tmp, more, true, rig.l.modes);
    expect(rig.where('k2')).toEqual(['pending/r/k2.json']);
    expect(rig.where('k1')).toEqual([]); // it went with the folder: the person's rm -rf took it
  });

  it('a job due later goes to its bucket under its 15-digit due name', async () => {
    const due = Date.UTC(2031, 4, 6, 7, 8, 9, 10);
    await publish(rig.l.tmp, batch('q', due), true, rig.l.modes);
    expect(rig.where('j1')).toEqual([`deferred/q/${bucketOf(due)}/${deferredName(due, 'j1')}`]);
    expect(deferredName(due, 'j1')).toBe(`${String(due).padStart(15, '0')}.j1.json`);
  });

  it('a symlink planted at a predictable name in tmp/ is never written through: temporaries have random names', async () => {
    const victim = join(rig.l.root, '..', `victim-${process.pid}`);
    fs.writeFileSync(victim, 'untouched');
    for (const id of ids) { fs.symlinkSync(victim, join(rig.l.tmp, `${id}.json`)); fs.symlinkSync(victim, join(rig.l.tmp, `.put-${id}.json`)); }
    await publish(rig.l.tmp, batch(), true, rig.l.modes);
    for (const id of ids) expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
    expect(fs.readFileSync(victim, 'utf8')).toBe('untouched');
    for (const id of ids) expect(fs.lstatSync(join(rig.l.tmp, `${id}.json`)).isSymbolicLink()).toBe(true);
    fs.unlinkSync(victim);
  });

  it('a symlink in place of a queue folder is refused, also below a priority or a due folder of it that exists', async () => {
    const outside = join(rig.l.root, '..', `outside-${process.pid}`);
    for (const d of ['', 'p1', '20310506T0708']) fs.mkdirSync(join(outside, d), { recursive: true });
    fs.symlinkSync(outside, join(rig.l.pending, 'q'));
    fs.symlinkSync(outside, join(rig.l.deferred, 'q'));
    const one = (id: string, dueMs: number | null, priority?: number) => [placeNewJob(rig.l, 'q', id, serializeJob(newJob({ id, fn: FN, queue: 'q' })), dueMs, priority)];
    for (const [id, due, prio] of [['a', null, undefined], ['b', null, 1], ['c', Date.UTC(2031, 4, 6, 7, 8, 9), undefined]] as const) {
      await expect(publish(rig.l.tmp, one(id, due, prio), true, rig.l.modes)).rejects.toThrow(/symbolic link/);
      expect(rig.where(id)).toEqual([]);
    }
    expect(fs.readdirSync(outside).sort()).toEqual(['20310506T0708', 'p1']);
    expect(fs.readdirSync(join(outside, 'p1'))).toEqual([]);
    fs.rmSync(outside, { recursive: true });
  });

  it('a put into a queue that exists looks up its queue folder, not the state folder too', async () => {
    await publish(rig.l.tmp, batch('q'), false, rig.l.modes);
    const script = `
      const { publish, placeNewJob } = await import(${JSON.stringify(join(DIST, 'spool/transitions/put.js'))});
      const { openLayout } = await import(${JSON.stringify(join(DIST, 'spool/layout.js'))});
      const l = openLayout(${JSON.stringify(rig.l.root)});
      for (let i = 0; i < 5; i++) await publish(l.tmp, [placeNewJob(l, 'q', 'k' + i, '{}', null)], false, l.modes);`;
    const trace = join(rig.l.root, '..', `put-${process.pid}.strace`);
    const r = spawnSync('strace', ['-f', '-o', trace, '-e', 'trace=lstat,stat,statx,newfstatat', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const looks = fs.readFileSync(trace, 'utf8').split('\n');
    expect(looks.filter((l) => l.includes(`"${rig.l.pending}"`))).toEqual([]);
    expect(looks.filter((l) => l.includes(`"${join(rig.l.pending, 'q')}"`))).toHaveLength(5);
    fs.unlinkSync(trace);
  });

  it('durable: the queue folder made again at step 3 is fsynced into its parent, as one made at step 1 is', async () => {
    const script = `
      const { publish, placeNewJob } = await import(${JSON.stringify(join(DIST, 'spool/transitions/put.js'))});
      const { onStep } = await import(${JSON.stringify(join(DIST, 'spool/transitions/steps.js'))});
      const { openLayout } = await import(${JSON.stringify(join(DIST, 'spool/layout.js'))});
      const fs = await import('node:fs');
      const l = openLayout(${JSON.stringify(rig.l.root)});
      fs.mkdirSync(l.pending + '/q');
      onStep((t, k) => { if (t === 'put' && k === 2) { onStep(); fs.rmSync(l.pending + '/q', { recursive: true }); } });
      await publish(l.tmp, [placeNewJob(l, 'q', 'k1', '{}', null)], true, l.modes);`;
    const trace = join(rig.l.root, '..', `put-fsync-${process.pid}.strace`);
    const r = spawnSync('strace', ['-f', '-y', '-o', trace, '-e', 'trace=fsync', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(rig.where('k1')).toEqual(['pending/q/k1.json']);
    const syncs = fs.readFileSync(trace, 'utf8').split('\n');
    expect(syncs.filter((l) => l.includes(`<${join(rig.l.pending, 'q')}>`))).not.toEqual([]);
    expect(syncs.filter((l) => l.includes(`<${rig.l.pending}>`))).not.toEqual([]);
    fs.unlinkSync(trace);
  });

  describe('putOnce', () => {
    it('crash after the first link: the marker exists, the job is not pending; publishMarker completes it; a second creator loses', async () => {
      const marker = join(rig.l.root, 'marker-1');
      const text = serializeJob(newJob({ id: 'c1', fn: FN, queue: 'q' }));
      crashAfter('putOnce', 1);
      expect(() => putOnce(rig.l, 'q', 'c1', text, marker, true)).toThrow(SimulatedCrash);
      expect(fs.readFileSync(marker, 'utf8')).toBe(text);
      expect(rig.where('c1')).toEqual([]);
      // Another scheduler finds the marker: it lost the tick, and completes the publication.
      expect(putOnce(rig.l, 'q', 'c1', text, marker, true)).toBe(false);
      publishMarker(rig.l, 'q', 'c1', marker, true);
      publishMarker(rig.l, 'q', 'c1', marker, true); // EEXIST is success
      expect(rig.where('c1')).toEqual(['pending/q/c1.json']);
      expect(rig.tmp('.once-')).toEqual([]);
    });
  });
});
