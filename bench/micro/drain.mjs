// One in-process worker draining N pending no-op jobs: wall time, rate and CPU per job.
// Usage: node bench/micro/drain.mjs [N=5000] [concurrency=8] [threads|inline|processes] [relaxed|durable] [PROFILE.cpuprofile]
// With a fifth argument, the main thread's CPU profile of the drain alone (not the set-up) is written there
// (node:inspector; open it in Chrome's DevTools, or summarise it with bench/micro/profile-top.mjs).
// Also prints the drain's CPU a job by thread (Linux /proc/self/task): the main thread, the threads that
// were there before the drain (V8's garbage-collector and compiler helpers, libuv's pool) and the ones it
// started (the job threads of --runtime threads), sampled every 50 ms since a thread's counts go with it.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
const here = dirname(fileURLToPath(import.meta.url));
const { Spool } = await import(pathToFileURL(join(here, '..', '..', 'dist', 'index.js')).href);
const [n = 5000, c = 8, runtime = 'threads', mode = 'relaxed', profileOut] = process.argv.slice(2).map((x, i) => (i < 2 ? Number(x) : x));
let session = null;
const post = (method, params) => new Promise((res, rej) => session.post(method, params, (e, r) => (e ? rej(e) : res(r))));
const d = mkdtempSync(join(tmpdir(), 'zcq-micro-drain.'));
try {
  const spool = await Spool.open(d, { create: true, durable: mode === 'durable' });
  // Straight into pending/default/ (format 2): a loose file in pending/ would first be adopted (read,
  // checked, renamed into its queue folder), which is not the worker's cost per job.
  mkdirSync(join(d, 'pending', 'default'), { recursive: true });
  for (let i = 0; i < n; i++) {
    const id = `0m${String(i).padStart(9, '0')}-bench-x`;
    writeFileSync(join(d, 'pending', 'default', `${id}.json`), JSON.stringify({ zcq: 1, id, fn: 'noop.mjs#noop', args: [], queue: 'default', created: new Date().toISOString(), attempts: 0, retries: 0, history: [] }));
  }
  if (profileOut) {
    const { Session } = await import('node:inspector');
    session = new Session();
    session.connect();
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: Number(process.env.PROFILE_US ?? 200) });
    await post('Profiler.start');
  }
  const TICK_US = 10_000; // USER_HZ is 100 on Linux
  const taskTimes = () => {
    const out = new Map();
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        out.set(tid, { user: Number(f[11]) * TICK_US, sys: Number(f[12]) * TICK_US });
      } catch { /* ended */ }
    }
    return out;
  };
  const before = taskTimes();
  const last = new Map();
  const sampler = setInterval(() => { for (const [tid, t] of taskTimes()) last.set(tid, t); }, 50);
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  const w = await spool.runWorker({ roots: [join(here, '..', 'jobs')], concurrency: c, runtime, ...(process.env.THREADS ? { threads: Number(process.env.THREADS) } : {}), exitWhenIdle: true, pollMs: 50 });
  const summary = await w.done;
  const ms = performance.now() - t0;
  const u = process.cpuUsage(u0);
  clearInterval(sampler);
  for (const [tid, t] of taskTimes()) last.set(tid, t);
  const by = { main: 0, helpers: 0, started: 0 };
  for (const [tid, t] of last) {
    const b = before.get(tid) ?? { user: 0, sys: 0 };
    const us = t.user + t.sys - b.user - b.sys;
    if (tid === String(process.pid)) by.main += us; else if (before.has(tid)) by.helpers += us; else by.started += us;
  }
  if (profileOut) writeFileSync(profileOut, JSON.stringify((await post('Profiler.stop')).profile));
  console.log(`${runtime} ${mode} c=${c}: ${summary.done}/${n} done in ${ms.toFixed(0)} ms = ${(n / ms * 1000).toFixed(0)} jobs/s; CPU ${((u.user + u.system) / n).toFixed(0)} us/job (user ${(u.user / 1000).toFixed(0)} ms, kernel ${(u.system / 1000).toFixed(0)} ms); by thread (10 ms ticks): main ${(by.main / n).toFixed(0)}, helpers (GC, libuv) ${(by.helpers / n).toFixed(0)}, started by the drain ${(by.started / n).toFixed(0)} us/job`);
} finally {
  rmSync(d, { recursive: true, force: true });
}
