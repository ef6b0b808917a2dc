// Section `claimcost` (issue 13): what priorities and quotas add to a claim. One worker process drains n
// pending no-op jobs (bench/jobs/noop.mjs), in-line runtime, relaxed; the rate is taken between its first
// and its last job.done log line (start-up excluded). Three spools of the same n jobs:
//   plain      every job at priority 5 (pending/QUEUE/), no quota;
//   priorities the jobs spread over priorities 0..9 (ten folders the claimer reads in order);
//   +quota     the same, each job also holding a slot of a quota whose limit is never reached
//              (a slot created before the run and removed after it: two more file operations a job).
// Reported: jobs/s of each and the ratio of per-job time to plain (target ≤ 1.2).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, DIST, JOBS } from '../zcq.mjs';

async function spoolWith(base, n, kind) {
  const { Spool } = await import(DIST);
  const dir = join(mkdtempSync(join(base ?? tmpdir(), 'zcq-cc-')), 'spool');
  const spool = await Spool.init(dir, { durable: false });
  if (kind === 'quota') await spool.quota.set('cc', 10_000);
  const items = [];
  for (let i = 0; i < n; i++) {
    const item = { fn: 'noop.mjs#noop', args: [] };
    if (kind !== 'plain') item.priority = i % 10;
    if (kind === 'quota') item.quota = 'cc';
    items.push(item);
  }
  for (let i = 0; i < n; i += 5000) await spool.putMany(items.slice(i, i + 5000));
  await spool.close?.();
  return dir;
}

function drain(dir, n, concurrency) {
  return new Promise((resolve, reject) => {
    const w = spawn(process.execPath, [BIN, '--json', '--relaxed', '--spool', dir, 'worker', '--root', JOBS, '--runtime', 'inline',
      '--concurrency', String(concurrency), '--exit-when-idle', '--no-scheduler', '--poll', '200ms'], { cwd: JOBS, stdio: ['ignore', 'pipe', 'pipe'] });
    let first = null, last = null, count = 0, err = '', buf = '';
    // The worker logs to stderr (JSON lines with --json).
    w.stderr.setEncoding('utf8').on('data', (d) => {
      err = (err + d).slice(-2000);
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 1);
        if (!line.includes('"job.done"')) continue;
        const t = Date.parse(JSON.parse(line).time);
        first ??= t; last = t; count++;
      }
    });
    w.stdout.resume();
    w.on('exit', (code) => {
      if (code !== 0 || count < n) return reject(new Error(`worker exit ${code}, ${count}/${n} done: ${err.slice(-500)}`));
      resolve(((count - 1) * 1000) / Math.max(1, last - first));
    });
  });
}

/** { plain, priorities, quota }: jobs/s of one run each. */
export async function claimCost({ n, concurrency = 8, base }) {
  const out = {};
  for (const kind of ['plain', 'priorities', 'quota']) {
    const dir = await spoolWith(base, n, kind);
    try { out[kind] = await drain(dir, n, concurrency); } finally { rmSync(join(dir, '..'), { recursive: true, force: true }); }
  }
  return out;
}

// node bench/sections/claimcost.mjs [n] [runs]: this section alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 20000);
  const runs = Number(process.argv[3] ?? 3);
  const all = { plain: [], priorities: [], quota: [] };
  for (let r = 0; r < runs; r++) { const x = await claimCost({ n }); for (const k of Object.keys(all)) all[k].push(x[k]); }
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const p = med(all.plain);
  for (const k of Object.keys(all)) console.log(`${k.padEnd(10)} ${Math.round(med(all[k]))} jobs/s  per-job time ×${(p / med(all[k])).toFixed(2)} of plain  (runs: ${all[k].map(Math.round).join(', ')})`);
}
