// Faults: a full disk and a read-only spool (a small tmpfs, mounted as root), input that is not a regular
// file, and leftovers of crashes cleaned after a safe age. A worker that cannot record an outcome keeps the
// job (and its lease: the heartbeat is rewritten in place on a full disk) and retries recording while it
// claims nothing new, so that a filling disk never makes a job run twice.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, tempDir, until, zcq } from '../helpers.js';
import { claimedOf, events, jobIn, killWorkers, namesIn, putMany, readLedger, sleep, worker } from './util.js';

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
const mkq = (spool: string, state: string, queue: string) => { const d = join(spool, state, queue); mkdirSync(d, { recursive: true }); return d; };
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
    expect(full.stderr).toMatch(/^zcq: .*cannot write \(ENOSPC\); nothing was published — free space, then retry$/m);
    expect(namesIn(spool, 'pending')).toEqual([]);
    expect(readdirSync(join(spool, 'tmp'))).toEqual([]);
    rmSync(filler);
    expect(spawnSync('mount', ['-o', 'remount,ro', root]).status).toBe(0);
    const ro = zcq(spool, ['put', './jobs.mjs#add', '1', '2']);
    expect(ro.code).toBe(1);
    expect(ro.stderr.trim().split('\n')).toHaveLength(1);
    expect(ro.stderr).toMatch(/^zcq: .*cannot write \(EROFS\); nothing was published — remount the spool read-write, then retry$/m);
    expect(namesIn(spool, 'pending')).toEqual([]);
    expect(readdirSync(join(spool, 'tmp'))).toEqual([]);
    expect(spawnSync('mount', ['-o', 'remount,rw', root]).status).toBe(0);
  });

  it('a worker that cannot record an outcome keeps the job and claims nothing new; once space returns each job is recorded, none ran twice', async () => {
    const root = tryTmpfs(512)!;
    const spool = join(root, 'spool');
    expect(zcq(spool, ['init']).code).toBe(0);
    const ledger = join(tempDir(), 'ledger');
    // `first` runs while the disk fills; the others wait in a paused queue, released while the disk is
    // full: a worker with a free slot that took them then could not record them either.
    const [first] = await putMany(spool, 1, './jobs.mjs#abortableRecord', [ledger, 1500, 50]);
    expect(zcq(spool, ['pause', 'later']).code).toBe(0);
    const later = await putMany(spool, 3, './jobs.mjs#abortableRecord', [ledger, 50], { queue: 'later' });
    const w = worker(spool, ['--lease', '2s', '--heartbeat', '300ms', '--poll', '100ms', '--concurrency', '2']);
    await until(() => readLedger(ledger).length === 1, 15_000);
    const lease = events(w.output()).find((e) => e.event === 'worker.start')!.worker;
    // The pause marker's content is not what pauses; emptied, removing it (zcq resume) frees no block
    // that the worker could record into while the disk is meant to stay full.
    writeFileSync(join(spool, 'paused', 'later'), '');
    const filler = fill(root);
    const unrecorded = (e: Record<string, any>) => e.event === 'job.unrecorded' && e.id === first;
    await until(() => events(w.output()).some(unrecorded), 10_000);
    expect(events(w.output()).find(unrecorded)!.error).toMatch(/ENOSPC/);
    expect(zcq(spool, ['resume', 'later']).code).toBe(0);
    // Longer than the lease: had the worker given its lease up (or let it lapse), a sibling could recover
    // the job and run it again; it keeps it instead, in its own lease, the claimed file untouched.
    await sleep(3000);
    const held = claimedOf(spool, first!);
    expect(held, w.output()).toHaveLength(1);
    expect(held[0]).toMatch(new RegExp(`/claimed/${lease.replace(/\./g, '\\.')}/\\d+\\.${first}\\.json$`));
    expect(JSON.parse(readFileSync(held[0]!, 'utf8')).history).toEqual([]);
    // Nothing new was claimed while the outcome waited: the released jobs are still pending, never started.
    expect(readLedger(ledger).filter((e) => e.event === 'start').map((e) => e.id)).toEqual([first]);
    for (const id of later) expect(jobIn(spool, 'pending', id)).not.toBeNull();
    expect(events(w.output()).some((e) => e.event === 'spool.writable')).toBe(false);

    rmSync(filler);
    await until(() => [first!, ...later].every((id) => jobIn(spool, 'done', id) !== null), 20_000);
    const ev = events(w.output());
    const writable = ev.findIndex((e) => e.event === 'spool.writable');
    expect(writable).toBeGreaterThan(ev.findIndex(unrecorded));
    // The outcome was recorded by the worker that ran it, once: one attempt, one run in the ledger.
    const j = jobIn(spool, 'done', first!)!;
    expect(j.history.map((h: any) => [h.outcome, h.worker])).toEqual([['done', lease]]);
    expect(j.result).toEqual({ attempt: 1, pid: w.pid });
    expect(j.run).toMatch(new RegExp(`^${lease.replace(/\./g, '\\.')}/\\d+$`));
    const starts = readLedger(ledger).filter((e) => e.event === 'start').map((e) => e.id);
    expect(starts.sort()).toEqual([first!, ...later].sort());
    for (const id of later) expect(jobIn(spool, 'done', id)!.history.map((h: any) => h.outcome)).toEqual(['done']);
    // The lease was kept throughout: never lost, never replaced, no job given up.
    for (const bad of ['job.abandoned', 'lease.lost', 'lease.stale', 'lease.new', 'job.lost']) expect(ev.filter((e) => e.event === bad)).toEqual([]);
    expect(claimedOf(spool, first!)).toEqual([]);
    console.log(`disk full: ${ev.filter((e) => e.event === 'job.unrecorded').length} outcome(s) kept unrecorded, recorded after space came back; ${starts.length} runs for ${starts.length} jobs`);
  }, 40_000);
});

