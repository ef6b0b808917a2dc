// Housekeeping on a spool a co-user has littered: FIFOs, sockets and symlinks in tmp/, workers/, cancel/,
// progress/; .nfs* leftovers inside queue and lease folders (format 2); a symlinked "queue folder".
import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, symlinkSync, writeFileSync, lutimesSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { layoutOf } from '../../dist/spool/layout.js';
import { cleanupTemp, tempDir } from '../helpers.js';
import { distUrl, isRoot, mkfifo, mksock, runNode, sha256, victim } from './util.js';

afterAll(cleanupTemp);

const HOUR = 3_600_000;

function old(path: string, ms = 2 * HOUR): void {
  const t = new Date(Date.now() - ms);
  lutimesSync(path, t, t); // the entry's own time, a symlink's included
}

function littered() {
  const base = tempDir('zcq-hk-');
  const layout = layoutOf(join(base, 'spool'));
  for (const d of ['tmp', 'pending/q', 'done/q', 'failed/q', 'hold/q', 'claimed/host.1.live', 'workers', 'cancel', 'progress', 'quarantine', 'deferred']) mkdirSync(join(layout.root, d), { recursive: true });
  const v = victim(base);
  const home = join(base, 'home');
  mkdirSync(home);
  writeFileSync(join(home, '.nfs0001'), 'not ours');
  old(join(home, '.nfs0001'));
  const r = layout.root;
  const plant = (rel: string, how: 'fifo' | 'sock' | 'link' | 'file' | 'dir', age = 2 * HOUR) => {
    const p = join(r, rel);
    if (how === 'fifo') mkfifo(p);
    else if (how === 'sock') mksock(p);
    else if (how === 'link') symlinkSync(v.path, p);
    else if (how === 'dir') mkdirSync(p);
    else writeFileSync(p, 'x');
    old(p, age);
  };
  plant('tmp/fifo', 'fifo');
  plant('tmp/sock', 'sock');
  plant('tmp/link', 'link');
  plant('tmp/old.json.tmp', 'file');
  plant('tmp/young-fifo', 'fifo', 60_000);
  plant('tmp/young.tmp', 'file', 60_000);
  plant('workers/host.9.gone.json', 'fifo');
  plant('workers/link.json', 'link');
  plant('workers/host.1.live.json', 'file', 2 * HOUR); // live lease: kept
  plant('cancel/job1.tok', 'link');
  plant('progress/job1.json', 'sock');
  plant('progress/job2.json', 'file', 60_000);
  plant('pending/q/.nfs000a', 'file');
  plant('done/q/.nfs000b', 'fifo');
  plant('failed/q/.nfs000c', 'file');
  plant('hold/q/.nfs000d', 'file');
  plant('claimed/host.1.live/.nfs000e', 'file');
  plant('pending/.nfs000f', 'file'); // format 1 place
  plant('pending/q/.nfs0010', 'file', 60_000); // young
  plant('pending/q/.nfs0011', 'dir'); // not removed: logged once, the pass goes on
  plant('claimed/.mkdir.host.3.dead', 'file'); // a worker killed while making its lease folder
  plant('pending/.mkdir.q2', 'file'); // ... or a queue folder
  plant('pending/q/.mkdir.p1', 'file'); // ... or a priority folder
  plant('pending/.mkdir.q3', 'file', 60_000); // young: a maker at work
  symlinkSync(home, join(r, 'pending', 'evil')); // a symlinked "queue folder": never descended into
  return { layout, v, home };
}

const EXPECTED = [
  'claimed/host.1.live/.nfs000e', 'done/q/.nfs000b', 'failed/q/.nfs000c', 'hold/q/.nfs000d', 'pending/.nfs000f',
  'pending/q/.nfs000a', 'pending/q/.nfs0011', 'claimed/.mkdir.host.3.dead', 'pending/.mkdir.q2', 'pending/q/.mkdir.p1',
  'cancel/job1.tok', 'progress/job1.json', 'tmp/fifo', 'tmp/link', 'tmp/old.json.tmp', 'tmp/sock',
  'workers/host.9.gone.json', 'workers/link.json',
].sort();

