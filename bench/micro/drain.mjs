// One in-process worker draining N pending no-op jobs: wall time, rate and CPU per job.
// Usage: node bench/micro/drain.mjs [N=5000] [concurrency=8] [threads|inline|processes] [relaxed|durable]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
const here = dirname(fileURLToPath(import.meta.url));
const { Spool } = await import(pathToFileURL(join(here, '..', '..', 'dist', 'index.js')).href);
const [n = 5000, c = 8, runtime = 'threads', mode = 'relaxed'] = process.argv.slice(2).map((x, i) => (i < 2 ? Number(x) : x));
const d = mkdtempSync(join(tmpdir(), 'zcq-micro-drain.'));
try {
  const spool = await Spool.open(d, { create: true, durable: mode === 'durable' });
  for (let i = 0; i < n; i++) {
    const id = `0m${String(i).padStart(9, '0')}-bench-x`;
    writeFileSync(join(d, 'pending', `${id}.json`), JSON.stringify({ v: 1, id, fn: 'noop.mjs#noop', args: [], queue: 'default', created: new Date().toISOString(), attempts: 0, history: [] }));
  }
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  const w = await spool.runWorker({ roots: [join(here, '..', 'jobs')], concurrency: c, runtime, exitWhenIdle: true, pollMs: 50 });
  const summary = await w.done;
  const ms = performance.now() - t0;
  const u = process.cpuUsage(u0);
  console.log(`${runtime} ${mode} c=${c}: ${summary.done}/${n} done in ${ms.toFixed(0)} ms = ${(n / ms * 1000).toFixed(0)} jobs/s; CPU ${((u.user + u.system) / n).toFixed(0)} us/job (user ${(u.user / 1000).toFixed(0)} ms, kernel ${(u.system / 1000).toFixed(0)} ms)`);
} finally {
  rmSync(d, { recursive: true, force: true });
}
