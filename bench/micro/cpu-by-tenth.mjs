// A drain's CPU a job over its course, by tenth of the jobs: PROCS `zcq worker` processes (bin/zcq run as an
// executable, as the bench starts them, so its node flags apply) against the bench's bare synchronous loop
// (bench/peers/fsloop.mjs, 1 process, spare finish: the CPU baseline of the issue-16 table), in turns, each
// after `sync; sleep 3`. A worker's first jobs cost more than its later ones (start-up, the JIT, the first
// scans), and so do the bare loop's: the last half of a long drain is where both are warm.
//
//   node bench/micro/cpu-by-tenth.mjs [N=20000] [PROCS=1] [inline|threads] [relaxed|durable] [ROUNDS=2]
//
// Per round: µs of CPU a job (user + kernel, all threads of the worker processes; the bare loop's
// getrusage) in each tenth of the jobs, then the 10–90 % figure (as the bench's steadyCpuUsPerJob) and the
// last half (50–100 %). At the end the medians over the rounds and their ratio.
import { execSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runFsloop } from '../peers/fsloop.mjs';
import { procCpuMs } from '../lib/proc.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', '..', 'bin', 'zcq');
const { Spool } = await import(pathToFileURL(join(here, '..', '..', 'dist', 'index.js')).href);
const [nS = '20000', procsS = '1', runtime = 'inline', mode = 'relaxed', roundsS = '2'] = process.argv.slice(2);
const n = Number(nS);
const procs = Number(procsS);
const rounds = Number(roundsS);
if (!(n >= 1000) || !(procs >= 1) || !['inline', 'threads', 'processes'].includes(runtime) || !['relaxed', 'durable'].includes(mode) || !(rounds >= 1)) {
  console.error('usage: node bench/micro/cpu-by-tenth.mjs [N>=1000] [PROCS] [inline|threads|processes] [relaxed|durable] [ROUNDS]');
  process.exit(2);
}
const durable = mode === 'durable';
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

/** From cumulative samples [{ done, cpuUs }] (first at done 0): µs a job per tenth, 10–90 %, 50–100 % (to the first sample that saw all done). */
function figures(trail) {
  const at = (frac) => trail.find((s) => s.done >= frac * n) ?? trail[trail.length - 1];
  const per = (a, b) => (b.cpuUs - a.cpuUs) / Math.max(1, b.done - a.done);
  const tenths = [];
  for (let k = 0; k < 10; k++) tenths.push(per(k === 0 ? trail[0] : at(k / 10), at((k + 1) / 10)));
  return { tenths, mid: per(at(0.1), at(0.9)), lastHalf: per(at(0.5), at(1)) };
}

function cpuUsOf(pid) {
  const ms = procCpuMs(pid);
  return ms === null ? null : ms * 1000;
}

async function zcqRound() {
  const d = mkdtempSync(join(tmpdir(), 'zcq-tenth.'));
  try {
    await Spool.open(d, { create: true, durable });
    mkdirSync(join(d, 'pending', 'default'), { recursive: true });
    for (let i = 0; i < n; i++) {
      const id = `0m${String(i).padStart(9, '0')}-tenth-x`;
      writeFileSync(join(d, 'pending', 'default', `${id}.json`), JSON.stringify({ zcq: 1, id, fn: 'noop.mjs#noop', args: [], queue: 'default', created: new Date().toISOString(), attempts: 0, retries: 0, history: [] }));
    }
    execSync('sync; sleep 3');
    const args = ['--spool', d, ...(durable ? [] : ['--relaxed']), 'worker', '--root', join(here, '..', 'jobs'), '-c', '8', '--runtime', runtime, '--exit-when-idle', '--poll', '1s'];
    const ws = Array.from({ length: procs }, () => spawn(BIN, args, { stdio: 'ignore' }));
    const last = new Map();
    const trail = [];
    const sample = () => {
      let done = 0;
      try { done = readdirSync(join(d, 'done', 'default')).length; } catch { /* not made yet */ }
      let cpuUs = 0;
      for (const w of ws) { const c = cpuUsOf(w.pid); if (c !== null) last.set(w.pid, c); cpuUs += last.get(w.pid) ?? 0; }
      trail.push({ done, cpuUs });
    };
    const timer = setInterval(sample, 50);
    await Promise.all(ws.map((w) => new Promise((res) => w.once('exit', res))));
    clearInterval(timer);
    if (trail.length === 0 || trail[trail.length - 1].done < n) sample();
    if (trail[trail.length - 1].done < n) throw new Error(`zcq drained ${trail[trail.length - 1].done} of ${n}`);
    trail.unshift({ done: 0, cpuUs: 0 });
    return figures(trail);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

async function bareRound() {
  execSync('sync; sleep 3');
  process.env.ZCQ_FSLOOP_TENTHS = '1';
  let r;
  try { r = await runFsloop({ n, procs: 1, loops: 0, durable, phase: 'drain', spare: true }); } finally { delete process.env.ZCQ_FSLOOP_TENTHS; }
  const trail = [{ done: 0, cpuUs: 0 }, ...r.tenths[0], { done: n, cpuUs: r.cpuUsPerJob * n }];
  return figures(trail);
}

const show = (f) => `${f.tenths.map((x) => x.toFixed(0)).join(' ')} | 10–90 % ${f.mid.toFixed(0)} | last half ${f.lastHalf.toFixed(0)}`;
const got = { zcq: [], bare: [] };
for (let r = 0; r < rounds; r++) {
  for (const k of r % 2 ? ['bare', 'zcq'] : ['zcq', 'bare']) {
    const f = k === 'zcq' ? await zcqRound() : await bareRound();
    got[k].push(f);
    console.log(`round ${r + 1} ${k === 'zcq' ? `zcq ${procs} worker${procs > 1 ? 's' : ''} ${runtime}` : 'bare 1×1 sync loop'} ${mode}, µs CPU a job by tenth: ${show(f)}`);
  }
}
const zm = median(got.zcq.map((f) => f.mid)), bm = median(got.bare.map((f) => f.mid));
const zl = median(got.zcq.map((f) => f.lastHalf)), bl = median(got.bare.map((f) => f.lastHalf));
console.log(`medians of ${rounds}: 10–90 % zcq ${zm.toFixed(0)} / bare ${bm.toFixed(0)} = ${(zm / bm).toFixed(2)}×; last half zcq ${zl.toFixed(0)} / bare ${bl.toFixed(0)} = ${(zl / bl).toFixed(2)}×`);
process.exit(0);
