// Bench section `rig` (issue 16): zcq across machines, on the multi-machine test rig (test/multihost/rig.ts:
// 3 "machines", each a UTS namespace with its own mount of one shared export; sshfs, and both GlusterFS
// layouts when glusterd is installed; ZCQ_RIG_FS=sshfs,... chooses).
//
// - Scaling: N no-op jobs pending, drained by one worker (concurrency 8) on 1 machine, then by one worker on
//   each of 3 machines (runs interleaved 1, 3, 1, 3, ...). The rate is taken between the moments the file
//   server's view of done/ held 10 % and 90 % of the jobs (this process polls the export every 100 ms on its
//   own monotonic clock): start-up and the tail are left out, and no machine's clock is read.
// - put→start: one worker (concurrency 8) on machine b; M jobs put one at a time, each after the previous one
//   started, by a producer on machine a (across machines) and, beside it, by one on machine b (the same
//   machine, for reference: there the worker hears the put from its own mount's inotify, across machines only
//   by its poll or a folder change it lists). Both stamps are CLOCK_MONOTONIC of one kernel
//   (bench/lib/rig-producer.mjs).
//
// As a module: `run(ctx)` measures and `rows(row)` adds the table rows (bench/run.mjs).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { importTs } from '../lib/tsload.mjs';
import { makeTmp, rmrf, sleep } from '../lib/proc.mjs';
import { p50, p99 } from '../lib/stats.mjs';
import { BIN, DIST, JOBS, ROOT } from '../zcq.mjs';

const MACHINES = 3;
const CONC = 8;
const Q = 'default';
const PRODUCER = join(ROOT, 'bench', 'lib', 'rig-producer.mjs');
const MODE = 'durable';
/** The worker's poll interval (zcq's default): the producer's puts are spread over one such interval. */
const POLL_MS = 1000;

let kinds = [];
let quickRun = false;
/** Jobs to drain (n) and to put one at a time (m): GlusterFS's rig drains at 7–20 jobs/s on 2 cores. */
const sizesFor = (fsKind) => ({ n: fsKind === 'sshfs' ? (quickRun ? 1000 : 3000) : (quickRun ? 300 : 1000), m: quickRun ? 40 : 100 });

/** The file systems this run measures: ZCQ_RIG_FS, else sshfs and, with glusterd installed, both GlusterFS layouts. */
function fileSystems(rigMod) {
  if (process.env.ZCQ_RIG_FS) return rigMod.rigFileSystems();
  const hasGluster = spawnSync('sh', ['-c', 'command -v glusterd && command -v mount.glusterfs'], { encoding: 'utf8' }).status === 0;
  return hasGluster ? ['sshfs', 'gluster-replica', 'gluster-dist'] : ['sshfs'];
}

const countJson = (dir) => {
  try {
    return readdirSync(dir).filter((n) => n.endsWith('.json')).length;
  } catch (e) {
    if (e.code === 'ENOENT') return 0;
    throw e;
  }
};

/** `zcq --json worker` on machine i (bench job modules), with the bench's own exit/log capture. */
function worker(rig, i, extra = []) {
  const spool = rig.path(i, 'spool');
  const c = rig.spawn(i, process.execPath, [BIN, '--json', '--spool', spool, ...(MODE === 'relaxed' ? ['--relaxed'] : []), 'worker',
    '--root', JOBS, '--concurrency', String(CONC), '--no-scheduler', '--poll', `${POLL_MS}ms`, ...extra], { cwd: JOBS });
  c.log = '';
  const keep = (d) => { c.log = (c.log + d).slice(-4000); };
  c.stdout.setEncoding('utf8').on('data', keep);
  c.stderr.setEncoding('utf8').on('data', keep);
  c.exited = new Promise((res) => c.once('close', (code, signal) => res({ code, signal })));
  return c;
}

async function stop(c) {
  if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  const t = sleep(20_000).then(() => 'timeout');
  if ((await Promise.race([c.exited, t])) === 'timeout') c.kill('SIGKILL');
  await c.exited;
}

