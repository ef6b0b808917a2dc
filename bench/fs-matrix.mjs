#!/usr/bin/env node
// zcq per file system: the throughput and latency figures of bench/run.mjs, on the local disk and on
// networked file systems mounted here on loopback (sshfs through a local sshd; GlusterFS replica 2 and
// distributed, 2 bricks each, through its FUSE client), zcq beside the bare loop of the same file
// operations (peers/fsloop.mjs) on each, with the metadata operations per job (strace: the file-system
// calls of a worker draining, per job, beside the bare loop's), and on a networked file system the drain
// rate with 1, 2 and 4 worker processes.
//
//   node bench/fs-matrix.mjs [--fs=ext4,sshfs,gluster-replica,gluster-dist] [--n=1000] [--lat=50]
//                            [--strace=300] [--rounds=1] [--out=bench/fs-results.md]
//
// --rounds=R repeats the drain comparison (zcq, then the bare loop's two shapes) R times in turn, the disk let
// settle (sync, 3 s) before each measurement, and reports the medians and each round's zcq / bare loop ratio:
// on these loopback mounts one run's ratio moves by a third from run to run.
//
// Needs root (mounts), and for the networked file systems the Debian packages sshfs, openssh-server,
// glusterfs-server, glusterfs-client (scripts/system-deps.sh installs them); strace for the ops per job.
// Every mount, volume and sshd it makes is removed at exit, also on error or Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { fmtNum, markdownTable, median, p50, p99 } from './lib/stats.mjs';
import { hasCommand, log, onExit, setBaseTmp, rmrf } from './lib/proc.mjs';
import * as zcq from './zcq.mjs';
import { runFsloop, runFsloopBoth, fsloopSyscalls } from './peers/fsloop.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const KINDS = ['ext4', 'sshfs', 'gluster-replica', 'gluster-dist'];
const argv = process.argv.slice(2);
const opt = (name, dflt) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=').slice(1).join('=') ?? dflt;
for (const a of argv) if (!/^--(fs|n|lat|strace|rounds|out)=/.test(a)) { console.error(`unknown argument ${a}\nusage: node bench/fs-matrix.mjs [--fs=${KINDS.join(',')}] [--n=1000] [--lat=50] [--strace=300] [--rounds=1] [--out=FILE]`); process.exit(2); }
const FS = opt('fs', KINDS.join(',')).split(',');
for (const k of FS) if (!KINDS.includes(k)) { console.error(`unknown file system ${k}; choose from ${KINDS.join(', ')}`); process.exit(2); }
const N = Number(opt('n', 1000));
const LAT = Number(opt('lat', 50));
const STRACE_N = Number(opt('strace', 300));
const ROUNDS = Number(opt('rounds', 1));
const IDLE_S = 15;
const IDLE_QUEUES = 3;
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1)) { console.error(`--rounds=${opt('rounds')}: a whole number of 1 or more`); process.exit(2); }
const settle = () => new Promise((res) => { sh('sync', []); setTimeout(res, 3000); });
const OUT = resolve(opt('out', join(here, 'fs-results.md')));
if (zcq.unavailable()) { console.error(`bench: ${zcq.unavailable()}`); process.exit(2); }

// ---------------------------------------------------------------- mounts

const sh = (cmd, args, o = {}) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, ...o });
const mounted = (p) => readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === p);
const ROOT = mkdtempSync(join(tmpdir(), 'zcq-fsbench-'));
const undo = [];
onExit(() => { while (undo.length) { try { undo.pop()(); } catch {} } rmSync(ROOT, { recursive: true, force: true }); });

