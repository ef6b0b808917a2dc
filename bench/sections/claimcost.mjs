// Section `claimcost` (issue 13): what priorities and quotas add to a claim. One worker process drains n
// pending no-op jobs (bench/jobs/noop.mjs), in-line runtime, relaxed; the rate is taken between its first
// and its last job.done log line (start-up excluded). Three spools of the same n jobs:
//   plain      every job at priority 5 (pending/QUEUE/), no quota;
//   priorities the jobs spread over priorities 0..9 (ten folders the claimer reads in order);
//   +quota     the same, each job also holding a slot of a quota whose limit is never reached
//              (a slot created before the run and removed after it: two more file operations a job).
// Reported: jobs/s of each and the ratio of per-job time to plain (target ≤ 1.2); run alone, also the
// worker's CPU time (user + system, /proc/PID/stat) per job between the same two lines, which a shared,
// loaded machine disturbs far less than wall time, and each ratio taken inside one run (median of runs).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, DIST, JOBS } from '../zcq.mjs';
import { procCpuMs } from '../lib/proc.mjs';

export async function spoolWith(base, n, kind) {
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
    let first = null, last = null, count = 0, err = '', buf = '', cpuFirst = null, cpuLast = null;
    // The worker logs to stderr (JSON lines with --json).
    w.stderr.setEncoding('utf8').on('data', (d) => {
      err = (err + d).slice(-2000);
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 1);
        if (!line.includes('"job.done"')) continue;
        const t = Date.parse(JSON.parse(line).time);
        if (first === null) cpuFirst = procCpuMs(w.pid);
        first ??= t; last = t; count++;
        if (count === n) cpuLast = procCpuMs(w.pid);
      }
    });
    w.stdout.resume();
    w.on('exit', (code) => {
      if (code !== 0 || count < n) return reject(new Error(`worker exit ${code}, ${count}/${n} done: ${err.slice(-500)}`));
      const cpuMsPerJob = cpuFirst !== null && cpuLast !== null ? (cpuLast - cpuFirst) / Math.max(1, count - 1) : null;
      resolve({ rate: ((count - 1) * 1000) / Math.max(1, last - first), cpuMsPerJob });
    });
  });
}

const KINDS = ['plain', 'priorities', 'quota'];

/**
 * { plain, priorities, quota }: jobs/s of one run each; `cpu`: the worker's CPU ms per job of each. `run`
 * rotates the order. `together`: the three workers drain at the same time, so that whatever else loads the
 * machine loads all three alike (their CPU ratios are then the figure to read; their wall times share cores).
 */
export async function claimCost({ n, concurrency = 8, base, run = 0, together = false }) {
  const out = { cpu: {} };
  if (together) {
    const dirs = [];
    try {
      for (const kind of KINDS) dirs.push(await spoolWith(base, n, kind));
      const rs = await Promise.all(dirs.map((dir) => drain(dir, n, concurrency)));
      KINDS.forEach((kind, i) => { out[kind] = rs[i].rate; out.cpu[kind] = rs[i].cpuMsPerJob; });
    } finally { for (const dir of dirs) rmSync(join(dir, '..'), { recursive: true, force: true }); }
    return out;
  }
  for (let i = 0; i < KINDS.length; i++) {
    const kind = KINDS[(i + run) % KINDS.length];
    const dir = await spoolWith(base, n, kind);
    try {
      const r = await drain(dir, n, concurrency);
      out[kind] = r.rate;
      out.cpu[kind] = r.cpuMsPerJob;
    } finally { rmSync(join(dir, '..'), { recursive: true, force: true }); }
  }
  return out;
}

// node bench/sections/claimcost.mjs [--together] [n] [runs] [dir]: this section alone (spools made under dir,
// default the temp folder; --together: the three drains of a run at once, see claimCost).
if (import.meta.url === `file://${process.argv[1]}`) {
  const together = process.argv.includes('--together');
  const argv = process.argv.slice(2).filter((a) => a !== '--together');
  const n = Number(argv[0] ?? 20000);
  const runs = Number(argv[1] ?? 3);
  const base = argv[2];
  const all = Object.fromEntries(KINDS.map((k) => [k, { rate: [], wallRatio: [], cpu: [], cpuRatio: [] }]));
  for (let r = 0; r < runs; r++) {
    const x = await claimCost({ n, run: r, base, together });
    for (const k of KINDS) {
      all[k].rate.push(x[k]);
      all[k].wallRatio.push(x.plain / x[k]);
      if (x.cpu[k] !== null && x.cpu.plain !== null) { all[k].cpu.push(x.cpu[k]); all[k].cpuRatio.push(x.cpu[k] / x.cpu.plain); }
    }
  }
  const med = (a) => a.length === 0 ? NaN : [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const f2 = (a) => a.map((v) => v.toFixed(2)).join(', ');
  const label = { plain: 'plain', priorities: 'priorities', quota: 'priorities+quota' };
  for (const k of KINDS) {
    const a = all[k];
    console.log(`${label[k].padEnd(16)} ${Math.round(med(a.rate))} jobs/s  per-job time ×${med(a.wallRatio).toFixed(2)} of plain (per run: ${f2(a.wallRatio)})  CPU ${med(a.cpu).toFixed(3)} ms/job ×${med(a.cpuRatio).toFixed(2)} of plain (per run: ${f2(a.cpuRatio)})`);
  }
  // The figure issue 13 asks for: a claim with priorities and a quota on, against a plain claim. CPU time is
  // the one to trust on a shared machine (wall time moves with whatever else runs).
  const q = all.quota;
  const cpuRatio = med(q.cpuRatio);
  console.log(`claim cost, priorities + quota vs plain: CPU ×${cpuRatio.toFixed(2)}, time ×${med(q.wallRatio).toFixed(2)} (medians of ${runs} ${together ? 'runs of the three at once' : 'interleaved runs'} of ${n} jobs; target ≤ 1.2: ${cpuRatio <= 1.2 ? 'met' : 'NOT met'} by CPU)`);
}
