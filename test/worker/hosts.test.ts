// The threads runtime's hand-over (src/worker/hosts.ts, runner.ts `agent`): jobs handed to a pool thread in
// one turn of the event loop go in one message, and the outcomes it sends back in one turn likewise. What
// must hold however the messages are grouped: every job gets exactly one outcome; an abort asked for in the
// same turn as the job's start still reaches the job (its run is posted first); a killed thread's other
// jobs come back as bystanders. Real pool threads running real job modules.
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cleanupTemp, tempDir } from '../helpers.js';

const dist = join(__dirname, '..', '..', 'dist', 'worker');
const { ThreadHosts, InlineHosts } = await import(pathToFileURL(join(dist, 'hosts.js')).href);
const { default: Pool } = await import('tinypool');

afterAll(cleanupTemp);

function jobsModule(): string {
  const dir = tempDir();
  const file = join(dir, 'jobs.mjs');
  writeFileSync(file, `
import { currentJob } from ${JSON.stringify(pathToFileURL(join(dist, '..', 'index.js')).href)};
export async function echo(x) { return { x, thread: (await import('node:worker_threads')).threadId }; }
export function untilAborted() {
  const { signal } = currentJob();
  const stop = () => new Error('stopped: ' + signal.reason.message);
  if (signal.aborted) throw stop();
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(stop())));
}
export function spin() { for (;;) {} }
export async function readsSignalLate(ms) {
  await new Promise((res) => setTimeout(res, ms));
  const { signal } = currentJob();
  return { aborted: signal.aborted, reason: signal.reason?.message ?? null, same: signal === currentJob().signal };
}
export async function afterTimer(ms, then) { await new Promise((res) => setTimeout(res, ms)); if (then === 'spin') for (;;) {} return 'ended'; }
`);
  return pathToFileURL(file).href;
}

function hosts(threads: number) {
  const pool = new Pool({ filename: join(dist, 'runner.js'), runtime: 'worker_threads', isolateWorkers: false, minThreads: threads, maxThreads: threads, concurrentTasksPerWorker: 1, useAtomics: false });
  return new ThreadHosts(pool, threads);
}

/** `fn` with `threads` pool threads, destroyed afterwards whatever happens. */
async function withHosts(threads: number, fn: (h: InstanceType<typeof ThreadHosts>) => Promise<void>): Promise<void> {
  const h = hosts(threads);
  try { await fn(h); } finally { await h.destroy(); }
}

const task = (url: string, exportName: string, id: string, args: unknown[] = []) =>
  ({ url, exportName, args, ctx: { id, fn: `jobs.mjs#${exportName}`, queue: 'default', attempt: 1, spool: tempDir() }, noOutput: true });