function freePort() {
  return new Promise((res, rej) => { const s = createServer(); s.on('error', rej); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
}

/** Local disk: a folder under the temp dir (its type from df). */
function mountExt4() {
  const dir = join(ROOT, 'local');
  mkdirSync(dir);
  const type = sh('df', ['--output=fstype', dir]).stdout.trim().split('\n').pop();
  return { dir, label: `local disk (${type})`, done: () => {} };
}

/** sshd on loopback and one sshfs mount, with the multi-machine rig's options (test/multihost/README.md). */
async function mountSshfs() {
  const d = join(ROOT, 'sshfs');
  mkdirSync(join(d, 'export'), { recursive: true });
  mkdirSync(join(d, 'mnt'));
  mkdirSync('/run/sshd', { recursive: true });
  for (const k of ['host', 'user']) if (sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(d, k)]).status !== 0) throw new Error('ssh-keygen failed');
  const port = await freePort();
  writeFileSync(join(d, 'sshd_config'), [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(d, 'host')}`, 'PermitRootLogin prohibit-password',
    `AuthorizedKeysFile ${join(d, 'user')}.pub`, 'PasswordAuthentication no', 'UsePAM no', 'StrictModes no', 'UseDNS no', 'Subsystem sftp internal-sftp', ''].join('\n'));
  const sshd = spawn(spawnSync('sh', ['-c', 'command -v sshd || echo /usr/sbin/sshd'], { encoding: 'utf8' }).stdout.trim(), ['-D', '-e', '-f', join(d, 'sshd_config')], { stdio: 'ignore' });
  undo.push(() => sshd.kill('SIGTERM'));
  const mnt = join(d, 'mnt');
  const o = [`port=${port}`, `IdentityFile=${join(d, 'user')}`, 'IdentitiesOnly=yes', 'StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null', 'BatchMode=yes',
    'reconnect', 'dir_cache=yes', 'dcache_timeout=2', 'kernel_cache', 'attr_timeout=0', 'entry_timeout=2', 'negative_timeout=2'].join(',');
  for (let i = 0; i < 50 && !mounted(mnt); i++) { sh('sshfs', [`root@127.0.0.1:${join(d, 'export')}`, mnt, '-o', o]); if (!mounted(mnt)) await new Promise((r) => setTimeout(r, 200)); }
  if (!mounted(mnt)) throw new Error('sshfs mount failed');
  undo.push(() => sh('fusermount3', ['-uz', mnt]));
  return { dir: mnt, label: 'sshfs (loopback sshd)', done: () => { sh('fusermount3', ['-uz', mnt]); sshd.kill('SIGTERM'); } };
}

/** A GlusterFS volume of 2 bricks (replica 2, or distributed) and one FUSE mount with the client's defaults. */
function mountGluster(replica) {
  const gl = (...a) => sh('gluster', ['--mode=script', ...a]);
  if (gl('volume', 'list').status !== 0) { sh('glusterd', []); for (let i = 0; i < 60 && gl('volume', 'list').status !== 0; i++) sh('sleep', ['0.5']); }
  const vol = `zcqbench-${process.pid}-${replica ? 'r' : 'd'}`;
  const d = join(ROOT, vol);
  const bricks = ['b1', 'b2'].map((b) => join(d, b));
  for (const b of bricks) mkdirSync(b, { recursive: true });
  const mnt = join(d, 'mnt');
  mkdirSync(mnt);
  const c = gl('volume', 'create', vol, ...(replica ? ['replica', '2'] : []), ...bricks.map((b) => `${hostname()}:${b}`), 'force');
  if (c.status !== 0) throw new Error(`gluster volume create: ${c.stdout}${c.stderr}`);
  const remove = () => { sh('umount', ['-l', mnt]); gl('volume', 'stop', vol, 'force'); gl('volume', 'delete', vol); };
  undo.push(remove);
  if (gl('volume', 'start', vol).status !== 0) throw new Error('gluster volume start failed');
  for (let i = 0; i < 10 && !mounted(mnt); i++) { sh('mount', ['-t', 'glusterfs', `${hostname()}:/${vol}`, mnt]); if (!mounted(mnt)) sh('sleep', ['0.5']); }
  if (!mounted(mnt)) throw new Error('mount -t glusterfs failed');
  return { dir: mnt, label: `GlusterFS ${replica ? 'replica 2' : 'distributed, 2 bricks'} (FUSE, defaults)`, done: remove, volume: vol };
}

// ---------------------------------------------------------------- measurements

/** The file-system calls among a strace -c summary's per-job counts: what costs a round trip on a networked FS. */
const META = /^(open|openat|openat2|creat|rename|renameat|renameat2|link|linkat|unlink|unlinkat|mkdir|mkdirat|rmdir|stat|lstat|fstat|newfstatat|statx|getdents64|fsync|fdatasync|utimensat|access|faccessat|faccessat2|readlink|readlinkat)$/;
function metaPerJob(full, base, n) {
  let sum = 0;
  for (const k of new Set([...Object.keys(full.byName), ...Object.keys(base.byName)])) if (META.test(k)) sum += ((full.byName[k] ?? 0) - (base.byName[k] ?? 0)) / n;
  return sum;
}

const rows = [];
const scaling = [];
const notes = [];

async function measure(kind) {
  log(`== ${kind}: mounting`);
  const m = kind === 'ext4' ? mountExt4() : kind === 'sshfs' ? await mountSshfs() : mountGluster(kind === 'gluster-replica');
  setBaseTmp(m.dir);
  const row = { fs: m.label };
  const step = async (what, fn) => { const t0 = Date.now(); try { const r = await fn(); log(`  ${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`); return r; } catch (e) { const msg = String(e?.message ?? e).split('\n')[0].slice(0, 200); log(`  ! ${what}: ${msg}`); notes.push(`${kind} ${what}: ${msg}`); return null; } };
  try {
    const pd = await step(`zcq put+drain ${N}`, () => zcq.putDrain({ n: N, procs: 2, concurrency: 8, durable: true }));
    const drains = [], drainsWarm = [], asyncs = [], syncs = [], fulls = [];
    for (let r = 1; r <= ROUNDS; r++) {
      const tag = ROUNDS > 1 ? ` (round ${r}/${ROUNDS})` : '';
      if (ROUNDS > 1) await settle();
      const dr = await step(`zcq drain ${N}${tag}`, () => zcq.drain({ n: N, procs: 2, concurrency: 8, durable: true }));
      if (ROUNDS > 1) await settle();
      const fa = await step(`fsloop 2×8 async ${N}${tag}`, () => runFsloopBoth({ n: N, procs: 2, loops: 8, durable: true }));
      if (ROUNDS > 1) await settle();
      const fs1 = await step(`fsloop 2×1 sync ${N}${tag}`, () => runFsloopBoth({ n: N, procs: 2, loops: 0, durable: true }));
      drains.push(dr?.jobsPerSec); drainsWarm.push(dr?.afterFirstPerSec ?? undefined); asyncs.push(fa?.drain.jobsPerSec); syncs.push(fs1?.drain.jobsPerSec);
      fulls.push(Math.max(fa?.full.jobsPerSec ?? 0, fs1?.full.jobsPerSec ?? 0) || undefined);
    }
    const lat = await step(`zcq latency ${LAT}`, () => zcq.latency({ n: LAT, durable: true }));
    row.put = pd?.putPerSec; row.putdrain = pd?.jobsPerSec; row.drain = median(drains); row.drainWarm = median(drainsWarm.filter(Boolean));
    // The floor is the better shape of the bare loop (by its median), as with one round.
    const [ma, ms] = [median(asyncs) ?? 0, median(syncs) ?? 0];
    row.loopDrain = Math.max(ma, ms) || undefined;
    row.loopBest = ma || ms ? (ma >= ms ? '2×8 async' : '2×1 sync') : '';
    row.loopFull = median(fulls);
    const floorOf = (i) => (ma >= ms ? asyncs[i] : syncs[i]);
    // Each round's zcq / bare loop ratio, and their median: the paired figure (a round's two runs share that
    // minute's load), beside the ratio of the two medians, which may pair a quiet round of one with a busy
    // round of the other.
    const roundRatios = (zs) => {
      const rs = zs.map((d, i) => (d && floorOf(i) ? d / floorOf(i) : null));
      const known = rs.filter((x) => x !== null);
      return rs.map((x) => (x === null ? '–' : x.toFixed(2))).join(', ') + (known.length ? `; median ${median(known).toFixed(2)}` : '');
    };
    if (ROUNDS > 1) { row.rounds = roundRatios(drains); row.roundsWarm = roundRatios(drainsWarm); }
    if (lat) { row.startP50 = p50(lat.start); row.startP99 = p99(lat.start); row.doneP50 = p50(lat.doneFs); row.doneP99 = p99(lat.doneFs); }
    if (hasCommand('strace')) {
      const zs = await step(`zcq strace ${STRACE_N}`, () => syscallsRaw(STRACE_N));
      const fl = await step(`fsloop strace ${STRACE_N}`, () => fsloopSyscallsRaw(STRACE_N));
      if (zs) row.zMeta = zs; if (fl) row.loopMeta = fl;
    } else notes.push('strace missing: no ops per job');
    const idle = await step(`idle worker ${IDLE_S} s`, () => idleLoad(m.volume));
    if (idle) { row.idleCalls = idle.callsPerSec; row.idleFops = idle.fopsPerSec; }
    if (kind !== 'ext4') {
      for (const procs of [1, 2, 4]) {
        const r = await step(`zcq drain ${N}, ${procs} worker process(es)`, () => zcq.drain({ n: N, procs, concurrency: 8, durable: true }));
        scaling.push({ fs: m.label, procs, jobsPerSec: r?.jobsPerSec });
      }
    }
  } finally {
    rows.push(row);
    m.done();
  }
}

/**
 * What one idle worker (default options: watching, polling each second) costs the file system while serving
 * IDLE_QUEUES empty queues: its file-system calls per second (strace -c of a short and a long run, the
 * difference over the difference in time, so that start-up drops out), and on GlusterFS the operations per
 * second the bricks saw (gluster volume profile, both bricks counted). N idle workers cost N times this.
 */
async function idleLoad(volume) {
  const { parseStrace } = await import('./lib/strace.mjs');
  const { makeTmp } = await import('./lib/proc.mjs');
  const dir = makeTmp('zcq-idle');
  const spool = join(dir, 'spool');
  try {
    zcq.initSpool(spool);
    for (let i = 0; i < IDLE_QUEUES; i++) mkdirSync(join(spool, 'pending', `q${i}`));
    const worker = [process.execPath, zcq.BIN, '--spool', spool, 'worker', '--root', zcq.JOBS, '--concurrency', '8'];
    const traced = (seconds) => {
      const out = join(dir, `strace-${seconds}`);
      const r = sh('strace', ['-f', '-c', '-o', out, 'timeout', '-s', 'TERM', String(seconds), ...worker], { timeout: (seconds + 30) * 1000 });
      if (r.status !== 0 && r.status !== 124) throw new Error(`idle worker under strace: ${r.status ?? r.signal} ${r.stderr.slice(-300)}`);
      return parseStrace(readFileSync(out, 'utf8'));
    };
    let callsPerSec;
    if (hasCommand('strace')) {
      const short = traced(5), long = traced(5 + IDLE_S);
      callsPerSec = metaPerJob(long, short, IDLE_S);
    }
    let fopsPerSec;
    if (volume) {
      const gl = (...a) => sh('gluster', ['--mode=script', 'volume', 'profile', volume, ...a]);
      gl('start');
      const w = spawn(worker[0], worker.slice(1), { stdio: 'ignore' });
      try {
        await new Promise((r) => setTimeout(r, 5000));
        gl('info', 'clear');
        await new Promise((r) => setTimeout(r, IDLE_S * 1000));
        let total = 0;
        for (const line of gl('info', 'cumulative').stdout.split('\n')) {
          const mm = line.match(/^\s*[\d.]+\s+[\d.]+ [nu]s\s+[\d.]+ [nu]s\s+[\d.]+ [nu]s\s+(\d+)\s+(\w+)\s*$/);
          if (mm && !/^(RELEASE|RELEASEDIR|FORGET)$/.test(mm[2])) total += Number(mm[1]);
        }
        fopsPerSec = total / IDLE_S;
      } finally {
        w.kill('SIGTERM');
        await new Promise((r) => (w.exitCode !== null ? r() : w.on('exit', r)));
        gl('stop');
      }
    }
    return { callsPerSec, fopsPerSec };
  } finally { rmrf(dir); }
}

/** Per-job file-system calls of one zcq worker (concurrency 8, --exit-when-idle) draining n pending jobs, minus an empty run. */
async function syscallsRaw(n) {
  const { parseStrace } = await import('./lib/strace.mjs');
  const { makeTmp } = await import('./lib/proc.mjs');
  const run = (count) => {
    const dir = makeTmp('zcq-strace');
    const spool = join(dir, 'spool');
    try {
      zcq.initSpool(spool);
      if (count) zcq.writePending(spool, count, { progress: null });
      const out = join(dir, 'strace.txt');
      const r = sh('strace', ['-f', '-c', '-o', out, process.execPath, zcq.BIN, '--spool', spool, 'worker', '--root', zcq.JOBS, '--concurrency', '8', '--exit-when-idle'], { timeout: 900_000 });
      if (r.status !== 0) throw new Error(`zcq worker under strace: ${r.status ?? r.signal} ${r.stderr.slice(-300)}`);
      return parseStrace(readFileSync(out, 'utf8'));
    } finally { rmrf(dir); }
  };
  const base = run(0);
  const full = run(n);
  return metaPerJob(full, base, n);
}
async function fsloopSyscallsRaw(n) {
  const r = await fsloopSyscallsDetail(n);
  return metaPerJob(r.full, r.base, n);
}

/** fsloopSyscalls, keeping both summaries (bare loop: 1 process × 8 async loops draining n pending files). */
async function fsloopSyscallsDetail(n) {
  const { parseStrace } = await import('./lib/strace.mjs');
  const { makeTmp } = await import('./lib/proc.mjs');
  const dir = makeTmp('fsloop-strace');
  const run = async (count) => {
    const out = join(dir, `strace-${count}`);
    const root = join(dir, `spool-${count}`);
    await runFsloop({ n: count, procs: 1, loops: 8, durable: true, phase: 'drain', strace: out, dir: root });
    rmrf(root);
    return parseStrace(readFileSync(`${out}.0`, 'utf8'));
  };
  try { return { base: await run(0), full: await run(n) }; } finally { rmrf(dir); }
}
void fsloopSyscalls;

// ---------------------------------------------------------------- run and print

const t0 = Date.now();
for (const k of FS) await measure(k);
const f = (v) => (v === undefined || v === null || !Number.isFinite(v) ? '–' : fmtNum(v));
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : '–');
const table = markdownTable(
  ['file system', 'zcq put/s (1 proc)', 'zcq put+drain jobs/s', 'zcq drain jobs/s', 'bare loop drain jobs/s (best)', ROUNDS > 1 ? 'zcq drain / bare loop: of the medians (each round; their median)' : 'zcq drain / bare loop', 'zcq drain after its first job, jobs/s', ROUNDS > 1 ? 'the same / bare loop: of the medians (each round; their median)' : 'the same / bare loop', 'bare loop full jobs/s', 'put→start p50 / p99 ms', 'put→done p50 / p99 ms', 'FS calls per job: zcq worker / bare loop', `idle worker, ${IDLE_QUEUES} queues: FS calls/s (GlusterFS: operations/s at the bricks)`],
  rows.map((r) => [r.fs, f(r.put), f(r.putdrain), f(r.drain), `${f(r.loopDrain)} (${r.loopBest || '–'})`, ratio(r.drain, r.loopDrain) + (r.rounds ? ` (${r.rounds})` : ''), f(r.drainWarm), ratio(r.drainWarm, r.loopDrain) + (r.roundsWarm ? ` (${r.roundsWarm})` : ''), f(r.loopFull),
    `${f(r.startP50)} / ${f(r.startP99)}`, `${f(r.doneP50)} / ${f(r.doneP99)}`, `${r.zMeta?.toFixed?.(1) ?? '–'} / ${r.loopMeta?.toFixed?.(1) ?? '–'}`, `${f(r.idleCalls)}${r.idleFops !== undefined ? ` (${f(r.idleFops)})` : ''}`]),
);
const scale = markdownTable(['file system', 'worker processes (× concurrency 8)', 'zcq drain jobs/s'], scaling.map((s) => [s.fs, String(s.procs), f(s.jobsPerSec)]));
const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end (the GlusterFS daemons count; other work on the machine skews every figure)`;
const text = [
  `# zcq per file system (${new Date().toISOString().slice(0, 16)}Z, ${N.toLocaleString('en-US')} durable no-op jobs, ${LAT} for latency, ${ROUNDS > 1 ? `drains: medians of ${ROUNDS} rounds in turn, the rest one run` : 'one run each'})`,
  '',
  `Command: \`node bench/fs-matrix.mjs --fs=${FS.join(',')} --n=${N} --lat=${LAT} --strace=${STRACE_N}${ROUNDS > 1 ? ` --rounds=${ROUNDS}` : ''}\`. Machine: ${machine}. Took ${Math.round((Date.now() - t0) / 1000)} s.`,
  '',
  table,
  '',
  `zcq: 2 worker processes × concurrency 8 (bench/run.mjs's throughput set-up). Bare loop: the same file operations with no zcq code (peers/fsloop.mjs), best of 2 processes × 8 async loops and 2 × 1 synchronous loop; *drain* = claim, finish, done of files already pending. zcq's drain is timed from the workers' spawn (their start-up counted, as in bench/run.mjs beside BullMQ) and again from their first \`job.done\` line to the last (start-up left out: the bare loop's time starts when its processes are ready). FS calls per job: \`strace -f -c\` of one worker (concurrency 8) draining the jobs minus an empty run, counting only calls that reach the file system (open, rename, link, unlink, mkdir, stat family, getdents64, fsync, ...), beside the bare loop draining as many. Idle worker: one \`zcq worker\` with default options serving ${IDLE_QUEUES} empty queues, its FS calls per second over ${IDLE_S} s (strace, start-up left out), and on GlusterFS the operations per second both bricks saw (\`gluster volume profile\`): what each idle worker adds to the server's load.`,
  '',
  '## Drain rate by worker processes (networked file systems)',
  '',
  scale,
  '',
  ...(notes.length ? ['Notes:', '', ...notes.map((n) => `- ${n}`), ''] : []),
].join('\n');
writeFileSync(OUT, text + '\n');
console.log('\n' + text);