describe('housekeeping', () => {
  it('finds every old leftover, special files and format-2 .nfs* included, without blocking or following', () => {
    const { layout, v, home } = littered();
    // In a child: ageing a FIFO by opening it would freeze this process.
    const r = runNode(`
      const { findLeftovers } = await import(${JSON.stringify(distUrl('spool/housekeeping.js'))});
      const { ServerClock } = await import(${JSON.stringify(distUrl('spool/server-clock.js'))});
      const { layoutOf } = await import(${JSON.stringify(distUrl('spool/layout.js'))});
      const l = layoutOf(${JSON.stringify(layout.root)});
      const clock = new ServerClock(l.tmp, 'hk');
      const logs = [];
      const found = await findLeftovers(l, clock, { log: (e, f) => logs.push([e, f]) });
      clock.disposeSync();
      out({ found, logs });`);
    expect(r.timedOut).toBe(false);
    expect(r.ok, r.stderr).toBe(true);
    const got = r.value.found.map((f: { path: string }) => f.path.slice(layout.root.length + 1)).sort();
    expect(got).toEqual(EXPECTED);
    const byPath = Object.fromEntries(r.value.found.map((f: { path: string; what: string; kind: string }) => [f.path.slice(layout.root.length + 1), f]));
    expect(byPath['tmp/fifo'].what).toBe('special file in tmp/ (FIFO)');
    expect(byPath['workers/host.9.gone.json'].kind).toBe('FIFO');
    expect(byPath['cancel/job1.tok'].what).toBe('special file in cancel/ (symlink)');
    expect(byPath['pending/q/.nfs000a'].what).toBe('NFS silly-rename leftover');
    expect(byPath['claimed/.mkdir.host.3.dead'].what).toBe("folder maker's lock left by a crash");
    expect(r.value.logs.map((l: [string, { path: string; error: string }]) => `${l[0]} ${l[1].path.slice(layout.root.length + 1)} ${l[1].error}`))
      .toEqual([]); // the symlinked queue folder is simply not descended into
    expect(sha256(v.path)).toBe(v.hash);
    expect(readdirSync(home)).toEqual(['.nfs0001']);
  });

  it('cleans them (links removed, never their targets), skips what it cannot remove, and goes on', () => {
    const { layout, v, home } = littered();
    const r = runNode(`
      const { cleanLeftovers } = await import(${JSON.stringify(distUrl('spool/housekeeping.js'))});
      const { ServerClock } = await import(${JSON.stringify(distUrl('spool/server-clock.js'))});
      const { layoutOf } = await import(${JSON.stringify(distUrl('spool/layout.js'))});
      const l = layoutOf(${JSON.stringify(layout.root)});
      const clock = new ServerClock(l.tmp, 'hk');
      const logs = [];
      const found = await cleanLeftovers(l, clock, { log: (e, f) => logs.push([e, f]) });
      clock.disposeSync();
      out({ found, logs });`);
    expect(r.timedOut).toBe(false);
    expect(r.ok, r.stderr).toBe(true);
    const removed = r.value.found.filter((f: { removed: boolean }) => f.removed).map((f: { path: string }) => f.path.slice(layout.root.length + 1)).sort();
    expect(removed).toEqual(EXPECTED.filter((p) => p !== 'pending/q/.nfs0011'));
    for (const p of removed) expect(existsSync(join(layout.root, p)) || lstatExists(join(layout.root, p)), p).toBe(false);
    const skipped = r.value.logs.filter((l: [string]) => l[0] === 'spool.housekeeping.skipped').map((l: [string, { path: string; error: string }]) => `${l[1].path.slice(layout.root.length + 1)} ${l[1].error}`);
    expect(skipped).toEqual(['pending/q/.nfs0011 a folder outside tmp/; not removed']);
    // Kept: young entries, the live lease's heartbeat, the victim, the folder behind the symlink.
    for (const p of ['tmp/young-fifo', 'tmp/young.tmp', 'workers/host.1.live.json', 'progress/job2.json', 'pending/q/.nfs0010', 'pending/.mkdir.q3', 'pending/evil']) {
      expect(lstatExists(join(layout.root, p)), p).toBe(true);
    }
    expect(sha256(v.path)).toBe(v.hash);
    expect(readdirSync(home)).toEqual(['.nfs0001']);
  });
});

