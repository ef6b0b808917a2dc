// Faults: a full disk and a read-only spool (a small tmpfs, mounted as root), input that is not a regular
// file, and leftovers of crashes cleaned after a safe age.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, tempDir, until, zcq } from '../helpers.js';
import { claimedFiles, events, jobIn, killWorkers, putMany, readLedger, worker } from './util.js';

afterEach(killWorkers);
const mounts: string[] = [];
afterAll(() => { for (const m of mounts) spawnSync('umount', ['-l', m]); cleanupTemp(); });

function tryTmpfs(kb: number): string | null {
  if (process.getuid?.() !== 0) return null;
  const dir = tempDir('zcq-tmpfs-');
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kb}k`, 'tmpfs', dir]);
  if (r.status !== 0) return null;
  mounts.push(dir);
  return dir;
}
/** Fill the file system holding `dir` with one file; returns its path. */
function fill(dir: string): string {
  const f = join(dir, 'filler');
  try { writeFileSync(f, Buffer.alloc(64 << 20)); } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err; }
  return f;
}
const canMount = (() => { const d = tryTmpfs(64); return d !== null; })();

describe.skipIf(!canMount)('a full or read-only spool (tmpfs; needs root)', () => {
  it('zcq put fails with one clear line and leaves nothing half-written', () => {
    const root = tryTmpfs(256)!;
    const spool = join(root, 'spool');
    expect(zcq(spool, ['init']).code).toBe(0);
    const filler = fill(root);
    const full = zcq(spool, ['put', './jobs.mjs#add', '1', '2']);
    expect(full.code).toBe(1);
    expect(full.stderr.trim().split('\n')).toHaveLength(1);
    expect(full.stderr).toMatch(/^zcq: .*cannot write \(ENOSPC\); nothing was published/);
    expect(readdirSync(join(spool, 'pending'))).toEqual([]);
    expect(readdirSync(join(spool, 'tmp'))).toEqual([]);
    rmSync(filler);
    expect(spawnSync('mount', ['-o', 'remount,ro', root]).status).toBe(0);
    const ro = zcq(spool, ['put', './jobs.mjs#add', '1', '2']);
    expect(ro.code).toBe(1);
    expect(ro.stderr.trim().split('\n')).toHaveLength(1);
    expect(ro.stderr).toMatch(/^zcq: .*cannot write \(EROFS\); nothing was published/);
    expect(readdirSync(join(spool, 'pending'))).toEqual([]);
    expect(readdirSync(join(spool, 'tmp'))).toEqual([]);
    expect(spawnSync('mount', ['-o', 'remount,rw', root]).status).toBe(0);
  });

  it('a worker that cannot record a result keeps the job claimed; its lease lapses and the job is run again', async () => {
    const root = tryTmpfs(512)!;
    const spool = join(root, 'spool');
    const ledger = join(tempDir(), 'ledger');
    const [id] = await putMany(spool, 1, './jobs.mjs#abortableRecord', [ledger, 700, 50]);
    const w = worker(spool, ['--lease', '2s', '--heartbeat', '300ms', '--poll', '100ms', '--concurrency', '1']);
    await until(() => readLedger(ledger).length === 1, 15_000);
    const filler = fill(root);
    // Either the record fails (job.unrecorded), or the heartbeat fails first (a heartbeat is a write too)
    // and the lease lapses before the job ends (job.abandoned). Both must keep the job.
    const gaveUp = (e: Record<string, any>) => (e.event === 'job.unrecorded' || e.event === 'job.abandoned') && e.id === id;
    await until(() => events(w.output()).some(gaveUp), 10_000);
    const un = events(w.output()).find(gaveUp)!;
    if (un.event === 'job.unrecorded') expect(un.error).toMatch(/ENOSPC/);
    // Still claimed (in its lease, or in a recoverer's that could not write either): not lost, not half-written.
    const held = claimedFiles(spool).filter((p) => p.endsWith(`/${id}.json`));
    expect(held).toHaveLength(1);
    expect(JSON.parse(readFileSync(held[0]!, 'utf8')).history).toEqual([]);
    rmSync(filler);
    await until(() => jobIn(spool, 'done', id!) !== null, 15_000);
    const j = jobIn(spool, 'done', id!)!;
    expect(j.history.map((h: any) => [h.outcome, h.worker === un.worker])).toEqual([['interrupted', true], ['done', false]]);
    expect(readLedger(ledger).filter((e) => e.event === 'start').map((e) => e.attempt)).toEqual([1, 2]);
    expect(events(w.output()).map((e) => e.event)).toContain('lease.new');
    console.log(`disk full: the worker gave the job up by ${un.event} (${un.reason ?? un.error}); run again after space came back`);
  }, 40_000);
});

describe('bad input and leftovers', () => {
  it('quarantines a FIFO in pending/ (and an unreadable file when not root)', () => {
    const spool = join(tempDir(), 'spool');
    expect(zcq(spool, ['init']).code).toBe(0);
    expect(spawnSync('mkfifo', [join(spool, 'pending', 'fifo.json')]).status).toBe(0);
    const root = process.getuid?.() === 0;
    // As root, chmod 000 does not stop a read: that case can only be shown by an unprivileged user.
    if (!root) { writeFileSync(join(spool, 'pending', 'secret.json'), '{}'); chmodSync(join(spool, 'pending', 'secret.json'), 0); }
    const ok = zcq(spool, ['put', './jobs.mjs#add', '1', '1']).stdout.trim();
    const r = zcq(spool, ['worker', '--root', '.', '--exit-when-idle', '--poll', '100ms'], { timeout: 20_000 });
    expect(r.code).toBe(0);
    expect(readFileSync(join(spool, 'quarantine', 'fifo.json.reason'), 'utf8')).toMatch(/not a regular file/);
    expect(r.stderr).toMatch(/job\.quarantined .*fifo\.json/);
    if (!root) expect(readFileSync(join(spool, 'quarantine', 'secret.json.reason'), 'utf8')).toMatch(/unreadable \(EACCES\)/);
    expect(jobIn(spool, 'done', ok)!.result).toBe(2);
  });

  it('a worker removes orphan temp files, stale .nfs* files and heartbeats of gone workers and old progress annotations after the safe age, and nothing else', async () => {
    const spool = join(tempDir(), 'spool');
    expect(zcq(spool, ['init']).code).toBe(0);
    const old = (p: string, body = 'x') => { writeFileSync(p, body); const t = new Date(Date.now() - 2 * 3600_000); utimesSync(p, t, t); return p; };
    const stale = [
      old(join(spool, 'tmp', '0mwx-orphan.json')),
      old(join(spool, 'tmp', '.hb-gone.host.1.abcdef')),
      old(join(spool, 'pending', '.nfs0000000000012345')),
      old(join(spool, 'done', '.nfs0000000000067890')),
      old(join(spool, 'workers', 'gone.host.1.abcdef.json'), '{"leaseMs":30000}'),
      old(join(spool, 'progress', '0mwx-long-finished.json'), '{"value":1}'),
      old(join(spool, 'tmp', '.spare-gone.host.1.abcdef-3')),
    ];
    const fresh = join(spool, 'tmp', '0mwx-in-progress.json');
    writeFileSync(fresh, 'x');
    // A live lease's spare keeps its job file's old mtime: it is not a leftover.
    mkdirSync(join(spool, 'claimed', 'live.host.2.abcdef'));
    const liveSpare = old(join(spool, 'tmp', '.spare-live.host.2.abcdef-7'));
    mkdirSync(join(spool, 'quarantine'), { recursive: true });
    const w = worker(spool, ['--poll', '100ms', '--leftover-age', '10m', '--housekeeping', '200ms']);
    await until(() => stale.every((p) => !existsSync(p)), 10_000);
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(liveSpare)).toBe(true);
    const cleaned = events(w.output()).filter((e) => e.event === 'spool.cleaned').map((e) => e.path).sort();
    expect(cleaned).toEqual([...stale].sort());
  }, 20_000);
});
