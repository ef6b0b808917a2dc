// Bench section `composite` (issue 12): what joining costs. A parallel group of N no-op members with a
// postprocess, timed from the put to the postprocess done, beside N plain no-op jobs put with putMany and
// drained by the same workers, and beside BullMQ's FlowProducer (a parent with N children, the parent
// reading its children's values) and BullMQ's addBulk of N plain jobs, in the same run.
//
// The clock is the same on both sides: t0 is this process's Date.now() just before the first put; the end
// is the file server's mtime of done/QUEUE/ when the last job (the postprocess, or the N-th plain job)
// is there (the rename that put it there set it), and for BullMQ the last job's finishedOn.
//
// As a module: `run(ctx)` measures and `rows(row)` adds the table rows (bench/run.mjs). As a script
// (`node composite.mjs bull-worker PORT QUEUE CONCURRENCY`): one BullMQ worker process.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnTracked, stopChild, waitForOutput, makeTmp, rmrf, sleep } from '../lib/proc.mjs';
import { startRedis } from '../peers/bullmq.mjs';
import { BIN, DIST, JOBS, initSpool } from '../zcq.mjs';

const SELF = fileURLToPath(import.meta.url);
/** Members per group, and plain jobs beside them. */
export const N = 1000;
const PROCS = 2;
const CONC = 8;
const Q = 'default';
const NOOP = 'noop.mjs#noop';
const TIMEOUT_MS = 180_000;

const modes = [['durable', 'always'], ['relaxed', 'default']];

// ---------------------------------------------------------------- zcq

function zcqWorker(spool, relaxed) {
  return spawnTracked(BIN, ['--spool', spool, ...(relaxed ? ['--relaxed'] : []), 'worker', '--root', JOBS, '--concurrency', String(CONC)]);
}

const countIn = (dir) => { try { return readdirSync(dir).filter((n) => n.endsWith('.json')).length; } catch (e) { if (e.code === 'ENOENT') return 0; throw e; } };

async function until(cond, ws, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!cond()) {
    if (ws.every((w) => w.exitCode !== null || w.signalCode !== null)) throw new Error(`zcq workers exited before ${what}: ${ws[0].stderrText.slice(-600)}`);
    if (Date.now() > deadline) throw new Error(`timeout: ${what}`);
    await sleep(20);
  }
}

/**
 * One measure on a fresh spool with PROCS idle workers: `kind` 'parallel' (a group of N members and a
 * postprocess) or 'plain' (N jobs by putMany). Milliseconds from the put to the last job in done/.
 */
async function zcqOnce(kind, durable) {
  const dir = join(makeTmp('zcq-comp'), 'spool');
  initSpool(dir);
  const { Spool } = await import(pathToFileURL(DIST).href);
  const spool = await Spool.open(dir, { durable });
  const ws = [];
  try {
    for (let i = 0; i < PROCS; i++) ws.push(zcqWorker(dir, !durable));
    const deadline = Date.now() + 10_000;
    while (countIn(join(dir, 'workers')) < PROCS && Date.now() < deadline) await sleep(50);
    await sleep(200);
    const done = join(dir, 'done', Q);
    const failed = join(dir, 'failed', Q);
    const items = Array.from({ length: N }, () => ({ fn: NOOP, args: [] }));
    const t0 = Date.now();
    let putMs;
    if (kind === 'parallel') {
      const handle = await spool.parallel(items, { postprocess: NOOP });
      putMs = Date.now() - t0;
      const file = join(done, `${handle.id}.json`);
      await until(() => existsSync(file) || countIn(failed) > 0, ws, `postprocess ${handle.id} done`);
    } else {
      await spool.putMany(items);
      putMs = Date.now() - t0;
      await until(() => countIn(done) >= N || countIn(failed) > 0, ws, `${N} plain jobs done`);
    }
    if (countIn(failed) > 0) throw new Error(`zcq ${kind}: jobs failed, e.g. ${readdirSync(failed)[0]}`);
    return { ms: statSync(done).mtimeMs - t0, putMs };
  } finally {
    await Promise.all(ws.map((w) => stopChild(w, 15000)));
    await spool.close?.();
    rmrf(join(dir, '..'));
  }
}

// ---------------------------------------------------------------- BullMQ

async function bullWorkers(redis, name) {
  const ws = [];
  for (let i = 0; i < PROCS; i++) ws.push(spawnTracked(process.execPath, [SELF, 'bull-worker', String(redis.port), name, String(CONC)]));
  await Promise.all(ws.map((w) => waitForOutput(w, /^ready$/m, 20000)));
  return ws;
}

