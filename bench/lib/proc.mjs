// Process helpers: tracked children (killed when the harness exits, even on error
// or Ctrl-C), exit waits with timeouts, peak RSS from /proc, free ports, temp dirs.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, sep } from 'node:path';

const children = new Set();
const cleanups = [];
let baseTmp = null;

/** Register a synchronous cleanup run at process exit (LIFO). */
export function onExit(fn) {
  cleanups.push(fn);
  return () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

function runCleanups() {
  for (const c of children) {
    try {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    } catch {}
  }
  while (cleanups.length) {
    const fn = cleanups.pop();
    try {
      fn();
    } catch {}
  }
}
process.on('exit', runCleanups);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
    runCleanups();
    process.exit(130);
  });
}

/** spawn() whose child is SIGKILLed at harness exit if still running. */
export function spawnTracked(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.stderrText = '';
  child.stdoutText = '';
  child.stderr?.on('data', (d) => {
    if (child.stderrText.length < 20000) child.stderrText += d;
  });
  child.stdout?.on('data', (d) => {
    if (child.stdoutText.length < 200000) child.stdoutText += d;
  });
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (err) => {
      children.delete(child);
      resolve({ code: null, signal: null, error: err });
    });
  });
  return child;
}

/** Resolve with the exit status, or { timedOut: true } after ms. */
export async function waitExit(child, ms) {
  let timer;
  const t = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ timedOut: true }), ms);
  });
  try {
    return await Promise.race([child.exited, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** SIGTERM, then SIGKILL after graceMs. */
export async function stopChild(child, graceMs = 5000, sig = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited;
  try {
    child.kill(sig);
  } catch {}
  const r = await waitExit(child, graceMs);
  if (r.timedOut) {
    try {
      child.kill('SIGKILL');
    } catch {}
    return child.exited;
  }
  return r;
}

/** Wait until the child prints a line matching re on stdout (or stderr). */
export function waitForOutput(child, re, ms, { stream = 'stdout' } = {}) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const src = stream === 'stderr' ? child.stderr : child.stdout;
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timeout waiting for ${re} from ${child.spawnfile}: ${(buf + child.stderrText).slice(-500)}`));
    }, ms);
    const onData = (d) => {
      buf += d;
      const m = buf.match(re);
      if (m) {
        cleanup();
        resolve(m);
      }
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`${child.spawnfile} exited (${code ?? signal}) before ${re}: ${(buf + child.stderrText).slice(-800)}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      src.off('data', onData);
      child.off('exit', onExit);
    };
    src.on('data', onData);
    child.on('exit', onExit);
  });
}

/** { hwmKb, rssKb } from /proc/<pid>/status, or null. */
export function procMem(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = s.match(/^VmHWM:\s+(\d+)\s+kB/m);
    const rss = s.match(/^VmRSS:\s+(\d+)\s+kB/m);
    return { hwmKb: hwm ? Number(hwm[1]) : null, rssKb: rss ? Number(rss[1]) : null };
  } catch {
    return null;
  }
}

let clkTck = null;
/**
 * CPU time (user + kernel, all threads) of a live process in ms, from /proc/PID/stat, or null once it is
 * gone. Resolution one clock tick (10 ms): read it over thousands of jobs.
 */
export function procCpuMs(pid) {
  try {
    clkTck ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / clkTck;
  } catch {
    return null;
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function hasCommand(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Base temp folder for this run (removed at exit); override with --dir=<path>. */
export function setBaseTmp(parent) {
  const p = parent ?? tmpdir();
  mkdirSync(p, { recursive: true });
  baseTmp = mkdtempSync(join(p, 'zcq-bench-'));
  onExit(() => rmSync(baseTmp, { recursive: true, force: true }));
  return baseTmp;
}

export function makeTmp(prefix) {
  if (!baseTmp) setBaseTmp();
  return mkdtempSync(join(baseTmp, prefix + '-'));
}

/**
 * Remove a temp folder. One under the run's base folder is only moved aside (one rename) and removed with
 * the base at exit: deleting a spool of 20,000 files makes every file created in the next minutes cost
 * 3-8x more kernel time (ext4's inode allocator skips inodes deleted in the last 60-300 s, reading their
 * inode table blocks to tell: `recently_deleted` in perf; bench/PROFILE.md), which would charge one
 * measurement's clean-up to the next one's creates: zcq's puts and the bare loops' alike, not BullMQ.
 */
export function rmrf(p) {
  if (baseTmp && p.startsWith(baseTmp + sep) && existsSync(p)) {
    const trash = join(baseTmp, '.trash');
    mkdirSync(trash, { recursive: true });
    try { renameSync(p, join(trash, `${basename(p)}-${process.pid}-${trashed++}`)); return; } catch { /* removed below */ }
  }
  rmSync(p, { recursive: true, force: true, maxRetries: 3 });
}
let trashed = 0;

/** hrtime in ms as a float (CLOCK_MONOTONIC, comparable across processes). */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

export function log(...a) {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);
}
