// The zcq side of the benchmark. Everything that depends on zcq's CLI, library or
// spool layout is in this file, so that contract changes are fixed here only.
//
// Contract used:
//   CLI     node bin/zcq --spool DIR init
//           node bin/zcq --spool DIR put <module#fn> [args...]          (prints the id)
//           node bin/zcq --spool DIR worker --root DIR --concurrency N
//                 [--exit-when-idle] [--max-jobs N] [--poll 1s]   (--relaxed: global, before the command)
//   library import { Spool } from dist/index.js
//           const spool = await Spool.init(dir, { durable })
//           (await spool.put(fn, args, opts)).id ; await spool.wait([id]) ; spool.close?.()
//           await spool.putMany([{ fn, args }, ...])                    (batches, as BullMQ's addBulk)
//   layout  (format 2) pending/<queue>/<id>.json, deferred/<queue>/<YYYYMMDDTHHMM>/<15-digit dueMs>.<id>.json,
//           done/<queue>/<id>.json, failed/<queue>/<id>.json, workers/<workerId>.json; every job here is
//           in queue Q ('default') unless a section says otherwise
// Extra worker flags for every run: env ZCQ_BENCH_WORKER_ARGS (e.g. "--poll 100ms").
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, watch, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnTracked, waitExit, stopChild, procMem, procCpuMs, sleep, makeTmp, rmrf, log } from './lib/proc.mjs';
import { writeLoopScript, timeScript } from './peers/nq.mjs';
import { parseStrace, perJob } from './lib/strace.mjs';
import { META_CALLS, countMetaOps } from './lib/metaops.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(here, '..');
export const BIN = join(ROOT, 'bin', 'zcq');
// The worker and the CLI timing run bin/zcq as an executable, as users do: its first line picks node's
// flags per command (see bin/zcq). Other calls (init, status) go through `node BIN`.
export const DIST = join(ROOT, 'dist', 'index.js');
export const JOBS = join(here, 'jobs');
/** The queue of every bench job unless a section says otherwise. */
const Q = 'default';
const EXTRA_WORKER_ARGS = (process.env.ZCQ_BENCH_WORKER_ARGS ?? '').split(/\s+/).filter(Boolean);

/** null when usable, else the reason. */
export function unavailable() {
  if (!existsSync(BIN)) return `zcq CLI not found (${BIN})`;
  if (!existsSync(DIST)) return `zcq library not built (${DIST}); run npm run build`;
  return null;
}

let libMod = null;
async function lib() {
  libMod ??= await import(pathToFileURL(DIST).href);
  if (typeof libMod.Spool?.init !== 'function') throw new Error('dist/index.js has no Spool.init');
  return libMod;
}

async function openSpool(dir, durable) {
  const { Spool } = await lib();
  return Spool.init(dir, { durable });
}

async function closeSpool(spool) {
  try {
    await spool?.close?.();
  } catch {}
}

/** Run the CLI synchronously; throws with its stderr on failure. */
export function cli(spool, args, { timeoutMs = 60000 } = {}) {
  const r = spawnSync(process.execPath, [BIN, '--spool', spool, ...args], { encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`zcq ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || r.error?.message || '').slice(-800)}`);
  return r.stdout;
}

export function initSpool(dir) {
  cli(dir, ['init']);
  return dir;
}

function workerArgs(spool, { concurrency = 8, relaxed = false, exitWhenIdle = false, maxJobs = null, queues = [], extra = [], runtime = null } = {}) {
  // --relaxed is a global option: before the command.
  const a = [BIN, '--spool', spool, ...(relaxed ? ['--relaxed'] : []), 'worker', '--root', JOBS, '--concurrency', String(concurrency), ...(runtime ? ['--runtime', runtime] : []), ...extra];
  for (const q of queues) a.push('--queue', q);
  if (exitWhenIdle) a.push('--exit-when-idle');
  if (maxJobs) a.push('--max-jobs', String(maxJobs));
  return [...a, ...EXTRA_WORKER_ARGS];
}

function spawnWorker(spool, opts = {}) {
  const args = workerArgs(spool, opts);
  if (opts.straceMeta) return spawnTracked('strace', ['-f', '-y', '-o', opts.straceMeta, '-e', `trace=${META_CALLS}`, ...args]);
  if (opts.strace) return spawnTracked('strace', ['-f', '-c', '-o', opts.strace, ...args]);
  return trackLastDone(spawnTracked(args[0], args.slice(1)));
}

/**
 * w.lastDoneAt: the time (ms, this machine's clock: the worker runs here) of the last job.done line the
 * worker logged, text or --json. The end of a drain is read from these lines rather than from done/'s
 * mtime, which has whole seconds on some file systems (sshfs: SFTP v3 has no finer times), so that a
 * drain of a few seconds there moved by up to a second with where it ended in the second.
 */
function trackLastDone(w) {
  w.lastDoneAt = null;
  w.firstDoneAt = null;
  w.doneLines = 0;
  let buf = '';
  w.stderr?.on('data', (d) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
      const line = buf.slice(0, i);
      let t = NaN;
      if (line.startsWith('{')) { if (line.includes('"job.done"')) { try { t = Date.parse(JSON.parse(line).time); } catch {} } }
      else if (line.includes(' job.done ')) t = Date.parse(line.slice(0, line.indexOf(' ')));
      if (Number.isNaN(t)) continue;
      w.doneLines++;
      if (t > (w.lastDoneAt ?? 0)) w.lastDoneAt = t;
      if (w.firstDoneAt === null || t < w.firstDoneAt) w.firstDoneAt = t;
    }
  });
  return w;
}

