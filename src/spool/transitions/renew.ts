/**
 * renew: keep a lease alive (the heartbeat).
 *
 *   workers/LEASE.json  ->  workers/LEASE.json (new content, new mtime)
 *
 * Before: the caller holds the lease (not marked lost).
 * Steps:
 *   1. create tmp/.hb-LEASE-RANDOM exclusively (O_EXCL|O_NOFOLLOW: a planted symlink or FIFO is never
 *      written through) with the holder's info and the time of the beat;
 *   2. rename it over workers/LEASE.json — a write, so the file server stamps a fresh mtime (utimes would
 *      carry our own clock). A whole new file each beat, never a rewrite in place, so a reader never sees a
 *      torn heartbeat; the price is that through another machine's mount the name can lead for a moment to
 *      the file it replaced (GlusterFS keeps a name's entry 1 s and opens the old file, then says ENOENT or
 *      ESTALE): readers look again past that cache and never take it for a missing heartbeat
 *      (server-clock.ts readAged, lease.ts judgeLease);
 *   3. check that claimed/LEASE/ is still our folder (lstat, same inode).
 * workers/ removed by hand (step 2 finds no folder): made again with the spool's mode, the temporary removed,
 *   and step 1 again; tmp/ removed by hand (step 1 finds no folder, or step 2 no temporary): made again, and
 *   step 1 again. At most REMAKES_MAX times in one beat: then the beat fails, naming what was removed.
 * On a full disk step 1 cannot create a file: the heartbeat is rewritten in place instead (our own
 *   regular file, nlink 1), so that a worker holding jobs it cannot yet record keeps its lease.
 * Crash after 1: a temporary in tmp/, removed by housekeeping after the leftover age. After 2: the lease is
 *   renewed; the holder learns of a lost folder at the next beat.
 * Fence: a recoverer that took our folder (it judged us dead by this file's age) makes step 3 fail: the
 *   holder marks the lease lost, aborts its jobs and takes a new lease. Nothing is ever written into a
 *   folder we do not hold.
 */
import { performance } from 'node:perf_hooks';
import { LeaseLostError, errnoOf } from '../../errors.js';
import { REMAKES_MAX, createExclusiveSync, existsNoFollowSync, remadeIfGone, renameStrictSync, rewriteOwnedInPlaceSync, unlinkQuietly } from '../fsops.js';
import type { Lease } from '../lease.js';
import { step } from './steps.js';

const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);

export async function renewLease(lease: Lease, extra: Record<string, unknown> = {}): Promise<void> {
  lease.assertHeld();
  const started = performance.now();
  const text = JSON.stringify({ id: lease.id, ...lease.info, ...extra, beat: new Date().toISOString() }) + '\n';
  try {
    for (let attempt = 0; ; attempt++) {
      const tmp = createExclusiveSync(lease.layout.tmp, `.hb-${lease.id}-`, text, { durable: false, mode: lease.layout.modes.fileMode });
      step('renew', 1, lease.id);
      // No "it had worked" guess when the temporary is gone (renameOrGoneSync's): the heartbeat's name is
      // not unique to this beat, so an old heartbeat there proves nothing. Another beat is harmless.
      if (renameStrictSync(tmp, lease.heartbeatFile)) break;
      // workers/ removed by hand: made again (fsops.ts remadeIfGone). Or our temporary is gone: a person's
      // `rm -rf tmp/` took it between the steps — a new one.
      const workersGone = remadeIfGone(lease.layout.workers);
      const tmpGone = !workersGone && !existsNoFollowSync(tmp);
      if (!tmpGone) unlinkQuietly(tmp);
      if (attempt < REMAKES_MAX && (workersGone || tmpGone)) continue;
      const why = workersGone ? 'workers/ was removed again each time it was made'
        : tmpGone ? `the beat's temporary in ${lease.layout.tmp} was removed before its rename, ${attempt + 1} times in a row`
          : 'workers/ is gone';
      throw Object.assign(new Error(`${lease.heartbeatFile}: ${why}`), { code: 'ENOENT' });
    }
  } catch (err) {
    if (!NO_SPACE.has(errnoOf(err) ?? '') || lease.lastRenewed === -Infinity) throw err;
    rewriteOwnedInPlaceSync(lease.heartbeatFile, text);
  }
  step('renew', 2, lease.id);
  if (lease.lastRenewed !== -Infinity && !(await lease.folderStillOurs())) {
    lease.markLost();
    throw new LeaseLostError(lease.id);
  }
  // Count from when the write started: the server may have stamped it then.
  lease.lastRenewed = started;
}
