// The claimer's folder watches (src/worker/claimer.ts watchDir), on real folders with real fs.watch (inotify):
// - a queue folder removed and made again at the same path is watched anew (a watch stays on the folder it
//   was opened on: without this, jobs put into the new folder waited for the next poll);
// - a watch that ends by itself leaves no listener on the worker-long abort signal (seen on GlusterFS: Node's
//   MaxListenersExceededWarning, "11 abort listeners added to [AbortSignal]", in a worker's log).
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { getEventListeners } from 'node:events';
import { join } from 'node:path';
import { Spool } from '../../dist/client/spool.js';
import { Claimer } from '../../dist/worker/claimer.js';
import { cleanupTemp, tempDir, until } from '../helpers.js';

afterAll(cleanupTemp);

interface ClaimerInside { watchAbort: AbortController; watchers: Map<string, AbortController>; watchDir(q: string, level: string, dir: string): void }

async function newClaimer() {
  const spool = await Spool.init(join(tempDir('zcq-cw-'), 'spool'), { durable: false });
  let wakes = 0;
  const claimer = new Claimer(spool.layout, null, 4, true, () => { wakes++; });
  const inside = claimer as unknown as ClaimerInside;
  return { l: spool.layout, claimer, inside, wakes: () => wakes, listeners: () => getEventListeners(inside.watchAbort.signal, 'abort').length };
}

describe('claimer folder watches', () => {
  it('a queue folder removed and made again is watched anew: a job put into the new folder wakes the claimer', async () => {
    const { l, claimer, inside, wakes, listeners } = await newClaimer();
    const q = join(l.pending, 'q');
    try {
      for (let i = 0; i < 12; i++) {
        fs.mkdirSync(q);
        claimer.refreshQueues();
        expect(inside.watchers.has('q')).toBe(true);
        const before = wakes();
        fs.writeFileSync(join(q, '0mx6pctt3-b7a0jas-1913.json'), '{}');
        await until(() => wakes() > before, 5000, 5);
        fs.rmSync(q, { recursive: true });
        // The watch of the removed folder ends by itself, before any refreshQueues.
        await until(() => !inside.watchers.has('q'), 5000, 5);
      }
      expect([...inside.watchers.keys()]).toEqual(['']); // pending/ itself
      await until(() => listeners() === 1, 2000, 5);
    } finally {
      claimer.stop();
    }
    await until(() => listeners() === 0, 2000, 5);
  }, 60_000);

  it('a watch that cannot start (its folder gone between the listing and the watch) leaves no listener behind', async () => {
    const { l, claimer, inside, listeners } = await newClaimer();
    try {
      for (let i = 0; i < 15; i++) inside.watchDir('q', '', join(l.pending, 'gone'));
      await until(() => !inside.watchers.has('q'), 5000, 5);
      expect(listeners()).toBe(0);
    } finally {
      claimer.stop();
    }
  }, 30_000);
});