function countJson(dir) {
  try {
    return readdirSync(dir).filter((n) => n.endsWith('.json')).length;
  } catch (e) {
    if (e.code === 'ENOENT') return 0;
    throw e;
  }
}

function workerError(w, what) {
  return new Error(`zcq worker ${what} (exit ${w.exitCode ?? w.signalCode}): ${w.stderrText.slice(-800)}`);
}

/**
 * Poll done/ until n jobs are there; fail fast on failed jobs or dead workers. Each worker's CPU time is
 * sampled at every poll (w.cpuMs: the last reading while it lived; a worker that exits when idle may be
 * gone by the end), and once more as soon as the n-th job is seen. workers.cpuTrail gets one
 * { done, cpuMs } (all workers together) per poll, for steadyCpuUsPerJob.
 */
async function waitDone(spool, n, workers, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  workers.cpuTrail = [];
  const sampleCpu = (done) => {
    let sum = 0;
    let all = true;
    for (const w of workers) {
      const ms = procCpuMs(w.pid);
      if (ms !== null) w.cpuMs = ms;
      else all = false;
      sum += w.cpuMs ?? 0;
    }
    if (all) workers.cpuTrail.push({ done, cpuMs: sum });
  };
  for (;;) {
    const d = countJson(join(spool, 'done', Q));
    sampleCpu(d);
    if (d >= n) return d;
    const f = countJson(join(spool, 'failed', Q));
    if (f > 0) throw new Error(`${f} zcq jobs failed, e.g. ${readFileSync(join(spool, 'failed', Q, readdirSync(join(spool, 'failed', Q))[0]), 'utf8').slice(0, 600)}`);
    const dead = workers.find((w) => w.exitCode !== null || w.signalCode !== null);
    if (dead && workers.every((w) => w.exitCode !== null || w.signalCode !== null)) throw workerError(dead, `exited with ${d}/${n} done`);
    if (Date.now() > deadline) throw new Error(`timeout: ${d}/${n} zcq jobs done`);
    await sleep(250);
  }
}

/**
 * The workers' CPU per job in steady state: the CPU spent between the polls that saw 10 % and 90 % of the
 * n jobs done, over the jobs done between them. Start-up, JIT warm-up and the pool threads' first imports
 * (together 0.5–1.5 s of CPU a worker on a loaded box) stay out, as they do from the bare loop's figure.
 * null when the polls did not span at least a third of the jobs (a drain too quick for 250 ms polls).
 */
function steadyCpuUsPerJob(trail, n) {
  const a = trail.find((s) => s.done >= 0.1 * n);
  const b = [...trail].reverse().find((s) => s.done <= 0.9 * n);
  if (!a || !b || b.done - a.done < n / 3) return null;
  return ((b.cpuMs - a.cpuMs) * 1000) / (b.done - a.done);
}

/**
 * Wall-clock ms of the last job done: the workers' last job.done line (trackLastDone), once their n lines
 * are read (a line is logged after its file reached done/), else done/'s mtime.
 */
async function lastDoneMs(spool, ws, n) {
  const lines = () => ws.reduce((a, w) => a + (w.doneLines ?? 0), 0);
  for (let i = 0; i < 100 && lines() < n; i++) await sleep(20);
  const logged = lines() >= n ? Math.max(...ws.map((w) => w.lastDoneAt ?? 0)) : 0;
  return logged || statSync(join(spool, 'done', Q)).mtimeMs;
}

async function waitWorkersRegistered(spool, count, ms = 5000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && countJson(join(spool, 'workers')) < count) await sleep(50);
  await sleep(200);
}

const timeoutFor = (n) => Math.max(120000, n * 20);

// ---------------------------------------------------------------- 1. throughput

