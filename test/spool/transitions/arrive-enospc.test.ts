// arrive (src/spool/transitions/arrive.ts) on a file system that fills up in the middle of a group's
// arrivals: a real tmpfs (root only) whose inodes run out — tmpfs charges every new name, a link as much
// as a file, so the member's entry, its tokens, its slots and the release's queue folder can each be
// refused with ENOSPC. The last member's finish is tried with 0, 1, 2, ... inodes free, as the worker's
// retry loop runs it again with the same claim and outcome (worker.ts finish): after each refusal its file
// is whole and in its claim only and the postprocess still waits; once space is back the same finish
// completes the arrival and the group's postprocess runs once with every member's record.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join, relative } from 'node:path';
import { groupComplete, readEntries } from '../../../dist/spool/transitions/arrive.js';
import { finishJob } from '../../../dist/spool/transitions/finish.js';
import { compositeGate } from '../../../dist/worker/composite.js';
import { cleanupTemp, tempDir } from '../../helpers.js';
import { Rig, attemptOf, succeed } from './util.js';

const mounts: string[] = [];
afterAll(() => { for (const m of mounts) spawnSync('umount', ['-l', m]); cleanupTemp(); });

/** A tmpfs of `inodes` inodes, or null when this process cannot mount (not root). */
function tryTmpfs(inodes: number): string | null {
  if (process.getuid?.() !== 0) return null;
  const dir = tempDir('zcq-enospc-');
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=8m,nr_inodes=${inodes}`, 'tmpfs', dir]).status !== 0) return null;
  mounts.push(dir);
  return dir;
}
const canMount = (() => tryTmpfs(64) !== null)();

/** Take every free inode with empty files (in a folder of its own); `free(n)` gives n back, `free()` all. */
function exhaust(root: string): { count: number; free: (n?: number) => void } {
  const dir = join(root, 'filler');
  fs.mkdirSync(dir, { recursive: true });
  let count = 0;
  for (;;) {
    try { fs.closeSync(fs.openSync(join(dir, String(count)), 'wx')); count++; } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
      throw err;
    }
  }
  return {
    count,
    free: (n = count) => { for (let i = 0; i < n && count > 0; i++) fs.unlinkSync(join(dir, String(--count))); },
  };
}

describe.skipIf(!canMount)('arrive on a file system out of inodes (tmpfs; needs root)', () => {
  let rig: Rig;
  afterEach(async () => { await rig?.dispose(); });

  it('the last member\'s finish refused at successive allocations (the record, its entry or tokens, the release): its record stays in its claim, whole, the postprocess waits; once space is back the group completes and the postprocess runs with all 4 records', async () => {
    rig = await Rig.make(tryTmpfs(2000)!);
    const h = await rig.spool.parallel(Array.from({ length: 4 }, (_, i) => ({ fn: './jobs.mjs#add', args: [i, 0], queue: 'q' })), { queue: 'pq' });
    const gdir = join(rig.l.groups, h.group);
    const a = await rig.lease();
    const waiting = join(rig.l.root, 'waiting', 'pq', `${h.id}.json`);
    for (const i of [0, 1, 2]) {
      const m = await rig.claim(a, h.members[i]!, 'q');
      expect(await finishJob(m.c, m.job, succeed(a, m.job, `r${i}`))).toBe('moved');
    }
    // Member 3 completes node 1.1 second and climbs to the root: every name it makes needs an inode
    // (tmpfs charges each link too). With n inodes free, its finish fails at its n-th allocation.
    const m = await rig.claim(a, h.members[3]!, 'q');
    const next = succeed(a, m.job, 'r3');
    const refused: string[] = [];
    let r: unknown;
    for (let n = 0; n < 30; n++) {
      const fill = exhaust(rig.l.root);
      fill.free(n);
      r = await finishJob(m.c, m.job, next).catch((e: NodeJS.ErrnoException) => e);
      fill.free();
      if (r === 'moved') break;
      expect(r, String(r)).toMatchObject({ code: 'ENOSPC' });
      const e = r as NodeJS.ErrnoException & { dest?: string };
      refused.push(relative(rig.l.root, e.dest ?? e.path ?? '?'));
      // Nothing lost or half-written: the member is in its claim only, its file whole (the job as claimed,
      // or its final record).
      const at = rig.only(h.members[3]!);
      expect(at).toMatch(/^claimed\//);
      const rec = JSON.parse(fs.readFileSync(join(rig.l.root, at), 'utf8'));
      expect(rec.id).toBe(h.members[3]);
      if (rec.result !== undefined) expect(rec).toMatchObject({ result: 'r3', run: m.c.token });
      // The postprocess waits (released only with the last member's record in place), in one place.
      expect(fs.existsSync(waiting)).toBe(true);
      expect(rig.where(h.id)).toEqual([]);
    }
    expect(r).toBe('moved');
    // Refused before the arrival (the record, the spare link), in the middle of it (a name in the group
    // folder: which ones depends on what each attempt had left to make), and at the release.
    expect(refused.some((p) => p.startsWith(`groups/${h.group}/`)), JSON.stringify(refused)).toBe(true);
    expect(rig.where(h.members[3]!)).toEqual([`done/q/${h.members[3]}.json`]);
    expect(groupComplete(rig.l, h.group, 4)).toBe(true);
    expect(rig.where(h.id)).toEqual([`pending/pq/${h.id}.json`]);
    expect(fs.readdirSync(rig.l.tmp).filter((n) => n.startsWith('.entry-') || n.startsWith('.fin-'))).toEqual([]);
    const p = await rig.claim(a, h.id, 'pq');
    const gate = await compositeGate(rig.l, p.job, attemptOf(a, p.job), () => new Date().toISOString(), Date.now());
    if (gate.run) throw new Error('the built-in postprocess is settled by the gate');
    expect(await finishJob(p.c, p.job, gate.next)).toBe('moved');
    const done = rig.read(`done/pq/${h.id}.json`);
    expect((done.result as Array<{ state: string; result?: unknown }>).map((e) => [e.state, e.result])).toEqual([0, 1, 2, 3].map((i) => ['done', `r${i}`]));
    expect(readEntries(rig.l, h.group, 4).every((e) => e.state === 'done')).toBe(true);
    for (const id of h.members) expect(rig.where(id)).toEqual([`done/q/${id}.json`]);
    expect(fs.readdirSync(gdir)).not.toContain('reopened');
    console.log(`ENOSPC at: ${refused.join(', ')}`);
  });
});
