// Issue 12: composite jobs on three machines whose clocks are minutes apart, while a worker is SIGKILLed
// every few seconds (and a new one started on its machine). Parallel groups: every postprocess runs once
// (one job per group, run to its end once unless a kill interrupted it) and receives every member's entry,
// in input order. Serial chains: each member starts only after the previous one ended, each runs once
// unless a kill interrupted it, and every chain's postprocess runs once.
//
// Size: ZCQ_COMPOSITE_FULL=1 runs the issue's size (100 groups of 20, 20 chains of 25); CI runs a smaller
// one (the same checks) to stay within its time budget, smaller still on GlusterFS (each metadata operation
// costs several times sshfs's here), whose members run longer so that the kills land while they run. It runs on sshfs and both GlusterFS layouts (rigFileSystems()).
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkRigPrerequisites, rigFileSystems, type FsKind } from './rig.js';
import {
  MH_FIXTURES, NODE, noiseIn, serverClaimed, serverJob, serverJobNames, serverNames, sleep, spoolOn, spoolReport,
  startWorker, stopWorkers, waitFor, type RigWorker, useSpoolRig,
} from './zcq-rig.js';

checkRigPrerequisites();

const FULL = process.env.ZCQ_COMPOSITE_FULL === '1';
const sizeOn = (fsKind: FsKind) => FULL
  ? { groups: 100, groupSize: 20, chains: 20, chainSize: 25, memberMs: 100 }
  : fsKind === 'sshfs'
    ? { groups: 12, groupSize: 20, chains: 4, chainSize: 8, memberMs: 400 }
    : { groups: 4, groupSize: 8, chains: 2, chainSize: 6, memberMs: 1000 };
// The smaller run is shorter: kills come faster so that it still sees several.
const KILL_EVERY_MS = FULL ? 3000 : 2000;
// On GlusterFS a few kills only: each one holds its jobs for a lease before they run again, and a chain waits
// for each of its members in turn (unbounded, the kills made the CI-size run outlast its 180 s under load).
const killsOn = (fsKind: FsKind) => (FULL || fsKind === 'sshfs' ? Infinity : 3);
// lease > heartbeat + the mounts' staleness (~3 s on sshfs, ~4 s on GlusterFS): see docs/nfs.md.
const workerOn = (fsKind: FsKind) => ['--concurrency', '4', '--lease', fsKind === 'sshfs' ? '6s' : '8s', '--heartbeat', '1s', '--poll', '200ms'];

interface Put { group: string; id: string; members: string[] | null }
interface Line { ev: 'start' | 'end' | 'post'; id: string; host: string; attempt: number; group?: string; index?: number; n?: number; ids?: string[]; states?: string[]; groups?: (string | null)[]; order?: (number | null)[] }

