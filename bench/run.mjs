#!/usr/bin/env node
// zcq benchmark harness: runs zcq and its peers in the same run and prints one
// table of medians with zcq/peer ratios (also written to bench/results.md).
//
//   node bench/run.mjs [--quick] [--only=throughput,latency,backlog,queues,prune,cli,memory,syscalls,composite,dashboard,claimcost,rig]
//                      [--runs=N] [--dir=/path/for/temp/files] [--out=bench/results.md]
import { cpus, totalmem, release, loadavg, hostname } from 'node:os';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, p50, p99, fmtNum, fmtRatio, markdownTable } from './lib/stats.mjs';
import { setBaseTmp, spawnTracked, stopChild, procMem, sleep, log, hasCommand } from './lib/proc.mjs';
import * as zcq from './zcq.mjs';
import { claimCost } from './sections/claimcost.mjs';
import { startRedis, bullPutDrain, bullDrain, bullLatency, bullMemory, bullSyscalls } from './peers/bullmq.mjs';
import { runFsloopBoth, fsloopSyscalls, fsloopMetaOps } from './peers/fsloop.mjs';
import { describeOps, totalOps } from './lib/metaops.mjs';
import { graphileUnavailable, pgBin, startPostgres, migrate as graphileMigrate, graphilePutDrain, graphileDrain } from './peers/graphile.mjs';
import { nodeFloor, nqEnqueue } from './peers/nq.mjs';
import { dashboardBench } from './sections/dashboard.mjs';
import * as compositeSection from './sections/composite.mjs';
import * as rigSection from './sections/rig.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SECTIONS = ['throughput', 'latency', 'backlog', 'queues', 'prune', 'cli', 'memory', 'syscalls', 'composite', 'dashboard', 'claimcost', 'rig'];

// ---------------------------------------------------------------- options

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const opt = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=').slice(1).join('=');
for (const a of argv) {
  if (!/^--(quick|only=.*|runs=\d+|dir=.*|out=.*|help)$/.test(a)) {
    console.error(`unknown argument ${a}\nusage: node bench/run.mjs [--quick] [--only=${SECTIONS.join(',')}] [--runs=N] [--dir=PATH] [--out=FILE]`);
    process.exit(2);
  }
}
if (flag('help')) {
  console.log(`usage: node bench/run.mjs [--quick] [--only=${SECTIONS.join(',')}] [--runs=N] [--dir=PATH] [--out=FILE]`);
  process.exit(0);
}
const QUICK = flag('quick');
const R = Number(opt('runs') ?? (QUICK ? 1 : 3));
const ONLY = opt('only') ? opt('only').split(',') : SECTIONS;
for (const s of ONLY) if (!SECTIONS.includes(s)) {
  console.error(`unknown section ${s}; sections: ${SECTIONS.join(', ')}`);
  process.exit(2);
}
// What the chosen sections need beyond Node (Debian package = command). A missing one stops the run
// at once with one line naming what to install, instead of an "error" cell per figure after minutes of
// work. hyperfine and nq are optional (the cli section times with its own clock without hyperfine, and
// shows nq beside zcq put only when it is installed).
const NEEDS = { 'redis-server': ['throughput', 'latency', 'memory', 'syscalls', 'composite'], strace: ['syscalls'] };
const missing = Object.keys(NEEDS).filter((cmd) => NEEDS[cmd].some((s) => ONLY.includes(s)) && !hasCommand(cmd));
if (missing.length > 0) {
  console.error(`bench: missing ${missing.join(', ')}; install: sudo apt-get install ${missing.join(' ')} (optional: hyperfine), or choose sections with --only=${SECTIONS.filter((s) => !Object.entries(NEEDS).some(([c, ss]) => missing.includes(c) && ss.includes(s))).join(',')}`);
  process.exit(2);
}
// The second peer (graphile-worker on PostgreSQL) needs Debian's PostgreSQL server and the npm modules.
if (ONLY.includes('throughput') && graphileUnavailable()) {
  console.error(`bench: ${graphileUnavailable()}; or choose sections with --only=${SECTIONS.filter((s) => s !== 'throughput').join(',')}`);
  process.exit(2);
}
const OUT = resolve(opt('out') ?? join(here, 'results.md'));
const BASE = setBaseTmp(opt('dir'));

const C = QUICK
  ? { tpN: 2000, latN: 50, backlog: [1000, 10000], backlogJobs: 1000, queueBulk: [1000, 10000], urgent: 20, pruneN: 20000, pruneJobs: 200, cliN: 10, memPending: 10000, memSec: 3, strN: 500, bulk: 100, dash: [1000, 100000], dashDrain: 5000 }
  : { tpN: 20000, latN: 200, backlog: [1000, 100000, 1000000], backlogJobs: 1000, queueBulk: [1000, 100000], urgent: 20, pruneN: 1000000, pruneJobs: 200, cliN: 100, memPending: 100000, memSec: 5, strN: 2000, bulk: 100, dash: [1000, 1000000], dashDrain: 10000 };
const PROCS = 2;
const CONC = 8;
// The synchronous fsloop variants run a quarter of the jobs (a steady rate, to save time).
const SYNC_N = Math.max(1000, Math.round(C.tpN / 4));
// graphile-worker's one-at-a-time put+drain commits each add (~10 ms with synchronous_commit): a quarter of the jobs.
const GW_PUT_N = Math.max(500, Math.round(C.tpN / 4));
// The bare loops whose best is the floor (bench/peers/fsloop.mjs). spare: finish rewrites a spare inode and
// links the claimed one as the next spare (format 2's finish) instead of creating a file per job.
const FLOORS = [
  { key: 'fs', procs: PROCS, loops: CONC, spare: true, label: `${PROCS}×${CONC} async loops` },
  { key: 'fssync', procs: PROCS, loops: 0, spare: true, label: `${PROCS}×1 sync loop` },
  { key: 'fssync1', procs: 1, loops: 0, spare: true, label: '1×1 sync loop' },
  { key: 'fscreate', procs: 1, loops: 0, spare: false, label: '1×1 sync loop, a new file per finish' },
];
/** The floor: the best bare loop's median (and its label), per mode and phase. */
function floorOf(m, phase) {
  let best = null;
  for (const f of FLOORS) {
    const v = val(`tp.${f.key}.${m}.${phase}`);
    if (v !== null && (best === null || v > best.v)) best = { v, label: f.label };
  }
  return best;
}

