// The server clock: one probe created exclusively and kept open, ages that never block or follow, and a
// local fallback on a read-only spool (a read-only tmpfs when root — chmod does not stop root — and a
// folder nobody may write, as user nobody).
import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, renameSync, symlinkSync, writeFileSync, utimesSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ServerClock } from '../../dist/spool/server-clock.js';
import { cleanupTemp, tempDir } from '../helpers.js';
import { distUrl, isRoot, mkfifo, mksock, runNode, sha256, victim } from './util.js';

const mounts: string[] = [];
afterAll(() => {
  // Unmount even when a test failed, before the temp folders go.
  for (const m of mounts.splice(0)) { try { execFileSync('umount', [m]); } catch { /* not mounted */ } }
  cleanupTemp();
});

const CLOCK = JSON.stringify(distUrl('spool/server-clock.js'));

describe('the probe', () => {
  it('is created once under a random name and written through its descriptor, not its name', async () => {
    const base = tempDir('zcq-clock-');
    const tmp = join(base, 'tmp');
    mkdirSync(tmp);
    const v = victim(base);
    // The fixed name the old probe used: a planted symlink there is never touched now.
    symlinkSync(v.path, join(tmp, '.probe-me'));
    const clock = new ServerClock(tmp, 'me');
    const t1 = await clock.sample();
    expect(clock.local).toBe(false);
    const probe = clock.probe!;
    expect(probe.startsWith(join(tmp, '.probe-me-'))).toBe(true);
    expect(Math.abs(t1 - Date.now())).toBeLessThan(5_000);
    // A co-user swaps the probe's name for a symlink to the victim: later samples write the descriptor.
    const link = join(tmp, 'swap');
    symlinkSync(v.path, link);
    renameSync(link, probe);
    await new Promise((r) => setTimeout(r, 20));
    const t2 = await clock.sample();
    expect(t2).toBeGreaterThanOrEqual(t1);
    expect(sha256(v.path)).toBe(v.hash);
    // dispose removes the name only if it still is our probe: the co-user's symlink stays.
    await clock.dispose();
    expect(lstatSync(probe).isSymbolicLink()).toBe(true);
    expect(sha256(v.path)).toBe(v.hash);
  });

  it('dispose removes our own probe', async () => {
    const tmp = tempDir('zcq-clock-');
    const clock = new ServerClock(tmp, 'x/y z', 2_000, { mode: 0o664 });
    await clock.now();
    expect(readdirSync(tmp)).toHaveLength(1);
    expect(readdirSync(tmp)[0]).toMatch(/^\.probe-x_y_z-/);
    clock.disposeSync();
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe('ages', () => {
  it('of a FIFO, a socket, a symlink: null (or "not a regular file") at once; of a real folder: its age', async () => {
    const base = tempDir('zcq-clock-');
    const v = victim(base);
    mkfifo(join(base, 'hb-fifo.json'));
    mksock(join(base, 'hb-sock.json'));
    symlinkSync(v.path, join(base, 'hb-link.json'));
    mkdirSync(join(base, 'lease'));
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(join(base, 'lease'), old, old);
    writeFileSync(join(base, 'hb.json'), '{"leaseMs":30000}\n');
    // In a child: a blocking open of the FIFO would freeze this process's timers.
    const r = runNode(`
      const { ServerClock } = await import(${CLOCK});
      const c = new ServerClock(${JSON.stringify(base)}, 't');
      await c.sample();
      const b = ${JSON.stringify(base)};
      const res = {};
      for (const n of ['hb-fifo.json', 'hb-sock.json', 'hb-link.json', 'lease', 'hb.json', 'gone.json']) {
        res[n] = { age: await c.ageOf(b + '/' + n), aged: await c.readAged(b + '/' + n), checked: await c.readAgedChecked(b + '/' + n) };
      }
      c.disposeSync();
      out(res);`);
    expect(r.timedOut).toBe(false);
    expect(r.ok, r.stderr).toBe(true);
    const v2 = r.value;
    for (const n of ['hb-fifo.json', 'hb-sock.json', 'hb-link.json']) {
      expect(v2[n].age, n).toBeNull();
      expect(v2[n].aged, n).toBeNull();
      expect(v2[n].checked.bad, n).toMatch(/not a regular file/);
    }
    expect(v2['hb-fifo.json'].checked.bad).toBe('is a FIFO, not a regular file');
    expect(v2['hb-link.json'].checked.bad).toBe('is a symbolic link, not a regular file');
    expect(v2.lease.age).toBeGreaterThan(3_500_000); // a lease folder without heartbeat is judged by its folder
    expect(v2.lease.aged).toBeNull(); // but has no text
    expect(v2['hb.json'].aged.text).toBe('{"leaseMs":30000}\n');
    expect(v2['hb.json'].age).toBeLessThan(5_000);
    expect(v2['gone.json']).toEqual({ age: null, aged: null, checked: null });
    expect(sha256(v.path)).toBe(v.hash);
  });

  it('reads at most 64 KiB of a heartbeat', async () => {
    const base = tempDir('zcq-clock-');
    writeFileSync(join(base, 'big.json'), 'x'.repeat(1 << 20));
    const c = new ServerClock(base, 't');
    const r = await c.readAged(join(base, 'big.json'));
    expect(r!.text.length).toBe(64 * 1024);
    await c.dispose();
  });
});

describe('a spool nobody here may write: the clock falls back to the local one and says so', () => {
  it.skipIf(!isRoot)('a read-only mount (EROFS)', async () => {
    const base = tempDir('zcq-clock-');
    const ro = join(base, 'ro');
    mkdirSync(ro);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', ro]);
    mounts.push(ro);
    const clock = new ServerClock(ro, 'reader');
    const t = await clock.sample();
    expect(clock.local).toBe(true);
    expect(clock.localReason).toBe(`${ro}: cannot write the clock probe (EROFS); using this machine's clock`);
    expect(Math.abs(t - Date.now())).toBeLessThan(1_000);
    expect(Math.abs((await clock.now()) - Date.now())).toBeLessThan(1_000);
    await clock.dispose();
  });

  it('a folder the reader may not write (EACCES), as an ordinary user', () => {
    const base = tempDir('zcq-clock-');
    chmodSync(base, 0o755);
    const tmp = join(base, 'tmp');
    mkdirSync(tmp);
    chmodSync(tmp, 0o555);
    const code = `
      const { ServerClock } = await import(${CLOCK});
      const c = new ServerClock(${JSON.stringify(tmp)}, 'reader');
      const t = await c.now();
      out({ local: c.local, reason: c.localReason, skew: Math.abs(t - Date.now()) });`;
    const r = isRoot ? runNode(code, { user: 'nobody' }) : runNode(code);
    expect(r.ok, r.stderr).toBe(true);
    expect(r.value.local).toBe(true);
    expect(r.value.reason).toMatch(/cannot write the clock probe \(EACCES\)/);
    expect(r.value.skew).toBeLessThan(1_000);
    expect(existsSync(tmp) && readdirSync(tmp)).toEqual([]);
  });
});