/**
 * Workers (procs × concurrency) already running and idle; this process puts n no-op
 * jobs one at a time (await each), or with bulk=k by putMany in batches of k (await
 * each batch). jobs/s from the first put to the last rename into done/.
 */
export async function putDrain({ n, procs = 2, concurrency = 8, durable = true, bulk = 0, runtime = null }) {
  const dir = makeTmp('zcq-tp');
  const spool = await openSpool(dir, durable);
  const ws = [];
  try {
    for (let i = 0; i < procs; i++) ws.push(spawnWorker(dir, { concurrency, relaxed: !durable, runtime }));
    await waitWorkersRegistered(dir, procs);
    const cpu0 = ws.map((w) => procCpuMs(w.pid) ?? 0);
    const t0 = Date.now();
    const p0 = process.hrtime.bigint();
    if (bulk) {
      for (let i = 0; i < n; i += bulk) await spool.putMany(Array.from({ length: Math.min(bulk, n - i) }, () => ({ fn: 'noop.mjs#noop', args: [] })));
    } else for (let i = 0; i < n; i++) await spool.put('noop.mjs#noop', [], {});
    const putMs = Number(process.hrtime.bigint() - p0) / 1e6;
    await waitDone(dir, n, ws, timeoutFor(n));
    const end = await lastDoneMs(dir, ws, n);
    const cpuUsPerJob = steadyCpuUsPerJob(ws.cpuTrail, n) ?? (ws.reduce((a, w, i) => a + (w.cpuMs - cpu0[i]), 0) * 1000) / n;
    return { jobsPerSec: (n * 1000) / Math.max(1, end - t0), putPerSec: (n * 1000) / putMs, cpuUsPerJob };
  } finally {
    await Promise.all(ws.map((w) => stopChild(w, 15000)));
    await closeSpool(spool);
    rmrf(dir);
  }
}

/**
 * n jobs already pending (put through the library, relaxed: the files are the same);
 * procs workers started with --exit-when-idle. jobs/s from worker spawn to the last
 * rename into done/ (includes worker start-up, as BullMQ's figure does); afterFirstPerSec from the first
 * job.done to the last (start-up left out, for a figure beside a bare loop that has none).
 */
export async function drain({ n, procs = 2, concurrency = 8, durable = true, runtime = null, extra = [] }) {
  const dir = makeTmp('zcq-dr');
  const producer = await openSpool(dir, false);
  const ws = [];
  try {
    for (let i = 0; i < n; i++) await producer.put('noop.mjs#noop', [], {});
    await closeSpool(producer);
    const t0 = Date.now();
    for (let i = 0; i < procs; i++) ws.push(spawnWorker(dir, { concurrency, relaxed: !durable, exitWhenIdle: true, runtime, extra }));
    await waitDone(dir, n, ws, timeoutFor(n));
    const end = await lastDoneMs(dir, ws, n);
    // From spawn, less what a worker's start and stop cost on an empty spool (0.3–0.5 s of CPU on a loaded
    // box: at 2,000 jobs that would be 300 µs a job of start-up).
    const startupMs = idleWorkerCpuMs(durable);
    if (process.env.ZCQ_BENCH_DEBUG) log(`drain: workers ${ws.map((w) => w.cpuMs).join(", ")} ms CPU, idle start+stop ${startupMs} ms`);
    const cpuUsPerJob = steadyCpuUsPerJob(ws.cpuTrail, n) ?? (Math.max(0, ws.reduce((a, w) => a + (w.cpuMs ?? 0), 0) - procs * startupMs) * 1000) / n;
    if (process.env.ZCQ_BENCH_DEBUG) log(`drain: steady ${steadyCpuUsPerJob(ws.cpuTrail, n)} us/job; from spawn less idle ${(Math.max(0, ws.reduce((a, w) => a + (w.cpuMs ?? 0), 0) - procs * startupMs) * 1000) / n} us/job`);
    for (const w of ws) {
      const r = await waitExit(w, 30000);
      if (r.timedOut) log('zcq worker did not exit when idle within 30 s (figure unaffected)');
      else if (r.code !== 0) throw workerError(w, 'failed');
    }
    // The same drain from its first job.done on: the workers' start-up (Node, modules, pool threads, the
    // first job's import) left out, as the bare loop's figure leaves out its own start.
    const first = Math.min(...ws.map((w) => w.firstDoneAt ?? Infinity));
    const afterFirstPerSec = Number.isFinite(first) && end > first ? ((n - 1) * 1000) / (end - first) : null;
    return { jobsPerSec: (n * 1000) / Math.max(1, end - t0), afterFirstPerSec, cpuUsPerJob };
  } finally {
    await Promise.all(ws.map((w) => stopChild(w, 15000)));
    rmrf(dir);
  }
}