/** Pending n no-op jobs through the file server's view (what the machines mount), relaxed: the files are the same. */
async function fill(rig, n) {
  const { Spool } = await import(pathToFileURL(DIST).href);
  const spool = await Spool.open(join(rig.exportDir, 'spool'), { create: false, durable: false });
  for (let i = 0; i < n; i += 500) await spool.putMany(Array.from({ length: Math.min(500, n - i) }, () => ({ fn: 'noop.mjs#noop', args: [] })));
  await spool.close?.();
}

/** Drain n pending jobs with one worker on each of `machines`; jobs/s between 10 % and 90 % done (server view). */
async function drain(rig, n, machines) {
  const doneDir = join(rig.exportDir, 'spool', 'done', Q);
  const before = countJson(doneDir);
  await fill(rig, n);
  const ws = machines.map((i) => worker(rig, i, ['--exit-when-idle']));
  const lo = Math.ceil(n * 0.1), hi = Math.floor(n * 0.9);
  let tLo = null, tHi = null;
  const limitMs = Math.max(180_000, n * 1000); // GlusterFS on a loaded 2-core box: 4–20 jobs/s
  const deadline = Date.now() + limitMs;
  try {
    for (;;) {
      const d = countJson(doneDir) - before;
      const t = process.hrtime.bigint();
      if (tLo === null && d >= lo) tLo = { t, d };
      if (tHi === null && d >= hi) tHi = { t, d };
      if (tHi) break;
      for (const w of ws) if (w.exitCode !== null && w.exitCode !== 0) throw new Error(`worker on ${rig.machines[machines[ws.indexOf(w)]].name} exited ${w.exitCode}: ${w.log.slice(-600)}`);
      if (Date.now() > deadline) throw new Error(`drain on ${machines.length} machine(s): ${d}/${n} done after ${Math.round(limitMs / 1000)} s`);
      await sleep(100);
    }
    // Let the workers finish the tail and exit on their own (they were started with --exit-when-idle).
    await Promise.race([Promise.all(ws.map((w) => w.exited)), sleep(Math.max(60_000, n * 50))]);
  } finally {
    await Promise.all(ws.map(stop));
  }
  const s = Number(tHi.t - tLo.t) / 1e9;
  return (tHi.d - tLo.d) / Math.max(s, 1e-3);
}

/** put→start (ms) of m jobs put on machine `from`, run by a worker on machine `on`. */
async function putStart(rig, m, from, on) {
  const ledger = join(makeTmp('zcq-rig-lat'), 'ledger.txt');
  writeFileSync(ledger, '');
  const workersDir = join(rig.exportDir, 'spool', 'workers');
  const before = countJson(workersDir);
  const w = worker(rig, on);
  try {
    // The worker is up when its heartbeat is on the file server (workers/ holds a file a live worker).
    const t0 = Date.now();
    while (countJson(workersDir) <= before) {
      if (w.exitCode !== null) throw new Error(`worker exited ${w.exitCode}: ${w.log.slice(-600)}`);
      if (Date.now() - t0 > 30_000) throw new Error('worker did not register within 30 s');
      await sleep(100);
    }
    await sleep(rig.staleWindowMs); // every mount has seen the worker's folders settle
    const r = await rig.run(from, process.execPath, [PRODUCER, pathToFileURL(DIST).href, rig.path(from, 'spool'), String(m), String(POLL_MS), ledger, MODE],
      { cwd: JOBS, timeoutMs: Math.max(120_000, m * 5_000) });
    if (r.code !== 0) throw new Error(`producer on ${rig.machines[from].name} exited ${r.code ?? r.signal}: ${r.stderr.slice(-600)}`);
    const put = new Map(r.stdout.trim().split('\n').map((l) => l.split(' ')).map(([tag, ns]) => [tag, BigInt(ns)]));
    const out = [];
    for (const line of readFileSync(ledger, 'utf8').trim().split('\n')) {
      const [tag, ns] = line.split(' ');
      if (put.has(tag)) out.push(Number(BigInt(ns) - put.get(tag)) / 1e6);
    }
    if (out.length !== m) throw new Error(`put→start: ${out.length}/${m} jobs stamped`);
    return out;
  } finally {
    await stop(w);
    rmrf(join(ledger, '..'));
  }
}

