// spool/queues.ts brokenAlone: the rule that a folder answering a mount-gone error while its parent lists
// is broken alone (skipped, reported), and brokenFolders, which a long-lived process asks more than once.
// A folder in GlusterFS gfid split-brain answers EIO (made for real on the rig: test/multihost/
// split-brain.test.ts); here the error of an earlier look is handed to the rule as the reader would.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { brokenAlone, brokenFolders } from '../../dist/spool/queues.js';
import { cleanupTemp } from '../helpers.js';
import { Rig } from './transitions/util.js';

afterAll(cleanupTemp);

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: i/o error`), { code });
/** The second read of a folder that stays broken (as a folder in split-brain answers every read). */
const stillFails = (code: string) => () => { throw errno(code); };

describe('brokenAlone / brokenFolders', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { await rig.dispose(); });

  it('a mount-gone error on a folder whose parent lists, and again on a second read: broken alone, remembered with its error', () => {
    const dir = join(rig.l.pending, 'split');
    fs.mkdirSync(dir);
    expect(brokenAlone(dir, errno('EIO'), stillFails('EIO'))).toBe(true);
    expect(brokenFolders().get(dir)).toBe('EIO');
  });

  it('a mount-gone error once (a call in flight to a brick that died) and a folder that lists on the second read: skipped this pass, not remembered', () => {
    const dir = join(rig.l.pending, 'passing');
    fs.mkdirSync(dir);
    expect(brokenAlone(dir, errno('ENOTCONN'))).toBe(true);
    expect(brokenFolders().has(dir)).toBe(false);
  });

  it('not broken alone: an error that is not a mount gone, or a parent that fails too (the mount is gone)', () => {
    const dir = join(rig.l.pending, 'q');
    expect(brokenAlone(dir, errno('EACCES'))).toBe(false);
    const orphan = join(rig.l.root, 'no-such-parent', 'q');
    expect(brokenAlone(orphan, errno('EIO'))).toBe(false);
    expect(brokenFolders().has(dir)).toBe(false);
    expect(brokenFolders().has(orphan)).toBe(false);
  });

  it('brokenFolders(since) names only folders seen broken since then; seen again, a folder is named again', () => {
    const dir = join(rig.l.pending, 'mended');
    fs.mkdirSync(dir);
    brokenAlone(dir, errno('EIO'), stillFails('EIO'));
    const since = performance.now();
    expect(brokenFolders(since).has(dir)).toBe(false);
    expect(brokenFolders().has(dir)).toBe(true);
    brokenAlone(dir, errno('ENOTCONN'), stillFails('ENOTCONN'));
    expect(brokenFolders(since).get(dir)).toBe('ENOTCONN');
  });

  it('a doctor run does not report a folder that was broken before it and lists now', async () => {
    await rig.put('j1', { queue: 'healed' });
    const dir = join(rig.l.pending, 'healed');
    brokenAlone(dir, errno('EIO'), stillFails('EIO')); // an earlier reader in this process met it broken
    const problems = await rig.spool.doctor();
    expect(problems.filter((p) => p.kind === 'unreadable queue')).toEqual([]);
  });
});
