// A frozen worker (SIGSTOP), not a dead one: its lease expires, a sibling recovers and re-runs its jobs, and
// when it is resumed (SIGCONT) it notices its lease is gone, aborts its jobs' AbortSignal, writes nothing
// over the newer results, takes a new lease and carries on.
import { afterAll, afterEach, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, tempDir, until } from '../helpers.js';
import { claimedFiles, events, jobIn, killWorkers, newSpool, putMany, readLedger, sleep, worker } from './util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

const LEASE = ['--lease', '2s', '--heartbeat', '300ms', '--poll', '100ms', '--concurrency', '2'];

it('a SIGSTOPped worker loses its jobs to a sibling and, resumed, does not overwrite their results', async () => {
  const spool = await newSpool();
  const ledger = join(tempDir(), 'ledger');
  // slow: attempt 1 would run 30 s (and honours its signal); fast: attempt 1 ends 1.5 s in, so it is
  // already finished inside the frozen process when that process resumes.
  const [slow] = await putMany(spool, 1, './jobs.mjs#abortableRecord', [ledger, 30_000, 200]);
  const [fast] = await putMany(spool, 1, './jobs.mjs#abortableRecord', [ledger, 1500, 200]);
  const a = worker(spool, LEASE);
  await until(() => readLedger(ledger).filter((e) => e.event === 'start').length === 2, 15_000);
  a.kill('SIGSTOP');
  const stoppedAt = Date.now();
  const b = worker(spool, LEASE);
  await until(() => jobIn(spool, 'done', slow!) !== null && jobIn(spool, 'done', fast!) !== null, 15_000);
  const tookMs = Date.now() - stoppedAt;
  const doneFile = (id: string) => join(spool, 'done', 'default', `${id}.json`);
  const before = { slow: readFileSync(doneFile(slow!), 'utf8'), fast: readFileSync(doneFile(fast!), 'utf8') };
  const recovered = events(b.output()).filter((e) => e.event === 'job.recovered');
  expect(recovered.map((e) => e.id).sort()).toEqual([slow, fast].sort());
  // Not before the lease could have expired (2 s after the last heartbeat, at most 300 ms before the stop).
  expect(tookMs).toBeGreaterThan(1600);
  for (const id of [slow!, fast!]) {
    const j = jobIn(spool, 'done', id)!;
    expect(j.history.map((h: any) => h.outcome)).toEqual(['interrupted', 'done']);
    expect(j.history[0].pid).toBe(a.pid);
    expect(j.history[0].error).toMatch(/worker lost/);
    expect(j.history[1].pid).toBe(b.pid);
    expect(j.result).toEqual({ attempt: 2, pid: b.pid });
    expect(j.run).toMatch(new RegExp(`^${j.history[1].worker.replace(/\./g, '\\.')}/\\d+$`));
  }
  b.kill('SIGTERM');
  expect(await b.exited).toBe(0);

  a.kill('SIGCONT');
  await until(() => events(a.output()).some((e) => e.event === 'lease.new'), 10_000);
  await until(() => events(a.output()).filter((e) => e.event === 'job.abandoned').length === 2, 10_000);
  const ev = events(a.output());
  expect(ev.some((e) => e.event === 'lease.stale' || e.event === 'lease.lost')).toBe(true);
  // The slow job, still running when its worker woke, saw its AbortSignal fire.
  const aborted = readLedger(ledger).filter((e) => e.event === 'aborted');
  expect(aborted.map((e) => [e.id, e.pid, e.attempt, e.extra])).toEqual([[slow, a.pid, 1, 'lease lost']]);
  await sleep(1000);
  // Nothing written over the newer attempt's record; the job is in no other folder.
  expect(readFileSync(doneFile(slow!), 'utf8')).toBe(before.slow);
  expect(readFileSync(doneFile(fast!), 'utf8')).toBe(before.fast);
  for (const id of [slow!, fast!]) { expect(jobIn(spool, 'pending', id)).toBeNull(); expect(jobIn(spool, 'failed', id)).toBeNull(); }
  expect(claimedFiles(spool)).toEqual([]);
  // The resumed worker works on under its new lease.
  const [next] = await putMany(spool, 1, './jobs.mjs#add', [2, 2]);
  await until(() => jobIn(spool, 'done', next!) !== null, 10_000);
  const newLease = ev.find((e) => e.event === 'lease.new')!;
  expect(jobIn(spool, 'done', next!)!.history[0].worker).toBe(newLease.worker);
  expect(newLease.previous).not.toBe(newLease.worker);
  console.log(`sigstop: recovered by the sibling ${tookMs} ms after SIGSTOP (lease 2 s); resumed worker: ${ev.filter((e) => e.event === 'job.abandoned').map((e) => e.reason).join('; ')}`);
}, 60_000);
