// fsops against a hostile co-user of a group-writable spool, with real files: symlinks planted at the names
// zcq writes, FIFOs and sockets where files are expected, hard links to files that are not ours.
import { afterAll, describe, expect, it } from 'vitest';
import { chownSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, openSync, closeSync, realpathSync, constants } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as fsops from '../../dist/spool/fsops.js';
import { isMountGone, isNoSpace, isReadOnly } from '../../dist/errors.js';
import { cleanupTemp, tempDir } from '../helpers.js';
import { distUrl, isRoot, mkfifo, mksock, runNode, sha256, victim, within } from './util.js';

afterAll(cleanupTemp);

const FSOPS = distUrl('spool/fsops.js');

function setup() {
  const base = tempDir('zcq-fsops-');
  const spool = join(base, 'spool');
  const tmp = join(spool, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const outside = join(base, 'outside');
  mkdirSync(outside);
  return { base, spool, tmp, outside, v: victim(outside) };
}

describe('opening spool files: O_NOFOLLOW|O_NONBLOCK and an fstat check', () => {
  it('refuses a FIFO, a symlink, a socket and a folder at once, naming the file and its kind', async () => {
    const { tmp, v } = setup();
    mkfifo(join(tmp, 'fifo.json'));
    symlinkSync(v.path, join(tmp, 'link.json'));
    mksock(join(tmp, 'sock.json'));
    mkdirSync(join(tmp, 'dir.json'));
    // In a child: an open that blocked on the FIFO would freeze this test process, timers included.
    const r = runNode(`
      const f = await import(${JSON.stringify(FSOPS)});
      const res = {};
      for (const n of ['fifo.json', 'link.json', 'sock.json', 'dir.json']) {
        const p = ${JSON.stringify(tmp)} + '/' + n;
        const read = f.readRegularFileSync(p);
        let open; try { f.openRegularSync(p); open = 'opened'; } catch (e) { open = e.message; }
        let openW; try { f.openRegularSync(p, (await import('node:fs')).constants.O_WRONLY); openW = 'opened'; } catch (e) { openW = e.message; }
        res[n] = { read: read.bad ?? 'read', open, openW };
      }
      out(res);`);
    expect(r.timedOut).toBe(false);
    expect(r.ok, r.stderr).toBe(true);
    expect(r.value['fifo.json'].read).toBe('is a FIFO, not a regular file');
    expect(r.value['fifo.json'].open).toBe(`${tmp}/fifo.json: is a FIFO, not a regular file`);
    expect(r.value['fifo.json'].openW).toMatch(/fifo\.json: is a FIFO, not a regular file$/); // ENXIO, no reader
    expect(r.value['link.json'].read).toBe('is a symbolic link, not a regular file');
    expect(r.value['link.json'].open).toMatch(/link\.json: is a symbolic link, not a regular file$/);
    expect(r.value['sock.json'].read).toMatch(/is a socket, not a regular file/);
    expect(r.value['dir.json'].read).toBe('is a folder, not a regular file');
    expect(r.value['dir.json'].openW).toMatch(/is a folder, not a regular file/);
    expect(sha256(v.path)).toBe(v.hash);
  });

  it('readRegularText gives the text of a regular file and throws a one-line UnsafeFileError otherwise', async () => {
    const { tmp, v } = setup();
    writeFileSync(join(tmp, 'ok.json'), '{"a":1}');
    symlinkSync(v.path, join(tmp, 'link.json'));
    expect(await fsops.readRegularText(join(tmp, 'ok.json'))).toBe('{"a":1}');
    await expect(fsops.readRegularText(join(tmp, 'link.json'))).rejects.toThrow(/link\.json: is a symbolic link, not a regular file/);
    writeFileSync(join(tmp, 'big'), 'x'.repeat(100));
    await expect(fsops.readRegularText(join(tmp, 'big'), 10)).rejects.toMatchObject({ code: 'ZCQ_UNSAFE_FILE' });
    expect(() => fsops.openRegularSync(join(tmp, 'ok.json'), constants.O_WRONLY | constants.O_TRUNC)).toThrow(/O_TRUNC/);
  });
});

describe('createExclusive / writeReplace', () => {
  it('a registered folder removed again just after it was made (a person\'s rm -rf still running) is made again, up to REMAKES_MAX times', () => {
    const { spool } = setup();
    const dir = join(spool, 'remade');
    let made = 0;
    fsops.remakeWhenGone(dir, () => { made++; mkdirSync(dir); if (made < fsops.REMAKES_MAX) rmSync(dir, { recursive: true }); });
    const path = fsops.createExclusiveSync(dir, '.t-', 'x');
    expect(made).toBe(fsops.REMAKES_MAX);
    expect(readFileSync(path, 'utf8')).toBe('x');
    // A removal that never ends: the write fails with the folder's ENOENT after REMAKES_MAX remakes, no more.
    rmSync(dir, { recursive: true });
    made = 0;
    fsops.remakeWhenGone(dir, () => { made++; mkdirSync(dir); rmSync(dir, { recursive: true }); });
    expect(() => fsops.createExclusiveSync(dir, '.t-', 'x')).toThrow(/ENOENT/);
    expect(made).toBe(fsops.REMAKES_MAX);
  });

  it('createExclusive makes a fresh random name with the exact mode, never an existing one', async () => {
    const { tmp } = setup();
    const a = fsops.createExclusiveSync(tmp, '.t-', 'one', { mode: 0o664 });
    const b = await fsops.createExclusive(tmp, '.t-', 'two', { mode: 0o600, durable: true });
    expect(a).not.toBe(b);
    expect(a.startsWith(join(tmp, '.t-'))).toBe(true);
    expect(a.length - join(tmp, '.t-').length).toBe(16); // 96 random bits
    expect(readFileSync(a, 'utf8')).toBe('one');
    expect(statSync(a).mode & 0o7777).toBe(0o664); // under the test's umask 022 too
    expect(statSync(b).mode & 0o7777).toBe(0o600);
    expect(() => fsops.createExclusiveSync(tmp, 'a/b', 'x')).toThrow(/path separator/);
  });

  it('createExclusive removes its file when the write fails (no leftover)', async () => {
    const { tmp } = setup();
    expect(() => fsops.createExclusiveSync(tmp, '.t-', 42 as unknown as string)).toThrow();
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('writeReplace over a planted symlink replaces the link, never writes the target', async () => {
    const { tmp, spool, v } = setup();
    const target = join(spool, 'state.json');
    symlinkSync(v.path, target);
    await fsops.writeReplace(target, '{"new":true}\n', { tmpDir: tmp, durable: true, mode: 0o664 });
    expect(lstatSync(target).isFile()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('{"new":true}\n');
    expect(statSync(target).mode & 0o777).toBe(0o664);
    expect(sha256(v.path)).toBe(v.hash);
    // Sync variant, temp beside the target (a dot-name readers skip), also replacing a FIFO.
    const t2 = join(spool, 'other.json');
    mkfifo(t2);
    fsops.writeReplaceSync(t2, 'x');
    expect(lstatSync(t2).isFile()).toBe(true);
    expect(readdirSync(spool).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('writeFileSyncDurable refuses to create through a symlink; non-exclusive rewrites replace planted links, FIFOs and hard links', async () => {
    const { tmp, v } = setup();
    const name = join(tmp, 'job.lease.json'); // a predictable per-lease temp name (lease.ts tmpFor)
    symlinkSync(v.path, name);
    expect(() => fsops.writeFileSyncDurable(name, 'x', false)).toThrow(/EEXIST/);
    fsops.writeFileSyncDurable(name, 'rewritten', true, false);
    expect(lstatSync(name).isFile()).toBe(true);
    expect(readFileSync(name, 'utf8')).toBe('rewritten');
    expect(sha256(v.path)).toBe(v.hash);

    // A hard link to the victim at the temp name: nlink 2, so it is unlinked and created afresh.
    const hl = join(tmp, 'hl.json');
    linkSync(v.path, hl);
    fsops.writeFileSyncDurable(hl, 'mine', true, false);
    expect(readFileSync(hl, 'utf8')).toBe('mine');
    expect(sha256(v.path)).toBe(v.hash);
    expect(statSync(v.path).nlink).toBe(1);

    // A FIFO: replaced without blocking (checked in a child, see above).
    const ff = join(tmp, 'ff.json');
    mkfifo(ff);
    const r = runNode(`const f = await import(${JSON.stringify(FSOPS)}); f.writeFileSyncDurable(${JSON.stringify(ff)}, 'ok', false, false); out('done');`);
    expect(r.timedOut).toBe(false);
    expect(r.ok, r.stderr).toBe(true);
    expect(readFileSync(ff, 'utf8')).toBe('ok');

    // Our own regular file with one name is reused in place (same inode).
    const own = join(tmp, 'own.json');
    writeFileSync(own, 'old content, longer');
    const ino = statSync(own).ino;
    fsops.writeFileSyncDurable(own, 'new', false, false);
    expect(statSync(own).ino).toBe(ino);
    expect(readFileSync(own, 'utf8')).toBe('new');
  });
});

describe('rewriteOwnedInPlace / checkOwnedRegular', () => {
  it('rewrites our own one-name regular file in place', async () => {
    const { tmp } = setup();
    const p = join(tmp, 'hb.json');
    writeFileSync(p, '{"beat":"a long first heartbeat"}\n');
    const ino = statSync(p).ino;
    fsops.rewriteOwnedInPlaceSync(p, '{"beat":2}\n', { durable: true });
    expect(readFileSync(p, 'utf8')).toBe('{"beat":2}\n');
    expect(statSync(p).ino).toBe(ino);
    fsops.rewriteOwnedInPlaceSync(p, '{"beat":3, "longer": "than before"}\n');
    expect(readFileSync(p, 'utf8')).toBe('{"beat":3, "longer": "than before"}\n');
  });

  it('refuses a hard link (to ours or to someone else\'s file), a symlink, a FIFO and a file of another uid', async () => {
    const { tmp, outside, v } = setup();
    // A hard link to a file of ours elsewhere: nlink 2.
    const hl = join(tmp, '.spare-1');
    linkSync(v.path, hl);
    expect(() => fsops.rewriteOwnedInPlaceSync(hl, 'x')).toThrow(/\.spare-1: has 2 names \(a hard link\); not written in place/);
    // A symlink.
    const sl = join(tmp, '.spare-2');
    symlinkSync(v.path, sl);
    expect(() => fsops.rewriteOwnedInPlaceSync(sl, 'x')).toThrow(/is a symbolic link, not a regular file/);
    // A FIFO: refused at once (ENXIO with O_WRONLY|O_NONBLOCK and no reader).
    const ff = join(tmp, '.spare-3');
    mkfifo(ff);
    const r = runNode(`const f = await import(${JSON.stringify(FSOPS)}); try { f.rewriteOwnedInPlaceSync(${JSON.stringify(ff)}, 'x'); out('written'); } catch (e) { out(e.message); }`);
    expect(r.timedOut).toBe(false);
    expect(r.value).toMatch(/\.spare-3: is a FIFO, not a regular file/);
    expect(sha256(v.path)).toBe(v.hash);
    if (isRoot) {
      // Someone else's file (uid 65534), one name: refused. And a hard link to it: refused too.
      const theirs = join(outside, 'theirs.txt');
      writeFileSync(theirs, 'theirs\n');
      chownSync(theirs, 65534, 65534);
      const h = sha256(theirs);
      const l2 = join(tmp, '.spare-4');
      linkSync(theirs, l2);
      expect(() => fsops.rewriteOwnedInPlaceSync(l2, 'x')).toThrow(/belongs to uid 65534, not to this process \(uid 0\)/);
      const solo = join(tmp, '.spare-5');
      writeFileSync(solo, 'solo');
      chownSync(solo, 65534, 65534);
      expect(() => fsops.rewriteOwnedInPlaceSync(solo, 'x')).toThrow(/belongs to uid 65534/);
      expect(sha256(theirs)).toBe(h);
    }
  });

  it('checkOwnedRegular checks the descriptor', () => {
    const { tmp } = setup();
    const p = join(tmp, 'f');
    writeFileSync(p, 'x');
    const fd = openSync(p, 'r');
    try {
      expect(fsops.checkOwnedRegular(fd, p).isFile()).toBe(true);
      linkSync(p, join(tmp, 'g'));
      expect(() => fsops.checkOwnedRegular(fd, p)).toThrow(/has 2 names/);
    } finally { closeSync(fd); }
  });
});

describe('folders: descend only into real ones', () => {
  it('lstatDir, listNamesChecked and listEntries never take a symlink for a folder', async () => {
    const { spool, outside } = setup();
    mkdirSync(join(spool, 'claimed', 'real'), { recursive: true });
    writeFileSync(join(outside, 'secret.json'), '{}');
    symlinkSync(outside, join(spool, 'claimed', 'evil'));
    mkfifo(join(spool, 'claimed', 'fifo'));
    expect(await fsops.lstatDir(join(spool, 'claimed', 'real'))).toBe(true);
    expect(await fsops.lstatDir(join(spool, 'claimed', 'evil'))).toBe(false);
    expect(fsops.lstatDirSync(join(spool, 'claimed', 'fifo'))).toBe(false);
    expect(fsops.lstatDirSync(join(spool, 'claimed', 'gone'))).toBe(false);
    expect(await fsops.listNamesChecked(join(spool, 'claimed', 'evil'))).toBeNull();
    expect(await fsops.listNamesChecked(join(spool, 'claimed', 'gone'))).toEqual([]);
    expect(await fsops.listNamesChecked(join(spool, 'claimed', 'real'))).toEqual([]);
    const kinds = Object.fromEntries((await fsops.listEntries(join(spool, 'claimed')))!.map((e) => [e.name, e.kind]));
    expect(kinds).toEqual({ real: 'folder', evil: 'symlink', fifo: 'FIFO' });
    expect(await fsops.listEntries(join(spool, 'claimed', 'evil'))).toBeNull();
  });

  it('fdIsInside tells whether an open went out through a symlinked parent', () => {
    const { spool, outside } = setup();
    mkdirSync(join(spool, 'claimed'));
    writeFileSync(join(outside, 'secret.json'), '{}');
    symlinkSync(outside, join(spool, 'claimed', 'evil'));
    writeFileSync(join(spool, 'claimed', 'in.json'), '{}');
    const root = realpathSync(spool);
    const a = openSync(join(spool, 'claimed', 'in.json'), 'r');
    const b = openSync(join(spool, 'claimed', 'evil', 'secret.json'), 'r'); // O_NOFOLLOW would not stop this
    try {
      expect(readlinkSync(`/proc/self/fd/${a}`)).toBe(join(root, 'claimed', 'in.json'));
      expect(fsops.fdIsInside(a, root)).toBe(true);
      expect(fsops.fdIsInside(b, root)).toBe(false);
    } finally { closeSync(a); closeSync(b); }
  });
});


describe('errno classes', () => {
  it('isNoSpace, isReadOnly, isMountGone', () => {
    const e = (code: string) => Object.assign(new Error(code), { code });
    expect(isNoSpace(e('ENOSPC')) && isNoSpace(e('EDQUOT'))).toBe(true);
    expect(isNoSpace(e('EROFS'))).toBe(false);
    expect(isReadOnly(e('EROFS'))).toBe(true);
    expect(isMountGone(e('EIO')) && isMountGone(e('ENOTCONN'))).toBe(true);
    expect(isMountGone(e('ESTALE'))).toBe(false); // ESTALE stays "gone": look the name up again
  });

  it.skipIf(!isRoot)('on a full disk a heartbeat is still rewritten in place while creating fails with ENOSPC', async () => {
    const { base } = setup();
    const mnt = join(base, 'small');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    try {
      const hb = join(mnt, 'hb.json');
      writeFileSync(hb, JSON.stringify({ beat: 'x'.repeat(200) }));
      try { writeFileSync(join(mnt, 'fill'), Buffer.alloc(1 << 20)); } catch { /* ENOSPC: full now */ }
      let err: unknown;
      try { fsops.createExclusiveSync(mnt, '.t-', Buffer.alloc(8192)); } catch (e) { err = e; }
      expect(isNoSpace(err)).toBe(true);
      fsops.rewriteOwnedInPlaceSync(hb, '{"beat":2}');
      expect(readFileSync(hb, 'utf8')).toBe('{"beat":2}');
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

describe('the cron store writes with writeReplace and reads with readRegularText', () => {
  it('a symlink planted at a schedule or cron-state name is replaced, never written through; a FIFO there never blocks', async () => {
    const { CronStore } = await import('../../dist/schedule/store.js');
    const { initSpool } = await import('../../dist/spool/layout.js');
    const { base, outside, v } = setup();
    const layout = initSpool(join(base, 'cron-spool'));
    mkdirSync(join(layout.cron, 'schedules'), { recursive: true });
    mkdirSync(join(layout.cron, 'state'), { recursive: true });
    symlinkSync(v.path, join(layout.cron, 'state', 's.json'));
    const v2 = join(outside, 'victim2.txt');
    writeFileSync(v2, 'precious 2\n');
    const h2 = sha256(v2);
    symlinkSync(v2, join(layout.cron, 'schedules', 's.json'));
    const store = new CronStore(layout, true, { group: null, dirMode: 0o755, fileMode: 0o640 });
    // The planted link at the schedule's name reads as "not a regular file": add() treats it as no old schedule.
    await store.add({ name: 's', expr: '* * * * *', fn: './jobs.mjs#add' }, Date.now());
    for (const p of [join(layout.cron, 'state', 's.json'), join(layout.cron, 'schedules', 's.json')]) {
      expect(lstatSync(p).isFile(), p).toBe(true);
      expect(statSync(p).mode & 0o777).toBe(0o640);
    }
    expect((await store.get('s')).expr).toBe('* * * * *');
    expect(await store.lastTick('s')).not.toBeNull();
    expect(sha256(v.path)).toBe(v.hash);
    expect(sha256(v2)).toBe(h2);
    expect(readdirSync(layout.tmp)).toEqual([]);

    // A FIFO at the state name: lastTick is null at once (in a child: a blocking read would freeze timers).
    execFileSync('rm', [join(layout.cron, 'state', 's.json')]);
    mkfifo(join(layout.cron, 'state', 's.json'));
    const r = runNode(`
      const { CronStore } = await import(${JSON.stringify(distUrl('schedule/store.js'))});
      const { layoutOf } = await import(${JSON.stringify(distUrl('spool/layout.js'))});
      const s = new CronStore(layoutOf(${JSON.stringify(layout.root)}), false);
      out({ last: await s.lastTick('s'), list: (await s.list()).length });`);
    expect(r.timedOut).toBe(false);
    expect(r.ok, r.stderr).toBe(true);
    expect(r.value).toEqual({ last: null, list: 1 });
    mkfifo(join(layout.cron, 'schedules', 't.json'));
    await expect(within(2_000, store.get('t'))).rejects.toThrow(/t\.json: is a FIFO, not a regular file/);
  });
});

describe('refusedAsExisting: "the name exists", also when sshfs says EPERM (SFTP v3 has no such status)', () => {
  it('EEXIST always; EPERM when the name is there, or (mayHaveGone) when its folder is writable; otherwise the error stands', () => {
    const dir = tempDir();
    const there = join(dir, 'there');
    writeFileSync(there, 'x');
    // The real refusals of this file system, as the kernel gives them.
    let eexist: unknown;
    try { linkSync(there, there); } catch (err) { eexist = err; }
    expect((eexist as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect(fsops.refusedAsExisting(eexist, there, false)).toBe(true);
    // sshfs's answer to a link that lost a race with another machine (see docs/nfs.md).
    const eperm = Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' });
    expect(fsops.refusedAsExisting(eperm, there, false)).toBe(true);
    expect(fsops.refusedAsExisting(eperm, join(dir, 'gone'), false)).toBe(false);
    expect(fsops.refusedAsExisting(eperm, join(dir, 'gone'))).toBe(true);
    expect(fsops.refusedAsExisting(eperm, join(dir, 'no-such-folder', 'gone'))).toBe(false);
    expect(fsops.refusedAsExisting(Object.assign(new Error('EIO'), { code: 'EIO' }), there)).toBe(false);
  });
});

describe('renameOrGoneSync: a lost race, and a rename that had worked before its answer was lost', () => {
  it('false when the source is gone and the target absent; true when the target is there and the source gone (an NFS retransmission); false for a missing target folder', () => {
    const { spool } = setup();
    const src = join(spool, 'a.json');
    const dst = join(spool, 'b.json');
    // A sibling took the source: lost.
    expect(fsops.renameOrGoneSync(src, dst)).toBe(false);
    // Our rename reached the server, its answer did not: the retry sees ENOENT, the target is ours.
    writeFileSync(src, '{}');
    execFileSync('mv', [src, dst]);
    expect(fsops.renameOrGoneSync(src, dst)).toBe(true);
    // The source is there but the target's folder is not (ENOENT too): not moved.
    writeFileSync(src, '{}');
    expect(fsops.renameOrGoneSync(src, join(spool, 'no-such-folder', 'c.json'))).toBe(false);
    expect(readdirSync(spool).sort()).toEqual(['a.json', 'b.json', 'tmp']);
  });
});