for (const fsKind of rigFileSystems()) describe(`composite jobs on three machines, clocks apart, a worker SIGKILLed every few seconds (${fsKind})`, () => {
  // host-a 2 minutes ahead, host-b 2 minutes behind, host-c on time.
  const { rig, local } = useSpoolRig({ machines: 3, fs: fsKind, clockOffsets: ['+2m', '-2m', undefined] }, 2);
  const SIZE = sizeOn(fsKind);
  const WORKER = workerOn(fsKind);
  const MAX_KILLS = killsOn(fsKind);

  it(`${SIZE.groups} parallel groups of ${SIZE.groupSize} and ${SIZE.chains} serial chains of ${SIZE.chainSize}: every postprocess once, with every entry; chains in order`, async () => {
    const ledger = join(local.dir, 'composite.ledger');
    // Two workers a machine; on GlusterFS one (its FUSE clients share the 2 cores: fewer processes to start).
    let workers: RigWorker[] = [0, 1, 2].flatMap((i) => Array.from({ length: fsKind === 'sshfs' || FULL ? 2 : 1 }, () => startWorker(rig, i, WORKER)));
    const all = [...workers];
    await Promise.all(workers.map((w) => w.leaseId()));

    // The killer: every few seconds one live worker dies by SIGKILL and a new one starts on its machine.
    // It begins once every machine has ended a job (or after a minute): the run is short on GlusterFS, and
    // a machine whose worker died before its first end could see every job taken by the others, which
    // would leave the check below (each machine ran jobs, on its own clock) nothing to check.
    let killing = true;
    let kills = 0;
    const endedOn = () => {
      try { return new Set(readFileSync(ledger, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line).filter((l) => l.ev === 'end').map((l) => l.host)); } catch { return new Set<string>(); }
    };
    const killer = (async () => {
      await waitFor(() => !killing || endedOn().size === 3, 60_000, 'every machine ended a job', 100).catch(() => {});
      for (let k = 0; killing && kills < MAX_KILLS; k++) {
        await sleep(KILL_EVERY_MS);
        if (!killing) break;
        const victim = workers[k % workers.length]!;
        victim.child.kill('SIGKILL');
        await victim.exited;
        kills++;
        const next = startWorker(rig, victim.machine, WORKER);
        all.push(next);
        workers = workers.map((w) => (w === victim ? next : w));
      }
    })();

    const t0 = performance.now();
    const put = async (i: number, kind: 'parallel' | 'serial', count: number, size: number, first: number): Promise<Put[]> => {
      const r = await rig.run(i, NODE, [join(MH_FIXTURES, 'composite-put.mjs'), spoolOn(rig, i), ledger, kind, String(count), String(size), String(SIZE.memberMs), String(first)], { cwd: MH_FIXTURES, timeoutMs: 180_000 });
      if (r.code !== 0) throw new Error(`composite-put on ${rig.machines[i]!.name} exited ${r.code}: ${r.stderr}`);
      return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Put);
    };
    const half = Math.floor(SIZE.groups / 2);
    const [pa, pb, sc] = await Promise.all([
      put(0, 'parallel', half, SIZE.groupSize, 0),
      put(1, 'parallel', SIZE.groups - half, SIZE.groupSize, half),
      put(2, 'serial', SIZE.chains, SIZE.chainSize, 0),
    ]);
    const groups = [...pa, ...pb];
    const chains = sc;
    const putMs = performance.now() - t0;
    const posts = [...groups, ...chains].map((p) => p.id);
    expect(new Set(posts).size).toBe(SIZE.groups + SIZE.chains);

    // For the failure messages below: what did not end well, and what still waits.
    const diagnose = () => {
      const failed = serverJobNames(rig, 'failed').map((n) => {
        const j = serverJob(rig, 'failed', n.slice(0, -5));
        return `failed ${j.id} ${j.fn} ${JSON.stringify(j.args).slice(-60)} ${j.failure?.reason}: ${j.failure?.message} history=${JSON.stringify(j.history)}`;
      });
      const waiting = serverNames(rig, 'waiting').flatMap((q) => serverNames(rig, 'waiting', q).map((n) => `waiting ${q}/${n}`));
      return [...failed, ...waiting].join('\n');
    };
    try {
      // A failed job is a failure of the test (nothing here fails by design): stop there, to say which.
      await waitFor(() => { const d = new Set(serverJobNames(rig, 'done')); return serverJobNames(rig, 'failed').length > 0 || posts.every((id) => d.has(`${id}.json`)); }, FULL ? 900_000 : 180_000, 'every postprocess done', 250);
    } catch (err) {
      killing = false;
      await killer;
      throw new Error(`${(err as Error).message}\n${diagnose()}\n${spoolReport(rig, workers)}`);
    }
    const runMs = performance.now() - t0;
    killing = false;
    await killer;
    await stopWorkers(workers);

    // The spool: nothing failed, waiting, pending or held; nothing quarantined.
    expect(diagnose(), 'failed or waiting').toBe('');
    for (const s of ['pending', 'hold'] as const) expect(serverJobNames(rig, s), s).toEqual([]);
    expect(serverNames(rig, 'waiting').flatMap((q) => serverNames(rig, 'waiting', q)), 'waiting').toEqual([]);
    expect(serverNames(rig, 'quarantine')).toEqual([]);
    // No job held anywhere (the lease folder of the last worker killed may still wait for its expiry: empty).
    expect([...serverClaimed(rig)].filter(([, ids]) => ids.length > 0)).toEqual([]);

    const lines = readFileSync(ledger, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
    const postLines = lines.filter((l) => l.ev === 'post');
    // A run is interrupted only by a kill: every attempt before the last one was interrupted, and a job
    // has no more ledger starts than attempts in its history.
    const onceUnlessKilled = (id: string, starts: number) => {
      const h = serverJob(rig, 'done', id).history as Array<{ outcome: string }>;
      expect(h.slice(0, -1).every((a) => a.outcome === 'interrupted'), `${id}: ${JSON.stringify(h)}`).toBe(true);
      expect(h.at(-1)!.outcome, id).toBe('done');
      expect(starts, id).toBeGreaterThanOrEqual(1);
      expect(starts, id).toBeLessThanOrEqual(h.length);
      return h.length;
    };

    let interruptedRuns = 0;
    for (const [kind, list, size] of [['parallel', groups, SIZE.groupSize], ['serial', chains, SIZE.chainSize]] as const) {
      for (const g of list) {
        // One postprocess job for the group: every 'post' line naming the group is this job's.
        const mine = postLines.filter((l) => l.groups?.includes(g.group));
        expect(new Set(mine.map((l) => l.id)), g.group).toEqual(new Set([g.id]));
        const ppRuns = onceUnlessKilled(g.id, mine.length);
        interruptedRuns += ppRuns - 1;
        const rec = serverJob(rig, 'done', g.id);
        // It received every member's entry, in input order, all done.
        expect(rec.result.n, g.group).toBe(size);
        expect(rec.result.states, g.group).toEqual(Array(size).fill('done'));
        expect(rec.result.groups, g.group).toEqual([g.group]);
        expect(rec.result.order, g.group).toEqual(Array.from({ length: size }, (_, i) => i));
        if (g.members) expect(rec.result.ids, g.group).toEqual(g.members);
        const memberIds = rec.result.ids as string[];
        for (const id of memberIds) {
          const starts = lines.filter((l) => l.ev === 'start' && l.id === id).length;
          interruptedRuns += onceUnlessKilled(id, starts) - 1;
        }
        if (kind === 'serial') {
          // In ledger order (the order things happened): member k starts only after member k-1 has ended.
          for (let k = 1; k < size; k++) {
            const firstStart = lines.findIndex((l) => l.ev === 'start' && l.id === memberIds[k]);
            const prevEnd = lines.findLastIndex((l) => l.ev === 'end' && l.id === memberIds[k - 1]);
            expect(prevEnd, `${g.group}: member ${k - 1} ended`).toBeGreaterThanOrEqual(0);
            expect(firstStart, `${g.group}: member ${k} started after member ${k - 1} ended`).toBeGreaterThan(prevEnd);
          }
        }
      }
    }
    expect(kills).toBeGreaterThan(0);
    // Survivors of the kills logged no error noise (a killed worker's log ends mid-way: not judged).
    for (const w of workers) expect(noiseIn(w.output(), []), rig.machines[w.machine]!.name).toEqual([]);
    const endsByHost = lines.filter((l) => l.ev === 'end').reduce<Record<string, number>>((m, l) => ({ ...m, [l.host]: (m[l.host] ?? 0) + 1 }), {});
    expect(Object.keys(endsByHost).sort(), JSON.stringify(endsByHost)).toEqual(['host-a', 'host-b', 'host-c']);
    console.log(`[multihost] ${fsKind}: composite${FULL ? ' (full size)' : ''}: ${SIZE.groups} parallel groups × ${SIZE.groupSize} and ${SIZE.chains} serial chains × ${SIZE.chainSize} ` +
      `(members ${SIZE.memberMs} ms), 3 machines (+2m, -2m, on time), ${kills} SIGKILLs (one every ${KILL_EVERY_MS} ms${MAX_KILLS < Infinity ? `, at most ${MAX_KILLS}` : ''}): put in ${Math.round(putMs)} ms, ` +
      `every postprocess done after ${Math.round(runMs)} ms; ${SIZE.groups + SIZE.chains} postprocesses, one job each, each with all its entries in order; ` +
      `${interruptedRuns} runs interrupted by the kills and run again; ${all.length} workers started in all; jobs ended per machine ${JSON.stringify(endsByHost)}`);
  }, FULL ? 1_200_000 : 300_000);
});
