// Issue 17: errors of networked file systems by meaning (src/errors.ts, the one mapping), and the names
// file systems put into folders, which no scan takes for a job, a queue or a lease. The errors that a real
// mount produces (ESTALE on GlusterFS, ENOTCONN with a dead client or dead bricks) are also produced for
// real in test/multihost/gluster.test.ts and mount-gone.test.ts; here each one is checked in the shape Node
// gives it, including ESTALE as Node reports it on Linux: code 'Unknown system error -116', errno -116.
import * as fs from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { errnoName, errnoOf, isGone, isMountGone, isTransient, retryTransient, ZcqError, JobNotFoundError } from '../../dist/errors.js';
import { idFromName, isFileSystemName } from '../../dist/spool/names.js';
import { killAll, newSpool, startWorker, until, zcq } from '../helpers.js';

const E = { ESHUTDOWN: 108, ...constants.errno } as Record<string, number>; // Node's table has no ESHUTDOWN

/** An error in the shape Node's fs gives it: code, negative errno, syscall. */
function fsError(code: string, errno: number, syscall = 'open'): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '/spool/workers/L.json'`), { code, errno: -errno, syscall });
}

/** ESTALE exactly as Node 20 reports it on Linux (libuv has no name for it). */
function nodeEstale(): NodeJS.ErrnoException {
  const name = getSystemErrorName(-E.ESTALE!);
  return fsError(name, E.ESTALE!);
}

describe('errno by meaning (src/errors.ts)', () => {
  it('Node has no name for ESTALE: its code is "Unknown system error -116" (the issue\'s log line); zcq names it by number', () => {
    const e = nodeEstale();
    expect(e.code).toMatch(/^Unknown system error -116$/);
    expect(errnoName(e)).toBe('ESTALE');
    expect(errnoOf(e)).toBe('ESTALE');
    // The code alone, as a log line carries it (no errno field).
    expect(errnoName({ code: 'Unknown system error -116' })).toBe('ESTALE');
  });

  it('gone (look again): ENOENT and ESTALE, by name and by number', () => {
    const real = (() => { try { fs.openSync('/nonexistent/zcq', 'r'); } catch (e) { return e; } })();
    expect(isGone(real)).toBe(true);
    expect(isGone(fsError('ESTALE', E.ESTALE!))).toBe(true);
    expect(isGone(nodeEstale())).toBe(true);
    for (const c of ['EIO', 'ENOTCONN', 'EEXIST', 'EACCES']) expect(isGone(fsError(c, E[c]!)), c).toBe(false);
  });

  it('mount gone (back off, report once): EIO, ENOTCONN, ESHUTDOWN, ECONNABORTED — and not ESTALE, which is about one name', () => {
    for (const c of ['EIO', 'ENOTCONN', 'ESHUTDOWN', 'ECONNABORTED']) {
      expect(isMountGone(fsError(c, E[c]!)), c).toBe(true);
      expect(isMountGone({ code: `Unknown system error -${E[c]}`, errno: -E[c]! }), `${c} by number`).toBe(true);
      expect(isGone(fsError(c, E[c]!)), c).toBe(false);
    }
    expect(isMountGone(nodeEstale())).toBe(false);
    expect(isMountGone(fsError('ENOENT', E.ENOENT!))).toBe(false);
  });

  it('transient (retry the call): EAGAIN, EINTR, EBUSY, and EBADFD as Node reports it (GlusterFS, a replica brick down)', () => {
    for (const c of ['EAGAIN', 'EINTR', 'EBUSY']) expect(isTransient(fsError(c, E[c]!)), c).toBe(true);
    // The CI log's line: "Unknown system error -77, scandir '.../spool/pending'" from a replica volume with one brick down.
    const ebadfd = fsError(getSystemErrorName(-77), 77);
    expect(ebadfd.code).toBe('Unknown system error -77');
    expect(errnoName(ebadfd)).toBe('EBADFD');
    expect(isTransient(ebadfd)).toBe(true);
    expect(isMountGone(ebadfd)).toBe(false);
    for (const c of ['ENOENT', 'EIO', 'ENOTCONN']) expect(isTransient(fsError(c, E[c]!)), c).toBe(false);
  });

  it("zcq's own codes and non-errno codes are left as they are", () => {
    expect(errnoOf(new JobNotFoundError('x'))).toBe('ZCQ_NOT_FOUND');
    expect(isGone(new ZcqError('ZCQ_LEASE_LOST', 'x'))).toBe(false);
    expect(errnoOf({ code: 'ELOCKED' })).toBe('ELOCKED'); // proper-lockfile's
    expect(errnoOf(undefined)).toBeUndefined();
    expect(errnoOf(new Error('plain'))).toBeUndefined();
  });

  it('retryTransient: EINTR/EAGAIN are tried again (3 calls in all), anything else is thrown at once', () => {
    let calls = 0;
    expect(retryTransient(() => { if (++calls < 3) throw fsError('EINTR', E.EINTR!); return 'ok'; })).toBe('ok');
    expect(calls).toBe(3);
    calls = 0;
    expect(() => retryTransient(() => { calls++; throw fsError('EAGAIN', E.EAGAIN!); })).toThrow(/EAGAIN/);
    expect(calls).toBe(3);
    calls = 0;
    expect(() => retryTransient(() => { calls++; throw nodeEstale(); })).toThrow(/-116/);
    expect(calls).toBe(1);
  });
});

describe("names a file system puts into the spool's folders", () => {
  afterEach(killAll);

  it('isFileSystemName knows .nfs*, .fuse_hidden*, .glusterfs*, .trashcan, .snap; none is a job name', () => {
    for (const n of ['.nfs0000000001a2b3c400000001', '.fuse_hidden0000000200000001', '.glusterfs', '.glusterfs-anonymous-inode-cbc9d1ab', '.trashcan', '.snap', '.snapshot']) {
      expect(isFileSystemName(n), n).toBe(true);
      expect(idFromName(n), n).toBeNull();
    }
    for (const n of ['abc.json', '.tmp-x', 'nfs.json', '.snapper']) expect(isFileSystemName(n), n).toBe(false);
  });

  it('.glusterfs and .nfs* entries in every state and queue folder: ls lists only the jobs, a worker runs them, quarantines nothing, and leaves the names alone', async () => {
    const spool = newSpool();
    const put = zcq(spool, ['put', './jobs.mjs#add', '2', '3']);
    expect(put.code, put.stderr).toBe(0);
    const id = put.stdout.trim();
    // What GlusterFS and NFS leave: a .glusterfs folder (as on a brick), anonymous-inode folders, silly renames.
    const planted: string[] = [];
    const plant = (p: string, dir = false) => { if (dir) fs.mkdirSync(p, { recursive: true }); else fs.writeFileSync(p, '{"fn":"./jobs.mjs#boom","args":[]}'); planted.push(p); };
    plant(join(spool, '.glusterfs'), true);
    plant(join(spool, '.glusterfs-anonymous-inode-0c5e'), true);
    for (const state of ['pending', 'claimed', 'done', 'failed', 'hold', 'deferred']) {
      plant(join(spool, state, '.glusterfs'), true);
      plant(join(spool, state, '.nfs000000000123abcd00000001'));
    }
    plant(join(spool, 'pending', 'default', '.nfs0000000004567ef00000002'));
    plant(join(spool, 'pending', 'default', '.glusterfs-anonymous-inode-1f'), true);
    plant(join(spool, 'pending', 'default', '.fuse_hidden0000000300000001'));

    const ls = zcq(spool, ['--json', 'ls']);
    expect(ls.code, ls.stderr).toBe(0);
    expect((JSON.parse(ls.stdout) as Array<{ id: string }>).map((j) => j.id)).toEqual([id]);

    const w = startWorker(spool, ['--json', '--poll', '100ms', '--exit-when-idle']);
    expect(await w.exited, w.output()).toBe(0);
    const events = w.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string });
    expect(events.filter((e) => e.event === 'job.done')).toHaveLength(1);
    expect(events.filter((e) => /quarantin|error|skipped/.test(e.event))).toEqual([]);
    expect(fs.readdirSync(join(spool, 'quarantine')).filter((n) => !n.startsWith('.'))).toEqual([]);
    for (const p of planted) expect(fs.existsSync(p), p).toBe(true);
    await until(() => zcq(spool, ['--json', 'show', id]).stdout.includes('"done"'));
    const doctor = zcq(spool, ['doctor']);
    expect(doctor.stdout + doctor.stderr).not.toMatch(/glusterfs|\.nfs|fuse_hidden/);
  });
});