describe('ThreadHosts: jobs handed over in batches', () => {
  it('40 jobs handed over in one turn all come back, each with its own result, spread over both threads', async () => {
    const url = jobsModule();
    await withHosts(2, async (h) => {
      const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => h.run(task(url, 'echo', `j${i}`, [i]))));
      const results = outcomes.map((o) => { expect(o.ok, JSON.stringify(o)).toBe(true); return JSON.parse((o as { json: string }).json); });
      expect(results.map((r) => r.x)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      expect(new Set(results.map((r) => r.thread)).size).toBe(2);
    });
  });

  it('an abort asked for in the same turn as the start reaches the job (its start is posted first)', async () => {
    const url = jobsModule();
    await withHosts(1, async (h) => {
      const running = h.run(task(url, 'untilAborted', 'a1'));
      h.abort('a1', 'cancelled');
      const o = await Promise.race([running, new Promise((res) => setTimeout(() => res('no outcome within 5 s'), 5000))]);
      expect(o).toMatchObject({ ok: false, error: { message: 'stopped: cancelled' } });
    });
  });

  it('a kill terminates the thread: the killed job ends killed, the others on that thread bystander, and the next job runs on a new thread', async () => {
    const url = jobsModule();
    await withHosts(1, async (h) => {
      const spinning = h.run(task(url, 'spin', 's1'));
      const waiting = h.run(task(url, 'untilAborted', 's2'));
      await new Promise((res) => setTimeout(res, 300));
      h.kill('s1');
      expect(await spinning).toMatchObject({ ok: false, lost: 'killed' });
      expect(await waiting).toMatchObject({ ok: false, lost: 'bystander' });
      const after = await h.run(task(url, 'echo', 'e1', ['again']));
      expect(after.ok).toBe(true);
    });
  });

  it('a job that ended just before a job on its thread stopped yielding keeps its outcome: done, not a bystander run again', async () => {
    const url = jobsModule();
    await withHosts(1, async (h) => {
      // Both timers fire in the same turn of the thread's event loop, the first job's first: its outcome
      // must be posted before the second job's timer callback starts spinning.
      // The thread is up and the module loaded first: on a loaded machine its start alone can take longer
      // than any fixed wait. Then the first outcome is awaited (5 s at most) before the kill: had it not
      // been posted before the second job began to spin, it never comes, and the kill makes it a bystander.
      expect((await h.run(task(url, 'echo', 'warm', [0]))).ok).toBe(true);
      const ends = h.run(task(url, 'afterTimer', 't1', [100, 'return']));
      const spins = h.run(task(url, 'afterTimer', 't2', [100, 'spin']));
      await Promise.race([ends, new Promise((res) => setTimeout(res, 5000))]);
      h.kill('t2');
      expect(await ends).toMatchObject({ ok: true, json: '"ended"' });
      expect(await spins).toMatchObject({ ok: false, lost: 'killed' });
    });
  });

  it('a job handed to a thread still starting is started (its timeout counting) when the thread is up; at once on a thread up; a thread replacing a terminated one likewise', async () => {
    const url = jobsModule();
    // A runner slow to load (800 ms), as a pool thread's start is on a loaded machine.
    const slow = join(tempDir(), 'slow-runner.mjs');
    writeFileSync(slow, `const t = Date.now(); while (Date.now() - t < 800) {}\nexport { agent } from ${JSON.stringify(pathToFileURL(join(dist, 'runner.js')).href)};\n`);
    const pool = new Pool({ filename: slow, runtime: 'worker_threads', isolateWorkers: false, minThreads: 1, maxThreads: 1, concurrentTasksPerWorker: 1, useAtomics: false });
    const h = new ThreadHosts(pool, 1);
    try {
      let t0 = performance.now();
      let startedAfter = -1;
      const first = await h.run(task(url, 'echo', 'b1', [1]), () => { startedAfter = performance.now() - t0; });
      expect(first.ok).toBe(true);
      expect(startedAfter).toBeGreaterThanOrEqual(700);
      let atOnce = false;
      const second = h.run(task(url, 'echo', 'b2', [2]), () => { atOnce = true; });
      expect(atOnce).toBe(true);
      expect((await second).ok).toBe(true);
      // Terminated (a kill), the thread is replaced by one that starts as slowly: its next job waits for it.
      const spinning = h.run(task(url, 'spin', 's1'));
      await new Promise((res) => setImmediate(res));
      h.kill('s1');
      expect(await spinning).toMatchObject({ ok: false, lost: 'killed' });
      t0 = performance.now();
      startedAfter = -1;
      const third = h.run(task(url, 'echo', 'b3', [3]), () => { startedAfter = performance.now() - t0; });
      expect(startedAfter).toBe(-1);
      expect((await third).ok).toBe(true);
      expect(startedAfter).toBeGreaterThanOrEqual(700);
    } finally { await h.destroy(); }
  });

  it('a thread that never comes up: its job is started anyway once the grace has passed, and ends killed when the thread is terminated', async () => {
    const url = jobsModule();
    const stuck = join(tempDir(), 'stuck-runner.mjs');
    writeFileSync(stuck, `for (;;) {}\nexport { agent } from ${JSON.stringify(pathToFileURL(join(dist, 'runner.js')).href)};\n`);
    const pool = new Pool({ filename: stuck, runtime: 'worker_threads', isolateWorkers: false, minThreads: 1, maxThreads: 1, concurrentTasksPerWorker: 1, useAtomics: false });
    const h = new ThreadHosts(pool, 1, 300);
    try {
      const t0 = performance.now();
      let startedAfter = -1;
      const running = h.run(task(url, 'echo', 'n1', [1]), () => { startedAfter = performance.now() - t0; });
      for (let i = 0; i < 100 && startedAfter < 0; i++) await new Promise((res) => setTimeout(res, 50));
      expect(startedAfter).toBeGreaterThanOrEqual(250); // called, after the grace, with the thread still not up
      h.kill('n1');
      expect(await running).toMatchObject({ ok: false, lost: 'killed' });
    } finally { await h.destroy(); }
  });

  it('the job\'s signal is made when first read: read after an abort it is already aborted with the reason; read first it hears the abort; never aborted it stays clear', async () => {
    const url = jobsModule();
    for (const make of [() => hosts(1), () => new InlineHosts()]) {
      const h = make();
      try {
        const late = h.run(task(url, 'readsSignalLate', 'l1', [200]));
        const listening = h.run(task(url, 'untilAborted', 'l2'));
        const clear = h.run(task(url, 'readsSignalLate', 'l3', [50]));
        await new Promise((res) => setTimeout(res, 100));
        h.abort('l1', 'timeout');
        h.abort('l2', 'cancelled');
        expect(await late).toMatchObject({ ok: true, json: JSON.stringify({ aborted: true, reason: 'timeout', same: true }) });
        expect(await listening).toMatchObject({ ok: false, error: { message: 'stopped: cancelled' } });
        expect(await clear).toMatchObject({ ok: true, json: JSON.stringify({ aborted: false, reason: null, same: true }) });
      } finally { await h.destroy(); }
    }
  });
});
