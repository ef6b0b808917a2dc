// Issue 5: kill one machine's workers with SIGKILL mid-run. The other machines recover its jobs within
// the lease bound (lease > heartbeat + the mounts' attribute-cache delay; see docs/nfs.md), no job is lost.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkRigPrerequisites, rigFileSystems } from './rig.js';
import {
  JOBS, countBy, noiseIn, putMany, readLedger, serverClaimed, serverJob, serverJobNames, serverNames, spoolReport,
  startWorker, stopWorkers, waitFor, type RigWorker, useSpoolRig,
} from './zcq-rig.js';

checkRigPrerequisites({ needFaketime: false });

const LEASE_MS = 8000;
const HEARTBEAT_MS = 1000;
const POLL_MS = 250;
const WORKER = ['--concurrency', '3', '--lease', `${LEASE_MS}ms`, '--heartbeat', `${HEARTBEAT_MS}ms`, '--poll', `${POLL_MS}ms`];

for (const fsKind of rigFileSystems()) describe(`a machine dies (${fsKind})`, () => {
  const { rig, local } = useSpoolRig({ machines: 3, fs: fsKind });
  const PER = fsKind === 'sshfs' ? 60 : 30; // jobs put from each of two machines

  it("SIGKILL of one machine's workers mid-run: the others recover its jobs within the lease bound, none lost", async () => {
    const ledger = join(local.dir, 'kill.ledger');
    const workers: RigWorker[] = [0, 1, 2].flatMap((i) => [startWorker(rig, i, WORKER), startWorker(rig, i, WORKER)]);
    const leases = await Promise.all(workers.map((w) => w.leaseId()));
    const ids = (await Promise.all([1, 2].map((i) => putMany(rig, i, PER, `${JOBS}#record`, [ledger, 1500], { relaxed: true })))).flat();

    // Wait until both of host-a's workers hold jobs, then kill them.
    const aLeases = leases.slice(0, 2);
    await waitFor(() => { const c = serverClaimed(rig); return aLeases.every((l) => (c.get(l)?.length ?? 0) >= 2); }, 30_000, "host-a's workers hold jobs");
    for (const w of workers.slice(0, 2)) w.child.kill('SIGKILL');
    const tKill = performance.now();
    await Promise.all(workers.slice(0, 2).map((w) => w.exited));
    const held = aLeases.flatMap((l) => serverClaimed(rig).get(l) ?? []);
    expect(held.length).toBeGreaterThan(0);

    // Recovery: the dead lease folders are taken (renamed into a recoverer's lease), then their jobs run again.
    const takenMs = await waitFor(() => { const c = serverClaimed(rig); return aLeases.every((l) => !c.has(l)); }, 60_000, 'dead leases taken', 20)
      .catch((err) => { throw new Error(`${err.message}\n${spoolReport(rig, workers)}`); });
    const settledMs = await waitFor(() => { const d = new Set(serverJobNames(rig, 'done')); return held.every((id) => d.has(`${id}.json`)); }, 60_000, 'held jobs done', 20)
      .then((ms) => ms + takenMs);
    await waitFor(() => serverJobNames(rig, 'done').length >= ids.length, 90_000, 'all jobs done', 100)
      .catch((err) => { throw new Error(`${err.message}\n${spoolReport(rig, workers)}`); });
    const live = workers.slice(2);
    await stopWorkers(live);

    // No job lost, none left anywhere else.
    expect(serverJobNames(rig, 'done').sort()).toEqual(ids.map((id) => `${id}.json`).sort());
    for (const s of ['pending', 'failed'] as const) expect(serverJobNames(rig, s), s).toEqual([]);
    expect(serverNames(rig, 'quarantine')).toEqual([]);
    expect([...serverClaimed(rig).keys()]).toEqual([]);

    // The held jobs: interrupted on host-a, then done on host-b or host-c. The others: one attempt.
    const lines = readLedger(ledger);
    const starts = countBy(lines.filter((l) => l.event === 'start'), (l) => l.id);
    for (const id of ids) {
      const h = serverJob(rig, 'done', id).history as Array<{ host: string; outcome: string; worker: string }>;
      if (held.includes(id)) {
        expect(h.map((a) => [a.host, a.outcome]), id).toEqual([['host-a', 'interrupted'], [expect.stringMatching(/^host-[bc]$/), 'done']]);
        expect(aLeases).toContain(h[0]!.worker);
      } else {
        expect(h.map((a) => a.outcome), id).toEqual(['done']);
        expect(starts[id], id).toBe(1);
      }
    }

    // Only the dead leases were judged expired, by the documented bound; the survivors logged no errors.
    const expired = live.flatMap((w) => w.events().filter((e) => e.event === 'lease.expired'));
    expect(expired.map((e) => e.worker).sort()).toEqual([...aLeases].sort());
    for (const w of live) expect(noiseIn(w.output(), ['job.lost', 'job.abandoned', 'lease.lost', 'lease.stale']), rig.machines[w.machine]!.name).toEqual([]);
    // A lease is dead once its heartbeat is older than the lease time (server clock, whole seconds): the
    // last heartbeat was at most one interval before the kill, a recoverer looks every poll, and the
    // 1-second timestamps can make the server clock read up to 1 s slow.
    const bound = LEASE_MS + POLL_MS + 1000 + 1000; // + 1 s for a loaded 2-core CI machine
    expect(takenMs).toBeGreaterThan(LEASE_MS - HEARTBEAT_MS - 1000);
    expect(takenMs).toBeLessThan(bound);
    const byHost = countBy(held, (id) => (serverJob(rig, 'done', id).history as Array<{ host: string }>)[1]!.host);
    console.log(`[multihost] ${fsKind}: SIGKILL of host-a's 2 workers holding ${held.length} jobs (lease ${LEASE_MS} ms, heartbeat ${HEARTBEAT_MS} ms, poll ${POLL_MS} ms): ` +
      `dead leases taken ${Math.round(takenMs)} ms after the kill (bound ${bound} ms), their jobs done after ${Math.round(settledMs)} ms, ` +
      `re-run on ${JSON.stringify(byHost)}; ${ids.length} of ${ids.length} jobs done, none lost; ages at expiry ${expired.map((e) => e.ageMs).join(', ')} ms`);
  }, 180_000);
});
