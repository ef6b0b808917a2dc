// put+drain with CPU accounting: 2 `zcq worker` processes (concurrency 8) and this process putting N
// no-op jobs one at a time; prints jobs/s and CPU per job of the producer and of each worker (/proc).
// Usage: node bench/micro/put-drain.mjs [N=3000] [relaxed|durable]
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const { Spool } = await import(pathToFileURL(join(root, 'dist', 'index.js')).href);
const n = Number(process.argv[2] ?? 3000);
const durable = process.argv[3] === 'durable';
const d = mkdtempSync(join(tmpdir(), 'zcq-micro-pd.'));
const spool = await Spool.open(d, { create: true, durable });
const args = ['--spool', d, ...(durable ? [] : ['--relaxed']), 'worker', '--root', join(here, '..', 'jobs'), '--concurrency', '8', '--poll', '100ms'];
const ws = [0, 1].map(() => spawn(join(root, 'bin', 'zcq'), args, { stdio: 'ignore' }));
const cpuMs = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
try {
  await new Promise((r) => setTimeout(r, 1500));
  const c0 = ws.map((w) => cpuMs(w.pid));
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await spool.put('noop.mjs#noop', []);
  // Format 2 files a finished job in done/QUEUE/; every job here is in queue 'default'.
  const doneCount = () => { try { return readdirSync(join(d, 'done', 'default')).length; } catch { return 0; } };
  while (doneCount() < n) await new Promise((r) => setTimeout(r, 20));
  const ms = performance.now() - t0;
  const u = process.cpuUsage(u0);
  console.log(`${durable ? 'durable' : 'relaxed'} put+drain ${(n / ms * 1000).toFixed(0)} jobs/s; CPU per job: producer ${((u.user + u.system) / n).toFixed(0)} us, workers ${ws.map((w, i) => ((cpuMs(w.pid) - c0[i]) * 1000 / n).toFixed(0)).join(' + ')} us`);
} finally {
  for (const w of ws) w.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  rmSync(d, { recursive: true, force: true });
}
