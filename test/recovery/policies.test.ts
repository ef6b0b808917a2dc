// Per-job policies through the real CLI: what happens when a worker dies (--on-interrupt, --max-interrupts,
// poison jobs), when a job throws (--retries with exponential or fixed backoff, permanent errors, retry at
// T), when it runs too long (--timeout, cooperative and not) and when it starts too late (--deadline).
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { cleanupTemp, FIXTURES, tempDir, until, zcq } from '../helpers.js';
import { deferredFiles, events, jobIn, killWorkers, newSpool, readLedger, sleep, worker } from './util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

function put(spool: string, ...args: string[]): string {
  const r = zcq(spool, ['put', ...args]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout.trim();
}
const FAST = ['--lease', '1s', '--heartbeat', '150ms', '--poll', '100ms'];

describe('when a worker dies', () => {
  it('--on-interrupt fail ends in failed/ "worker lost"; the default retries, naming the dead worker; zcq recover waits for the lease', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const failing = put(spool, '--on-interrupt', 'fail', './jobs.mjs#abortableRecord', '--args-json', JSON.stringify([ledger, 30000]));
    const retrying = put(spool, './jobs.mjs#abortableRecord', '--args-json', JSON.stringify([ledger, 30000]));
    // A 3 s lease: the `zcq recover` just after the kill must start within it, also on a loaded machine (a
    // 1 s lease was once over before the command had started).
    const w = worker(spool, ['--lease', '3s', '--heartbeat', '150ms', '--poll', '100ms', '--concurrency', '2']);
    await until(() => readLedger(ledger).length === 2, 15_000);
    const lease = events(w.output()).find((e) => e.event === 'worker.start')!.worker;
    w.kill('SIGKILL');
    const killedAt = Date.now();
    await w.exited;
    // Within the lease nothing is taken.
    const early = zcq(spool, ['recover']);
    expect(Date.now() - killedAt).toBeLessThan(2_500);
    expect(early.code).toBe(0);
    expect(early.stdout).toBe('');
    // Each claim is claimed/LEASE/SEQ.ID.json, SEQ the lease's own claim counter (1 and 2 here).
    const held = readdirSync(join(spool, 'claimed', lease)).sort();
    expect(held.map((n) => n.replace(/^\d+\./, '')).sort()).toEqual([`${failing}.json`, `${retrying}.json`].sort());
    expect(held.map((n) => Number(/^(\d+)\./.exec(n)?.[1])).sort()).toEqual([1, 2]);
    await sleep(3300 - (Date.now() - killedAt));
    const r = zcq(spool, ['recover']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^lease\\.expired\\t${lease.replace(/\./g, '\\.')}\\tage \\ds$`));
    expect(lines.slice(1).sort()).toEqual([`job.recovered\t${lease}\t${failing}\t→ failed`, `job.recovered\t${lease}\t${retrying}\t→ pending`].sort());
    const f = jobIn(spool, 'failed', failing)!;
    expect(f.failure).toMatchObject({ name: 'WorkerLost', reason: 'worker lost' });
    expect(f.failure.message).toMatch(/policy is to fail/);
    const p = jobIn(spool, 'pending', retrying)!;
    expect(p.interrupts).toBe(1);
    expect(p.history).toHaveLength(1);
    expect(p.history[0]).toMatchObject({ attempt: 1, worker: lease, pid: w.pid, host: hostname(), outcome: 'interrupted' });
    expect(p.history[0].error).toBe(`worker lost: ${lease} on ${hostname()}`);
    expect(p.history[0].end).toBeTruthy();
    expect(existsSync(join(spool, 'claimed', lease))).toBe(false);
    expect(existsSync(join(spool, 'workers', `${lease}.json`))).toBe(false);
  }, 30_000);

  it('a poison job that kills its worker fails once --max-interrupts is used up', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const id = put(spool, '--max-interrupts', '2', './jobs.mjs#killSelf', ledger);
    const pids: number[] = [];
    const codes: (number | null)[] = [];
    const logs: string[] = [];
    for (let i = 0; i < 6 && !jobIn(spool, 'failed', id); i++) {
      const w = worker(spool, [...FAST, '--exit-when-idle']);
      pids.push(w.pid!);
      const code = await w.exited;
      codes.push(code);
      logs.push(`pid ${w.pid} exit ${code}\n${w.output()}`);
    }
    const f = jobIn(spool, 'failed', id)!;
    expect(f).not.toBeNull();
    expect(f.failure).toMatchObject({ name: 'WorkerLost', reason: 'worker lost' });
    expect(f.failure.message).toMatch(/3 times \(cap 2\)/);
    expect(f.interrupts).toBe(3);
    expect(f.history.map((h: any) => h.outcome)).toEqual(['interrupted', 'interrupted', 'interrupted']);
    // It ran three times, each time killing the worker that ran it; the last worker exited normally.
    const runs = readLedger(ledger);
    expect(runs).toHaveLength(3);
    expect(runs.map((e) => e.pid)).toEqual(f.history.map((h: any) => h.pid));
    expect(pids.slice(0, 3), logs.join('\n')).toEqual(runs.map((e) => e.pid));
    // Each worker but the last was killed by the job; none exited "idle" while the job it was recovering
    // was still on its way to pending/ (the last one recovered it into failed/ and then had nothing to do).
    expect(codes, logs.join('\n')).toEqual([128, 128, 128, 0]);
  }, 40_000);
});

describe('when a job throws', () => {
  it('stores the backoff delay in the job and the deferred name: exponential with jitter, or fixed', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const expo = put(spool, '--retries', '3', './jobs.mjs#flakyRecord', ledger, '3');
    const fixed = put(spool, '--retries', '3', '--backoff', '700ms', './jobs.mjs#flakyRecord', ledger, '3');
    // One attempt each, then look at where they wait.
    const w1 = worker(spool, [...FAST, '--max-jobs', '2', '--concurrency', '2']);
    expect(await w1.exited).toBe(0);
    const waiting = deferredFiles(spool);
    expect(waiting.map((d) => d.id).sort()).toEqual([expo, fixed].sort());
    for (const d of waiting) {
      const j = JSON.parse(readFileSync(d.path, 'utf8'));
      // deferred/QUEUE/BUCKET/DUEMS15.ID.json: its queue's folder, the UTC minute of its due time.
      expect(d.queue).toBe('default');
      expect(d.bucket).toBe(new Date(d.dueMs).toISOString().slice(0, 16).replace(/[-:]/g, ''));
      expect(Date.parse(j.notBefore)).toBe(d.dueMs);
      expect(j.history[0].outcome).toBe('retry');
      const delay = d.dueMs - Date.parse(j.history[0].end);
      if (d.id === fixed) { expect(delay).toBeGreaterThanOrEqual(690); expect(delay).toBeLessThan(760); }
      else { expect(delay).toBeGreaterThanOrEqual(490); expect(delay).toBeLessThan(1060); } // 1 s ceiling, equal jitter
      const retry = events(w1.output()).find((e) => e.event === 'job.retry' && e.id === d.id)!;
      expect(Date.parse(retry.due)).toBe(d.dueMs);
    }
    const w2 = worker(spool, FAST);
    await until(() => jobIn(spool, 'done', expo) !== null && jobIn(spool, 'done', fixed) !== null, 20_000);
    w2.kill('SIGTERM');
    for (const id of [expo, fixed]) {
      const j = jobIn(spool, 'done', id)!;
      expect(j.result).toBe(3);
      expect(j.history.map((h: any) => h.outcome)).toEqual(['retry', 'retry', 'done']);
      const gaps = [1, 2].map((i) => Date.parse(j.history[i].start) - Date.parse(j.history[i - 1].end));
      // The wait is the stored backoff (checked exactly above, in the deferred name); the upper bound only
      // says the job was not forgotten: backoff + poll + slack for a loaded 2-core machine.
      if (id === fixed) for (const g of gaps) { expect(g).toBeGreaterThanOrEqual(690); expect(g).toBeLessThan(700 + 100 + 1500); }
      else { expect(gaps[0]).toBeGreaterThanOrEqual(490); expect(gaps[1]).toBeGreaterThanOrEqual(990); } // ceilings 1 s, 2 s
    }
  }, 40_000);

  // Jobs share pool threads: one stuck behind the spinning job when its thread is terminated comes back
  // as an uncounted 'interrupted' attempt (tested on its own below). These checks are about the rest.
  const ran = (j: any) => j.history.filter((h: any) => !(h.outcome === 'interrupted' && /thread was terminated/.test(h.error)));

  it('permanent errors are not retried; RetryAtError / err.retryAt set the next attempt; timeouts abort, terminate and retry; deadlines fail', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const late = put(spool, '--deadline', '1s', './jobs.mjs#add', '1', '2');
    const lateOk = put(spool, '--deadline', '1m', './jobs.mjs#add', '1', '2');
    const perm = put(spool, '--retries', '3', './jobs.mjs#permanent');
    const permClass = put(spool, '--retries', '3', './jobs.mjs#permanentClass');
    const at = put(spool, '--retries', '1', './jobs.mjs#retryAtClass', '1500');
    const atField = put(spool, '--retries', '1', './jobs.mjs#retryAt', '1500');
    await sleep(1200); // `late` misses its deadline before any worker starts
    // A thread per job: a cooperative job sharing a thread with the spinning one could not see its signal
    // (the spinner holds the thread); that sharing is tested on its own below.
    const w = worker(spool, [...FAST, '--concurrency', '4', '--threads', '4', '--kill-grace', '300ms']);
    // The timed jobs are put once the quick ones ran, the module loaded: its first import on a loaded 2-core
    // machine counts in a job's time (a thread's own start does not: the test after next). Timeouts far
    // shorter than the jobs all the same.
    await until(() => jobIn(spool, 'done', lateOk) !== null && jobIn(spool, 'failed', perm) !== null && jobIn(spool, 'failed', permClass) !== null, 15_000);
    const spin = put(spool, '--timeout', '1s', '--retries', '1', '--backoff', '100ms', './jobs.mjs#spinRecord', ledger, '3000');
    const coop = put(spool, '--timeout', '1500ms', './jobs.mjs#abortableRecord', '--args-json', JSON.stringify([ledger, 5000]));
    const all = [late, lateOk, perm, permClass, at, atField, spin, coop];
    await until(() => all.every((id) => jobIn(spool, 'done', id) || jobIn(spool, 'failed', id)), 30_000);
    w.kill('SIGTERM');

    const d = jobIn(spool, 'failed', late)!;
    expect(d.failure).toMatchObject({ name: 'DeadlinePassed', reason: 'deadline passed' });
    expect(d.history.map((h: any) => h.outcome)).toEqual(['deadline']);
    expect(jobIn(spool, 'done', lateOk)!.result).toBe(3);

    for (const id of [perm, permClass]) {
      const j = jobIn(spool, 'failed', id)!;
      expect(j.attempts).toBe(1);
      expect(ran(j).map((h: any) => h.outcome)).toEqual(['failed']);
    }
    expect(jobIn(spool, 'failed', permClass)!.failure.name).toBe('PermanentError');

    for (const id of [at, atField]) {
      const j = jobIn(spool, 'done', id)!;
      expect(j.result).toBe(2);
      const h = ran(j);
      expect(h.map((a: any) => a.outcome)).toEqual(['retry', 'done']);
      const gap = Date.parse(h[1].start) - Date.parse(h[0].end);
      expect(gap).toBeGreaterThanOrEqual(1400);
      expect(gap).toBeLessThan(1500 + 1000);
    }

    // A job that ignores its signal: terminated after the kill grace, recorded as a timeout, retried once,
    // then failed; its first thread stopped before the retry started (no zombie beside its retry).
    const s = jobIn(spool, 'failed', spin)!;
    expect(s.failure.reason).toBe('timeout');
    expect(s.failure.name).toBe('TimeoutError');
    expect(s.history.map((h: any) => h.outcome)).toEqual(['retry', 'timeout']);
    await sleep(300);
    const ticks = readLedger(ledger).filter((e) => e.id === spin);
    expect(ticks.filter((e) => e.event === 'end')).toEqual([]);
    // Both attempts ran: attempt 2's timeout counted from when the thread that replaced the terminated one was up.
    const t1 = ticks.filter((e) => e.attempt === 1);
    expect(t1[0]?.event).toBe('start');
    const start2 = ticks.find((e) => e.event === 'start' && e.attempt === 2)?.at ?? Infinity;
    expect(start2).toBeLessThan(Infinity);
    expect(Math.max(...t1.map((e) => e.at))).toBeLessThan(start2);
    for (const a of [1, 2]) {
      const mine = ticks.filter((e) => e.attempt === a);
      const span = Math.max(...mine.map((e) => e.at)) - mine[0]!.at;
      expect(span).toBeLessThan(1000 + 300 + 400); // timeout + kill grace + slack, never the full 3 s
    }

    // A cooperative job sees its AbortSignal at the timeout and ends at once.
    const c = jobIn(spool, 'failed', coop)!;
    expect(c.failure.reason).toBe('timeout');
    expect(c.failure.message).toMatch(/timed out after 1500 ms/);
    expect(readLedger(ledger).filter((e) => e.id === coop).map((e) => [e.event, e.extra])).toEqual([['start', undefined], ['aborted', 'timeout']]);
  }, 60_000);

  it('--runtime inline: a job that ignores its signal past the timeout is recorded as timed out and abandoned; the worker goes on', async () => {
    const spool = await newSpool();
    const stuck = put(spool, '--timeout', '300ms', './jobs.mjs#sleep', '5000');
    const next = put(spool, './jobs.mjs#add', '1', '2');
    const w = worker(spool, [...FAST, '--runtime', 'inline', '--concurrency', '1', '--kill-grace', '200ms']);
    // The budget is the loaded CI machine's (a worker's start alone can take seconds there); what shows the
    // slot was given back is when the next job started, read from the worker's own records.
    await until(() => jobIn(spool, 'failed', stuck) !== null && jobIn(spool, 'done', next) !== null, 20_000);
    w.kill('SIGTERM');
    const j = jobIn(spool, 'failed', stuck)!;
    expect(j.failure.name).toBe('TimeoutError');
    expect(j.failure.message).toMatch(/timed out after 300 ms .*abandoned/);
    const n = jobIn(spool, 'done', next)!;
    expect(n.result).toBe(3);
    // With one slot, the next job started while the abandoned one still slept: its 5 s never held the slot.
    expect(Date.parse(ran(n)[0].start) - Date.parse(ran(j)[0].start)).toBeLessThan(4_000);
  }, 20_000);

  it('a job\'s timeout counts from when its thread is up: a pool thread 1.5 s in starting does not use up a 1 s timeout', async () => {
    const spool = await newSpool();
    const quick = put(spool, '--timeout', '1s', './jobs.mjs#abortable', '200'); // ends at its signal
    // Every worker thread of the worker busy 1.5 s before its own code runs (test/fixtures/slow-thread-start.cjs).
    const w = worker(spool, [...FAST, '--threads', '1', '--concurrency', '1'], {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${join(FIXTURES, 'slow-thread-start.cjs')}`.trim(),
      ZCQ_TEST_THREAD_START_MS: '1500',
    });
    await until(() => jobIn(spool, 'done', quick) !== null || jobIn(spool, 'failed', quick) !== null, 15_000);
    w.kill('SIGTERM');
    const j = jobIn(spool, 'done', quick) ?? jobIn(spool, 'failed', quick)!;
    expect(j.failure ?? null).toBeNull();
    expect(j.result).toBe('finished');
    // The thread did start slowly: from its hand-over the attempt took longer than its timeout (the rest of
    // the thread's start — it began with the worker, a little before the claim — and the job's 200 ms).
    const h = ran(j);
    expect(h).toHaveLength(1);
    expect(Date.parse(h[0].end) - Date.parse(h[0].start)).toBeGreaterThan(1000);
  }, 30_000);

  it('jobs sharing a thread with a job terminated at its timeout run again, the attempt uncounted', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const spin = put(spool, '--timeout', '300ms', './jobs.mjs#spinRecord', ledger, '3000');
    const by = put(spool, './jobs.mjs#add', '2', '3');
    const w = worker(spool, [...FAST, '--threads', '1', '--concurrency', '2', '--kill-grace', '200ms']);
    await until(() => jobIn(spool, 'failed', spin) !== null && jobIn(spool, 'done', by) !== null, 20_000);
    w.kill('SIGTERM');
    expect(jobIn(spool, 'failed', spin)!.failure.name).toBe('TimeoutError');
    const j = jobIn(spool, 'done', by)!;
    expect(j.result).toBe(5);
    expect(j.attempts).toBe(1);
    expect(j.history.map((h: any) => h.outcome)).toEqual(['interrupted', 'done']);
    expect(j.history[0].error).toContain(`its thread was terminated to stop job ${spin}`);
  }, 30_000);
});
