// BullMQ peer. As a module: starts/stops its own redis-server and runs the
// measurements. As a script (`node bullmq.mjs worker ...`): one worker process.
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  spawnTracked, waitExit, stopChild, waitForOutput, procMem, freePort, sleep, makeTmp, onExit, nowMs, log,
} from '../lib/proc.mjs';
import { parseStrace, perJob } from '../lib/strace.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const PREFIX = 'bull';

// ---------------------------------------------------------------- redis-server

/**
 * mode 'default': --save '' --appendonly no (no persistence: Redis' out-of-the-box
 *                 default minus the RDB snapshots, which would only add noise);
 * mode 'always' : --appendonly yes --appendfsync always (every write fsynced before the reply).
 * The data dir is a temp folder; the server is stopped by stop(), and killed at
 * harness exit if anything went wrong before that.
 */
export async function startRedis(mode) {
  const port = await freePort();
  const dir = makeTmp(`redis-${mode}`);
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no',
    '--protected-mode', 'no', '--save', '', '--logfile', '', '--maxmemory-policy', 'noeviction'];
  if (mode === 'always') args.push('--appendonly', 'yes', '--appendfsync', 'always');
  else args.push('--appendonly', 'no');
  const child = spawnTracked('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const off = onExit(() => {
    try { child.kill('SIGKILL'); } catch {}
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    await waitForOutput(child, /Ready to accept connections/, 15000);
  } catch (e) {
    try { child.kill('SIGKILL'); } catch {}
    throw e;
  }
  const stop = async () => {
    await stopChild(child, 10000, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    off();
  };
  return { port, mode, dir, pid: child.pid, child, stop };
}

/** Start a redis-server, run fn(redis), always stop it. */
export async function withRedis(mode, fn) {
  const redis = await startRedis(mode);
  try {
    return await fn(redis);
  } finally {
    await redis.stop();
  }
}

// ---------------------------------------------------------------- helpers

let bullmqMod = null;
async function bullmq() {
  bullmqMod ??= await import('bullmq');
  return bullmqMod;
}

const conn = (redis) => ({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null });
let qCounter = 0;
const newQueueName = () => `q${process.pid}x${++qCounter}`;

async function openQueue(redis) {
  const { Queue } = await bullmq();
  const name = newQueueName();
  const { Redis } = await import('ioredis');
  const client = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null });
  await client.flushall();
  const queue = new Queue(name, { connection: conn(redis) });
  await queue.waitUntilReady();
  const close = queue.close.bind(queue);
  queue.close = async () => {
    await close();
    client.disconnect();
  };
  return { name, queue, client };
}

function spawnWorker(redis, name, { concurrency = 8, processor = 'noop', exitWhenDrained = false, strace = null } = {}) {
  const args = [SELF, 'worker', String(redis.port), name, String(concurrency), processor];
  if (exitWhenDrained) args.push('--exit-when-drained');
  if (strace) return spawnTracked('strace', ['-f', '-c', '-o', strace, process.execPath, ...args]);
  return spawnTracked(process.execPath, args);
}

async function startWorkers(redis, name, count, opts) {
  const ws = [];
  for (let i = 0; i < count; i++) ws.push(spawnWorker(redis, name, opts));
  await Promise.all(ws.map((w) => waitForOutput(w, /^ready$/m, 20000)));
  return ws;
}

async function stopWorkers(ws) {
  await Promise.all(ws.map((w) => stopChild(w, 15000)));
}

async function waitCompleted(queue, n, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await queue.getCompletedCount();
    if (c >= n) return c;
    const f = await queue.getFailedCount();
    if (f > 0) throw new Error(`${f} BullMQ jobs failed`);
    if (Date.now() > deadline) throw new Error(`timeout: only ${c}/${n} BullMQ jobs completed`);
    await sleep(200);
  }
}

/** Greatest finishedOn (epoch ms) of the completed jobs: the zset score. */
async function lastFinishedOn(client, name) {
  const r = await client.zrange(`${PREFIX}:${name}:completed`, -1, -1, 'WITHSCORES');
  return Number(r[1]);
}

async function addBulk(queue, n, batch = 1000, data = () => ({})) {
  for (let i = 0; i < n; i += batch) {
    const jobs = [];
    for (let j = i; j < Math.min(n, i + batch); j++) jobs.push({ name: 'noop', data: data(j) });
    await queue.addBulk(jobs);
  }
}

// ---------------------------------------------------------------- measurements

/**
 * Jobs put by one producer (this process) while `workers` processes × concurrency
 * drain them; jobs/s from the first add to the last finishedOn.
 * bulk=0: queue.add awaited one at a time; bulk=k: addBulk in batches of k.
 */
export async function bullPutDrain(redis, { n, workers = 2, concurrency = 8, bulk = 0, timeoutMs = 600000 }) {
  const { name, queue, client } = await openQueue(redis);
  const ws = await startWorkers(redis, name, workers, { concurrency });
  try {
    const t0 = Date.now();
    const p0 = nowMs();
    if (bulk) await addBulk(queue, n, bulk);
    else for (let i = 0; i < n; i++) await queue.add('noop', {});
    const putMs = nowMs() - p0;
    await waitCompleted(queue, n, timeoutMs);
    const end = await lastFinishedOn(client, name);
    return { jobsPerSec: (n * 1000) / Math.max(1, end - t0), putPerSec: (n * 1000) / putMs };
  } finally {
    await stopWorkers(ws);
    await queue.close();
  }
}

