// The file system's own limit: a bare loop of the file operations one zcq job
// needs, no zcq code. Per job (durable):
//   put:    write tmp/<id>.json + fsync, rename -> pending/<id>.json, fsync pending/
//   claim:  rename pending/<id>.json -> claimed/<w>/<id>.json, read it (open, read, close: a worker must
//           read a job to run it)
//   finish: write tmp/<id>.<w>.json + fsync, rename over claimed/<w>/<id>.json
//   done:   rename -> done/<id>.json, fsync done/
// relaxed = the same without any fsync. phase 'drain' = pending files exist
// already (made by the parent), only claim/finish/done are timed.
// loops > 0: that many concurrent async loops (fs.promises, libuv thread pool);
// loops = 0: one loop of synchronous calls (no thread pool hand-offs: least CPU).
// spare: finish as zcq's format 2 does it (transitions/finish.ts): the record is written into a spare
// inode (an existing file of ours in tmp/, truncated and rewritten) instead of a new file, and the
// claimed file's inode is linked into tmp/ as the next spare before the record is renamed over it.
// Creating a file is the one costly metadata operation here (bench/PROFILE.md: 15–500 µs of kernel
// time per create on this ext4, by how many inodes were freed in the last seconds, against 10–40 µs for
// a rename, link or unlink), so the spare loop is the floor for drain; put still creates one file a job.
// Each child also reports its CPU time (user + kernel, all threads: getrusage) for the timed part.
// As a module: runFsloop(). As a script: `node fsloop.mjs child ...` (one process).
import { promises as fsp, mkdirSync, writeFileSync, writeSync, readFileSync, readdirSync, renameSync, openSync, closeSync, fsync, fsyncSync, linkSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { spawnTracked, waitExit, waitForOutput, makeTmp, rmrf } from '../lib/proc.mjs';
import { parseStrace, perJob } from '../lib/strace.mjs';
import { META_CALLS, countMetaOps } from '../lib/metaops.mjs';

const SELF = fileURLToPath(import.meta.url);

function jobJson(id, extra = {}) {
  return JSON.stringify({
    zcq: 1, id, fn: 'noop.mjs#noop', args: [], queue: 'default', created: new Date().toISOString(),
    attempts: 0, retries: 0, history: [], ...extra,
  });
}

const idOf = (w, i) => `${w}-${String(i).padStart(8, '0')}`;

function layout(dir, workers) {
  for (const d of ['tmp', 'pending', 'done']) mkdirSync(join(dir, d), { recursive: true });
  for (const w of workers) mkdirSync(join(dir, 'claimed', w), { recursive: true });
}

/**
 * procs processes × loops async loops, n jobs in total; returns { jobsPerSec, ms }
 * measured from the earliest loop start to the latest loop end (CLOCK_MONOTONIC).
 */
export async function runFsloop({ n, procs = 2, loops = 8, durable = true, phase = 'full', dir = null, strace = null, straceMeta = null, prefilled = false, spare = false }) {
  const root = dir ?? makeTmp('fsloop');
  const names = Array.from({ length: procs }, (_, k) => `w${k}`);
  layout(root, names);
  const share = (k) => Math.floor(n / procs) + (k < n % procs ? 1 : 0);
  if (phase === 'drain' && !prefilled) {
    // Pre-create the pending files (no fsync: they are input, not timed).
    names.forEach((w, k) => {
      for (let i = 0; i < share(k); i++) writeFileSync(join(root, 'pending', idOf(w, i) + '.json'), jobJson(idOf(w, i)));
    });
  }
  const kids = names.map((w, k) => {
    const args = [SELF, 'child', root, w, String(share(k)), String(loops), durable ? '1' : '0', phase, spare ? '1' : '0'];
    if (straceMeta) return spawnTracked('strace', ['-f', '-y', '-o', `${straceMeta}.${k}`, '-e', `trace=${META_CALLS}`, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    return strace
      ? spawnTracked('strace', ['-f', '-c', '-o', `${strace}.${k}`, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
      : spawnTracked(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  });
  try {
    await Promise.all(kids.map((c) => waitForOutput(c, /^ready$/m, 30000)));
    for (const c of kids) c.stdin.write('go\n');
    const results = await Promise.all(
      kids.map(async (c) => {
        const r = await waitExit(c, 900000);
        if (r.timedOut || r.code !== 0) throw new Error(`fsloop child failed: ${JSON.stringify(r)} ${c.stderrText.slice(-500)}`);
        const m = c.stdoutText.match(/^result (\{.*\})$/m);
        return { ...JSON.parse(m[1]), tenths: [...c.stdoutText.matchAll(/^tenth (\d+) (\d+)$/gm)].map((t) => ({ done: Number(t[1]), cpuUs: Number(t[2]) })) };
      }),
    );
    const start = Math.min(...results.map((r) => Number(r.start)));
    const end = Math.max(...results.map((r) => Number(r.end)));
    const ms = (end - start) / 1e6;
    const cpuUs = results.reduce((a, r) => a + r.cpuUs, 0);
    return { jobsPerSec: (n * 1000) / ms, ms, cpuUsPerJob: n ? cpuUs / n : 0, tenths: results.map((r) => r.tenths) };
  } finally {
    for (const c of kids) if (c.exitCode === null) c.kill('SIGKILL');
    if (!dir) rmrf(root);
  }
}

/**
 * Both phases in one folder: 'full', then the same n files moved back from done/
 * to pending/ (rename: much cheaper than writing n new files) and 'drain'.
 */
export async function runFsloopBoth({ n, procs = 2, loops = 8, durable = true, spare = false }) {
  const root = makeTmp('fsloop');
  try {
    const full = await runFsloop({ n, procs, loops, durable, phase: 'full', dir: root, spare });
    for (const name of readdirSync(join(root, 'done'))) renameSync(join(root, 'done', name), join(root, 'pending', name));
    const drain = await runFsloop({ n, procs, loops, durable, phase: 'drain', dir: root, prefilled: true, spare });
    return { full, drain };
  } finally {
    rmrf(root);
  }
}

// ---------------------------------------------------------------- child

async function rewriteDurable(path, data, durable) {
  const fh = await fsp.open(path, 'r+');
  try {
    await fh.writeFile(data);
    await fh.truncate(Buffer.byteLength(data));
    if (durable) await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeFileDurable(path, data, durable) {
  const fh = await fsp.open(path, 'wx');
  try {
    await fh.writeFile(data);
    if (durable) await fh.sync();
  } finally {
    await fh.close();
  }
}

async function childMain([root, w, countS, loopsS, durableS, phase, spareS]) {
  const count = Number(countS);
  const loops = Number(loopsS);
  const durable = durableS === '1';
  const useSpares = spareS === '1';
  let spareSeq = 0;
  const spares = [];
  const spareName = () => join(root, 'tmp', `.spare-${w}-${phase}-${spareSeq++}`);
  const tmp = join(root, 'tmp');
  const pending = join(root, 'pending');
  const claimed = join(root, 'claimed', w);
  const done = join(root, 'done');
  // Directory fds kept open for the whole run: the cheapest way to fsync a folder.
  const pendingFd = openSync(pending, 'r');
  const doneFd = openSync(done, 'r');
  const syncDir = durable ? (fd) => new Promise((res, rej) => fsync(fd, (e) => (e ? rej(e) : res()))) : async () => {};

  if (loops === 0) {
    const writeSyncFile = (path, data, flags = 'wx') => {
      const fd = openSync(path, flags);
      try {
        writeSync(fd, data);
        // A spare is written over and cut to length, as zcq's writeSpare does (not truncated to 0 first: ext4
        // flushes such a file when it is closed).
        if (flags === 'r+') ftruncateSync(fd, Buffer.byteLength(data));
        if (durable) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    };
    // finish: the record in a spare (rewritten) or a new file; the claimed inode becomes the next spare.
    const finishSync = (c, r, data) => {
      const s = useSpares ? spares.pop() : undefined;
      if (s) writeSyncFile(s, data, 'r+');
      else writeSyncFile(r, data);
      if (useSpares) {
        const next = spareName();
        linkSync(c, next);
        spares.push(next);
      }
      renameSync(s ?? r, c);
    };
    process.stdout.write('ready\n');
    const rl = createInterface({ input: process.stdin });
    await new Promise((res) => rl.once('line', res));
    rl.close();
    const cpu0 = process.cpuUsage();
    const start = process.hrtime.bigint();
    // ZCQ_FSLOOP_TENTHS=1: the CPU spent so far at each tenth of the jobs (bench/micro/cpu-by-tenth.mjs).
    const tenth = process.env.ZCQ_FSLOOP_TENTHS === '1' ? Math.max(1, Math.floor(count / 10)) : Infinity;
    for (let i = 0; i < count; i++) {
      if (i > 0 && i % tenth === 0) { const u = process.cpuUsage(cpu0); process.stdout.write(`tenth ${i} ${u.user + u.system}\n`); }
      const id = idOf(w, i);
      const name = id + '.json';
      if (phase !== 'drain') {
        const t = join(tmp, name);
        writeSyncFile(t, jobJson(id));
        renameSync(t, join(pending, name));
        if (durable) fsyncSync(pendingFd);
      }
      const c = join(claimed, name);
      renameSync(join(pending, name), c);
      readFileSync(c);
      const r = join(tmp, `${id}.${w}.json`);
      finishSync(c, r, jobJson(id, { result: null, history: [{ worker: w, start: new Date().toISOString(), end: new Date().toISOString() }] }));
      renameSync(c, join(done, name));
      if (durable) fsyncSync(doneFd);
    }
    const end = process.hrtime.bigint();
    const cpu = process.cpuUsage(cpu0);
    process.stdout.write(`result ${JSON.stringify({ start: String(start), end: String(end), cpuUs: cpu.user + cpu.system })}\n`);
    return;
  }

  let next = 0;
  async function one(i) {
    const id = idOf(w, i);
    const name = id + '.json';
    if (phase !== 'drain') {
      const t = join(tmp, name);
      await writeFileDurable(t, jobJson(id), durable);
      await fsp.rename(t, join(pending, name));
      await syncDir(pendingFd);
    }
    const c = join(claimed, name);
    await fsp.rename(join(pending, name), c);
    await fsp.readFile(c);
    const r = join(tmp, `${id}.${w}.json`);
    const data = jobJson(id, { result: null, history: [{ worker: w, start: new Date().toISOString(), end: new Date().toISOString() }] });
    const s = useSpares ? spares.pop() : undefined;
    if (s) await rewriteDurable(s, data, durable);
    else await writeFileDurable(r, data, durable);
    if (useSpares) {
      const next = spareName();
      await fsp.link(c, next);
      spares.push(next);
    }
    await fsp.rename(s ?? r, c);
    await fsp.rename(c, join(done, name));
    await syncDir(doneFd);
  }
  async function loop() {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      await one(i);
    }
  }

  process.stdout.write('ready\n');
  const rl = createInterface({ input: process.stdin });
  await new Promise((res) => rl.once('line', res));
  rl.close();
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: loops }, loop));
  const end = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpu0);
  closeSync(pendingFd);
  closeSync(doneFd);
  process.stdout.write(`result ${JSON.stringify({ start: String(start), end: String(end), cpuUs: cpu.user + cpu.system })}\n`);
}

if (process.argv[1] === SELF && process.argv[2] === 'child') {
  childMain(process.argv.slice(3)).catch((e) => {
    process.stderr.write(String(e?.stack ?? e) + '\n');
    process.exit(1);
  });
}


/**
 * strace -f -c of one fsloop process draining n pending jobs (claim, finish, done:
 * the worker's share, as in the zcq worker figure), minus n=0, per job.
 * loops: 8 async loops, or 0 for one synchronous loop.
 */
export async function fsloopSyscalls({ n, durable = true, loops = 8 }) {
  const dir = makeTmp('fsloop-strace');
  const run = async (count) => {
    const out = join(dir, `strace-${count}`);
    const root = join(dir, `spool-${count}`);
    await runFsloop({ n: count, procs: 1, loops, durable, phase: 'drain', strace: out, dir: root });
    rmrf(root);
    return parseStrace(readFileSync(`${out}.0`, 'utf8'));
  };
  try {
    const base = await run(0);
    const full = await run(n);
    return { ...perJob(full, base, n), gross: full.total, base: base.total };
  } finally {
    rmrf(dir);
  }
}

/**
 * Metadata operations per job of the bare synchronous spare loop draining n pending files (1 process):
 * { claim, finish } counts (bench/lib/metaops.mjs; divide by n). Its put is the same as zcq's: one create
 * and one rename (durable: and a file and a folder fsync).
 */
export async function fsloopMetaOps({ n, durable = true }) {
  const dir = makeTmp('fsloop-metaops');
  try {
    const root = join(dir, 'spool');
    const out = join(dir, 'trace');
    await runFsloop({ n, procs: 1, loops: 0, durable, phase: 'drain', straceMeta: out, dir: root, spare: true });
    return countMetaOps(readFileSync(`${out}.0`, 'utf8'), root + '/', 'worker');
  } finally {
    rmrf(dir);
  }
}