let qn = 0;
/** `kind` 'flow' (FlowProducer: a parent with N children) or 'plain' (addBulk of N). Milliseconds to the last finishedOn. */
async function bullOnce(redis, kind) {
  const { Queue, FlowProducer, Job } = await import('bullmq');
  const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
  const name = `comp${process.pid}x${++qn}`;
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  const ws = await bullWorkers(redis, name);
  const flow = new FlowProducer({ connection });
  try {
    const t0 = Date.now();
    const deadline = t0 + TIMEOUT_MS;
    if (kind === 'flow') {
      const children = Array.from({ length: N }, () => ({ name: 'noop', queueName: name, data: {} }));
      const tree = await flow.add({ name: 'post', queueName: name, data: {}, children });
      const id = tree.job.id;
      for (;;) {
        const state = await queue.getJobState(id);
        if (state === 'completed') return (await Job.fromId(queue, id)).finishedOn - t0;
        if (state === 'failed') throw new Error('BullMQ flow parent failed');
        if (Date.now() > deadline) throw new Error(`timeout: BullMQ flow parent ${state}`);
        await sleep(20);
      }
    }
    for (let i = 0; i < N; i += 1000) await queue.addBulk(Array.from({ length: Math.min(1000, N - i) }, () => ({ name: 'noop', data: {} })));
    for (;;) {
      if ((await queue.getCompletedCount()) >= N) break;
      if ((await queue.getFailedCount()) > 0) throw new Error('BullMQ jobs failed');
      if (Date.now() > deadline) throw new Error('timeout: BullMQ plain jobs');
      await sleep(20);
    }
    // The completed set is ordered by finishedOn: the newest first when descending.
    const [last] = await queue.getJobs(['completed'], 0, 0, false);
    return last.finishedOn - t0;
  } finally {
    await Promise.all(ws.map((w) => stopChild(w, 15000)));
    await flow.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
  }
}

async function bullWorkerMain([port, name, concurrency]) {
  const { Worker } = await import('bullmq');
  // The parent reads its children's results, as a zcq postprocess receives its members' entries.
  const worker = new Worker(name, async (job) => (job.name === 'post' ? Object.keys(await job.getChildrenValues()).length : null), {
    connection: { host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: null },
    concurrency: Number(concurrency),
  });
  worker.on('error', (e) => process.stderr.write(`bullmq worker error: ${e?.message}\n`));
  const close = async () => { await worker.close(); process.exit(0); };
  process.on('SIGTERM', close);
  process.on('SIGINT', close);
  await worker.waitUntilReady();
  process.stdout.write('ready\n');
}

// ---------------------------------------------------------------- section

/** ctx: { R, rec, attempt, z, log } from bench/run.mjs. Runs interleaved, so the disk's drift hits every side alike. */
export async function run({ R, rec, attempt, z, log, notes }) {
  const redis = {};
  try {
    for (const [, bm] of modes) redis[bm] = await startRedis(bm);
    for (let r2 = 1; r2 <= R; r2++) {
      log(`composite run ${r2}/${R} (${N.toLocaleString('en-US')} members / jobs, ${PROCS} workers × ${CONC})`);
      for (const [m, bm] of modes) {
        for (const kind of ['parallel', 'plain']) {
          const r = await z(`comp.zcq.${m}.${kind}`, `zcq ${m} ${kind}`, () => zcqOnce(kind, m === 'durable'));
          if (r !== null) {
            rec(`comp.zcq.${m}.${kind}`, r.ms);
            log(`    ${Math.round(r.ms)} ms (the put took ${Math.round(r.putMs)} ms)`);
            notes?.push(`composite run ${r2}: zcq ${m} ${kind === 'parallel' ? 'spool.parallel' : 'spool.putMany'} of ${N.toLocaleString('en-US')} took ${Math.round(r.putMs)} ms of the ${Math.round(r.ms)} ms.`);
          }
        }
        for (const kind of ['flow', 'plain']) {
          const ms = await attempt(`comp.bull.${bm}.${kind}`, `BullMQ ${bm} ${kind}`, () => bullOnce(redis[bm], kind));
          if (ms !== null) { rec(`comp.bull.${bm}.${kind}`, ms); log(`    ${Math.round(ms)} ms`); }
        }
      }
    }
  } finally {
    for (const s of Object.values(redis)) await s.stop().catch(() => {});
  }
}

const BULL = { always: 'BullMQ, AOF fsync always', default: 'BullMQ, no persistence' };

/** row(section, measure, better, zcqLabel, zcqKey, peerLabel, peerKey) */
export function rows(row) {
  const n = N.toLocaleString('en-US');
  const what = `${n} no-op members + postprocess, put→postprocess done, ms`;
  for (const [m, bm] of modes) {
    row('7 composite', what, '↓', `zcq ${m}, parallel`, `comp.zcq.${m}.parallel`, `zcq ${m}, ${n} plain jobs (putMany), put→last done`, `comp.zcq.${m}.plain`);
    row('7 composite', what, '↓', `zcq ${m}, parallel`, `comp.zcq.${m}.parallel`, `${BULL[bm]}, FlowProducer, ${n} children`, `comp.bull.${bm}.flow`);
    row('7 composite', `${n} plain no-op jobs, put→last done, ms`, '↓', `zcq ${m}, putMany`, `comp.zcq.${m}.plain`, `${BULL[bm]}, addBulk`, `comp.bull.${bm}.plain`);
  }
}

if (process.argv[1] === SELF && process.argv[2] === 'bull-worker') {
  bullWorkerMain(process.argv.slice(3)).catch((e) => { process.stderr.write(String(e?.stack ?? e) + '\n'); process.exit(1); });
}