describe('bad input and leftovers', () => {
  it('quarantines a FIFO in pending/ (and an unreadable file when not root)', () => {
    const spool = join(tempDir(), 'spool');
    expect(zcq(spool, ['init']).code).toBe(0);
    // A loose FIFO straight in pending/ (met by adoption) and one in a queue folder (met by a claim).
    expect(spawnSync('mkfifo', [join(spool, 'pending', 'fifo.json')]).status).toBe(0);
    mkdirSync(join(spool, 'pending', 'default'), { recursive: true });
    expect(spawnSync('mkfifo', [join(spool, 'pending', 'default', 'fifo2.json')]).status).toBe(0);
    const root = process.getuid?.() === 0;
    // As root, chmod 000 does not stop a read: that case can only be shown by an unprivileged user.
    if (!root) { writeFileSync(join(spool, 'pending', 'default', 'secret.json'), '{}'); chmodSync(join(spool, 'pending', 'default', 'secret.json'), 0); }
    const ok = zcq(spool, ['put', './jobs.mjs#add', '1', '1']).stdout.trim();
    const r = zcq(spool, ['worker', '--root', '.', '--exit-when-idle', '--poll', '100ms'], { timeout: 20_000 });
    expect(r.code).toBe(0);
    for (const f of ['fifo.json', 'fifo2.json']) {
      expect(readFileSync(join(spool, 'quarantine', `${f}.reason`), 'utf8')).toMatch(/not a regular file/);
      expect(r.stderr).toMatch(new RegExp(`job\\.quarantined .*${f.replace('.', '\\.')}`));
    }
    expect(namesIn(spool, 'pending')).toEqual([]);
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
      // .nfs* silly renames sit where the unlinked file was: in a queue folder (format 2).
      old(join(mkq(spool, 'pending', 'default'), '.nfs0000000000012345')),
      old(join(mkq(spool, 'done', 'mail'), '.nfs0000000000067890')),
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
    const w = worker(spool, ['--poll', '100ms', '--leftover-age', '10m', '--housekeeping', '1s']);
    await until(() => stale.every((p) => !existsSync(p)), 10_000).catch((err) => { throw new Error(`${err.message}: left ${stale.filter((p) => existsSync(p)).join(", ")}\n${w.output()}`); });
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(liveSpare)).toBe(true);
    // A removal's log line goes out at the end of the worker's turn (one write a turn): it may reach us just
    // after the file is seen gone.
    const cleanedPaths = () => events(w.output()).filter((e) => e.event === 'spool.cleaned').map((e) => e.path).sort();
    await until(() => cleanedPaths().length >= stale.length, 5_000).catch(() => undefined);
    expect(cleanedPaths()).toEqual([...stale].sort());
  }, 20_000);
});
