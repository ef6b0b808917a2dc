// Issue 17: a mount that fails under running workers (EIO / ENOTCONN: errors.ts isMountGone), on real
// mounts. (1) One machine's file-system client is SIGKILLed (sshfs, or the GlusterFS FUSE client): every
// call through that mount now fails with ENOTCONN. Its worker logs that once, backs off, stays up and judges
// no lease; the other machine recovers its jobs when its lease runs out, as for a dead machine.
// (2) GlusterFS: every brick is killed for a few seconds and started again: each worker logs the outage
// once and its end once, records the outcomes it held once the volume answers, loses no lease, and no job
// runs twice. (3) Replica 2 with one brick down: nothing to see at all.
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { checkRigPrerequisites, rigFileSystems, type Rig } from './rig.js';
import {
  JOBS, countBy, noiseIn, putMany, readLedger, serverClaimed, serverJob, serverJobNames, spoolReport, startWorker,
  stopWorkers, waitFor, sleep, type RigWorker, useSpoolRig,
} from './zcq-rig.js';

checkRigPrerequisites({ needFaketime: false });

const opts = (leaseMs: number) => ['--concurrency', '2', '--lease', `${leaseMs}ms`, '--heartbeat', '1s', '--poll', '250ms'];
const count = (w: RigWorker, event: string) => w.events().filter((e) => e.event === event).length;
/** Every one of `ids` is in done/ (server's view); earlier tests' jobs are there too. */
const allDone = (rig: Rig, ids: string[]) => { const d = new Set(serverJobNames(rig, 'done')); return ids.every((id) => d.has(`${id}.json`)); };

