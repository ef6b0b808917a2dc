#!/usr/bin/env node
// Two builds' drains side by side, interleaved (old, new, new, old, ...), each after `sync; sleep 3`, on one
// folder or mount: the bench's own drain (bench/zcq.mjs: 2 worker processes × concurrency 8, jobs/s from spawn
// to the last job.done) from each checkout, so that both builds meet the same disk in the same hour.
//
//   node bench/micro/ab-drain.mjs OLD_CHECKOUT NEW_CHECKOUT DIR [N=500] [ROUNDS=6] [durable|relaxed]
//
// Each checkout needs `npm run build` done (and its node_modules, or a symlink to one).
import { execSync } from 'node:child_process';
import { resolve } from 'node:path';

const [oldTree, newTree, dir, n = '500', rounds = '6', mode = 'durable'] = process.argv.slice(2);
if (!oldTree || !newTree || !dir || !['durable', 'relaxed'].includes(mode)) {
  console.error('usage: node bench/micro/ab-drain.mjs OLD_CHECKOUT NEW_CHECKOUT DIR [N=500] [ROUNDS=6] [durable|relaxed]');
  process.exit(2);
}
const builds = {};
for (const [k, t] of [['old', oldTree], ['new', newTree]]) {
  const proc = await import(resolve(t, 'bench/lib/proc.mjs'));
  proc.setBaseTmp(dir);
  builds[k] = await import(resolve(t, 'bench/zcq.mjs'));
}
const res = { old: [], new: [] };
const cpu = { old: [], new: [] };
for (let r = 0; r < Number(rounds); r++) {
  for (const k of r % 2 ? ['new', 'old'] : ['old', 'new']) {
    execSync('sync; sleep 3');
    const x = await builds[k].drain({ n: Number(n), procs: 2, concurrency: 8, durable: mode === 'durable' });
    res[k].push(x.jobsPerSec);
    cpu[k].push(x.cpuUsPerJob);
    console.log(`round ${r + 1} ${k}: ${x.jobsPerSec.toFixed(1)} jobs/s, ${Math.round(x.cpuUsPerJob)} µs worker CPU a job`);
  }
}
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
console.log(`median jobs/s: old ${median(res.old).toFixed(1)}, new ${median(res.new).toFixed(1)}, new/old ${(median(res.new) / median(res.old)).toFixed(2)}×`);
// Each round's two runs share that minute's load: the median of the rounds' own ratios as well.
const paired = (a) => median(a.new.map((v, i) => v / a.old[i]));
console.log(`median worker CPU a job: old ${median(cpu.old).toFixed(0)} µs, new ${median(cpu.new).toFixed(0)} µs, new/old ${(median(cpu.new) / median(cpu.old)).toFixed(2)}×; paired (median of the rounds' ratios): jobs/s ${paired(res).toFixed(2)}×, CPU ${paired(cpu).toFixed(2)}×`);
process.exit(0);
