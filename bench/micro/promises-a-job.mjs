#!/usr/bin/env node
// Promises a job in one in-process worker's drain (bench/micro/drain.mjs), counted by an async_hooks init hook
// (promise-hook.mjs): drains of N and 2N no-op jobs, the difference over N, so that start-up and shut-down
// cancel out. Each promise pays the hooks AsyncLocalStorage turns on (the job context): fewer is cheaper.
//
//   node bench/micro/promises-a-job.mjs [N=2000] [inline|threads] [relaxed|durable]
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const [n = 2000, runtime = 'inline', mode = 'relaxed'] = process.argv.slice(2).map((x, i) => (i === 0 ? Number(x) : x));
const promises = (jobs) => {
  const r = spawnSync(process.execPath, ['--import', join(here, 'promise-hook.mjs'), join(here, 'drain.mjs'), String(jobs), '8', runtime, mode], { encoding: 'utf8' });
  const m = /^promises: (\d+)$/m.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`drain of ${jobs} jobs failed (exit ${r.status}): ${r.stderr.trim()}`);
  return Number(m[1]);
};
const one = promises(n);
const two = promises(2 * n);
console.log(`${runtime} ${mode}: ${((two - one) / n).toFixed(1)} promises a job (${one} for ${n} jobs, ${two} for ${2 * n})`);
