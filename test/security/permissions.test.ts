// Modes and permissions: what a member's umask cannot break, who may put to a queue (plain folder
// permissions on pending/QUEUE/), and a state folder swapped by a member.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BOUND_MS, TEAM, canRun, isCleanError, ledgerCounts, putRecord, runAs, setup, snapshot, startWorker, stopWorker,
  teardown, until, whereIs, zcq, type Rig,
} from './rig.js';

let r: Rig;
beforeAll(() => { r = setup('perms'); });
afterAll(() => teardown());

/** Every folder under the spool (but quarantine's private reservations) with a mode other than 2775 or a group other than zcqsec. */
function offModeFolders(): string[] {
  const bad: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const p = join(dir, e.name);
      const st = fs.lstatSync(p);
      const rp = rel ? `${rel}/${e.name}` : e.name;
      if (rp.startsWith('quarantine/') || rp === 'pending/teamonly') continue;
      if ((st.mode & 0o7777) !== 0o2775 || st.gid !== r.gid) bad.push(`${rp} ${(st.mode & 0o7777).toString(8)} gid ${st.gid}`);
      walk(p, rp);
    }
  };
  walk(r.spool, '');
  return bad;
}

describe.runIf(canRun)('modes and permissions', () => {
  it.each([0o077, 0o022])('a member with umask %o runs a worker and puts deferred jobs: new folders get 2775 and the group; the other member runs and recovers its jobs', async (umask) => {
    const q = `um${umask.toString(8)}`;
    // zcqa (umask as given) puts to a new queue, deferred into a new bucket, and runs a worker that
    // makes its lease folder and the done/ and failed/ queue folders.
    const now = putRecord(r, 'zcqa', { queue: q, umask });
    const later = putRecord(r, 'zcqa', { queue: q, umask, extra: ['--in', '1s'] });
    const slow = zcq(r, 'zcqa', ['put', '-q', q, './jobs.mjs#sleepRecord', r.ledger, '4000'], { umask }).stdout.trim();
    const wa = startWorker(r, 'zcqa', ['--queue', q], { umask });
    await until(() => ledgerCounts(r).get(slow) === 1 && whereIs(r, now)[0]?.startsWith('done/') === true, BOUND_MS, 'zcqa ran its jobs', () => wa.output());
    expect(offModeFolders()).toEqual([]);
    // zcqa's worker dies holding `slow` (kill -9): zcqb's worker (umask 077 too) must recover it and run
    // the deferred one, through folders zcqa made.
    wa.kill('SIGKILL');
    await wa.exited;
    const wb = startWorker(r, 'zcqb', ['--queue', q], { umask: 0o077 });
    await until(() => whereIs(r, later)[0]?.startsWith('done/') === true, BOUND_MS, 'zcqb ran the deferred job', () => wb.output());
    await until(() => ledgerCounts(r).get(slow) === 2, BOUND_MS, 'zcqb recovered and reran the interrupted job', () => wb.output());
    expect(wb.output()).toMatch(/lease\.expired/);
    expect(wb.output()).not.toMatch(/EACCES|EPERM/);
    expect((await stopWorker(wb)).signal).toBe(null);
    expect(offModeFolders()).toEqual([]);
    // Files too: group-writable whatever the umask (else the other member could not rewrite or link them).
    for (const id of [now, later]) {
      const st = fs.statSync(join(r.spool, whereIs(r, id)[0]!));
      expect((st.mode & 0o777).toString(8)).toBe('664');
      expect(st.gid).toBe(r.gid);
    }
    expect(ledgerCounts(r).get(now)).toBe(1);
    expect(ledgerCounts(r).get(later)).toBe(1);
  });

  it('per-queue permissions: a queue only group team-a may write refuses a put by an outsider with one line, and leaves nothing behind', async () => {
    // The spool's owner (zcqa, in team-a) restricts one queue.
    const qdir = join(r.spool, 'pending', 'teamonly');
    expect(runAs(r, 'zcqa', ['mkdir', qdir]).code).toBe(0);
    expect(runAs(r, 'zcqa', ['chgrp', TEAM, qdir]).code).toBe(0);
    expect(runAs(r, 'zcqa', ['chmod', '2770', qdir]).code).toBe(0);
    const tmpBefore = fs.readdirSync(join(r.spool, 'tmp')).sort();
    const res = zcq(r, 'zcqb', ['put', '-q', 'teamonly', './jobs.mjs#record', r.ledger]);
    expect(res.timedOut).toBe(false);
    expect([1, 2]).toContain(res.code);
    expect(isCleanError(res.stderr), res.stderr).toBe(true);
    expect(res.stderr).toMatch(/teamonly|permission|EACCES/i);
    expect(res.stdout).toBe('');
    expect(fs.readdirSync(qdir)).toEqual([]);
    expect(fs.readdirSync(join(r.spool, 'tmp')).sort()).toEqual(tmpBefore);
    // stdin batch and --wait too.
    const batch = zcq(r, 'zcqb', ['put', '-'], { input: JSON.stringify({ fn: './jobs.mjs#record', args: [r.ledger], queue: 'teamonly' }) + '\n' });
    expect([1, 2]).toContain(batch.code);
    expect(isCleanError(batch.stderr), batch.stderr).toBe(true);
    expect(fs.readdirSync(qdir)).toEqual([]);
    expect(fs.readdirSync(join(r.spool, 'tmp')).sort()).toEqual(tmpBefore);
    // A member of team-a can put there; a worker of team-a runs it. zcqb's worker cannot even list it.
    const id = putRecord(r, 'zcqa', { queue: 'teamonly' });
    expect(fs.readdirSync(qdir)).toEqual([`${id}.json`]);
    // zcqb's workers, for that queue or for all, skip the folder they cannot read and go on with the others.
    const other = putRecord(r, 'zcqb');
    const wb = startWorker(r, 'zcqb', ['--queue', 'teamonly']);
    const wall = startWorker(r, 'zcqb');
    await until(() => ledgerCounts(r).get(other) === 1, BOUND_MS, 'zcqb ran its own queue', () => wall.output());
    await new Promise((ok) => setTimeout(ok, 500));
    expect((await stopWorker(wb)).signal, wb.output()).toBe(null);
    expect((await stopWorker(wall)).signal, wall.output()).toBe(null);
    expect(wb.output() + wall.output()).not.toMatch(/EACCES|Error/);
    expect(ledgerCounts(r).get(id)).toBeUndefined();
    for (const args of [['status'], ['ls'], ['ls', 'pending'], ['doctor'], ['show', id]]) {
      const res = zcq(r, 'zcqb', args);
      expect(res.timedOut).toBe(false);
      expect(res.stderr, `zcq ${args.join(' ')} as zcqb`).not.toMatch(/^\s+at /m);
      expect(res.stderr, `zcq ${args.join(' ')} as zcqb`).not.toMatch(/\n.*\n/);
    }
    const wa = startWorker(r, 'zcqa', ['--queue', 'teamonly']);
    await until(() => ledgerCounts(r).get(id) === 1, BOUND_MS, 'team-a ran it', () => wa.output());
    expect((await stopWorker(wa)).signal).toBe(null);
  });

  it('the spool root is not group-writable (init makes it 2755): a member cannot swap a state folder (done/) for a link', async () => {
    const before = snapshot(r);
    const done = join(r.spool, 'done');
    expect(fs.statSync(r.spool).mode & 0o7777).toBe(0o2755);
    const mv = runAs(r, 'zcqb', ['mv', done, join(r.spool, 'done.moved')]);
    expect(mv.code).not.toBe(0);
    expect(mv.stderr).toMatch(/Permission denied/);
    expect(fs.lstatSync(done).isDirectory()).toBe(true);
    // ... and both members' workers still work in it.
    const ids = [putRecord(r, 'zcqb'), putRecord(r, 'zcqa')];
    const wb = startWorker(r, 'zcqb', ['--exit-when-idle']);
    const res = await Promise.race([wb.exited, new Promise<null>((ok) => setTimeout(() => ok(null), BOUND_MS))]);
    expect(res?.code, wb.output()).toBe(0);
    for (const id of ids) expect(whereIs(r, id)).toEqual([expect.stringMatching(/^done\/default\//)]);
    expect(snapshot(r)).toEqual(before);
  });

  it('tmp/ removed by hand: a member, who may not write the root, gets one line naming the missing folder and who makes it again; the owner\'s next put makes it 2775 with the group', () => {
    fs.rmSync(join(r.spool, 'tmp'), { recursive: true });
    const refused = zcq(r, 'zcqb', ['put', './jobs.mjs#record', r.ledger]);
    expect(refused.code).toBe(1);
    expect(isCleanError(refused.stderr)).toBe(true);
    expect(refused.stderr).toMatch(/tmp: cannot write \(ENOENT\).*folder of the spool is missing.*zcq doctor --repair/);
    expect(fs.existsSync(join(r.spool, 'tmp'))).toBe(false);
    putRecord(r, 'root');
    const st = fs.lstatSync(join(r.spool, 'tmp'));
    expect((st.mode & 0o7777).toString(8)).toBe('2775');
    expect(st.gid).toBe(r.gid);
    putRecord(r, 'zcqb');
  });
});
