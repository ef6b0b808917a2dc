// The spool's modes, whatever the creator's umask: run in child processes with umask 077 and 022.
import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as modes from '../../dist/spool/modes.js';
import { cleanupTemp, tempDir } from '../helpers.js';
import { distUrl, isRoot, mkfifo, runNode, sha256, victim } from './util.js';

afterAll(cleanupTemp);

const M = JSON.stringify(distUrl('spool/modes.js'));
const F = JSON.stringify(distUrl('spool/fsops.js'));

describe('modesFromMarker', () => {
  it('reads private, shared and format-1 markers', () => {
    expect(modes.modesFromMarker('{"format":1,"created":"x"}')).toEqual({ group: null, dirMode: 0o755, fileMode: 0o644 });
    expect(modes.modesFromMarker({ format: 2, group: null, dirMode: '0755', fileMode: '0644' })).toEqual(modes.PRIVATE_MODES);
    expect(modes.modesFromMarker({ format: 2, group: 'staff', dirMode: '2775', fileMode: '0664' })).toEqual({ group: 'staff', dirMode: 0o2775, fileMode: 0o664 });
    expect(modes.modesFromMarker({ group: 'staff' })).toEqual(modes.sharedModes('staff'));
    expect(modes.markerFields(modes.sharedModes('staff'))).toEqual({ group: 'staff', dirMode: '2775', fileMode: '0664' });
  });

  it('refuses modes zcq cannot work with, in one line naming the marker', () => {
    expect(() => modes.modesFromMarker({ dirMode: 'rwx' }, '/s/zcq-spool.json')).toThrow(/^\/s\/zcq-spool\.json: dirMode "rwx" is not an octal mode/);
    expect(() => modes.modesFromMarker({ fileMode: '0755' })).toThrow(/must not set execute/);
    expect(() => modes.modesFromMarker({ fileMode: '0444' })).toThrow(/must give the owner rw/);
    expect(() => modes.modesFromMarker({ dirMode: '3775' })).toThrow(/sticky/);
    expect(() => modes.modesFromMarker({ group: '../etc' })).toThrow(/not a group name/);
    expect(() => modes.modesFromMarker('not json')).toThrow(/not valid JSON/);
  });
});

describe('whatever the umask, zcq creates with the spool\'s modes', () => {
  for (const umask of [0o077, 0o022]) {
    for (const [label, m] of [['shared', modes.sharedModes('root')], ['private', modes.PRIVATE_MODES]] as const) {
      it(`umask ${umask.toString(8).padStart(3, '0')}, ${label} spool`, () => {
        const root = join(tempDir('zcq-modes-'), 'spool');
        mkdirSync(root);
        chmodSync(root, m.dirMode); // as `zcq init` leaves it
        const r = runNode(`
          const m = await import(${M}); const f = await import(${F});
          const modes = ${JSON.stringify(m)};
          const root = ${JSON.stringify(root)};
          m.mkdirModeSync(root + '/pending', modes);
          m.mkdirModeSync(root + '/tmp', modes);
          await m.mkdirModeRecursive(root, root + '/deferred/q/20260101T0000', modes);
          const a = f.createExclusiveSync(root + '/tmp', '.a-', 'x', { mode: m.fileModeFor(modes) });
          await f.writeReplace(root + '/pending/job.json', '{}', { tmpDir: root + '/tmp', mode: m.fileModeFor(modes) });
          f.writeFileSyncDurable(root + '/tmp/w.json', 'w', false, true, m.fileModeFor(modes));
          out({ a, umask: process.umask() });`, { umask });
        expect(r.ok, r.stderr).toBe(true);
        expect(r.value.umask).toBe(umask);
        for (const d of ['pending', 'tmp', 'deferred', 'deferred/q', 'deferred/q/20260101T0000']) {
          expect((statSync(join(root, d)).mode & 0o7777).toString(8), d).toBe(m.dirMode.toString(8));
        }
        for (const f of [r.value.a, join(root, 'pending/job.json'), join(root, 'tmp/w.json')]) {
          expect((statSync(f).mode & 0o7777).toString(8), f).toBe(m.fileMode.toString(8));
        }
      });
    }
  }

  it('a setgid folder gives new entries its group (shared spool)', () => {
    if (!isRoot) return; // chgrp to another group needs root or membership
    const root = join(tempDir('zcq-modes-'), 'spool');
    mkdirSync(root);
    const r = runNode(`
      const m = await import(${M});
      const modes = m.sharedModes('nogroup');
      await m.fixMode(${JSON.stringify(root)}, modes);
      m.mkdirModeSync(${JSON.stringify(root)} + '/pending', modes);
      out('ok');`, { umask: 0o077 });
    expect(r.ok, r.stderr).toBe(true);
    const gid = modes.resolveGroup('nogroup');
    expect(gid).not.toBeNull();
    expect(statSync(root).gid).toBe(gid);
    expect(statSync(root).mode & 0o7777).toBe(0o2775);
    expect(statSync(join(root, 'pending')).gid).toBe(gid);
    expect(statSync(join(root, 'pending')).mode & 0o7777).toBe(0o2775);
  });
});

