// GroupSync (src/spool/transitions/group-sync.ts): shared folder fsyncs, and the folder descriptors kept
// open between them. Real folders; which folder a kept descriptor names is read from /proc/self/fd.
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { GroupSync, MAX_OPEN, folderKey } from '../../../dist/spool/transitions/group-sync.js';
import { cleanupTemp, tempDir } from '../../helpers.js';

afterAll(cleanupTemp);

const keyOf = (dir: string) => folderKey(fs.lstatSync(dir));

/** What this process's open descriptors name, for those under `root`. */
function openUnder(root: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try { const t = fs.readlinkSync(`/proc/self/fd/${fd}`); if (t.startsWith(root)) out.push(t); } catch { /* closed meanwhile */ }
  }
  return out.sort();
}

describe('GroupSync', () => {
  it('keeps one descriptor of a folder fsynced with its lstat key, and a new one once the folder at that path is another', async () => {
    const root = tempDir('zcq-gs-');
    const dir = join(root, 'done-q');
    fs.mkdirSync(dir);
    const g = new GroupSync();
    for (let i = 0; i < 5; i++) await g.sync(dir, keyOf(dir));
    expect(g.openCount).toBe(1);
    expect(openUnder(root)).toEqual([dir]);

    // An operator removes the folder and makes it again: the kept descriptor names a deleted folder. ext4
    // gives the new folder the same inode number.
    fs.rmdirSync(dir);
    fs.mkdirSync(dir);
    await g.sync(dir, keyOf(dir));
    expect(g.openCount).toBe(1);
    expect(openUnder(root)).toEqual([dir]); // not "(deleted)"

    await g.close();
    expect(g.openCount).toBe(0);
    expect(openUnder(root)).toEqual([]);
  });

  it('keeps nothing without a key, or when the key is not the folder now at that path (a stale lstat)', async () => {
    const root = tempDir('zcq-gs-');
    const dir = join(root, 'q');
    fs.mkdirSync(dir);
    const g = new GroupSync();
    await g.sync(dir);
    expect(g.openCount).toBe(0);
    const stale = keyOf(dir);
    fs.rmdirSync(dir);
    fs.mkdirSync(dir);
    await g.sync(dir, stale);
    expect(g.openCount).toBe(0);
    expect(openUnder(root)).toEqual([]);
  });

  it('never keeps a descriptor through a symbolic link at the path', async () => {
    const root = tempDir('zcq-gs-');
    const elsewhere = join(root, 'elsewhere');
    fs.mkdirSync(elsewhere);
    const link = join(root, 'q');
    fs.symlinkSync(elsewhere, link);
    const g = new GroupSync();
    await g.sync(link, keyOf(elsewhere)); // even with the key of the folder the link leads to
    expect(g.openCount).toBe(0);
    expect(openUnder(root)).toEqual([]);
  });

  it(`keeps at most ${MAX_OPEN} descriptors, closing the least recently synced`, async () => {
    const root = tempDir('zcq-gs-');
    const dirs = Array.from({ length: MAX_OPEN + 8 }, (_, i) => join(root, `q${i}`));
    for (const d of dirs) fs.mkdirSync(d);
    const g = new GroupSync();
    for (const d of dirs) await g.sync(d, keyOf(d));
    expect(g.openCount).toBe(MAX_OPEN);
    const kept = openUnder(root);
    expect(kept).toHaveLength(MAX_OPEN);
    expect(kept).not.toContain(dirs[0]);
    expect(kept).toContain(dirs[dirs.length - 1]);
    await g.close();
    expect(openUnder(root)).toEqual([]);
  });

  it('shares one fsync among callers that come while one runs, each resolving after an fsync begun after its call', async () => {
    const root = tempDir('zcq-gs-');
    const dir = join(root, 'q');
    fs.mkdirSync(dir);
    const g = new GroupSync();
    const key = keyOf(dir);
    const all = await Promise.allSettled(Array.from({ length: 20 }, () => g.sync(dir, key)));
    expect(all.every((r) => r.status === 'fulfilled')).toBe(true);
    expect(g.openCount).toBe(1);
    await g.close();
  });
});
