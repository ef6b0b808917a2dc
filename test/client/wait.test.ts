// Spool.wait (src/client/spool.ts) looks at the jobs it waits for again when their done/ or failed/ folder
// changes. A folder busy with other jobs' events must not make it look without rest (at most one look per
// MIN_RESCAN_MS, 20 ms, on events), and the event of the job it waits for still ends its wait. A job claimed
// when the wait begins sits in no queue folder: the wait still watches the folder it will finish in (or, until
// the queue's first record makes that folder, done/ itself).
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../../dist/index.js';
import { Lease } from '../../dist/spool/lease.js';
import { claimJob } from '../../dist/spool/transitions/claim.js';
import { cleanupTemp, tempDir } from '../helpers.js';

afterAll(cleanupTemp);

describe('Spool.wait on a busy folder', () => {
  it('400 other files landing in done/, one a millisecond or so, cost at most one look per 20 ms; the job moved to done/ ends the wait', async () => {
    const dir = join(tempDir(), 'spool');
    const spool = await Spool.init(dir);
    const job = await spool.put('./x.mjs#f', []);
    const done = join(dir, 'done', 'default');
    mkdirSync(done, { recursive: true });
    let looks = 0;
    const waiting = spool.wait([job.id], { onPoll: () => { looks++; } });
    await new Promise((res) => setTimeout(res, 50));
    const before = looks;
    const t0 = performance.now();
    for (let i = 0; i < 400; i++) {
      const tmp = join(dir, 'tmp', `other-${i}`);
      writeFileSync(tmp, '{}');
      renameSync(tmp, join(done, `0m${String(i).padStart(9, '0')}-other-x.json`));
      await new Promise((res) => setTimeout(res, 1));
    }
    const ms = performance.now() - t0;
    const during = looks - before;
    // One look per 20 ms of events, plus the ones the backoff makes anyway, plus one at each end.
    console.log(`[wait] ${during} looks in ${Math.round(ms)} ms`);
    expect(during, `${during} looks in ${Math.round(ms)} ms`).toBeLessThanOrEqual(Math.ceil(ms / 20) + 3);
    expect(during).toBeGreaterThan(0);
    renameSync(join(dir, 'pending', 'default', `${job.id}.json`), join(done, `${job.id}.json`));
    const [rec] = await waiting;
    expect(rec!.id).toBe(job.id);
    expect(rec!.state).toBe('done');
  });

  for (const folder of ['there', 'made by the move'] as const) it(`a job already claimed when the wait begins (its done/ folder ${folder}): its move to done/ ends the wait at once, not at the next look of the backoff`, async () => {
    const dir = join(tempDir(), 'spool');
    const spool = await Spool.init(dir);
    const job = await spool.put('./x.mjs#f', [], { queue: 'q7' });
    const lease = await Lease.acquire(spool.layout, { kind: 'worker', leaseMs: 30_000 }, false);
    const claimed = claimJob(lease, 'q7', `${job.id}.json`);
    expect(claimed).not.toBeNull();
    const done = join(dir, 'done', 'q7');
    if (folder === 'there') mkdirSync(done, { recursive: true });
    const looks: number[] = [];
    const t0 = performance.now();
    let endedAt = 0;
    const waiting = spool.wait([job.id], { onPoll: () => { looks.push(performance.now() - t0); } }).then((r) => { endedAt = performance.now() - t0; return r; });
    // The looks back off (20, 40, 80 ... ms apart, up to 1 s): by 2.4 s the next one is ~1 s away.
    await new Promise((res) => setTimeout(res, 2400));
    const movedAt = performance.now() - t0;
    const lastLook = looks[looks.length - 1]!;
    mkdirSync(done, { recursive: true });
    renameSync(claimed!.path, join(done, `${job.id}.json`));
    const [rec] = await waiting;
    expect(rec!.id).toBe(job.id);
    // Looks at 0, 20, 60, 140, 300, 620, 1260, 2260 ms: the next would come ~1 s after the last.
    expect(lastLook).toBeGreaterThan(1200);
    expect(endedAt, `looks at ${looks.map(Math.round).join(', ')} ms; moved at ${Math.round(movedAt)}, ended at ${Math.round(endedAt)}`).toBeLessThan(lastLook + 900);
    await lease.end();
  });
});