describe('mkdirModeSync / fixMode never act through a planted symlink', () => {
  it('mkdirModeSync on a symlink to a folder refuses it and leaves the target\'s mode alone', async () => {
    const base = tempDir('zcq-modes-');
    const outside = join(base, 'home');
    mkdirSync(outside, { mode: 0o700 });
    chmodSync(outside, 0o700);
    mkdirSync(join(base, 'spool'));
    symlinkSync(outside, join(base, 'spool', 'pending'));
    expect(() => modes.mkdirModeSync(join(base, 'spool', 'pending'), modes.sharedModes('root'))).toThrow(/pending: exists and is a symbolic link, not a folder/);
    await expect(modes.mkdirModeRecursive(join(base, 'spool'), join(base, 'spool', 'pending', 'q'), modes.sharedModes('root'))).rejects.toThrow(/symbolic link/);
    await expect(modes.fixMode(join(base, 'spool', 'pending'), modes.sharedModes('root'))).rejects.toThrow(/pending: is a symbolic link; its mode was not changed/);
    expect(statSync(outside).mode & 0o7777).toBe(0o700);
    const v = victim(base);
    chmodSync(v.path, 0o600);
    symlinkSync(v.path, join(base, 'spool', 'marker'));
    await expect(modes.fixMode(join(base, 'spool', 'marker'), modes.sharedModes('root'))).rejects.toThrow(/symbolic link/);
    expect(statSync(v.path).mode & 0o7777).toBe(0o600);
  });

  it('fixMode repairs a folder and a file', async () => {
    const root = join(tempDir('zcq-modes-'), 'spool');
    mkdirSync(join(root, 'pending'), { recursive: true });
    chmodSync(join(root, 'pending'), 0o700);
    writeFileSync(join(root, 'zcq-spool.json'), '{}', { mode: 0o600 });
    const m = modes.sharedModes('root');
    await modes.fixMode(join(root, 'pending'), m);
    await modes.fixMode(join(root, 'zcq-spool.json'), m);
    expect(statSync(join(root, 'pending')).mode & 0o7777).toBe(0o2775);
    expect(statSync(join(root, 'zcq-spool.json')).mode & 0o7777).toBe(0o664);
    mkfifo(join(root, 'fifo'));
    await expect(modes.fixMode(join(root, 'fifo'), m)).rejects.toThrow(/fifo: is a FIFO; its mode was not changed/);
  });
});

describe('checkModes', () => {
  it('reports wrong modes at the top two levels and in queue folders, and symlinks where folders belong', async () => {
    const root = join(tempDir('zcq-modes-'), 'spool');
    const m = modes.sharedModes('root');
    for (const d of ['', 'tmp', 'pending', 'pending/q1', 'pending/q2', 'done', 'claimed', 'claimed/lease1', 'deferred', 'deferred/q1', 'deferred/q1/20260101T0000']) {
      mkdirSync(join(root, d), { recursive: true });
      chmodSync(join(root, d), 0o2775);
    }
    writeFileSync(join(root, 'zcq-spool.json'), '{}');
    chmodSync(join(root, 'zcq-spool.json'), 0o664);
    expect(await modes.checkModes(root, m)).toEqual([]);
    chmodSync(join(root, 'pending', 'q2'), 0o700);
    chmodSync(join(root, 'tmp'), 0o755);
    chmodSync(join(root, 'deferred/q1/20260101T0000'), 0o700); // below the checked depth
    symlinkSync('/etc', join(root, 'done', 'evil'));
    writeFileSync(join(root, 'pending', 'loose.json'), '{}'); // a file in pending/: not a queue folder
    const got = (await modes.checkModes(root, m)).map((p) => `${p.path.slice(root.length + 1)}: ${p.why}`).sort();
    expect(got).toEqual([
      'done/evil: is a symbolic link, not a folder',
      'pending/q2: mode 0700, want 2775',
      'tmp: mode 0755, want 2775',
    ]);
    expect(lstatSync(join(root, 'done', 'evil')).isSymbolicLink()).toBe(true);
  });

  it('reports the wrong group, and a group unknown here once', async () => {
    const root = join(tempDir('zcq-modes-'), 'spool');
    mkdirSync(join(root, 'pending'), { recursive: true });
    chmodSync(root, 0o2775);
    chmodSync(join(root, 'pending'), 0o2775);
    const gid = statSync(root).gid;
    const other = gid === 0 ? 'nogroup' : 'root';
    const got = await modes.checkModes(root, modes.sharedModes(other));
    expect(got.map((p) => p.why)).toEqual([
      `group ${gid}, want ${other} (${modes.resolveGroup(other)})`,
      `group ${gid}, want ${other} (${modes.resolveGroup(other)})`,
    ]);
    const unknown = await modes.checkModes(root, modes.sharedModes('no-such-group-zcq'));
    expect(unknown.filter((p) => p.why.includes('does not exist'))).toHaveLength(1);
  });
});