describe.skipIf(!isRoot)('housekeeping as an ordinary user', () => {
  it('a folder it may not read (EACCES) is logged once and skipped; the rest of the pass goes on', () => {
    const { layout, v } = littered();
    execFileSync('chmod', ['-R', 'a+rwX', dirname(layout.root)]);
    chmodSync(layout.cancel, 0o700); // root's: nobody cannot list it
    const r = runNode(`
      const { cleanLeftovers } = await import(${JSON.stringify(distUrl('spool/housekeeping.js'))});
      const { ServerClock } = await import(${JSON.stringify(distUrl('spool/server-clock.js'))});
      const { layoutOf } = await import(${JSON.stringify(distUrl('spool/layout.js'))});
      const l = layoutOf(${JSON.stringify(layout.root)});
      const clock = new ServerClock(l.tmp, 'hk');
      const logs = [];
      const found = await cleanLeftovers(l, clock, { log: (e, f) => logs.push([e, f]) });
      clock.disposeSync();
      out({ found, logs });`, { user: 'nobody' });
    expect(r.timedOut).toBe(false);
    expect(r.ok, r.stderr).toBe(true);
    const skipped = r.value.logs.filter((l: [string]) => l[0] === 'spool.housekeeping.skipped').map((l: [string, { path: string; error: string }]) => `${l[1].path.slice(layout.root.length + 1)} ${l[1].error}`);
    expect(skipped).toEqual(['cancel EACCES', 'pending/q/.nfs0011 a folder outside tmp/; not removed']);
    expect(lstatExists(join(layout.cancel, 'job1.tok'))).toBe(true);
    const removed = r.value.found.filter((f: { removed: boolean }) => f.removed).length;
    expect(removed).toBe(EXPECTED.length - 2); // all but cancel/job1.tok and the .nfs folder
    expect(sha256(v.path)).toBe(v.hash);
  });
});

function lstatExists(p: string): boolean {
  try { lstatSync(p); return true; } catch { return false; }
}

describe('one housekeeping pass per window in the whole spool (takeHousekeepingTurn)', () => {
  it('of the workers asking in one window exactly one takes it; the next window has a new taker and leaves one turn file; a planted symlink is never followed', async () => {
    const { takeHousekeepingTurn, TURN_PREFIX } = await import('../../dist/spool/housekeeping.js');
    const base = tempDir('zcq-hk-turn-');
    const layout = layoutOf(join(base, 'spool'));
    mkdirSync(layout.tmp, { recursive: true });
    const w = 60_000 * 1000;
    // Ten askers in the same window (as ten workers on ten machines would be): one winner.
    const answers = Array.from({ length: 10 }, (_, i) => takeHousekeepingTurn(layout, w + i * 10, 60_000));
    expect(answers.filter(Boolean)).toHaveLength(1);
    expect(answers[0]).toBe(true);
    // The next window: a new winner, and the last window's turn file is gone.
    expect(takeHousekeepingTurn(layout, w + 60_000, 60_000)).toBe(true);
    expect(takeHousekeepingTurn(layout, w + 60_001, 60_000)).toBe(false);
    expect(readdirSync(layout.tmp)).toEqual([`${TURN_PREFIX}60000-1001`]);
    // A co-user's symlink at the next window's name: not followed, nothing written through it; the turn is not taken.
    const v = victim(base);
    symlinkSync(v.path, join(layout.tmp, `${TURN_PREFIX}60000-1002`));
    expect(takeHousekeepingTurn(layout, w + 120_000, 60_000)).toBe(false);
    expect(sha256(v.path)).toBe(v.hash);
    // Names planted an hour ahead of their window (to stop housekeeping for good) are not honoured: the
    // planted entry is removed (a symlink itself, never its target) and the turn is taken.
    const now = Date.now();
    const win = Math.floor(now / 60_000);
    const planted = join(layout.tmp, `${TURN_PREFIX}60000-${win}`);
    symlinkSync(v.path, planted);
    old(planted, HOUR);
    expect(takeHousekeepingTurn(layout, now, 60_000)).toBe(true);
    expect(lstatSync(planted).isFile()).toBe(true);
    expect(sha256(v.path)).toBe(v.hash);
    expect(takeHousekeepingTurn(layout, now, 60_000)).toBe(false);
  });
});

describe('quota-slot inodes in tmp/ (transitions/quota-take.ts)', () => {
  it('an old .qslot inode of a lease that still has its folder stays (it may be a held slot); one of a gone lease is a leftover', async () => {
    const { cleanLeftovers } = await import('../../dist/spool/housekeeping.js');
    const { ServerClock } = await import('../../dist/spool/server-clock.js');
    const base = tempDir('zcq-hk-qslot-');
    const layout = layoutOf(join(base, 'spool'));
    for (const d of ['tmp', 'claimed/host-a.1.live', 'workers', 'cancel', 'progress']) mkdirSync(join(layout.root, d), { recursive: true });
    const live = join(layout.tmp, '.qslot-host-a.1.live-AbCdEfGhIjKl_-12');
    const gone = join(layout.tmp, '.qslot-host-b.2.gone-AbCdEfGhIjKl_-12');
    for (const p of [live, gone]) { writeFileSync(p, 'host-a.1.live/1'); old(p); }
    await cleanLeftovers(layout, new ServerClock(layout.tmp, 'hk'), {});
    expect(existsSync(live)).toBe(true);
    expect(existsSync(gone)).toBe(false);
  });
});
