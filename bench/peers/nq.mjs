// CLI peers: wall time of a shell script that enqueues `count` jobs with nq(1),
// and of one that starts `node -e 0` `count` times (the floor for any Node CLI).
// timeScript() is shared with the zcq side (`zcq put` ×count).
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { hasCommand, makeTmp } from '../lib/proc.mjs';
import { median } from '../lib/stats.mjs';

const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** A bash script running `line` count times (unrolled), stdout discarded. */
export function writeLoopScript(path, line, count, env = {}) {
  const lines = ['#!/bin/bash', 'set -e', 'exec >/dev/null'];
  for (const [k, v] of Object.entries(env)) lines.push(`export ${k}=${shq(v)}`);
  for (let i = 0; i < count; i++) lines.push(line);
  writeFileSync(path, lines.join('\n') + '\n', { mode: 0o755 });
  return path;
}

/**
 * Wall time (ms) of `bash script`, `runs` times; hyperfine when installed (no shell
 * in between: -N), else our own clock. prepare: shell command run before each run (untimed).
 * Returns { medianMs, timesMs, tool }.
 */
export function timeScript(script, { runs = 3, prepare = null } = {}) {
  if (hasCommand('hyperfine')) {
    const out = join(makeTmp('hyperfine'), 'out.json');
    const args = ['-N', '--runs', String(runs), '--style', 'none', '--export-json', out];
    if (prepare) args.push('--prepare', `sh -c ${shq(prepare + '; true')}`);
    args.push(`bash ${script}`);
    const r = spawnSync('hyperfine', args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`hyperfine failed: ${r.stderr?.slice(-800)}`);
    const res = JSON.parse(readFileSync(out, 'utf8')).results[0];
    if (res.exit_codes?.some((c) => c !== 0)) throw new Error(`script ${script} exited non-zero`);
    return { medianMs: res.median * 1000, timesMs: res.times.map((t) => t * 1000), tool: 'hyperfine' };
  }
  // CPU time (user + kernel of the script and every process it ran) by /usr/bin/time when installed: on a
  // loaded machine it moves far less than wall time.
  const timeBin = hasCommand('/usr/bin/time') ? '/usr/bin/time' : null;
  const cpuOut = timeBin ? join(makeTmp('cpu'), 'time.txt') : null;
  const times = [];
  const cpus = [];
  for (let i = 0; i < runs; i++) {
    if (prepare) spawnSync('sh', ['-c', prepare], { stdio: 'ignore' });
    const t0 = process.hrtime.bigint();
    const r = timeBin
      ? spawnSync(timeBin, ['-f', '%U %S', '-o', cpuOut, 'bash', script], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' })
      : spawnSync('bash', [script], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`script ${script} failed: ${r.stderr?.slice(-800)}`);
    times.push(ms);
    if (timeBin) {
      const [u, sys] = readFileSync(cpuOut, 'utf8').trim().split('\n').pop().split(' ').map(Number);
      cpus.push((u + sys) * 1000);
    }
  }
  return { medianMs: median(times), timesMs: times, cpuMedianMs: timeBin ? median(cpus) : null, tool: 'own clock' };
}

/** `node -e 0` ×count: total ms (median of runs). */
export function nodeFloor({ count = 100, runs = 3 } = {}) {
  const dir = makeTmp('node-floor');
  const script = writeLoopScript(join(dir, 'node.sh'), `${shq(process.execPath)} -e 0`, count);
  return timeScript(script, { runs });
}

/**
 * `nq true` ×count (NQDIR in a temp folder): total ms (median of runs). Before each
 * run, `nq -w` waits for the jobs of the previous run and their files are removed,
 * so runs do not overlap.
 */
export function nqEnqueue({ count = 100, runs = 3 } = {}) {
  if (!hasCommand('nq')) throw new Error('nq is not installed');
  const dir = makeTmp('nq');
  const nqdir = join(dir, 'q');
  mkdirSync(nqdir);
  const script = writeLoopScript(join(dir, 'nq.sh'), 'nq true', count, { NQDIR: nqdir });
  const prepare = `NQDIR=${shq(nqdir)} nq -w >/dev/null 2>&1; rm -f ${shq(nqdir)}/,*`;
  const r = timeScript(script, { runs, prepare });
  spawnSync('sh', ['-c', prepare], { stdio: 'ignore' });
  return r;
}