describe('mkdirModeSync: makers of one folder take turns through .mkdir.NAME', () => {
  it('a maker that finds the lock taken waits for the folder and does not make it itself', () => {
    const base = tempDir('zcq-mklock-');
    writeFileSync(join(base, '.mkdir.q'), ''); // another machine is making q
    // The child makes q; meanwhile (300 ms on) the lock holder makes it and lets go of the lock. The holder
    // says when it is up: on a loaded machine a Node process's start alone took longer than the lock wait.
    const r = runNode(`
      import { spawn } from 'node:child_process';
      import { once } from 'node:events';
      const m = await import(${M});
      const helper = spawn(process.execPath, ['-e', ${JSON.stringify(`process.stdout.write('up'); setTimeout(() => { require('fs').mkdirSync(${JSON.stringify(join(base, 'q'))}); require('fs').unlinkSync(${JSON.stringify(join(base, '.mkdir.q'))}); }, 300)`)}]);
      await once(helper.stdout, 'data');
      const t0 = Date.now();
      const made = m.mkdirModeSync(${JSON.stringify(join(base, 'q'))}, m.PRIVATE_MODES);
      out({ made, waitedMs: Date.now() - t0 });
      helper.kill();
    `, { timeoutMs: 10_000 });
    expect(r.ok, r.stderr).toBe(true);
    expect(r.value.made).toBe(false);
    expect(r.value.waitedMs).toBeGreaterThanOrEqual(250);
    expect(readdirSync(base).sort()).toEqual(['q']);
  });

  it('no lock is left after a make, and a made folder is not made again', () => {
    const base = tempDir('zcq-mklock-');
    expect(modes.mkdirModeSync(join(base, 'q'), modes.PRIVATE_MODES)).toBe(true);
    expect(modes.mkdirModeSync(join(base, 'q'), modes.PRIVATE_MODES)).toBe(false);
    expect(readdirSync(base)).toEqual(['q']);
  });

  it('a lock nobody lets go of (its maker died) is removed after the wait; a planted symlink or FIFO at once, never followed or opened', () => {
    const base = tempDir('zcq-mklock-');
    const v = victim(base);
    symlinkSync(v.path, join(base, '.mkdir.a'));
    mkfifo(join(base, '.mkdir.b'));
    writeFileSync(join(base, '.mkdir.c'), '');
    const r = runNode(`
      const m = await import(${M});
      const ms = [];
      const made = ['a', 'b', 'c'].map((n) => { const t0 = Date.now(); const made = m.mkdirModeSync(${JSON.stringify(base)} + '/' + n, m.PRIVATE_MODES); ms.push(Date.now() - t0); return made; });
      out({ made, ms });
    `, { timeoutMs: 20_000 });
    expect(r.ok, r.stderr).toBe(true);
    expect(r.value.made).toEqual([true, true, true]);
    expect(r.value.ms[0]).toBeLessThan(900); // no wait (the wait is 950 ms); the margin is a loaded machine's
    expect(r.value.ms[1]).toBeLessThan(900);
    expect(r.value.ms[2]).toBeGreaterThanOrEqual(950); // MKDIR_LOCK_WAIT_MS
    expect(readdirSync(base).sort()).toEqual(['a', 'b', 'c', 'victim.txt']);
    expect(sha256(v.path)).toBe(v.hash);
  }, 30_000);

  it('a folder planted at the lock\'s name (it cannot be removed): the maker goes ahead without a turn at once, and the planted folder stays as it was', () => {
    const base = tempDir('zcq-mklock-');
    mkdirSync(join(base, '.mkdir.q'));
    writeFileSync(join(base, '.mkdir.q', 'inside'), 'kept');
    const r = runNode(`
      const m = await import(${M});
      const t0 = Date.now();
      const made = m.mkdirModeSync(${JSON.stringify(base)} + '/q', m.PRIVATE_MODES);
      out({ made, ms: Date.now() - t0 });
    `, { timeoutMs: 20_000 });
    expect(r.ok, r.stderr).toBe(true);
    expect(r.value.made).toBe(true);
    expect(r.value.ms).toBeLessThan(900); // under MKDIR_LOCK_WAIT_MS: it did not wait its turn
    expect(readdirSync(base).sort()).toEqual(['.mkdir.q', 'q']);
    expect(readdirSync(join(base, '.mkdir.q'))).toEqual(['inside']);
    expect(readFileSync(join(base, '.mkdir.q', 'inside'), 'utf8')).toBe('kept');
  }, 30_000);
});