/** n jobs already waiting (added with addBulk); jobs/s from worker spawn to the last finishedOn. */
export async function bullDrain(redis, { n, workers = 2, concurrency = 8, timeoutMs = 600000 }) {
  const { name, queue, client } = await openQueue(redis);
  await addBulk(queue, n);
  const t0 = Date.now();
  const ws = [];
  for (let i = 0; i < workers; i++) ws.push(spawnWorker(redis, name, { concurrency }));
  try {
    await waitCompleted(queue, n, timeoutMs);
    const end = await lastFinishedOn(client, name);
    return { jobsPerSec: (n * 1000) / Math.max(1, end - t0) };
  } finally {
    await stopWorkers(ws);
    await queue.close();
  }
}

/**
 * One idle worker (concurrency 1); n jobs one at a time, gapMs apart.
 * put→start: producer hrtime before add → hrtime stamped by the job at start.
 * put→done: producer hrtime before add → job.waitUntilFinished() resolves (QueueEvents).
 */
export async function bullLatency(redis, { n, gapMs = 20, deadlineMs = 120000 }) {
  const { QueueEvents } = await bullmq();
  const { name, queue } = await openQueue(redis);
  const qe = new QueueEvents(name, { connection: conn(redis) });
  await qe.waitUntilReady();
  const stampFile = join(makeTmp('bull-lat'), 'stamps.txt');
  writeFileSync(stampFile, '');
  const [w] = await startWorkers(redis, name, 1, { concurrency: 1, processor: 'stamp' });
  const put = new Map();
  const done = [];
  try {
    await sleep(300);
    const deadline = Date.now() + deadlineMs;
    for (let i = 0; i < n && Date.now() < deadline; i++) {
      const t0 = process.hrtime.bigint();
      const job = await queue.add('stamp', { file: stampFile, tag: i });
      await job.waitUntilFinished(qe, 30000);
      const t2 = process.hrtime.bigint();
      put.set(String(i), t0);
      done.push(Number(t2 - t0) / 1e6);
      await sleep(gapMs);
    }
  } finally {
    await stopWorkers([w]);
    await qe.close();
    await queue.close();
  }
  const start = [];
  for (const line of readFileSync(stampFile, 'utf8').split('\n')) {
    const [tag, ns] = line.split(' ');
    if (put.has(tag)) start.push(Number(BigInt(ns) - put.get(tag)) / 1e6);
  }
  return { start, done, count: done.length };
}

/** Peak RSS (VmHWM) of one worker (concurrency 8) draining for `seconds` with `pending` jobs waiting. */
export async function bullMemory(redis, { pending, seconds = 5 }) {
  const { name, queue } = await openQueue(redis);
  await addBulk(queue, pending);
  const redisBefore = procMem(redis.pid);
  const [w] = await startWorkers(redis, name, 1, { concurrency: 8 });
  try {
    await sleep(seconds * 1000);
    const m = procMem(w.pid);
    const r = procMem(redis.pid);
    return { workerHwmKb: m?.hwmKb ?? null, redisHwmKb: r?.hwmKb ?? null, redisRssBeforeKb: redisBefore?.rssKb ?? null };
  } finally {
    await stopWorkers([w]);
    await queue.close();
  }
}

/**
 * Syscalls of the BullMQ worker process alone (client side, Redis not counted) draining n
 * jobs, minus a run with 0 jobs (startup/shutdown), divided by n.
 */
export async function bullSyscalls(redis, { n }) {
  const dir = makeTmp('bull-strace');
  const run = async (count) => {
    const { name, queue } = await openQueue(redis);
    if (count) await addBulk(queue, count);
    const out = join(dir, `strace-${count}.txt`);
    const w = spawnWorker(redis, name, { concurrency: 8, exitWhenDrained: true, strace: out });
    const r = await waitExit(w, 600000);
    try {
      if (r.timedOut) throw new Error('BullMQ strace worker timed out');
      const c = await queue.getCompletedCount();
      if (c !== count) throw new Error(`BullMQ strace run: ${c}/${count} completed`);
      return parseStrace(readFileSync(out, 'utf8'));
    } finally {
      await stopChild(w, 5000);
      await queue.close();
    }
  };
  const base = await run(0);
  const full = await run(n);
  return { ...perJob(full, base, n), gross: full.total, base: base.total };
}

// ---------------------------------------------------------------- worker process

async function workerMain(argv) {
  const [port, name, concurrency, processor, ...flags] = argv;
  const { Worker } = await bullmq();
  const jobs = await import(join(here, '..', 'jobs', 'noop.mjs'));
  const fn = processor === 'stamp' ? async (job) => jobs.stamp(job.data.file, job.data.tag) : async () => jobs.noop();
  const worker = new Worker(name, fn, {
    connection: { host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: null },
    concurrency: Number(concurrency),
  });
  worker.on('error', (e) => process.stderr.write(`bullmq worker error: ${e?.message}\n`));
  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    await worker.close();
    process.exit(0);
  };
  process.on('SIGTERM', close);
  process.on('SIGINT', close);
  if (flags.includes('--exit-when-drained')) worker.on('drained', close);
  await worker.waitUntilReady();
  process.stdout.write('ready\n');
}

if (process.argv[1] === SELF && process.argv[2] === 'worker') {
  workerMain(process.argv.slice(3)).catch((e) => {
    process.stderr.write(String(e?.stack ?? e) + '\n');
    process.exit(1);
  });
}