for (const fsKind of rigFileSystems()) {
  describe(`a mount fails under a running worker (${fsKind})`, () => {
    const { rig, local } = useSpoolRig({ machines: 2, fs: fsKind });

    if (fsKind !== 'sshfs') it('every brick killed for 4 s, then started again: one spool.unreachable and one spool.reachable per worker, no lease lost, each job run once', async () => {
      const LEASE_MS = 30_000; // longer than the outage and the clients' reconnection: no worker may be judged dead
      const ledger = join(local.dir, 'bricks-down.ledger');
      const workers = [startWorker(rig, 0, opts(LEASE_MS)), startWorker(rig, 1, opts(LEASE_MS))];
      await Promise.all(workers.map((w) => w.leaseId()));
      const ids = await putMany(rig, 0, 24, `${JOBS}#record`, [ledger, 800]);
      await waitFor(() => readLedger(ledger).filter((l) => l.event === 'start').length >= 4, 30_000, 'jobs running');
      const bricks = rig.brickPids();
      expect(bricks).toHaveLength(2);
      for (const pid of bricks) process.kill(pid, 'SIGKILL');
      const tDown = performance.now();
      await sleep(4000);
      const r = spawnSync('gluster', ['--mode=script', 'volume', 'start', rig.volume!, 'force'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const tUp = performance.now();
      await waitFor(() => workers.every((w) => count(w, 'spool.reachable') === 1), 60_000, 'both workers see the volume again', 100)
        .catch((err) => { throw new Error(`${err.message}\n${spoolReport(rig, workers)}`); });
      const backMs = performance.now() - tUp;
      await waitFor(() => allDone(rig, ids), 60_000, 'all jobs done', 100)
        .catch((err) => { throw new Error(`${err.message}\n${spoolReport(rig, workers)}`); });
      await stopWorkers(workers);

      expect(allDone(rig, ids)).toBe(true);
      const starts = countBy(readLedger(ledger).filter((l) => l.event === 'start'), (l) => l.id);
      expect(Object.entries(starts).filter(([, n]) => n !== 1)).toEqual([]);
      for (const id of ids) expect(serverJob(rig, 'done', id).history.map((h: { outcome: string }) => h.outcome), id).toEqual(['done']);
      for (const w of workers) {
        const name = rig.machines[w.machine]!.name;
        expect(count(w, 'spool.unreachable'), name).toBe(1);
        expect(count(w, 'spool.reachable'), name).toBe(1);
        // An outcome that met the outage waited (job.unrecorded) and was recorded once the volume answered.
        expect(noiseIn(w.output(), ['lease.lost', 'lease.stale', 'lease.expired', 'job.lost', 'job.abandoned']).filter((l) => !/"(job\.unrecorded|spool\.unreachable)"/.test(l)), name).toEqual([]);
      }
      const waited = workers.reduce((n, w) => n + count(w, 'job.unrecorded'), 0);
      console.log(`[multihost] ${fsKind}: both bricks down ${Math.round(tUp - tDown)} ms; workers saw the volume again ${Math.round(backMs)} ms after the restart; ` +
        `${ids.length} jobs each run once, ${waited} outcomes waited for the volume, no lease lost`);
    }, 150_000);

    if (fsKind === 'gluster-replica') it('replica 2 with one brick down: the workers notice nothing', async () => {
      const ledger = join(local.dir, 'one-brick.ledger');
      await rig.waitVolumeWhole(); // the test before restarted both bricks
      const workers = [startWorker(rig, 0, opts(8000)), startWorker(rig, 1, opts(8000))];
      await Promise.all(workers.map((w) => w.leaseId()));
      process.kill(rig.brickPids()[1]!, 'SIGKILL');
      const ids = await putMany(rig, 0, 24, `${JOBS}#record`, [ledger, 100]);
      await waitFor(() => allDone(rig, ids), 60_000, 'all jobs done', 100)
        .catch((err) => { throw new Error(`${err.message}\n${spoolReport(rig, workers)}`); });
      await stopWorkers(workers);
      const r = spawnSync('gluster', ['--mode=script', 'volume', 'start', rig.volume!, 'force'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const starts = countBy(readLedger(ledger).filter((l) => l.event === 'start'), (l) => l.id);
      expect(Object.keys(starts)).toHaveLength(ids.length);
      expect(Object.values(starts).every((n) => n === 1)).toBe(true);
      for (const w of workers) {
        expect(count(w, 'spool.unreachable'), JSON.stringify(w.events().filter((e) => e.event === 'spool.unreachable'))).toBe(0);
        expect(noiseIn(w.output(), ['lease.lost', 'lease.stale', 'lease.expired', 'job.lost', 'job.abandoned'])).toEqual([]);
      }
    }, 120_000);

    // Last: it leaves host-a's mount dead.
    it("host-a's file-system client is SIGKILLed: its worker logs spool.unreachable once, stays up, judges no lease; host-b recovers its jobs", async () => {
      const LEASE_MS = 8000;
      const ledger = join(local.dir, 'client-killed.ledger');
      const a = startWorker(rig, 0, opts(LEASE_MS));
      const b = startWorker(rig, 1, opts(LEASE_MS));
      const [leaseA] = await Promise.all([a.leaseId(), b.leaseId()]);
      const ids = await putMany(rig, 1, 16, `${JOBS}#record`, [ledger, 1500]);
      await waitFor(() => (serverClaimed(rig).get(leaseA)?.length ?? 0) >= 1, 30_000, 'host-a holds a job');
      const pids = rig.mountPids(0);
      expect(pids.length, `the client process of ${rig.machines[0]!.mount}`).toBeGreaterThan(0);
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      const tKill = performance.now();

      await waitFor(() => count(a, 'spool.unreachable') === 1, 20_000, 'host-a logs spool.unreachable')
        .catch((err) => { throw new Error(`${err.message}\n${spoolReport(rig, [a, b])}`); });
      const unreachableMs = performance.now() - tKill;
      await waitFor(() => allDone(rig, ids), 90_000, 'all jobs done (host-a\'s by host-b after its lease)', 100)
        .catch((err) => { throw new Error(`${err.message}\n${spoolReport(rig, [a, b])}`); });
      const doneMs = performance.now() - tKill;
      await sleep(2000); // host-a keeps failing meanwhile: still one line, still up
      expect(a.child.exitCode, a.output()).toBeNull();
      expect(count(a, 'spool.unreachable')).toBe(1);
      // It judged nobody and kept its per-duty errors to itself.
      for (const ev of ['lease.expired', 'job.recovered', 'worker.duty.error', 'lease.new.failed', 'lease.renew.failed']) expect(count(a, ev), ev).toBe(0);
      a.child.kill('SIGKILL');
      await a.exited;
      await stopWorkers([b]);

      // host-b took host-a's lease (it expired: host-a could not beat), and every job is done once in done/.
      expect(b.events().filter((e) => e.event === 'lease.expired').map((e) => e.worker)).toEqual([leaseA]);
      expect(allDone(rig, ids)).toBe(true);
      expect(noiseIn(b.output(), ['lease.lost', 'lease.stale', 'job.lost'])).toEqual([]);
      const interrupted = ids.filter((id) => (serverJob(rig, 'done', id).history as Array<{ host: string; outcome: string }>).some((h) => h.host === 'host-a' && h.outcome !== 'done'));
      console.log(`[multihost] ${fsKind}: host-a's client killed; spool.unreachable after ${Math.round(unreachableMs)} ms (once), ` +
        `all ${ids.length} jobs done after ${Math.round(doneMs)} ms (lease ${LEASE_MS} ms), ${interrupted.length} re-run on host-b after host-a's lease expired`);
    }, 150_000);
  });
}
