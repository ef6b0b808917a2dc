// graphile-worker peer: the durable queue people choose when they have PostgreSQL and no Redis. As a
// module: starts a throwaway PostgreSQL cluster (Debian's /usr/lib/postgresql/VERSION/bin: initdb, pg_ctl)
// in a temp folder with synchronous_commit = on and fsync = on (every commit on disk before the reply, as
// zcq durable), and runs the measurements. As a script (`node graphile.mjs worker ...`): one worker process.
//
// PostgreSQL refuses to run as root: when the harness is root the cluster runs as the user `postgres`
// (runuser), in a folder of its own under os.tmpdir() (the bench's temp folder is 0700 root). Jobs reach the
// database over its Unix socket; the cluster is stopped (-m immediate) and its folder removed at the end,
// also when the harness exits on an error.
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { spawnTracked, stopChild, waitForOutput, freePort, sleep, onExit } from '../lib/proc.mjs';

const SELF = fileURLToPath(import.meta.url);
const PG_USER = 'postgres';

/** The folder of Debian's PostgreSQL programs (the newest version installed), or null. */
export function pgBin() {
  const base = '/usr/lib/postgresql';
  let versions = [];
  try {
    versions = readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  } catch {
    return null;
  }
  for (const v of versions) if (existsSync(join(base, v, 'bin', 'pg_ctl')) && existsSync(join(base, v, 'bin', 'initdb'))) return join(base, v, 'bin');
  return null;
}

/** null when the peer can run, else what is missing (one line). */
export function graphileUnavailable() {
  if (!pgBin()) return 'PostgreSQL server programs (initdb, pg_ctl) not found under /usr/lib/postgresql; install: sudo apt-get install postgresql';
  for (const m of ['graphile-worker', 'pg']) {
    try {
      createRequire(import.meta.url).resolve(m);
    } catch {
      return `node module ${m} not installed (npm ci)`;
    }
  }
  if (userInfo().uid === 0 && spawnSync('id', ['-u', PG_USER], { stdio: 'ignore' }).status !== 0) return `running as root needs a user ${PG_USER} to run PostgreSQL as`;
  return null;
}

const asRoot = () => userInfo().uid === 0;
/** Run a PostgreSQL program (as PG_USER when we are root); throws with its output on failure. */
function pgRun(bin, args) {
  const cmd = asRoot() ? ['runuser', '-u', PG_USER, '--', join(pgBin(), bin), ...args] : [join(pgBin(), bin), ...args];
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || r.error?.message || '').slice(-600)}`);
  return r.stdout;
}

/**
 * Start a cluster: initdb (trust auth, local socket only), then postgres with synchronous_commit = on,
 * fsync = on. Returns { connectionString, stop }.
 */
export async function startPostgres() {
  const top = mkdtempSync(join(tmpdir(), 'zcq-bench-pg-'));
  chmodSync(top, 0o755);
  const data = join(top, 'data');
  const sock = join(top, 'sock');
  mkdirSync(data, { mode: 0o700 });
  mkdirSync(sock, { mode: 0o755 });
  if (asRoot()) {
    const uid = Number(spawnSync('id', ['-u', PG_USER], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', PG_USER], { encoding: 'utf8' }).stdout.trim());
    chownSync(data, uid, gid);
    chownSync(sock, uid, gid);
  }
  const port = await freePort();
  let started = false;
  const stopSync = () => {
    if (started) {
      try { pgRun('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']); } catch {}
      started = false;
    }
    rmSync(top, { recursive: true, force: true });
  };
  const off = onExit(stopSync);
  try {
    pgRun('initdb', ['-D', data, '-U', PG_USER, '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const opts = `-c listen_addresses='' -k ${sock} -p ${port} -c synchronous_commit=on -c fsync=on -c max_connections=50`;
    pgRun('pg_ctl', ['-D', data, '-o', opts, '-l', join(data, 'log'), '-w', '-t', '60', 'start']);
    started = true;
  } catch (e) {
    stopSync();
    off();
    throw e;
  }
  const connectionString = `postgres://${PG_USER}@/${PG_USER}?host=${encodeURIComponent(sock)}&port=${port}`;
  return {
    connectionString,
    stop: async () => {
      stopSync();
      off();
    },
  };
}

// ---------------------------------------------------------------- helpers

let gwMod = null;
async function gw() {
  gwMod ??= await import('graphile-worker');
  return gwMod;
}

/** Install graphile-worker's schema once (a run does it too, but two workers racing to migrate is noise). */
export async function migrate(pg) {
  const { runMigrations } = await gw();
  await runMigrations({ connectionString: pg.connectionString, logger: quietLogger(await gw()) });
}