/**
 * CPU time (user + kernel, ms) of one worker started on an empty spool with --exit-when-idle: its start-up
 * and shutdown, to take out of a drain's CPU per job. Measured by /usr/bin/time (a child's rusage); 0 when
 * that is not installed.
 */
function idleWorkerCpuMs(durable) {
  if (!existsSync('/usr/bin/time')) return 0;
  const dir = makeTmp('zcq-idle');
  try {
    initSpool(dir);
    const out = join(dir, 'time.txt');
    const args = workerArgs(dir, { concurrency: 8, relaxed: !durable, exitWhenIdle: true });
    const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', out, ...args], { encoding: 'utf8', timeout: 60000 });
    if (r.status !== 0) return 0;
    const [u, sys] = readFileSync(out, 'utf8').trim().split('\n').pop().split(' ').map(Number);
    return (u + sys) * 1000;
  } finally {
    rmrf(dir);
  }
}

// ---------------------------------------------------------------- 2. latency

/** Resolves when dir/<name> appears (fs.watch, with a 50 ms existence poll as a safety net). */
function fileWaiter(dir) {
  const waiting = new Map();
  const watcher = watch(dir, (ev, name) => {
    const t = process.hrtime.bigint();
    const r = name && waiting.get(name);
    if (r) {
      waiting.delete(name);
      r(t);
    }
  });
  const poll = setInterval(() => {
    for (const [name, r] of waiting) {
      if (existsSync(join(dir, name))) {
        waiting.delete(name);
        r(process.hrtime.bigint());
      }
    }
  }, 50);
  return {
    wait(name) {
      return new Promise((resolve) => {
        waiting.set(name, resolve);
        if (existsSync(join(dir, name))) {
          waiting.delete(name);
          resolve(process.hrtime.bigint());
        }
      });
    },
    close() {
      watcher.close();
      clearInterval(poll);
    },
  };
}

/**
 * One idle worker (concurrency 1); n jobs put one at a time, gapMs apart.
 * start: hrtime before put → hrtime stamped by the job (bench/jobs/noop.mjs#stamp);
 * doneFs: → done/<id>.json seen by fs.watch; doneApi: → spool.wait([id]) resolved.
 */
export async function latency({ n, durable = true, gapMs = 20, deadlineMs = 120000 }) {
  const dir = makeTmp('zcq-lat');
  const spool = await openSpool(dir, durable);
  const stampFile = join(dir, '..', `stamps-${Date.now()}.txt`);
  writeFileSync(stampFile, '');
  mkdirSync(join(dir, 'done', Q), { recursive: true });
  const doneW = fileWaiter(join(dir, 'done', Q));
  const w = spawnWorker(dir, { concurrency: 1, relaxed: !durable });
  const put = new Map();
  const doneFs = [];
  const doneApi = [];
  try {
    await waitWorkersRegistered(dir, 1);
    await sleep(300);
    const deadline = Date.now() + deadlineMs;
    for (let i = 0; i < n && Date.now() < deadline; i++) {
      if (w.exitCode !== null) throw workerError(w, 'exited');
      const t0 = process.hrtime.bigint();
      const job = await spool.put('noop.mjs#stamp', [stampFile, String(i)], {});
      put.set(String(i), t0);
      const fsP = doneW.wait(`${job.id}.json`);
      const apiP = spool.wait([job.id]).then(() => process.hrtime.bigint());
      const timeout = sleep(30000).then(() => {
        throw new Error(`job ${job.id} not done after 30 s`);
      });
      const [tFs, tApi] = await Promise.race([Promise.all([fsP, apiP]), timeout]);
      doneFs.push(Number(tFs - t0) / 1e6);
      doneApi.push(Number(tApi - t0) / 1e6);
      await sleep(gapMs);
    }
  } finally {
    doneW.close();
    await stopChild(w, 15000);
    await closeSpool(spool);
  }
  const start = [];
  for (const line of readFileSync(stampFile, 'utf8').split('\n')) {
    const [tag, ns] = line.split(' ');
    if (put.has(tag)) start.push(Number(BigInt(ns) - put.get(tag)) / 1e6);
  }
  rmrf(dir);
  rmrf(stampFile);
  return { start, doneFs, doneApi, count: doneFs.length };
}

// ---------------------------------------------------------------- backlog files

let genBatch = 0;
const ts36 = (ms) => ms.toString(36).padStart(9, '0');

function jobBody(id, created, queue = Q) {
  return JSON.stringify({
    zcq: 1, id, fn: 'noop.mjs#noop', args: [], queue, created, attempts: 0, retries: 0, history: [],
  });
}

