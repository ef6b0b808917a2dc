// Which priority folders a queue has (src/worker/claimer.ts refreshLevels), on real folders:
// - a queue folder with no sub-folder costs one lstat, not nine lookups of pN names that are not there,
//   where the file system's link counts tell sub-folders (ext4 here; GlusterFS too; sshfs does not, and
//   keeps the nine: test/multihost's priority runs);
// - a priority folder made later, or a queue folder with an odd sub-folder, is still found and served first.
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Spool } from '../../dist/client/spool.js';
import { Claimer } from '../../dist/worker/claimer.js';
import { Lease } from '../../dist/spool/lease.js';
import { dirLinksCountFolders, listQueues } from '../../dist/spool/queues.js';
import type { ClaimedJob } from '../../dist/spool/transitions/claim.js';
import { cleanupTemp, tempDir } from '../helpers.js';

afterAll(cleanupTemp);

const DIST = resolve(__dirname, '../../dist');

async function spoolWithQueues(queues: string[]) {
  const spool = await Spool.init(join(tempDir('zcq-levels-'), 'spool'), { durable: false });
  for (const q of queues) await spool.put('noop.mjs#noop', [], { queue: q });
  return spool;
}

describe('priority folders of a queue', () => {
  it('20 polls of 3 queues with no priority folder look up no pN name (nine a queue a poll before)', async () => {
    const spool = await spoolWithQueues(['a', 'b', 'c']);
    const script = `
      const { Claimer } = await import(${JSON.stringify(join(DIST, 'worker/claimer.js'))});
      const { openLayout } = await import(${JSON.stringify(join(DIST, 'spool/layout.js'))});
      const c = new Claimer(openLayout(${JSON.stringify(spool.layout.root)}), null, 8, false, () => {});
      for (let i = 0; i < 20; i++) c.refreshQueues();
      console.log(JSON.stringify([...c.levels]));`;
    const trace = join(tempDir('zcq-levels-trace-'), 'strace');
    const r = spawnSync('strace', ['-f', '-o', trace, '-e', 'trace=lstat,stat,statx,newfstatat,access,faccessat,faccessat2,openat', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([['a', ['']], ['b', ['']], ['c', ['']]]);
    const lookups = fs.readFileSync(trace, 'utf8').split('\n').filter((l) => /\/pending\/[abc]\/p\d"/.test(l));
    expect(lookups, lookups.slice(0, 3).join('\n')).toEqual([]);
  });

  it('a priority folder made after the first look, and a queue folder with an odd sub-folder, are still read', async () => {
    const spool = await spoolWithQueues(['a', 'b']);
    const l = spool.layout;
    expect(dirLinksCountFolders(l.pending, listQueues(l.pending).folders)).toBe(true); // ext4, tmpfs: 2 + sub-folders
    const lease = await Lease.acquire(l, { kind: 'worker', leaseMs: 60_000, concurrency: 8 }, false);
    const claimer = new Claimer(l, null, 8, false, () => {});
    const levels = () => (claimer as unknown as { levels: Map<string, string[]> }).levels;
    claimer.refreshQueues();
    expect([...levels()]).toEqual([['a', ['']], ['b', ['']]]);
    // A job of priority 1 in a new p1/ of a, beside an odd sub-folder (not a priority); an empty p8/ in b.
    const urgent = await spool.put('noop.mjs#noop', [], { queue: 'a', priority: 1 });
    fs.mkdirSync(join(l.pending, 'a', 'not-a-priority'));
    fs.mkdirSync(join(l.pending, 'b', 'p8'));
    fs.mkdirSync(join(l.pending, '.dot-folder')); // counted by the link count of pending/ too: still trusted
    claimer.refreshQueues();
    expect([...levels()]).toEqual([['a', ['p1', '']], ['b', ['', 'p8']]]);
    const got: ClaimedJob[] = [];
    claimer.scanDue = true;
    await claimer.claimSome(lease, 3, () => false, (c) => got.push(c));
    expect(got).toHaveLength(3);
    expect(got.filter((c) => c.queue === 'a')[0]!.id).toBe(urgent.id); // priority 1 before a's priority 5
    claimer.stop();
  });

  it('pending/ with a sub-folder its link count does not show (a folder made between listing and lstat) is not trusted', async () => {
    const spool = await spoolWithQueues(['a']);
    const { folders } = listQueues(spool.layout.pending);
    fs.mkdirSync(join(spool.layout.pending, 'b')); // after the listing
    expect(dirLinksCountFolders(spool.layout.pending, folders)).toBe(false);
    expect(dirLinksCountFolders(join(spool.layout.pending, 'gone'), 0)).toBe(false);
  });
});