// ---------------------------------------------------------------- results store

const samples = new Map(); // key -> number[]
const errors = new Map(); // key -> message
const notes = [];
const rec = (key, v) => {
  if (v === null || v === undefined || !Number.isFinite(v)) return;
  if (!samples.has(key)) samples.set(key, []);
  samples.get(key).push(v);
};
const val = (key) => median(samples.get(key));

/** Run fn; on error remember the message for every key it was to fill. */
async function attempt(keys, what, fn) {
  const t0 = Date.now();
  try {
    const r = await fn();
    if (r && typeof r === 'object' && Number.isFinite(r.jobsPerSec)) log(`  ${what}: ${fmtNum(r.jobsPerSec)} jobs/s (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    else if (keys.length || typeof keys === 'string') log(`  ${what}: done (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return r;
  } catch (e) {
    const msg = String(e?.message ?? e).split('\n')[0].slice(0, 300);
    log(`  ! ${what}: ${msg}`);
    for (const k of [].concat(keys)) if (!errors.has(k)) errors.set(k, `${what}: ${msg}`);
    return null;
  }
}

const ZCQ_MISSING = zcq.unavailable();
/** zcq measurement: skipped with a recorded reason while zcq is not built. */
async function z(keys, what, fn) {
  if (ZCQ_MISSING) {
    for (const k of [].concat(keys)) if (!errors.has(k)) errors.set(k, ZCQ_MISSING);
    return null;
  }
  return attempt(keys, what, fn);
}

async function withServers(modes, fn) {
  const servers = {};
  try {
    for (const m of modes) servers[m] = await startRedis(m);
    return await fn(servers);
  } finally {
    for (const s of Object.values(servers)) await s.stop().catch(() => {});
  }
}

const modeName = (durable) => (durable ? 'durable' : 'relaxed');
const BULL_PAIR = { durable: 'always', relaxed: 'default' };
const BULL_LABEL = { always: 'BullMQ, AOF fsync always', default: 'BullMQ, no persistence' };

// ---------------------------------------------------------------- sections

async function throughput() {
  const n = C.tpN;
  const pg = await startPostgres();
  try {
    await graphileMigrate(pg);
    await throughputRuns(n, pg);
  } finally {
    await pg.stop();
  }
}

async function throughputRuns(n, pg) {
  await withServers(['always', 'default'], async (redis) => {
    for (let r = 1; r <= R; r++) {
      log(`throughput run ${r}/${R} (${n.toLocaleString('en-US')} jobs)`);
      for (const durable of [true, false]) {
        const m = modeName(durable);
        const a = await z([`tp.zcq.${m}.putdrain`, `tp.zcq.${m}.put`], `zcq ${m} put+drain`, () => zcq.putDrain({ n, procs: PROCS, concurrency: CONC, durable }));
        if (a) rec(`tp.zcq.${m}.putdrain`, a.jobsPerSec), rec(`tp.zcq.${m}.put`, a.putPerSec), rec(`tp.zcq.${m}.putdraincpu`, a.cpuUsPerJob);
        const c = await z([`tp.zcq.${m}.bulk`, `tp.zcq.${m}.bulkput`], `zcq ${m} putMany+drain`, () => zcq.putDrain({ n, procs: PROCS, concurrency: CONC, durable, bulk: C.bulk }));
        if (c) rec(`tp.zcq.${m}.bulk`, c.jobsPerSec), rec(`tp.zcq.${m}.bulkput`, c.putPerSec);
        const b = await z([`tp.zcq.${m}.drain`, `tp.zcq.${m}.draincpu`], `zcq ${m} drain`, () => zcq.drain({ n, procs: PROCS, concurrency: CONC, durable }));
        if (b) rec(`tp.zcq.${m}.drain`, b.jobsPerSec), rec(`tp.zcq.${m}.draincpu`, b.cpuUsPerJob), log(`    zcq ${m} drain: ${fmtNum(b.cpuUsPerJob)} µs CPU/job (workers, all threads, steady state: between 10 % and 90 % done)`);
        // The like-for-like pairing with BullMQ, whose processor function runs on its worker's own thread.
        const ia = await z([`tp.zcqi.${m}.putdrain`], `zcq ${m} --runtime inline put+drain`, () => zcq.putDrain({ n, procs: PROCS, concurrency: CONC, durable, runtime: 'inline' }));
        if (ia) rec(`tp.zcqi.${m}.putdrain`, ia.jobsPerSec), rec(`tp.zcqi.${m}.putdraincpu`, ia.cpuUsPerJob);
        const ib = await z([`tp.zcqi.${m}.drain`, `tp.zcqi.${m}.draincpu`], `zcq ${m} --runtime inline drain`, () => zcq.drain({ n, procs: PROCS, concurrency: CONC, durable, runtime: 'inline' }));
        if (ib) rec(`tp.zcqi.${m}.drain`, ib.jobsPerSec), rec(`tp.zcqi.${m}.draincpu`, ib.cpuUsPerJob), log(`    zcq ${m} --runtime inline drain: ${fmtNum(ib.cpuUsPerJob)} µs CPU/job`);
      }
      for (const mode of ['always', 'default']) {
        const a = await attempt([`tp.bull.${mode}.putdrain`, `tp.bull.${mode}.put`], `BullMQ ${mode} put+drain`, () => bullPutDrain(redis[mode], { n, workers: PROCS, concurrency: CONC }));
        if (a) rec(`tp.bull.${mode}.putdrain`, a.jobsPerSec), rec(`tp.bull.${mode}.put`, a.putPerSec);
        const b = await attempt([`tp.bull.${mode}.bulk`, `tp.bull.${mode}.bulkput`], `BullMQ ${mode} addBulk+drain`, () => bullPutDrain(redis[mode], { n, workers: PROCS, concurrency: CONC, bulk: C.bulk }));
        if (b) rec(`tp.bull.${mode}.bulk`, b.jobsPerSec), rec(`tp.bull.${mode}.bulkput`, b.putPerSec);
        const c = await attempt(`tp.bull.${mode}.drain`, `BullMQ ${mode} drain`, () => bullDrain(redis[mode], { n, workers: PROCS, concurrency: CONC }));
        if (c) rec(`tp.bull.${mode}.drain`, c.jobsPerSec);
      }
      {
        const a = await attempt([`tp.gw.putdrain`, `tp.gw.put`], 'graphile-worker put+drain', () => graphilePutDrain(pg, { n: GW_PUT_N, workers: PROCS, concurrency: CONC }));
        if (a) rec('tp.gw.putdrain', a.jobsPerSec), rec('tp.gw.put', a.putPerSec);
        const b = await attempt(['tp.gw.bulk', 'tp.gw.bulkput'], 'graphile-worker addJobs+drain', () => graphilePutDrain(pg, { n, workers: PROCS, concurrency: CONC, bulk: C.bulk }));
        if (b) rec('tp.gw.bulk', b.jobsPerSec), rec('tp.gw.bulkput', b.putPerSec);
        const c = await attempt('tp.gw.drain', 'graphile-worker drain', () => graphileDrain(pg, { n, workers: PROCS, concurrency: CONC }));
        if (c) rec('tp.gw.drain', c.jobsPerSec);
      }
      for (const durable of [true, false]) {
        const m = modeName(durable);
        for (const f of FLOORS) {
          const what = `fsloop ${m} ${f.label}`;
          const keys = [`tp.${f.key}.${m}.full`, `tp.${f.key}.${m}.drain`, `tp.${f.key}.${m}.draincpu`];
          const a = await attempt(keys, what, () => runFsloopBoth({ n: f.loops ? n : SYNC_N, procs: f.procs, loops: f.loops, durable, spare: f.spare }));
          if (a) {
            rec(keys[0], a.full.jobsPerSec), rec(keys[1], a.drain.jobsPerSec), rec(keys[2], a.drain.cpuUsPerJob);
            log(`    ${what}: full ${fmtNum(a.full.jobsPerSec)} jobs/s, drain ${fmtNum(a.drain.jobsPerSec)} jobs/s, ${fmtNum(a.drain.cpuUsPerJob)} µs CPU/job`);
          }
        }
      }
    }
  });
}

async function latency() {
  const n = C.latN;
  await withServers(['always', 'default'], async (redis) => {
    for (let r = 1; r <= R; r++) {
      log(`latency run ${r}/${R} (${n} jobs, one at a time)`);
      for (const durable of [true, false]) {
        const m = modeName(durable);
        const keys = ['start', 'doneApi', 'doneFs'].flatMap((k) => [`lat.zcq.${m}.${k}.p50`, `lat.zcq.${m}.${k}.p99`]);
        const a = await z(keys, `zcq ${m} latency`, () => zcq.latency({ n, durable }));
        if (a) {
          for (const k of ['start', 'doneApi', 'doneFs']) rec(`lat.zcq.${m}.${k}.p50`, p50(a[k])), rec(`lat.zcq.${m}.${k}.p99`, p99(a[k]));
          if (a.count < n) notes.push(`zcq ${m} latency run ${r}: only ${a.count}/${n} jobs within the time limit.`);
        }
      }
      for (const mode of ['always', 'default']) {
        const keys = ['start', 'done'].flatMap((k) => [`lat.bull.${mode}.${k}.p50`, `lat.bull.${mode}.${k}.p99`]);
        const a = await attempt(keys, `BullMQ ${mode} latency`, () => bullLatency(redis[mode], { n }));
        if (a) for (const k of ['start', 'done']) rec(`lat.bull.${mode}.${k}.p50`, p50(a[k])), rec(`lat.bull.${mode}.${k}.p99`, p99(a[k]));
      }
    }
  });
}

async function backlog() {
  const sizes = C.backlog;
  const jobs = C.backlogJobs;
  const timeoutMs = QUICK ? 60000 : 180000;
  if (ZCQ_MISSING) {
    for (const s of sizes) errors.set(`bl.pending.${s}`, ZCQ_MISSING), errors.set(`bl.deferred.${s}`, ZCQ_MISSING);
    return;
  }
  let b = null;
  await attempt(sizes.flatMap((s) => [`bl.pending.${s}`, `bl.deferred.${s}`]), 'backlog', async () => {
    b = new zcq.BacklogSpool();
    const runAt = async (key, label, reset) => {
      for (let r = 1; r <= R; r++) {
        const res = await z(key, `backlog ${label}`, () => b.timeMaxJobs(jobs, timeoutMs));
        reset();
        if (!res) return false;
        if (res.timedOut) {
          errors.set(key, `worker did not finish ${jobs} jobs within ${timeoutMs / 1000} s`);
          return false;
        }
        rec(key, res.ms);
        log(`  ${label}: ${fmtNum(res.ms)} ms`);
        if (res.ms > 60000 && r < R) {
          notes.push(`backlog ${label}: ${r} run(s) only (each over 60 s).`);
          break;
        }
      }
      return true;
    };
    let ok = true;
    for (const s of sizes) {
      if (!ok) {
        errors.set(`bl.pending.${s}`, 'skipped: a smaller backlog already hit the time limit');
        continue;
      }
      const t0 = Date.now();
      log(`backlog: ${s.toLocaleString('en-US')} pending (creating files)`);
      b.setPending(s);
      log(`  ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      ok = await runAt(`bl.pending.${s}`, `${s} pending`, () => b.setPending(s));
    }
    for (const s of [...sizes].reverse()) {
      const t0 = Date.now();
      log(`backlog: ${jobs.toLocaleString('en-US')} pending + ${s.toLocaleString('en-US')} deferred (moving/creating files)`);
      b.setDeferred(s, jobs);
      log(`  ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      await runAt(`bl.deferred.${s}`, `${jobs} pending + ${s} deferred`, () => b.setPending(jobs));
    }
  });
  if (b) b.destroy();
}

/** Queue isolation: a worker serving queue urgent finishes its jobs behind small and large backlogs of queue bulk. */
async function queues() {
  if (ZCQ_MISSING) { for (const s of C.queueBulk) errors.set(`q.urgent.${s}`, ZCQ_MISSING); return; }
  let q = null;
  await attempt(C.queueBulk.map((s) => `q.urgent.${s}`), 'queues', async () => {
    q = new zcq.QueueSpool(C.urgent);
    // Interleaved: small, large, small, large ... so that the disk's drift hits both alike.
    for (let r = 1; r <= R; r++) {
      for (const s of C.queueBulk) {
        q.setBulk(s);
        await sleep(2000); // let the disk settle after writing the backlog
        const res = await z(`q.urgent.${s}`, `queues: ${C.urgent} urgent behind ${s} bulk`, () => q.timeUrgent(QUICK ? 60000 : 180000));
        if (res && !res.timedOut) { rec(`q.urgent.${s}`, res.ms); log(`  ${C.urgent} urgent behind ${s.toLocaleString('en-US')} bulk: ${fmtNum(res.ms)} ms`); }
      }
    }
  });
  if (q) q.destroy();
}

/** Claim cost with priorities and quotas on, against plain claims (bench/sections/claimcost.mjs). */
async function claimcost() {
  const keys = ['cc.plain', 'cc.priorities', 'cc.quota'];
  if (ZCQ_MISSING) { for (const k of keys) errors.set(k, ZCQ_MISSING); return; }
  const n = QUICK ? 5000 : 20000;
  for (let r = 1; r <= R; r++) {
    log(`claimcost run ${r}/${R} (${n} no-op jobs, one worker of concurrency ${CONC})`);
    const a = await z(keys, 'claimcost', () => claimCost({ n, concurrency: CONC, base: BASE }));
    if (a) { rec('cc.plain', a.plain); rec('cc.priorities', a.priorities); rec('cc.quota', a.quota); }
  }
}

/**
 * Pruning beside claims: put→start of jobs put one at a time to a worker whose housekeeping prunes
 * C.pruneN finished records (30 days old), beside the same worker with nothing to prune.
 */
async function prune() {
  const keys = ['base', 'busy', 'during'].flatMap((k) => [`prune.${k}.p50`, `prune.${k}.p99`]);
  if (ZCQ_MISSING) { for (const k of keys) errors.set(k, ZCQ_MISSING); return; }
  const N = C.pruneN.toLocaleString('en-US');
  // Interleaved, baseline first in each run, so that the disk's drift hits both alike.
  for (let r = 1; r <= R; r++) {
    log(`prune run ${r}/${R} (${C.pruneJobs} jobs one at a time; ${N} finished records to prune)`);
    const a = await z(['prune.base.p50', 'prune.base.p99'], 'prune: no backlog', () => zcq.pruneLatency({ finished: 0, n: C.pruneJobs }));
    if (a) rec('prune.base.p50', p50(a.start)), rec('prune.base.p99', p99(a.start));
    const b = await z(keys.filter((k) => !k.startsWith('prune.base')), `prune: ${N} finished`, () => zcq.pruneLatency({ finished: C.pruneN, n: C.pruneJobs }));
    if (b) {
      rec('prune.busy.p50', p50(b.start)), rec('prune.busy.p99', p99(b.start));
      if (b.during.length > 0) rec('prune.during.p50', p50(b.during)), rec('prune.during.p99', p99(b.during));
      const pass = b.pruned ? `the pass removed ${b.pruned.removed.toLocaleString('en-US')} records in ${fmtNum(b.pruned.ms)} ms` : 'the pass did not end within the wait';
      const line = `prune run ${r}: ${N} finished records written in ${fmtNum(b.writeMs)} ms; ${pass}; ${b.during.length}/${b.count} jobs put while it ran; ${b.left.toLocaleString('en-US')} records left in done/default/ (the ${b.count} bench jobs among them).`;
      log(`  ${line}`);
      notes.push(line);
    }
  }
}

async function cli() {
  const n = C.cliN;
  const a = await z('cli.zcq', 'zcq put CLI', () => zcq.cliPut({ count: n, runs: R }));
  if (a) rec('cli.zcq', a.medianMs / n), rec('cli.zcq.cpu', a.cpuMedianMs / n), notes.push(`CLI timing by ${a.tool}; zcq put ×${n}: ${fmtNum(a.medianMs)} ms in total.`);
  const b = await attempt('cli.node', 'node -e 0', () => nodeFloor({ count: n, runs: R }));
  if (b) rec('cli.node', b.medianMs / n), rec('cli.node.cpu', b.cpuMedianMs / n), notes.push(`node -e 0 ×${n}: ${fmtNum(b.medianMs)} ms in total.`);
  // The issue's figure: CPU of one `zcq --relaxed put` against one `node -e 0`, 15 interleaved runs each.
  const CLI_RUNS = 15;
  const ci = await z(['cli.zcqi.cpu', 'cli.nodei.cpu'], `zcq --relaxed put vs node -e 0, ${CLI_RUNS} interleaved`, () => zcq.cliPutInterleaved({ runs: CLI_RUNS }));
  if (ci) {
    samples.set('cli.zcqi.cpu', [median(ci.zcq.cpuMs)]), samples.set('cli.nodei.cpu', [median(ci.node.cpuMs)]);
    samples.set('cli.zcqi.wall', [median(ci.zcq.wallMs)]), samples.set('cli.nodei.wall', [median(ci.node.wallMs)]);
    notes.push(`zcq --relaxed put vs node -e 0, ${CLI_RUNS} interleaved runs each (bench/micro/ab-cpu.py): CPU ${ci.zcq.cpuMs.map((x) => x.toFixed(0)).sort((a, b) => a - b).join(' ')} ms vs ${ci.node.cpuMs.map((x) => x.toFixed(0)).sort((a, b) => a - b).join(' ')} ms.`);
  }
  // nq is optional: zcq put is judged against node -e 0; nq is a third reference when installed.
  if (!hasCommand('nq')) { errors.set('cli.nq', 'nq not installed (optional: sudo apt-get install nq)'); return; }
  const c = await attempt('cli.nq', 'nq', () => nqEnqueue({ count: n, runs: R }));
  if (c) rec('cli.nq', c.medianMs / n), notes.push(`nq true ×${n}: ${fmtNum(c.medianMs)} ms in total.`);
}

async function memory() {
  const P = C.memPending;
  const sec = C.memSec;
  if (!ZCQ_MISSING) {
    log(`memory: zcq worker, ${P.toLocaleString('en-US')} pending, ${sec} s`);
    let m = null;
    await z('mem.zcq', 'zcq memory', async () => {
      m = new zcq.MemorySpool(P);
      for (let r = 1; r <= R; r++) {
        const res = await m.measure(sec);
        rec('mem.zcq', res.hwmKb / 1024);
        if (r === 1) notes.push(`zcq memory run: ${res.doneInWindow.toLocaleString('en-US')} jobs done in the ${sec} s window.`);
      }
    });
    m?.destroy();
  } else errors.set('mem.zcq', ZCQ_MISSING);
  log(`memory: BullMQ worker, ${P.toLocaleString('en-US')} waiting, ${sec} s`);
  await withServers(['default'], async (redis) => {
    for (let r = 1; r <= R; r++) {
      const res = await attempt(['mem.bull', 'mem.bullredis'], 'BullMQ memory', () => bullMemory(redis.default, { pending: P, seconds: sec }));
      if (res) {
        rec('mem.bull', res.workerHwmKb / 1024);
        rec('mem.bullredis', (res.workerHwmKb + res.redisHwmKb) / 1024);
      }
    }
  });
  for (let r = 1; r <= R; r++) {
    const c = spawnTracked(process.execPath, ['-e', 'setTimeout(() => {}, 3000)']);
    await sleep(1000);
    const m = procMem(c.pid);
    await stopChild(c, 2000);
    if (m) rec('mem.node', m.hwmKb / 1024);
  }
}

async function syscalls() {
  const n = C.strN;
  log(`syscalls: strace -f -c, ${n} jobs (1 run: counts barely vary)`);
  for (const durable of [true, false]) {
    const m = modeName(durable);
    const a = await z(`sys.zcq.${m}`, `zcq ${m} strace`, () => zcq.syscalls({ n, durable }));
    if (a) rec(`sys.zcq.${m}`, a.perJob), notes.push(`syscalls/job zcq ${m}: ${a.top}`);
    const b = await attempt(`sys.fs.${m}`, `fsloop ${m} strace`, () => fsloopSyscalls({ n, durable, loops: CONC }));
    if (b) rec(`sys.fs.${m}`, b.perJob), notes.push(`syscalls/job fsloop ${m} (${CONC} async loops): ${b.top}`);
    const c = await attempt(`sys.fssync.${m}`, `fsloop ${m} sync strace`, () => fsloopSyscalls({ n, durable, loops: 0 }));
    if (c) rec(`sys.fssync.${m}`, c.perJob), notes.push(`syscalls/job fsloop ${m} (1 sync loop): ${c.top}`);
  }
  // Metadata operations per job, by phase (bench/lib/metaops.mjs), beside the bare spare loop's.
  const mo = Math.min(n, 1000);
  for (const durable of [true, false]) {
    const m = modeName(durable);
    const a = await z(['put', 'claim', 'finish'].map((p) => `ops.zcq.${m}.${p}`), `zcq ${m} metadata ops`, () => zcq.metaOps({ n: mo, durable }));
    if (a) {
      for (const p of ['put', 'claim', 'finish']) rec(`ops.zcq.${m}.${p}`, totalOps(a[p]) / mo), notes.push(`metadata ops per job, zcq ${m} ${p}: ${describeOps(a[p], mo)}`);
      notes.push(`metadata ops per job, zcq ${m} worker lease (heartbeat, clock probes; per beat, not per job): ${describeOps(a.lease, mo)}`);
    }
    const b = await attempt(['claim', 'finish'].map((p) => `ops.fs.${m}.${p}`), `fsloop ${m} metadata ops`, () => fsloopMetaOps({ n: mo, durable }));
    if (b) for (const p of ['claim', 'finish']) rec(`ops.fs.${m}.${p}`, totalOps(b[p]) / mo), notes.push(`metadata ops per job, bare spare loop ${m} ${p}: ${describeOps(b[p], mo)}`);
    // The bare loop's put is one create and one rename (durable: and a file and a folder fsync).
    rec(`ops.fs.${m}.put`, durable ? 4 : 2);
  }
  await withServers(['default'], async (redis) => {
    const c = await attempt('sys.bull', 'BullMQ strace', () => bullSyscalls(redis.default, { n }));
    if (c) rec('sys.bull', c.perJob), notes.push(`syscalls/job BullMQ worker (client side only): ${c.top}`);
  });
}

// ---------------------------------------------------------------- table

// The dashboard's answer times with a small and a large spool, and its cost to a draining worker
// (bench/sections/dashboard.mjs).
async function dashboard() {
  await z([], 'dashboard', () => dashboardBench({ sizes: C.dash, runs: R, drainN: C.dashDrain, rec }));
}

function rows() {
  const out = [];
  const row = (sec, measure, better, zl, zk, pl, pk) => out.push({ sec, measure, better, zl, zk, pl, pk });
  const N = C.tpN.toLocaleString('en-US');
  if (ONLY.includes('throughput')) {
    for (const m of ['durable', 'relaxed']) {
      const bm = BULL_PAIR[m];
      row('1 throughput', `put+drain ${N}, jobs/s`, '↑', `zcq ${m}`, `tp.zcq.${m}.putdrain`, `${BULL_LABEL[bm]}, add ×1`, `tp.bull.${bm}.putdrain`);
      row('1 throughput', `put+drain ${N}, jobs/s`, '↑', `zcq ${m}`, `tp.zcq.${m}.putdrain`, `${BULL_LABEL[bm]}, addBulk ×${C.bulk}`, `tp.bull.${bm}.bulk`);
      row('1 throughput', `put+drain ${N}, jobs/s`, '↑', `zcq ${m}, putMany ×${C.bulk}`, `tp.zcq.${m}.bulk`, `${BULL_LABEL[bm]}, addBulk ×${C.bulk}`, `tp.bull.${bm}.bulk`);
      if (m === 'durable') {
        const GW = 'graphile-worker, PostgreSQL synchronous_commit=on';
        row('1 throughput', `put+drain ${N}, jobs/s`, '↑', `zcq ${m}`, `tp.zcq.${m}.putdrain`, `${GW}, addJob ×1 (${GW_PUT_N.toLocaleString('en-US')} jobs)`, 'tp.gw.putdrain');
        row('1 throughput', `put+drain ${N}, jobs/s`, '↑', `zcq ${m}, putMany ×${C.bulk}`, `tp.zcq.${m}.bulk`, `${GW}, addJobs ×${C.bulk}`, 'tp.gw.bulk');
        row('1 throughput', `drain ${N} pending, jobs/s`, '↑', `zcq ${m}`, `tp.zcq.${m}.drain`, GW, 'tp.gw.drain');
      }
      for (const f of FLOORS.slice(0, 2)) row('1 throughput', `put+drain ${N}, jobs/s`, '↑', `zcq ${m}`, `tp.zcq.${m}.putdrain`, `fsloop ${m}, ${f.label}`, `tp.${f.key}.${m}.full`);
      row('1 throughput', `put alone (workers busy), puts/s`, '↑', `zcq ${m}`, `tp.zcq.${m}.put`, `${BULL_LABEL[bm]}, add ×1`, `tp.bull.${bm}.put`);
      row('1 throughput', `put alone (workers busy), puts/s`, '↑', `zcq ${m}, putMany ×${C.bulk}`, `tp.zcq.${m}.bulkput`, `${BULL_LABEL[bm]}, addBulk ×${C.bulk}`, `tp.bull.${bm}.bulkput`);
      row('1 throughput', `drain ${N} pending, jobs/s`, '↑', `zcq ${m}`, `tp.zcq.${m}.drain`, BULL_LABEL[bm], `tp.bull.${bm}.drain`);
      const inl = `zcq ${m}, --runtime inline`;
      row('1 throughput', `drain ${N} pending, jobs/s`, '↑', inl, `tp.zcqi.${m}.drain`, BULL_LABEL[bm], `tp.bull.${bm}.drain`);
      row('1 throughput', `put+drain ${N}, jobs/s`, '↑', inl, `tp.zcqi.${m}.putdrain`, `${BULL_LABEL[bm]}, add ×1`, `tp.bull.${bm}.putdrain`);
      if (m === 'durable') {
        row('1 throughput', `drain ${N} pending, jobs/s`, '↑', inl, `tp.zcqi.${m}.drain`, 'graphile-worker, PostgreSQL synchronous_commit=on', 'tp.gw.drain');
      }
      for (const f of FLOORS) row('1 throughput', `drain ${N} pending, jobs/s`, '↑', `zcq ${m}`, `tp.zcq.${m}.drain`, `fsloop ${m}, ${f.label}${f.loops ? '' : ` (${SYNC_N.toLocaleString('en-US')} jobs)`}`, `tp.${f.key}.${m}.drain`);
      const fl = floorOf(m, 'drain');
      if (fl) samples.set(`tp.floor.${m}.drain`, [fl.v]);
      row('1 throughput', `drain ${N} pending, jobs/s`, '↑', `zcq ${m}`, `tp.zcq.${m}.drain`, `floor: best bare loop${fl ? ` (${fl.label})` : ''}`, `tp.floor.${m}.drain`);
      row('1 throughput', `drain, worker CPU per job (user+kernel, all threads), µs`, '↓', `zcq ${m}, ${PROCS} workers`, `tp.zcq.${m}.draincpu`, `fsloop ${m}, 1×1 sync loop`, `tp.fssync1.${m}.draincpu`);
      row('1 throughput', `drain, worker CPU per job (user+kernel, all threads), µs`, '↓', `${inl}, ${PROCS} workers`, `tp.zcqi.${m}.draincpu`, `fsloop ${m}, 1×1 sync loop`, `tp.fssync1.${m}.draincpu`);
      row('1 throughput', `drain ${N} pending, jobs/s`, '↑', inl, `tp.zcqi.${m}.drain`, `floor: best bare loop${fl ? ` (${fl.label})` : ''}`, `tp.floor.${m}.drain`);
      row('1 throughput', `put+drain, worker CPU per job, µs`, '↓', `zcq ${m}, ${PROCS} workers`, `tp.zcq.${m}.putdraincpu`, `fsloop ${m}, 1×1 sync loop (drain)`, `tp.fssync1.${m}.draincpu`);
    }
  }
  if (ONLY.includes('latency')) {
    for (const [k, bk, what] of [['start', 'start', 'put→start'], ['doneApi', 'done', 'put→done (wait API)'], ['doneFs', 'done', 'put→done (done/ file seen)']]) {
      for (const p of ['p50', 'p99']) {
        for (const m of ['durable', 'relaxed']) {
          const bm = BULL_PAIR[m];
          const peer = k === 'start' ? BULL_LABEL[bm] : `${BULL_LABEL[bm]}, waitUntilFinished`;
          row('2 latency', `${what} ${p}, ms`, '↓', `zcq ${m}`, `lat.zcq.${m}.${k}.${p}`, peer, `lat.bull.${bm}.${bk}.${p}`);
        }
      }
    }
  }
  if (ONLY.includes('backlog')) {
    const J = C.backlogJobs.toLocaleString('en-US');
    const base = `bl.pending.${C.backlog[0]}`;
    const baseLabel = `zcq, ${C.backlog[0].toLocaleString('en-US')} pending`;
    for (const s of C.backlog) {
      row('3 backlog', `${J} jobs, ${s.toLocaleString('en-US')} pending, ms`, '↓', 'zcq durable', `bl.pending.${s}`, baseLabel, base);
    }
    for (const s of C.backlog) {
      row('3 backlog', `${J} jobs, ${J} pending + ${s.toLocaleString('en-US')} deferred, ms`, '↓', 'zcq durable', `bl.deferred.${s}`, baseLabel, base);
    }
  }
  if (ONLY.includes('queues')) {
    const [small, ...larger] = C.queueBulk;
    for (const s of [small, ...larger]) {
      row('3b queues', `${C.urgent} jobs of queue urgent behind ${s.toLocaleString('en-US')} of queue bulk, ms`, '↓', '--queue urgent worker', `q.urgent.${s}`, `behind ${small.toLocaleString('en-US')}`, `q.urgent.${small}`);
    }
  }
  if (ONLY.includes('prune')) {
    const N = C.pruneN.toLocaleString('en-US');
    for (const p of ['p50', 'p99']) {
      row('3c prune', `put→start ${p}, ${C.pruneJobs} jobs one at a time, ms`, '↓', `worker pruning ${N} done (all ${C.pruneJobs})`, `prune.busy.${p}`, 'nothing to prune', `prune.base.${p}`);
      row('3c prune', `put→start ${p}, ${C.pruneJobs} jobs one at a time, ms`, '↓', `worker pruning ${N} done (jobs put during the pass)`, `prune.during.${p}`, 'nothing to prune', `prune.base.${p}`);
    }
  }
  if (ONLY.includes('cli')) {
    for (const [pl, pk] of [['node -e 0', 'cli.node'], ['nq', 'cli.nq']]) {
      row('4 CLI', `enqueue from a shell (×${C.cliN}), ms per call`, '↓', 'zcq put', 'cli.zcq', pl, pk);
    }
    row('4 CLI', `enqueue from a shell (×${C.cliN}), CPU ms per call (user+kernel)`, '↓', 'zcq put', 'cli.zcq.cpu', 'node -e 0', 'cli.node.cpu');
    row('4 CLI', 'one call, CPU ms (user+kernel), median of 15 interleaved', '↓', 'zcq --relaxed put', 'cli.zcqi.cpu', 'node -e 0', 'cli.nodei.cpu');
    row('4 CLI', 'one call, wall ms, median of 15 interleaved', '↓', 'zcq --relaxed put', 'cli.zcqi.wall', 'node -e 0', 'cli.nodei.wall');
  }
  if (ONLY.includes('memory')) {
    const P = C.memPending.toLocaleString('en-US');
    row('5 memory', `worker peak RSS, ${P} pending, MiB`, '↓', 'zcq worker', 'mem.zcq', 'BullMQ worker', 'mem.bull');
    row('5 memory', `worker peak RSS, ${P} pending, MiB`, '↓', 'zcq worker', 'mem.zcq', 'BullMQ worker + redis-server', 'mem.bullredis');
    row('5 memory', `worker peak RSS, ${P} pending, MiB`, '↓', 'zcq worker', 'mem.zcq', 'idle node process', 'mem.node');
  }
  if (ONLY.includes('claimcost')) {
    const N = (QUICK ? 5000 : 20000).toLocaleString('en-US');
    row('7 claim cost', `drain ${N} no-op jobs, jobs/s`, '↑', 'priorities 0..9', 'cc.priorities', 'all priority 5', 'cc.plain');
    row('7 claim cost', `drain ${N} no-op jobs, jobs/s`, '↑', 'priorities 0..9 + a quota', 'cc.quota', 'all priority 5', 'cc.plain');
  }
  if (ONLY.includes('syscalls')) {
    for (const m of ['durable', 'relaxed']) {
      row('6 syscalls', `syscalls per job (worker)`, '↓', `zcq ${m}`, `sys.zcq.${m}`, `fsloop ${m} drain, 1×${CONC} async loops`, `sys.fs.${m}`);
      row('6 syscalls', `syscalls per job (worker)`, '↓', `zcq ${m}`, `sys.zcq.${m}`, `fsloop ${m} drain, 1 sync loop`, `sys.fssync.${m}`);
    }
    row('6 syscalls', `syscalls per job (worker)`, '↓', 'zcq durable', 'sys.zcq.durable', 'BullMQ worker (client side)', 'sys.bull');
    for (const m of ['durable', 'relaxed']) {
      for (const p of ['put', 'claim', 'finish']) {
        row('6 syscalls', `metadata ops per job, ${p} (creates, renames, links, unlinks, mkdirs, fsyncs)`, '↓', `zcq ${m}`, `ops.zcq.${m}.${p}`, `bare loop ${m}${p === 'put' ? ' (create, rename)' : ', spare inodes'}`, `ops.fs.${m}.${p}`);
      }
    }
  }
  if (ONLY.includes('dashboard')) {
    const [small, large] = C.dash.map((n) => n.toLocaleString('en-US'));
    const [ks, kl] = C.dash;
    row('9 dashboard', `page (6 requests), ${large} vs ${small} pending, ms`, '↓', `${large} pending`, `dash.page.${kl}`, `${small} pending`, `dash.page.${ks}`);
    row('9 dashboard', `page of pending jobs, ${large} vs ${small}, ms`, '↓', `${large} pending`, `dash.list.${kl}`, `${small} pending`, `dash.list.${ks}`);
    row('9 dashboard', `/metrics, ${large} vs ${small} pending, ms`, '↓', `${large} pending`, `dash.metrics.${kl}`, `${small} pending`, `dash.metrics.${ks}`);
    row('9 dashboard', `first snapshot (cold), ${large} vs ${small}, ms`, '↓', `${large} pending`, `dash.cold.${kl}`, `${small} pending`, `dash.cold.${ks}`);
    row('9 dashboard', `drain ${C.dashDrain.toLocaleString('en-US')}, jobs/s`, '↑', 'dashboard, /metrics scraped every 1 s', 'dash.drain.metrics', 'worker alone', 'dash.drain.alone');
    row('9 dashboard', `drain ${C.dashDrain.toLocaleString('en-US')}, jobs/s`, '↑', 'dashboard, a page open + /metrics', 'dash.drain.page', 'worker alone', 'dash.drain.alone');
    row('9 dashboard', `dashboard CPU during the drain, % of the worker's CPU`, '↓', '/metrics scraped every 1 s', 'dash.cpu.metrics', 'a page open + /metrics', 'dash.cpu.page');
  }
  if (ONLY.includes('composite')) compositeSection.rows((...a) => row(...a));
  if (ONLY.includes('rig')) rigSection.rows((...a) => row(...a));
  return out;
}

function cell(key) {
  const v = val(key);
  if (v !== null) return fmtNum(v);
  return errors.has(key) ? 'error' : 'n/a';
}

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(join(here, '..', 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

function pgVersion() {
  const bin = pgBin();
  return bin ? spawnSync(join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).stdout?.trim().split(' ').pop() ?? '?' : 'not installed';
}

function machine() {
  const cs = cpus();
  const df = spawnSync('df', ['-hT', BASE], { encoding: 'utf8' }).stdout?.trim().split('\n')[1]?.split(/\s+/) ?? [];
  const disk = df.length >= 7 ? `${df[0]} (${df[1]}, ${df[2]} size, ${df[4]} free, mounted on ${df[6]})` : 'unknown';
  const redisV = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout?.match(/v=(\S+)/)?.[1] ?? 'not installed';
  let bullV = '?';
  try {
    bullV = JSON.parse(readFileSync(join(here, '..', 'node_modules', 'bullmq', 'package.json'), 'utf8')).version;
  } catch {}
  return [
    `- CPU: ${cs.length} cores, ${cs[0]?.model ?? 'unknown'}; RAM ${(totalmem() / 2 ** 30).toFixed(1)} GiB; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    `- Disk (temp files): ${disk}; folder ${BASE}`,
    `- Node ${process.version}, Linux ${release()}, host ${hostname()}`,
    `- Peers: BullMQ ${bullV}, redis-server ${redisV}; graphile-worker ${pkgVersion('graphile-worker')}, PostgreSQL ${pgVersion()}`,
  ];
}

// ---------------------------------------------------------------- main

const started = Date.now();
const startedAt = new Date().toISOString();
const MACHINE = machine();
log(`zcq bench: ${QUICK ? 'quick' : 'full'} run, R=${R}, sections ${ONLY.join(', ')}; temp files in ${BASE}`);
if (ZCQ_MISSING) log(`zcq side skipped: ${ZCQ_MISSING}`);
const timings = [];
for (const s of SECTIONS) {
  if (!ONLY.includes(s)) continue;
  const t0 = Date.now();
  log(`== ${s}`);
  const composite = () => compositeSection.run({ R, rec, attempt, z, log, notes });
  const rig = () => rigSection.run({ R, rec, z, log, notes, quick: QUICK });
  await attempt([], s, { throughput, latency, backlog, queues, prune, cli, memory, syscalls, composite, dashboard, claimcost, rig }[s]);
  timings.push(`${s} ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

const table = markdownTable(
  ['section', 'measure', '', 'zcq', 'value', 'peer', 'value', 'zcq/peer'],
  rows().map((r) => [r.sec, r.measure, r.better, r.zl, cell(r.zk), r.pl, cell(r.pk), fmtRatio(val(r.zk), val(r.pk))]),
);
const errLines = [...new Set(errors.values())].map((e) => `- ${e}`);
const md = [
  `# zcq benchmark results`,
  ``,
  `${startedAt}, \`node bench/run.mjs ${argv.join(' ')}\`: ${QUICK ? 'quick run' : 'full run'}, each figure the median of ${R} run${R > 1 ? 's' : ''} (syscalls: 1 run), ${((Date.now() - started) / 60000).toFixed(1)} min (${timings.join(', ')}).`,
  `↑ higher is better, ↓ lower is better; zcq/peer > 1 means zcq has the bigger number.`,
  ``,
  `Machine:`,
  ...MACHINE,
  `- Load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine skews every figure)`,
  ``,
  table,
  ``,
  ...(notes.length ? ['Notes:', ...notes.map((n) => `- ${n}`), ''] : []),
  ...(errLines.length ? ['Not measured:', ...errLines, ''] : []),
].join('\n');

console.log('\n' + md);
writeFileSync(OUT, md + '\n');
log(`written to ${OUT}`);
process.exit(errors.size ? 1 : 0);