function quietLogger({ Logger }) {
  return new Logger(() => (level, message) => {
    if (level === 'error') process.stderr.write(`graphile-worker: ${message}\n`);
  });
}

async function pool(pg) {
  const { default: pgMod } = await import('pg');
  const p = new pgMod.Pool({ connectionString: pg.connectionString, max: 2 });
  return p;
}

async function jobCount(p) {
  const r = await p.query('select count(*)::int as n from graphile_worker.jobs');
  return r.rows[0].n;
}

function spawnWorker(pg, concurrency) {
  return spawnTracked(process.execPath, [SELF, 'worker', pg.connectionString, String(concurrency)], { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function startWorkers(pg, count, concurrency) {
  const ws = [];
  for (let i = 0; i < count; i++) ws.push(spawnWorker(pg, concurrency));
  await Promise.all(ws.map((w) => waitForOutput(w, /^ready$/m, 30000)));
  return ws;
}

/** Poll until the jobs table is empty (graphile-worker deletes a job when it succeeds); ms timestamp. */
async function waitEmpty(p, ws, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await jobCount(p);
    if (left === 0) return Date.now();
    const dead = ws.find((w) => w.exitCode !== null || w.signalCode !== null);
    if (dead) throw new Error(`graphile worker exited (${dead.exitCode ?? dead.signalCode}) with ${left} jobs left: ${dead.stderrText.slice(-500)}`);
    if (Date.now() > deadline) throw new Error(`timeout: ${left} graphile jobs left`);
    await sleep(50);
  }
}

async function addInBatches(utils, n, bulk) {
  for (let i = 0; i < n; i += bulk) {
    const specs = Array.from({ length: Math.min(bulk, n - i) }, () => ({ identifier: 'noop', payload: {} }));
    await utils.addJobs(specs);
  }
}

// ---------------------------------------------------------------- measurements

/**
 * Workers (count × concurrency) already running; this process adds n no-op jobs one at a time (await each),
 * or with bulk=k by addJobs in batches of k. jobs/s from the first add to the table seen empty.
 */
export async function graphilePutDrain(pg, { n, workers = 2, concurrency = 8, bulk = 0, timeoutMs = 600000 }) {
  const { makeWorkerUtils } = await gw();
  const utils = await makeWorkerUtils({ connectionString: pg.connectionString, logger: quietLogger(await gw()) });
  const p = await pool(pg);
  const ws = await startWorkers(pg, workers, concurrency);
  try {
    await sleep(300);
    const t0 = Date.now();
    const p0 = process.hrtime.bigint();
    if (bulk) await addInBatches(utils, n, bulk);
    else for (let i = 0; i < n; i++) await utils.addJob('noop', {});
    const putMs = Number(process.hrtime.bigint() - p0) / 1e6;
    const end = await waitEmpty(p, ws, timeoutMs);
    return { jobsPerSec: (n * 1000) / Math.max(1, end - t0), putPerSec: (n * 1000) / putMs };
  } finally {
    await Promise.all(ws.map((w) => stopChild(w, 15000)));
    await utils.release();
    await p.end();
  }
}

/** n jobs already queued (addJobs ×1000, not timed); workers spawned; jobs/s from spawn to the table empty. */
export async function graphileDrain(pg, { n, workers = 2, concurrency = 8, timeoutMs = 600000 }) {
  const { makeWorkerUtils } = await gw();
  const utils = await makeWorkerUtils({ connectionString: pg.connectionString, logger: quietLogger(await gw()) });
  const p = await pool(pg);
  const ws = [];
  try {
    await addInBatches(utils, n, 1000);
    const t0 = Date.now();
    for (let i = 0; i < workers; i++) ws.push(spawnWorker(pg, concurrency));
    const end = await waitEmpty(p, ws, timeoutMs);
    return { jobsPerSec: (n * 1000) / Math.max(1, end - t0) };
  } finally {
    await Promise.all(ws.map((w) => stopChild(w, 15000)));
    await utils.release();
    await p.end();
  }
}

// ---------------------------------------------------------------- worker process

async function workerMain([connectionString, concurrency]) {
  const mod = await gw();
  const runner = await mod.run({
    connectionString,
    concurrency: Number(concurrency),
    noHandleSignals: true,
    pollInterval: 1000,
    logger: quietLogger(mod),
    taskList: { noop: async () => {} },
  });
  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    await runner.stop();
    process.exit(0);
  };
  process.on('SIGTERM', close);
  process.on('SIGINT', close);
  process.stdout.write('ready\n');
  await runner.promise;
}

if (process.argv[1] === SELF && process.argv[2] === 'worker') {
  workerMain(process.argv.slice(3)).catch((e) => {
    process.stderr.write(String(e?.stack ?? e) + '\n');
    process.exit(1);
  });
}
