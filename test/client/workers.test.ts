// `Spool.workers()` / `zcq status`: a worker whose heartbeat read is unsettled (its name kept leading to a file
// another mount had just replaced: GlusterFS's entry cache, server-clock.ts readAged) is shown, alive, with its
// age unknown — not left out of that call's answer. A lease with neither heartbeat nor folder left is left out.
// The unsettled read itself cannot be produced on a local disk (an open descriptor never answers ENOENT there):
// the rows are made from real judgements of real leases, with the unsettled one's verdict as judgeLease gives it.
import { afterEach, describe, expect, it } from 'vitest';
import { Spool, workerView } from '../../dist/client/spool.js';
import { gatherStatus, renderStatus } from '../../dist/cli/commands/status.js';
import { Lease, judgeLease } from '../../dist/spool/lease.js';
import { cleanupTemp, newSpool } from '../helpers.js';

afterEach(() => cleanupTemp());

describe('workers in status while a heartbeat read is unsettled', () => {
  it('shown alive with age unknown (ageMs null, unsettled), HEARTBEAT "unsettled"; a lease that is gone is left out', async () => {
    const spool = await Spool.open(newSpool());
    const a = await Lease.acquire(spool.layout, { kind: 'worker', leaseMs: 30_000, concurrency: 2, name: 'wa' }, false);
    const b = await Lease.acquire(spool.layout, { kind: 'worker', leaseMs: 30_000, concurrency: 3, name: 'wb' }, false);
    const clock = await spool.clock();

    // Settled: both listed with an age.
    const before = await spool.workers();
    expect(before.map((w) => w.id).sort()).toEqual([a.id, b.id].sort());
    for (const w of before) { expect(typeof w.ageMs).toBe('number'); expect(w.unsettled).toBeUndefined(); expect(w.alive).toBe(true); }

    // b's heartbeat read unsettled, as judgeLease answers it (no age, not expired, the reason).
    const jb = await judgeLease(spool.layout, clock, b.id, 30_000);
    const unsettled = { ...jb, ageMs: null, expired: false, unsettled: `${b.heartbeatFile}: the name keeps leading to a file that was replaced (ESTALE)` };
    const row = workerView(b.id, unsettled, JSON.stringify({ running: 1, concurrency: 3, name: 'wb', queues: ['q'] }));
    expect(row).toMatchObject({ id: b.id, ageMs: null, unsettled: true, alive: true, running: 1, concurrency: 3, name: 'wb', queues: ['q'] });

    const v = await gatherStatus(spool);
    v.workers = v.workers.map((w) => (w.id === b.id ? row! : w));
    const lines = renderStatus(v, 200);
    expect(lines).toContain('workers: 2 alive');
    const bLine = lines.find((l) => l.startsWith(b.id))!;
    expect(bLine).toMatch(/\balive\b/);
    expect(bLine).toMatch(/unsettled$/);
    expect(lines.find((l) => l.startsWith(a.id))).toMatch(/(now|ago)$/);

    // A lease that ended (no heartbeat, no folder): no age and not unsettled — left out, as before.
    await b.end();
    const jGone = await judgeLease(spool.layout, clock, b.id, 30_000);
    expect(jGone.ageMs).toBeNull();
    expect(workerView(b.id, jGone, undefined)).toBeNull();
    expect((await spool.workers()).map((w) => w.id)).toEqual([a.id]);

    // Untrusted heartbeat text: torn, or not an object, is no crash and no field.
    const ja = await judgeLease(spool.layout, clock, a.id, 30_000);
    for (const text of ['{"running":', 'null', '7', undefined]) {
      const r = workerView(a.id, ja, text)!;
      expect(r.running).toBeUndefined();
      expect(r.ageMs).toBeGreaterThanOrEqual(0);
    }
    await a.end();
  });
});
