// Smoke test of the multi-machine rig: proves that it behaves like several machines on one
// shared network mount (visibility, stale caches, atomic rename races, hostnames, skewed clocks).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkRigPrerequisites, readMountedText, startRig, useRig } from './rig.js';

// Fail loudly (not skip) when the machine lacks what the rig needs.
checkRigPrerequisites();

const NODE = process.execPath;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('multihost rig', () => {
  // host-a, host-b: real clock; host-c: 5 minutes ahead; host-d: 5 minutes behind.
  const rig = useRig({ machines: 4, clockOffsets: [undefined, undefined, '+5m', '-5m'] });

  it('(1) a file written through mount A is readable through mount B', () => {
    fs.writeFileSync(rig.path(0, 'hello.txt'), 'from host-a');
    expect(readMountedText(rig.path(1, 'hello.txt'))).toBe('from host-a');
    expect(readMountedText(path.join(rig.exportDir, 'hello.txt'))).toBe('from host-a');
    // hard link and rename over an existing file work through the mount
    fs.linkSync(rig.path(0, 'hello.txt'), rig.path(0, 'hello.link'));
    expect(fs.statSync(path.join(rig.exportDir, 'hello.txt')).nlink).toBe(2);
    fs.writeFileSync(rig.path(1, 'other.txt'), 'other');
    fs.renameSync(rig.path(1, 'other.txt'), rig.path(1, 'hello.link'));
    expect(readMountedText(path.join(rig.exportDir, 'hello.link'))).toBe('other');
    expect(() => fs.linkSync(rig.path(0, 'hello.txt'), rig.path(0, 'hello.link'))).toThrow(/EEXIST/);
  });

  it('(2) after a rename through A, B keeps showing the old name for a while', async () => {
    fs.mkdirSync(rig.path(0, 'stale'));
    fs.writeFileSync(rig.path(0, 'stale', 'job'), 'x');
    fs.writeFileSync(rig.path(0, 'stale', 'probe'), 'x');
    // B looks: its kernel and sshfs now cache the listing and the attributes.
    expect(fs.readdirSync(rig.path(1, 'stale'))).toContain('job');
    fs.statSync(rig.path(1, 'stale', 'job'));
    fs.statSync(rig.path(1, 'stale', 'probe'));

    fs.renameSync(rig.path(0, 'stale', 'job'), rig.path(0, 'stale', 'job.claimed'));
    // 'probe' is only opened (an open that fails also drops B's cached entry, so keep it apart from 'job').
    fs.renameSync(rig.path(0, 'stale', 'probe'), rig.path(0, 'stale', 'probe.claimed'));
    const t0 = performance.now();
    let readdirStaleMs = -1;
    let statStaleMs = -1;
    let readdirStaleAtStart = false;
    let statStaleAtStart = false;
    let openOldName = '';
    for (;;) {
      const now = performance.now() - t0;
      const listed = fs.readdirSync(rig.path(1, 'stale')).includes('job');
      let statOk = true;
      try {
        fs.statSync(rig.path(1, 'stale', 'job'));
      } catch {
        statOk = false;
      }
      if (now < 200) {
        readdirStaleAtStart ||= listed;
        statStaleAtStart ||= statOk;
        if (!openOldName) {
          try {
            fs.closeSync(fs.openSync(rig.path(1, 'stale', 'probe'), 'r'));
            openOldName = 'opened (stale)';
          } catch (e) {
            openOldName = (e as NodeJS.ErrnoException).code ?? String(e);
          }
        }
      }
      if (!listed && readdirStaleMs < 0) readdirStaleMs = now;
      if (!statOk && statStaleMs < 0) statStaleMs = now;
      if (readdirStaleMs >= 0 && statStaleMs >= 0) break;
      if (now > rig.staleWindowMs + 5000) break;
      await sleep(50);
    }

    // A new name created through A: when does B's directory listing show it?
    fs.readdirSync(rig.path(1, 'stale'));
    fs.writeFileSync(rig.path(0, 'stale', 'new'), 'y');
    const t1 = performance.now();
    let newVisibleMs = -1;
    while (performance.now() - t1 < rig.staleWindowMs + 5000) {
      if (fs.readdirSync(rig.path(1, 'stale')).includes('new')) {
        newVisibleMs = performance.now() - t1;
        break;
      }
      await sleep(50);
    }

    console.log(
      `[rig] staleness on B after rename on A (attr/entry/negative ${rig.cache.attrTimeout}/${rig.cache.entryTimeout}/${rig.cache.negativeTimeout} s, ` +
        `sshfs dcache ${rig.cache.dirCacheTimeout} s): readdir stale for ${Math.round(readdirStaleMs)} ms, ` +
        `stat stale for ${Math.round(statStaleMs)} ms, open(old name) right after rename: ${openOldName}; ` +
        `new name appears in B's readdir after ${Math.round(newVisibleMs)} ms; rig.staleWindowMs=${rig.staleWindowMs}`,
    );
    expect(readdirStaleAtStart || statStaleAtStart).toBe(true); // the cache really is there
    expect(readdirStaleMs).toBeGreaterThanOrEqual(0);
    expect(statStaleMs).toBeGreaterThanOrEqual(0);
    expect(readdirStaleMs).toBeLessThanOrEqual(rig.staleWindowMs);
    expect(statStaleMs).toBeLessThanOrEqual(rig.staleWindowMs);
    expect(newVisibleMs).toBeGreaterThanOrEqual(0);
    expect(newVisibleMs).toBeLessThanOrEqual(rig.staleWindowMs);
  }, 30_000);

  it('(2b) close-to-open: after A appends, B\'s stat may be stale but open()+fstat() and read() are fresh', async () => {
    fs.writeFileSync(rig.path(0, 'cto'), 'aaaa');
    expect(fs.statSync(rig.path(1, 'cto')).size).toBe(4); // B caches the attributes
    fs.appendFileSync(rig.path(0, 'cto'), 'bbbb');
    const statStaleAtStart = fs.statSync(rig.path(1, 'cto')).size === 4;
    const fd = fs.openSync(rig.path(1, 'cto'), 'r');
    try {
      expect(fs.fstatSync(fd).size).toBe(8);
      expect(fs.readFileSync(fd, 'utf8')).toBe('aaaabbbb');
    } finally {
      fs.closeSync(fd);
    }
    const t0 = performance.now();
    let statStaleMs = -1;
    // B's plain stat, primed again above by its own open, is fresh now; prime a stale one afresh.
    fs.appendFileSync(rig.path(0, 'cto'), 'cccc');
    while (performance.now() - t0 < rig.staleWindowMs + 5000) {
      if (fs.statSync(rig.path(1, 'cto')).size === 12) {
        statStaleMs = performance.now() - t0;
        break;
      }
      await sleep(50);
    }
    console.log(`[rig] close-to-open: B's stat stale right after A's append: ${statStaleAtStart}; B's stat caught up after ${Math.round(statStaleMs)} ms; open()+fstat()/read() fresh at once`);
    expect(statStaleAtStart).toBe(true);
    expect(statStaleMs).toBeGreaterThanOrEqual(0);
    // Timestamps through the mount have whole-second resolution (SFTP v3 carries seconds), like NFSv3.
    expect(fs.statSync(rig.path(1, 'cto')).mtimeMs % 1000).toBe(0);
  }, 30_000);

  it('(3) two machines racing to rename the same file: exactly one wins, the other gets ENOENT', async () => {
    const ROUNDS = 20;
    fs.mkdirSync(path.join(rig.exportDir, 'race'));
    for (let k = 0; k < ROUNDS; k++) fs.writeFileSync(path.join(rig.exportDir, 'race', `job-${k}`), String(k));

    // Each racer: "prep k" -> stat the job (so its kernel believes it exists) and answer "ready k";
    // "go k" -> rename race/job-k to race/job-k.<hostname> and answer "k ok" or "k <errno code>".
    const racer = `
      const fs = require('fs'), os = require('os'), rl = require('readline').createInterface({ input: process.stdin });
      rl.on('line', (l) => {
        const [cmd, k] = l.split(' ');
        const src = 'race/job-' + k;
        if (cmd === 'prep') { try { fs.statSync(src); } catch {} console.log('ready ' + k); return; }
        try { fs.renameSync(src, src + '.' + os.hostname()); console.log(k + ' ok'); }
        catch (e) { console.log(k + ' ' + e.code); }
      });`;
    const procs = [rig.spawn(0, NODE, ['-e', racer]), rig.spawn(1, NODE, ['-e', racer])];
    const lines = procs.map(() => [] as string[]);
    const waiters: Array<() => void> = [];
    procs.forEach((p, i) => {
      let buf = '';
      p.stdout!.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          lines[i]!.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          waiters.splice(0).forEach((w) => w());
        }
      });
    });
    const until = async (pred: () => boolean) => {
      const deadline = Date.now() + 10_000;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`racers stuck: ${JSON.stringify(lines)}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 200);
        });
      }
    };

    const results: string[][] = [];
    for (let k = 0; k < ROUNDS; k++) {
      for (const p of procs) p.stdin!.write(`prep ${k}\n`);
      await until(() => lines.every((l) => l.includes(`ready ${k}`)));
      for (const p of procs) p.stdin!.write(`go ${k}\n`);
      await until(() => lines.every((l) => l.some((x) => x.startsWith(`${k} `))));
      results.push(lines.map((l) => l.find((x) => x.startsWith(`${k} `))!.split(' ')[1]!));
    }
    for (const p of procs) p.stdin!.end();

    const wins = [0, 0];
    results.forEach((r, k) => {
      expect(r.slice().sort(), `round ${k}`).toEqual(['ENOENT', 'ok']);
      wins[r.indexOf('ok')]!++;
      const left = fs.readdirSync(path.join(rig.exportDir, 'race')).filter((n) => n === `job-${k}` || n.startsWith(`job-${k}.`));
      expect(left, `round ${k}`).toEqual([`job-${k}.${r[0] === 'ok' ? 'host-a' : 'host-b'}`]);
    });
    console.log(`[rig] rename race, ${ROUNDS} rounds: host-a won ${wins[0]}, host-b won ${wins[1]}; every loser got ENOENT`);
  }, 30_000);

  it('(4) processes see their machine hostname', async () => {
    const r = await rig.run(1, 'hostname');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('host-b');
    const r2 = await rig.run(0, NODE, ['-e', 'console.log(require("os").hostname())']);
    expect(r2.stdout.trim()).toBe('host-a');
  });

  it('(5) a skewed machine: wall clock shifted, monotonic clock and timers intact, file mtimes from the server clock', async () => {
    const script = `
      const fs = require('fs');
      const h0 = process.hrtime.bigint(), t0 = Date.now();
      setTimeout(() => {
        const p = 'clock-' + require('os').hostname();
        fs.writeFileSync(p, 'x');
        const fd = fs.openSync(p, 'r'); const mtime = fs.fstatSync(fd).mtimeMs; fs.closeSync(fd);
        fs.writeFileSync(p + '.utimes', 'x'); const now = new Date(); fs.utimesSync(p + '.utimes', now, now);
        console.log(JSON.stringify({
          dateNow: t0, newDate: new Date().getTime(), timerMs: Number(process.hrtime.bigint() - h0) / 1e6,
          hrtimeSec: Number(h0 / 1000000000n), mtime,
        }));
      }, 300);`;
    const out: Record<string, { dateNow: number; newDate: number; timerMs: number; hrtimeSec: number; mtime: number; serverMtime: number; utimesMtime: number; realNow: number }> = {};
    for (const i of [0, 2, 3]) {
      const before = Date.now();
      const r = await rig.run(i, NODE, ['-e', script]);
      expect(r.code, r.stderr).toBe(0);
      const o = JSON.parse(r.stdout);
      const name = rig.machines[i]!.name;
      o.realNow = before;
      o.realHrtimeSec = Number(process.hrtime.bigint() / 1000000000n);
      o.serverMtime = fs.statSync(path.join(rig.exportDir, `clock-${name}`)).mtimeMs;
      o.utimesMtime = fs.statSync(path.join(rig.exportDir, `clock-${name}.utimes`)).mtimeMs;
      out[name] = o;
      const expectedSkew = { 0: 0, 2: 300_000, 3: -300_000 }[i as 0 | 2 | 3];
      // Wall clock (Date.now, new Date) shifted by the offset.
      expect(Math.abs(o.dateNow - before - expectedSkew)).toBeLessThan(5_000);
      expect(Math.abs(o.newDate - before - expectedSkew)).toBeLessThan(5_000);
      // Monotonic clock not shifted, timers fire on time.
      expect(Math.abs(o.hrtimeSec - o.realHrtimeSec)).toBeLessThan(5);
      expect(o.timerMs).toBeGreaterThanOrEqual(290);
      expect(o.timerMs).toBeLessThan(3_000);
      // mtime of a written file: the file server's clock (real), whatever the writer's clock says.
      expect(Math.abs(o.serverMtime - before)).toBeLessThan(5_000);
      expect(Math.abs(o.mtime - before)).toBeLessThan(5_000);
      // utimes(now) writes the writer's (skewed) clock: a heartbeat must be a write, not utimes.
      expect(Math.abs(o.utimesMtime - before - expectedSkew)).toBeLessThan(5_000);
    }
    for (const [name, o] of Object.entries(out)) {
      console.log(
        `[rig] ${name} (${rig.machines.find((m) => m.name === name)!.clockOffset ?? 'no offset'}): Date.now - real = ${Math.round((o.dateNow - o.realNow) / 1000)} s, ` +
          `write mtime - real = ${Math.round((o.serverMtime - o.realNow) / 1000)} s (server clock), ` +
          `utimes(now) mtime - real = ${Math.round((o.utimesMtime - o.realNow) / 1000)} s, 300 ms timer took ${Math.round(o.timerMs)} ms`,
      );
    }
  }, 30_000);
});

describe('rig teardown', () => {
  it('stop() kills spawned processes, unmounts, stops sshd and removes the temp folder', async () => {
    const rig = await startRig({ machines: 2 });
    const sleeper = rig.spawn(0, 'sleep', ['60']);
    const sshdPid = parseInt(fs.readFileSync(path.join(rig.tmpDir, 'sshd.pid'), 'utf8'), 10);
    const mounts = rig.machines.map((m) => m.mount);
    await rig.stop();
    const mounted = fs.readFileSync('/proc/self/mounts', 'utf8');
    for (const m of mounts) expect(mounted).not.toContain(m);
    expect(sleeper.signalCode).toBe('SIGKILL');
    expect(fs.existsSync(rig.tmpDir)).toBe(false);
    await sleep(200);
    expect(() => process.kill(sshdPid, 0)).toThrow();
  }, 30_000);
});
