// A read-only spool (a bind mount remounted ro) and a full one (a 2 MB tmpfs), as the members see them.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BOUND_MS, GROUP, canRun, isCleanError, ledgerCounts, putRecord, setup, startWorker, stopWorker, teardown, tookMount,
  until, whereIs, zcq, type Rig,
} from './rig.js';

let r: Rig;
beforeAll(() => { r = setup('mounts'); });
afterAll(() => teardown());

/** Every entry under `dir` with its size and mtime: a read-only command must change none of it. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = fs.lstatSync(p);
      out.push(`${p} ${st.isDirectory() ? 'd' : st.size} ${st.isDirectory() ? '' : st.mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

describe.runIf(canRun)('read-only and full spools', () => {
  it('a read-only spool: ls, show, status, wait (finished job), doctor work and write nothing; the worker refuses in one line', async () => {
    const ids = [putRecord(r, 'zcqa'), putRecord(r, 'zcqb')];
    const w = startWorker(r, 'zcqa', ['--exit-when-idle']);
    await w.exited;
    for (const id of ids) expect(whereIs(r, id)[0]).toMatch(/^done\//);
    const pendingId = putRecord(r, 'zcqb');
    const ro = join(r.base, 'ro');
    fs.mkdirSync(ro);
    execFileSync('mount', ['--bind', r.spool, ro]);
    tookMount(ro);
    execFileSync('mount', ['-o', 'remount,bind,ro', ro]);
    const before = tree(r.spool);
    for (const who of ['zcqa', 'zcqb', 'root'] as const) {
      for (const args of [['ls'], ['show', ids[0]!], ['show', pendingId], ['status'], ['wait', ids[0]!], ['doctor'], ['--json', 'status']]) {
        const res = zcq(r, who, args, { spool: ro });
        expect(res.timedOut, `${args.join(' ')} as ${who}`).toBe(false);
        expect(res.code, `zcq ${args.join(' ')} as ${who}: ${res.stderr}`).toBe(0);
        expect(res.stderr, `zcq ${args.join(' ')} as ${who}`).not.toMatch(/^\s+at /m);
      }
      const wk = zcq(r, who, ['worker', '--root', r.jobs, '--exit-when-idle'], { spool: ro });
      expect(wk.timedOut, `worker as ${who} on a read-only spool`).toBe(false);
      expect(wk.code, wk.stderr).not.toBe(0);
      expect(isCleanError(wk.stderr), wk.stderr).toBe(true);
      expect(wk.stderr).toMatch(/read-only|EROFS/i);
    }
    expect(tree(r.spool)).toEqual(before);
    execFileSync('umount', [ro]);
  });

  it('a full spool (2 MB tmpfs): put fails cleanly; a worker whose outcomes cannot be written stops claiming; no job runs twice when space returns', async () => {
    const mnt = join(r.base, 'full');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=2m,mode=0775,gid=${r.gid}`, 'tmpfs', mnt]);
    tookMount(mnt);
    const spool = join(mnt, 'spool');
    fs.mkdirSync(spool);
    fs.chownSync(spool, r.uid.zcqa, r.gid);
    expect(zcq(r, 'zcqa', ['init', spool, '--group', GROUP]).code).toBe(0);
    const put = (who: 'zcqa' | 'zcqb') => zcq(r, who, ['put', './jobs.mjs#sleepRecord', r.ledger, '1500'], { spool });
    const ids = Array.from({ length: 6 }, (_, i) => put(i % 2 ? 'zcqa' : 'zcqb').stdout.trim());
    expect(ids.every(Boolean)).toBe(true);
    const w = startWorker(r, 'zcqb', ['--concurrency', '2'], { spool });
    await until(() => ids.filter((id) => ledgerCounts(r).has(id)).length >= 2, BOUND_MS, 'two jobs started', () => w.output());
    // Fill the disk (as root, in the spool's own file system) while the two jobs run.
    const filler = join(mnt, 'filler');
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' });
    // A put now fails in one line, exit 1 or 2, leaving no temporary behind.
    const tmpBefore = fs.readdirSync(join(spool, 'tmp')).filter((n) => !n.startsWith('.probe-') && !n.startsWith('.hb-') && !n.startsWith('.spare-'));
    const p = zcq(r, 'zcqa', ['put', './jobs.mjs#record', r.ledger], { spool });
    expect(p.timedOut).toBe(false);
    expect([1, 2]).toContain(p.code);
    expect(isCleanError(p.stderr), p.stderr).toBe(true);
    expect(p.stderr).toMatch(/space|ENOSPC/i);
    expect(fs.readdirSync(join(spool, 'tmp')).filter((n) => !n.startsWith('.probe-') && !n.startsWith('.hb-') && !n.startsWith('.spare-'))).toEqual(tmpBefore);
    // The two running jobs end; their outcomes cannot be written: the worker says so and claims nothing more.
    await until(() => /job\.unrecorded/.test(w.output()), BOUND_MS, 'unrecorded outcomes reported', () => w.output());
    const startedWhileFull = ids.filter((id) => ledgerCounts(r).has(id)).length;
    await new Promise((ok) => setTimeout(ok, 3000));
    expect(ids.filter((id) => ledgerCounts(r).has(id)).length).toBe(startedWhileFull);
    // Space returns: everything finishes, each job exactly once.
    fs.unlinkSync(filler);
    await until(() => ids.every((id) => whereIs2(spool, id)?.startsWith('done/')), 30_000, 'all jobs done after space returned', () => w.output());
    const stopped = await stopWorker(w);
    expect(stopped.signal).toBe(null);
    for (const id of ids) expect(ledgerCounts(r).get(id), `job ${id}`).toBe(1);
    fs.rmSync(spool, { recursive: true, force: true });
    execFileSync('umount', [mnt]);
  });
});

function whereIs2(spool: string, id: string): string | undefined {
  for (const s of ['pending', 'claimed', 'done', 'failed']) {
    const base = join(spool, s);
    const walk = (d: string, rel: string): string | undefined => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) { const f = walk(join(d, e.name), `${rel}/${e.name}`); if (f) return f; }
        else if (e.name === `${id}.json` || e.name.endsWith(`.${id}.json`)) return `${rel}/${e.name}`;
      }
      return undefined;
    };
    const f = walk(base, s);
    if (f) return f;
  }
  return undefined;
}
