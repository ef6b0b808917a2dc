// Chaos: 8 worker processes over 2,000 jobs, one random worker SIGKILLed every 200 ms and restarted, until
// every job has ended (or for 80 s; then the last workers finish unharmed). Nothing lost, nothing left claimed, and a job runs twice only when a worker running
// it was killed. The ledger (appended by the job itself) counts executions independently of the spool.
import { afterAll, afterEach, expect, it } from 'vitest';
import { join } from 'node:path';
import { cleanupTemp, tempDir } from '../helpers.js';
import { claimedFiles, jobIn, killWorkers, namesIn, newSpool, putMany, readLedger, sleep, worker } from './util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

const JOBS = 2000;
const WORKERS = 8;
const KILL_MS = 80_000;

it(`${JOBS} jobs, ${WORKERS} workers, one SIGKILLed every 200 ms: none lost, repeats only after kills`, async () => {
  const spool = await newSpool();
  const ledger = join(tempDir(), 'ledger');
  const ids = await putMany(spool, JOBS, './jobs.mjs#sleepRecord', [ledger, 5]);
  const args = ['--lease', '2s', '--heartbeat', '300ms', '--poll', '100ms', '--concurrency', '2'];
  // --relaxed: no fsync. A SIGKILL loses nothing the page cache holds, so durability is not what this tests,
  // and 2 cores restarting five Node processes a second have little time left for fsync.
  const spawnOne = () => worker(spool, args, {}, ['--relaxed'], true);
  const workers = Array.from({ length: WORKERS }, spawnOne);
  const killed = new Set<number>();
  const t0 = Date.now();
  const ended = () => namesIn(spool, 'done').length + namesIn(spool, 'failed').length;
  // Kills go on for at most KILL_MS (on a loaded 2-core machine a worker restarted every 1.6 s may spend
  // its life starting up); then the last generation, unharmed, finishes. The bound is a guard against a
  // hang, not a performance figure.
  while (ended() < JOBS && Date.now() - t0 < KILL_MS) {
    await sleep(200);
    const i = Math.floor(Math.random() * workers.length);
    const victim = workers[i]!;
    killed.add(victim.pid!);
    victim.kill('SIGKILL');
    workers[i] = spawnOne();
  }
  const endedInKills = ended();
  while (ended() < JOBS) {
    if (Date.now() - t0 > 200_000) throw new Error(`chaos: only ${ended()} of ${JOBS} ended after 200 s (${endedInKills} while killing)`);
    await sleep(200);
  }
  const elapsed = Date.now() - t0;
  killWorkers();

  // Every job ended; none left claimed; none in two places.
  expect(claimedFiles(spool)).toEqual([]);
  const execs = new Map<string, number[]>();
  for (const e of readLedger(ledger)) { if (!execs.has(e.id)) execs.set(e.id, []); execs.get(e.id)!.push(e.pid); }
  let doubles = 0; let interruptedEntries = 0;
  for (const id of ids) {
    const done = jobIn(spool, 'done', id);
    expect(done, `job ${id} is not in done/ (failed: ${JSON.stringify(jobIn(spool, 'failed', id)?.failure)})`).not.toBeNull();
    const pids = execs.get(id) ?? [];
    expect(pids.length, `job ${id} never ran`).toBeGreaterThanOrEqual(1);
    const history = done!.history as { pid: number; outcome: string; worker: string }[];
    const last = history[history.length - 1]!;
    expect(last.outcome).toBe('done');
    // The run that produced the result is the last one in the ledger by that pid; every other run was
    // by a worker we killed, and the job's history says so.
    const others = [...pids];
    others.splice(others.lastIndexOf(last.pid), 1);
    for (const pid of others) expect(killed.has(pid), `job ${id} ran twice, and pid ${pid} was not killed`).toBe(true);
    const interrupted = history.filter((h) => h.outcome === 'interrupted');
    for (const h of interrupted) expect(killed.has(h.pid), `history of ${id} blames a live pid ${h.pid}`).toBe(true);
    expect(interrupted.length).toBeGreaterThanOrEqual(others.length);
    if (pids.length > 1) doubles++;
    interruptedEntries += interrupted.length;
  }
  expect(execs.size).toBe(JOBS);
  console.log(`chaos: ${JOBS} jobs, ${killed.size} kills (${endedInKills} jobs ended while killing), ${elapsed} ms, ${doubles} jobs ran more than once (all by killed workers), ${interruptedEntries} interrupted history entries`);
  expect(killed.size).toBeGreaterThan(5);
}, 260_000);