/**
 * Write count ready jobs straight into pending/ (no fsync: bench input). Ids are
 * "<ms base36>-bench<batch>-<counter>", so they sort by creation time like zcq's.
 */
export function writePending(spool, count, { progress = 'pending', queue = Q } = {}) {
  const dir = join(spool, 'pending', queue);
  mkdirSync(dir, { recursive: true });
  const created = new Date().toISOString();
  const prefix = `${ts36(Date.now())}-bench${(genBatch++).toString(36)}-`;
  const t0 = Date.now();
  for (let i = 0; i < count; i++) {
    const id = prefix + i.toString(36).padStart(7, '0');
    writeFileSync(join(dir, id + '.json'), jobBody(id, created, queue));
    if (progress && i > 0 && i % 200000 === 0) log(`  ${progress}: ${i.toLocaleString('en-US')}/${count.toLocaleString('en-US')} files written`);
  }
  return Date.now() - t0;
}

function bucketOf(dueMs) {
  const d = new Date(dueMs).toISOString(); // 2031-01-02T03:04:05.678Z
  return d.slice(0, 4) + d.slice(5, 7) + d.slice(8, 10) + 'T' + d.slice(11, 13) + d.slice(14, 16);
}

/** Deferred name for job id, due (far future) spread 1,000 jobs per minute bucket. */
function deferredPath(spool, id, index, baseMs) {
  const due = baseMs + Math.floor(index / 1000) * 60000 + (index % 1000);
  const b = bucketOf(due);
  return { bucket: join(spool, 'deferred', Q, b), file: `${String(due).padStart(15, '0')}.${id}.json` };
}

// ---------------------------------------------------------------- 3. backlog

/**
 * A spool reused across runs: pending/ holds `pending` jobs, deferred/ holds
 * `deferred` jobs due a year from now. Files are created once, topped up after
 * each run, moved (rename, cheap) rather than rewritten where possible.
 */
export class BacklogSpool {
  constructor() {
    this.dir = makeTmp('zcq-backlog');
    initSpool(this.dir);
    this.deferredBase = Date.now() + 365 * 86400000;
    this.deferredCount = 0;
    this.deferredBuckets = [];
  }

  pendingCount() {
    return countJson(join(this.dir, 'pending', Q));
  }

  /** Make pending/ hold exactly n jobs (create new ones or delete the newest). */
  setPending(n) {
    const have = this.pendingCount();
    if (have < n) writePending(this.dir, n - have);
    else if (have > n) {
      const names = readdirSync(join(this.dir, 'pending', Q)).filter((x) => x.endsWith('.json')).sort();
      for (const name of names.slice(n)) rmSync(join(this.dir, 'pending', Q, name));
    }
  }

  /**
   * Make deferred/ hold exactly n jobs: moves pending jobs beyond `keepPending`
   * into deferred/ (rename), writes new ones if still short, drops whole buckets
   * (newest first) when over.
   */
  setDeferred(n, keepPending) {
    if (this.deferredCount < n) {
      const pdir = join(this.dir, 'pending', Q);
      const names = readdirSync(pdir).filter((x) => x.endsWith('.json')).sort();
      const movable = names.slice(keepPending);
      let moved = 0;
      for (const name of movable) {
        if (this.deferredCount >= n) break;
        this.#addDeferred(name.slice(0, -5), (src, dst) => renameSync(join(pdir, name), dst));
        moved++;
        if (moved % 200000 === 0) log(`  deferred: ${moved.toLocaleString('en-US')} moved from pending/`);
      }
      if (this.deferredCount < n) {
        const created = new Date().toISOString();
        const prefix = `${ts36(Date.now())}-benchd${(genBatch++).toString(36)}-`;
        for (let i = 0; this.deferredCount < n; i++) {
          const id = prefix + i.toString(36).padStart(7, '0');
          this.#addDeferred(id, (src, dst) => writeFileSync(dst, jobBody(id, created)));
          if (i > 0 && i % 200000 === 0) log(`  deferred: ${i.toLocaleString('en-US')} written`);
        }
      }
    }
    while (this.deferredCount > n) {
      const b = this.deferredBuckets.pop();
      const cnt = countJson(b);
      if (this.deferredCount - cnt < n) {
        // partial bucket: remove files one by one
        const names = readdirSync(b).sort().reverse();
        for (const name of names) {
          if (this.deferredCount <= n) break;
          rmSync(join(b, name));
          this.deferredCount--;
        }
        this.deferredBuckets.push(b);
        break;
      }
      rmSync(b, { recursive: true, force: true });
      this.deferredCount -= cnt;
    }
    this.setPending(keepPending);
  }

