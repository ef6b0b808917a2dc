// One run of the bench's bare loops (bench/peers/fsloop.mjs, runFsloopBoth): put+drain, then drain of the same
// files, jobs/s and CPU per job (all the loop processes). Usage:
//   node bench/micro/fsloop.mjs PROCS LOOPS N SPARE DURABLE     e.g. 1 0 5000 1 0: one sync loop, spare inodes, relaxed
// LOOPS 0 = one synchronous loop per process; SPARE 1 = format 2's finish (no file created per finish).
import { runFsloopBoth } from '../peers/fsloop.mjs';
const [procs, loops, n, spare, durable] = process.argv.slice(2).map(Number);
const r = await runFsloopBoth({ n, procs, loops, durable: !!durable, spare: !!spare });
console.log(`fsloop ${procs}x${loops || 'sync'} spare=${spare} durable=${durable} n=${n}: full ${r.full.jobsPerSec.toFixed(0)} jobs/s (${r.full.cpuUsPerJob.toFixed(0)} us CPU/job), drain ${r.drain.jobsPerSec.toFixed(0)} jobs/s (${r.drain.cpuUsPerJob.toFixed(0)} us CPU/job)`);
process.exit(0);