/** Measure every chosen file system; ctx as bench/run.mjs passes it (R, rec, z, log, notes, quick). */
export async function run({ R, rec, z, log, notes, quick }) {
  quickRun = quick;
  const rigMod = await importTs(join(ROOT, 'test', 'multihost', 'rig.ts'));
  kinds = fileSystems(rigMod);
  try {
    rigMod.checkRigPrerequisites({ needFaketime: false, fileSystems: kinds });
  } catch (e) {
    notes.push(`rig: not measured: ${String(e?.message ?? e).split('\n').slice(0, 3).join(' ')}`);
    kinds = [];
    return;
  }
  rigMod.sweepStaleRigs();
  if (kinds.some((k) => k !== 'sshfs')) rigMod.sweepStaleVolumes();
  for (const fsKind of kinds) {
    const sizes = sizesFor(fsKind);
    log(`rig: ${fsKind}, ${MACHINES} machines, starting`);
    const keys = (k) => [`rig.${fsKind}.${k}`];
    let rig = null;
    try {
      rig = await rigMod.startRig({ machines: MACHINES, fs: fsKind });
      const { Spool } = await import(pathToFileURL(DIST).href);
      await (await Spool.init(join(rig.exportDir, 'spool'), { durable: false })).close?.();
      for (let r = 1; r <= R; r++) {
        log(`rig ${fsKind} run ${r}/${R}: drain ${sizes.n} ${MODE} no-op jobs on 1 machine, then on ${MACHINES}`);
        const one = await z(keys('drain1'), `rig ${fsKind}: drain on 1 machine`, async () => ({ jobsPerSec: await drain(rig, sizes.n, [0]) }));
        if (one) rec(`rig.${fsKind}.drain1`, one.jobsPerSec);
        const three = await z(keys('drain3'), `rig ${fsKind}: drain on ${MACHINES} machines`, async () => ({ jobsPerSec: await drain(rig, sizes.n, [0, 1, 2]) }));
        if (three) rec(`rig.${fsKind}.drain3`, three.jobsPerSec);
        log(`rig ${fsKind} run ${r}/${R}: put→start, ${sizes.m} jobs one at a time, worker on host-b, put on host-a / host-b`);
        const across = await z([`rig.${fsKind}.across.p50`, `rig.${fsKind}.across.p99`], `rig ${fsKind}: put→start across machines`, () => putStart(rig, sizes.m, 0, 1));
        if (across) rec(`rig.${fsKind}.across.p50`, p50(across)), rec(`rig.${fsKind}.across.p99`, p99(across)), log(`  across: p50 ${p50(across).toFixed(1)} ms, p99 ${p99(across).toFixed(1)} ms`);
        const same = await z([`rig.${fsKind}.same.p50`, `rig.${fsKind}.same.p99`], `rig ${fsKind}: put→start on one machine`, () => putStart(rig, sizes.m, 1, 1));
        if (same) rec(`rig.${fsKind}.same.p50`, p50(same)), rec(`rig.${fsKind}.same.p99`, p99(same)), log(`  same machine: p50 ${p50(same).toFixed(1)} ms, p99 ${p99(same).toFixed(1)} ms`);
      }
      notes.push(`rig ${fsKind}: mount caches ${JSON.stringify(rig.cache)}; worker poll ${POLL_MS} ms (the default), ${MODE}, concurrency ${CONC}, threads runtime; puts for put→start spread at random over a poll interval.`);
    } catch (e) {
      const msg = String(e?.message ?? e).split('\n')[0];
      log(`  ! rig ${fsKind}: ${msg}`);
      notes.push(`rig ${fsKind}: not measured: ${msg}`);
    } finally {
      await rig?.stop();
    }
  }
}

export function rows(row) {
  for (const k of kinds) {
    const sizes = sizesFor(k);
    const n = sizes.n.toLocaleString('en-US');
    row('8 rig', `${k}: drain ${n} ${MODE} no-op jobs, jobs/s (10–90 %)`, '↑', `${MACHINES} machines × 1 worker`, `rig.${k}.drain3`, '1 machine × 1 worker', `rig.${k}.drain1`);
    for (const p of ['p50', 'p99']) {
      row('8 rig', `${k}: put→start ${p}, ${sizes.m} jobs one at a time, ms`, '↓', 'put on host-a, worker on host-b', `rig.${k}.across.${p}`, 'put and worker on host-b', `rig.${k}.same.${p}`);
    }
  }
}