  #addDeferred(id, place) {
    const { bucket, file } = deferredPath(this.dir, id, this.deferredCount, this.deferredBase);
    if (this.deferredBuckets[this.deferredBuckets.length - 1] !== bucket) {
      mkdirSync(bucket, { recursive: true });
      this.deferredBuckets.push(bucket);
    }
    place(null, join(bucket, file));
    this.deferredCount++;
  }

  /**
   * One worker (concurrency 8, durable) with --max-jobs `jobs`; ms from spawn to exit.
   * done/ is emptied first; the jobs it took are replaced afterwards by the caller (setPending).
   */
  async timeMaxJobs(jobs, timeoutMs) {
    rmrf(join(this.dir, 'done', Q));
    mkdirSync(join(this.dir, 'done', Q));
    const t0 = process.hrtime.bigint();
    const w = spawnWorker(this.dir, { concurrency: 8, maxJobs: jobs });
    const r = await waitExit(w, timeoutMs);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.timedOut) {
      await stopChild(w, 10000);
      return { ms: null, timedOut: true };
    }
    if (r.code !== 0) throw workerError(w, 'failed');
    const d = countJson(join(this.dir, 'done', Q));
    if (d !== jobs) throw new Error(`worker with --max-jobs ${jobs} left ${d} jobs in done/`);
    return { ms, timedOut: false };
  }

  destroy() {
    log(`  removing backlog spool ${this.dir}`);
    rmrf(this.dir);
  }
}

// ---------------------------------------------------------------- 3b. queue isolation

/**
 * A spool with `urgent` jobs in queue urgent behind a backlog in queue bulk. timeUrgent(): ms from the spawn
 * of a worker serving only `urgent` (--max-jobs urgent, durable, concurrency 8) to its exit. setBulk(n) tops
 * the other queue up to n pending jobs between runs (it is never touched by the worker).
 */
export class QueueSpool {
  constructor(urgent) {
    this.urgent = urgent;
    this.dir = makeTmp('zcq-queues');
    initSpool(this.dir);
  }

  setBulk(n) {
    const have = countJson(join(this.dir, 'pending', 'bulk'));
    if (have < n) writePending(this.dir, n - have, { queue: 'bulk', progress: 'bulk' });
    else if (have > n) {
      const names = readdirSync(join(this.dir, 'pending', 'bulk')).filter((x) => x.endsWith('.json')).sort();
      for (const name of names.slice(n)) rmSync(join(this.dir, 'pending', 'bulk', name));
    }
  }

  async timeUrgent(timeoutMs) {
    writePending(this.dir, this.urgent, { queue: 'urgent', progress: null });
    rmrf(join(this.dir, 'done', 'urgent'));
    const t0 = process.hrtime.bigint();
    const w = spawnWorker(this.dir, { concurrency: 8, maxJobs: this.urgent, queues: ['urgent'] });
    const r = await waitExit(w, timeoutMs);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.timedOut) { await stopChild(w, 10000); return { ms: null, timedOut: true }; }
    if (r.code !== 0) throw workerError(w, 'failed');
    const d = countJson(join(this.dir, 'done', 'urgent'));
    if (d !== this.urgent) throw new Error(`urgent worker left ${d}/${this.urgent} jobs in done/urgent/`);
    if (countJson(join(this.dir, 'done', 'bulk')) > 0) throw new Error('a worker serving only urgent ran a bulk job');
    return { ms, timedOut: false };
  }

  destroy() {
    rmrf(this.dir);
  }
}

// ---------------------------------------------------------------- 3c. pruning beside claims

/**
 * Does pruning a huge done/ stall a worker's claims? A spool whose done/default/ holds `finished` records
 * finished 30 days ago (mtime backdated: the default retention keeps done 7 days), one worker (concurrency 1,
 * --housekeeping 1s: its first pass, a second after it starts, prunes them all), and `n` jobs put one at a
 * time while it prunes, each awaited: put→start (the job's own hrtime stamp, as in latency()). With
 * finished = 0 the same worker has nothing to prune: the baseline.
 * Also returned: the prune pass's removed count and duration (its retention.pruned log line), and which
 * jobs were put while the pass ran (between its start, the line's time less its ms, and the line).
 */
