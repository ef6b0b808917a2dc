// The dashboard's read model, in process on real folders: counts per queue and state from listings (and
// a listing kept only while its folder is unchanged), pages of a folder too big to keep whole, finishes
// and quarantined files counted between two snapshots, and job files that are not what they claim.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Overview, SAMPLE_MAX, type FinishEvent } from '../../dist/client/overview.js';
import { Spool } from '../../dist/index.js';
import { STATES } from '../../dist/spool/layout.js';
import { cleanupTemp, newSpool } from '../helpers.js';

afterEach(() => cleanupTemp());

const T0 = Date.parse('2026-12-01T00:00:00Z');
/** A job file as a worker would leave it, written straight into STATE/QUEUE/. */
function job(spool: string, state: string, queue: string, n: number, extra: Record<string, unknown> = {}): string {
  const id = `${(T0 + n).toString(36).padStart(9, '0')}-test-${n}`;
  const dir = join(spool, state, queue);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${id}.json`), JSON.stringify({ zcq: 1, id, fn: 'jobs.mjs#x', args: [], queue, created: new Date(T0 + n).toISOString(), attempts: 1, retries: 0, history: [], ...extra }));
  return id;
}

describe('Overview', () => {
  it('counts every state of layout.ts per queue from names, and sees a folder change between snapshots', async () => {
    const dir = newSpool();
    for (let i = 0; i < 3; i++) job(dir, 'pending', 'mail', i);
    job(dir, 'hold', 'mail', 10);
    for (let i = 0; i < 2; i++) job(dir, 'failed', 'reports', 20 + i, { failure: { name: 'Error', message: 'no', reason: 'error' } });
    const spool = await Spool.open(dir);
    const ov = new Overview(spool);
    const s = await ov.refresh();
    expect(s.states).toEqual([...STATES]);
    expect(s.totals).toMatchObject({ pending: 3, hold: 1, failed: 2, done: 0, claimed: 0, deferred: 0 });
    expect(s.queues.map((q) => [q.name, q.counts])).toEqual([['mail', { pending: 3, hold: 1 }], ['reports', { failed: 2 }]]);
    expect(s.queues[0]!.oldestPendingMs).toBeGreaterThanOrEqual(0);

    // Moved by hand: both folders change, and the next snapshot sees it.
    const id = job(dir, 'pending', 'mail', 3);
    renameSync(join(dir, 'pending', 'mail', `${id}.json`), join(dir, 'hold', 'mail', `${id}.json`));
    const s2 = await ov.refresh();
    expect(s2.queues[0]!.counts).toEqual({ pending: 3, hold: 2 });
    await spool.close();
  });

  it(`pages a folder of more than ${SAMPLE_MAX.toLocaleString('en-US')} jobs from a sample, and says so; pages of one folder keep its order`, async () => {
    const dir = newSpool();
    const n = SAMPLE_MAX + 500;
    const pendingDir = join(dir, 'pending', 'bulk');
    mkdirSync(pendingDir, { recursive: true });
    for (let i = 0; i < n; i++) writeFileSync(join(pendingDir, `${(T0 + i).toString(36).padStart(9, '0')}-b-${i}.json`), '{}');
    for (let i = 0; i < 60; i++) job(dir, 'done', 'small', i);
    const spool = await Spool.open(dir);
    const ov = new Overview(spool);
    const s = await ov.refresh();
    expect(s.totals.pending).toBe(n);
    const big = await ov.jobs({ state: 'pending', queue: 'bulk', limit: 10 });
    expect(big).toMatchObject({ total: n, partial: true });
    expect(big.items).toHaveLength(10);
    const ids = big.items.map((j) => j.id);
    expect(ids).toEqual([...ids].sort());
    // Those files are '{}': read as loose objects, with no field passed on as anything but what it is.
    expect(big.items[0]).toMatchObject({ fn: null, attempts: null, message: null });

    const first = await ov.jobs({ state: 'done', queue: 'small', limit: 50 });
    const second = await ov.jobs({ state: 'done', queue: 'small', offset: 50, limit: 50 });
    expect(first).toMatchObject({ total: 60, partial: false });
    const all = [...first.items, ...second.items].map((j) => j.id);
    expect(all).toHaveLength(60);
    expect(all).toEqual([...all].sort().reverse()); // finished: newest first
    await spool.close();
  });

  it('counts finishes and quarantined files that appear after the first snapshot, and reads their run time', async () => {
    const dir = newSpool();
    job(dir, 'done', 'q', 0);
    const spool = await Spool.open(dir);
    const ov = new Overview(spool);
    const seen: FinishEvent[] = [];
    ov.onFinish((e) => seen.push(e));
    await ov.refresh();
    expect(seen).toEqual([]); // the baseline: what was there before is not a finish
    const hist = (ms: number) => ({ history: [{ attempt: 1, start: new Date(T0).toISOString(), end: new Date(T0 + ms).toISOString(), outcome: 'done' }] });
    job(dir, 'done', 'q', 1, hist(1500));
    job(dir, 'failed', 'q', 2, { ...hist(250), failure: { name: 'Error', message: 'x', reason: 'error' } });
    job(dir, 'done', 'other', 3, { history: 'not an array' });
    mkdirSync(join(dir, 'quarantine'), { recursive: true });
    writeFileSync(join(dir, 'quarantine', 'odd.json'), '');
    writeFileSync(join(dir, 'quarantine', 'odd.json.reason'), '2026-12-01T00:00:00Z <b>not a job</b> (was pending/odd.json)\n');
    const s = await ov.refresh();
    expect(seen.sort((a, b) => a.queue.localeCompare(b.queue) || a.outcome.localeCompare(b.outcome))).toEqual([
      { queue: 'other', outcome: 'done', runSeconds: null },
      { queue: 'q', outcome: 'done', runSeconds: 1.5 },
      { queue: 'q', outcome: 'failed', runSeconds: 0.25 },
    ]);
    expect(s.finished).toMatchObject({ q: { done: 1, failed: 1 }, other: { done: 1, failed: 0 } });
    expect(s.quarantinedSeen).toBe(1);
    expect(s.quarantine.recent).toEqual([{ name: 'odd.json', reason: '2026-12-01T00:00:00Z <b>not a job</b> (was pending/odd.json)' }]);
    // Nothing new: nothing counted again.
    await ov.refresh();
    expect(seen).toHaveLength(3);
    await spool.close();
  });
  it("shows each quota's use and limit from its slot files, and what a waiting job waits for", async () => {
    const dir = newSpool();
    const spool = await Spool.open(dir);
    await spool.quota.set('gpu', 3);
    // A running job's slot: quotas/NAME/K holding its run token (what quota-take writes).
    writeFileSync(join(dir, 'quotas', 'gpu', '0'), 'vm.1.r1/1\n');
    mkdirSync(join(dir, 'quotas', 'nolimit'), { recursive: true });
    const dep = await spool.put('./jobs.mjs#add', [1, 2]);
    const w = await spool.put('./jobs.mjs#add', [3, 4], { after: [dep.id] });
    const ov = new Overview(spool);
    const s = await ov.refresh();
    expect(s.quotas).toEqual([{ name: 'gpu', used: 1, limit: 3 }, { name: 'nolimit', used: 0, limit: null }]);
    expect(s.totals.waiting).toBe(1);
    const page = await ov.jobs({ state: 'waiting' });
    expect(page.items.map((j) => [j.id, j.waitsFor])).toEqual([[w.id, `after ${dep.id}`]]);
    await spool.close();
  });
});