export async function pruneLatency({ finished, n, gapMs = 20, pruneWaitMs = 600000 }) {
  const dir = makeTmp('zcq-prune');
  initSpool(dir);
  let writeMs = 0;
  if (finished > 0) writeMs = writeFinished(dir, finished, 30 * 86400000);
  const spool = await openSpool(dir, true);
  const stampFile = join(dir, '..', `prune-stamps-${Date.now()}.txt`);
  writeFileSync(stampFile, '');
  const w = spawnWorker(dir, { concurrency: 1, extra: ['--housekeeping', '1s'] });
  // The worker's log, line by line (stderrText keeps only the first 20 kB; job.done lines come first).
  let pruned = null;
  let buf = '';
  w.stderr.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const m = / retention\.pruned .*removed=(\d+) ms=(\d+)/.exec(line);
      if (m && !pruned) pruned = { at: process.hrtime.bigint(), removed: Number(m[1]), ms: Number(m[2]) };
    }
  });
  const spawnedAt = process.hrtime.bigint();
  const put = new Map();
  try {
    await waitWorkersRegistered(dir, 1);
    for (let i = 0; i < n; i++) {
      if (w.exitCode !== null) throw workerError(w, 'exited');
      const t0 = process.hrtime.bigint();
      const job = await spool.put('noop.mjs#stamp', [stampFile, String(i)], {});
      put.set(String(i), t0);
      await Promise.race([spool.wait([job.id]), sleep(60000).then(() => { throw new Error(`job ${job.id} not done after 60 s`); })]);
      await sleep(gapMs);
    }
    // Let the pass end (to report its length), unless there was nothing to prune.
    const deadline = Date.now() + pruneWaitMs;
    while (finished > 0 && !pruned && Date.now() < deadline && w.exitCode === null) await sleep(200);
  } finally {
    await stopChild(w, 15000);
    await closeSpool(spool);
  }
  const start = [];
  const during = [];
  const pruneStart = pruned ? pruned.at - BigInt(pruned.ms) * 1000000n : null;
  for (const line of readFileSync(stampFile, 'utf8').split('\n')) {
    const [tag, ns] = line.split(' ');
    if (!put.has(tag)) continue;
    const t0 = put.get(tag);
    const ms = Number(BigInt(ns) - t0) / 1e6;
    start.push(ms);
    // Put while the pass ran: after its start and before its end (a pass that never ended: after 1 s).
    const from = pruneStart ?? spawnedAt + 1000000000n;
    if (finished > 0 && t0 >= from && (!pruned || t0 <= pruned.at)) during.push(ms);
  }
  const left = countJson(join(dir, 'done', Q));
  rmrf(dir);
  rmrf(stampFile);
  return { start, during, count: start.length, writeMs, pruned, left };
}

/** Write `count` finished records into done/default/ with their mtime `ageMs` ago (bench input, no fsync). */
function writeFinished(spool, count, ageMs) {
  const dir = join(spool, 'done', Q);
  mkdirSync(dir, { recursive: true });
  const at = new Date(Date.now() - ageMs);
  const iso = at.toISOString();
  const prefix = `${ts36(at.getTime())}-bench${(genBatch++).toString(36)}-`;
  const t0 = Date.now();
  for (let i = 0; i < count; i++) {
    const id = prefix + i.toString(36).padStart(7, '0');
    const path = join(dir, id + '.json');
    writeFileSync(path, JSON.stringify({
      zcq: 1, id, fn: 'noop.mjs#noop', args: [], queue: Q, created: iso, attempts: 1, retries: 0, history: [],
      finished: iso, result: null,
    }));
    utimesSync(path, at, at);
    if (i > 0 && i % 200000 === 0) log(`  finished: ${i.toLocaleString('en-US')}/${count.toLocaleString('en-US')} files written`);
  }
  return Date.now() - t0;
}

// ---------------------------------------------------------------- 4. CLI

/** `zcq put noop.mjs#noop` ×count in a bash script: total ms (median of runs). */
export function cliPut({ count = 100, runs = 3 }) {
  const dir = makeTmp('zcq-cli');
  const spool = join(dir, 'spool');
  mkdirSync(spool);
  initSpool(spool);
  const q = (s) => `'${s}'`;
  const script = writeLoopScript(join(dir, 'zcq-put.sh'), `${q(BIN)} --spool ${q(spool)} put noop.mjs#noop`, count);
  try {
    return timeScript(script, { runs });
  } finally {
    rmrf(dir);
  }
}

/**
 * `node -e 0` and `zcq --relaxed put noop.mjs#noop` (bin/zcq run as an executable, as from a shell),
 * interleaved, `runs` times each; CPU (user + kernel) of each process to the microsecond from its rusage
 * (bench/micro/ab-cpu.py; /usr/bin/time counts in 10 ms steps). Returns { node, zcq }: ms lists.
 */
export function cliPutInterleaved({ runs = 15 } = {}) {
  const dir = makeTmp('zcq-clii');
  const spool = join(dir, 'spool');
  mkdirSync(spool);
  initSpool(spool);
  try {
    const r = spawnSync('python3', [join(here, 'micro', 'ab-cpu.py'), '--json', String(runs), process.execPath, '-e', '0', '--', BIN, '--spool', spool, '--relaxed', 'put', 'noop.mjs#noop'],
      { encoding: 'utf8', timeout: runs * 60_000 });
    if (r.status !== 0) throw new Error(`ab-cpu.py failed (${r.status ?? r.error?.message}): ${(r.stderr || '').slice(-500)}`);
    const [node, zcq] = JSON.parse(r.stdout.trim().split('\n').pop());
    return { node, zcq };
  } finally {
    rmrf(dir);
  }
}

// ---------------------------------------------------------------- 5. memory

/** A spool with `pending` jobs; measure(seconds) → worker VmHWM after draining that long. */
export class MemorySpool {
  constructor(pending) {
    this.pending = pending;
    this.dir = makeTmp('zcq-mem');
    initSpool(this.dir);
    writePending(this.dir, pending, { progress: 'memory' });
  }

  async measure(seconds) {
    const have = countJson(join(this.dir, 'pending', Q));
    if (have < this.pending) writePending(this.dir, this.pending - have, { progress: null });
    rmrf(join(this.dir, 'done', Q));
    const w = spawnWorker(this.dir, { concurrency: 8 });
    try {
      await sleep(seconds * 1000);
      if (w.exitCode !== null) throw workerError(w, 'exited early');
      const m = procMem(w.pid);
      return { hwmKb: m?.hwmKb ?? null, doneInWindow: countJson(join(this.dir, 'done', Q)) };
    } finally {
      await stopChild(w, 15000);
    }
  }

  destroy() {
    rmrf(this.dir);
  }
}

// ---------------------------------------------------------------- 6. syscalls

/**
 * strace -f -c of one worker (concurrency 8, --exit-when-idle) draining n pending
 * jobs, minus the same worker on an empty spool (start-up/shutdown), per job.
 */
export async function syscalls({ n, durable = true }) {
  const run = async (count) => {
    const dir = makeTmp('zcq-strace');
    const spool = join(dir, 'spool');
    mkdirSync(spool);
    initSpool(spool);
    if (count) writePending(spool, count, { progress: null });
    const out = join(dir, 'strace.txt');
    const w = spawnWorker(spool, { concurrency: 8, relaxed: !durable, exitWhenIdle: true, strace: out });
    const r = await waitExit(w, 600000);
    try {
      if (r.timedOut) throw new Error('zcq worker under strace timed out');
      if (r.code !== 0) throw workerError(w, 'failed under strace');
      const d = countJson(join(spool, 'done', Q));
      if (d !== count) throw new Error(`strace run: ${d}/${count} done`);
      return parseStrace(readFileSync(out, 'utf8'));
    } finally {
      await stopChild(w, 5000);
      rmrf(dir);
    }
  };
  const base = await run(0);
  const full = await run(n);
  return { ...perJob(full, base, n), gross: full.total, base: base.total };
}

/**
 * Metadata operations per job (bench/lib/metaops.mjs): a producer process putting n jobs one at a time
 * through the library, then one worker (concurrency 8, --exit-when-idle) draining them, each under
 * `strace -f -y`. Returns { put, claim, finish, lease } counts (divide by n).
 */
export async function metaOps({ n, durable = true }) {
  const dir = makeTmp('zcq-metaops');
  const spool = join(dir, 'spool');
  mkdirSync(spool);
  initSpool(spool);
  try {
    const putTrace = join(dir, 'put.strace');
    const script = `const { Spool } = await import(${JSON.stringify(pathToFileURL(DIST).href)});
const s = await Spool.open(${JSON.stringify(spool)}, { durable: ${durable} });
for (let i = 0; i < ${n}; i++) await s.put('noop.mjs#noop', []);
await s.close?.();`;
    const p = spawnSync('strace', ['-f', '-y', '-o', putTrace, '-e', `trace=${META_CALLS}`, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 600000 });
    if (p.status !== 0) throw new Error(`producer under strace failed (${p.status ?? p.signal}): ${(p.stderr || '').slice(-500)}`);
    const wTrace = join(dir, 'worker.strace');
    const w = spawnWorker(spool, { concurrency: 8, relaxed: !durable, exitWhenIdle: true, straceMeta: wTrace });
    const r = await waitExit(w, 600000);
    if (r.timedOut) throw new Error('zcq worker under strace timed out');
    if (r.code !== 0) throw workerError(w, 'failed under strace');
    const d = countJson(join(spool, 'done', Q));
    if (d !== n) throw new Error(`metaops run: ${d}/${n} done`);
    const prefix = spool + '/';
    return { ...countMetaOps(readFileSync(putTrace, 'utf8'), prefix, 'put'), ...countMetaOps(readFileSync(wTrace, 'utf8'), prefix, 'worker') };
  } finally {
    rmrf(dir);
  }
}
