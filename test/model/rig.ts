// The real things the model test drives and reads: `zcq worker` processes (started, SIGKILLed, replaced),
// `zcq` CLI calls run in parallel, a scan of every folder of the spool that relies on nothing in src/, and
// the ledger the job function (fixtures/jobs.mjs) appends to.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, lstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN } from '../helpers.js';

export const MODEL_FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const now = (): bigint => process.hrtime.bigint();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The wall clock against the monotonic one, sampled every 50 ms: a step of the machine's wall clock (seen
 * once in a CI run: +5.5 s, a VM paused and its clock set right) moves every file's age by the step, and a
 * lease with it, so the ledger's check converts lease times through it (Model.checkLedger).
 */
export class WallSteps {
  private readonly hr: bigint[] = [];
  private readonly off: number[] = [];
  private readonly timer: NodeJS.Timeout;
  constructor() {
    this.sample();
    this.timer = setInterval(() => this.sample(), 50);
    this.timer.unref();
  }
  private sample(): void {
    const h = now();
    this.hr.push(h);
    this.off.push(Date.now() - Number(h) / 1e6);
  }
  /** How far the wall clock was stepped forward (ms, net, never below 0) between monotonic times a and b. */
  forwardMs(a: bigint, b: bigint): number {
    this.sample();
    let before = this.off[0]!;
    let after = this.off[this.off.length - 1]!;
    for (let i = 0; i < this.hr.length; i++) { if (this.hr[i]! <= a) before = this.off[i]!; else break; }
    for (let i = this.hr.length - 1; i >= 0; i--) { if (this.hr[i]! >= b) after = this.off[i]!; else break; }
    return Math.max(0, after - before);
  }
  stop(): void { clearInterval(this.timer); }
}

/** The pid a lease name HOST.PID.RANDOM (or a heartbeat LEASE.json) stands for. */
export function pidOfLease(lease: string): number | null {
  const m = /\.(\d+)\.[a-z0-9]+(?:\.json)?$/.exec(lease);
  return m ? Number(m[1]) : null;
}

export interface WorkerProc {
  n: number;
  pid: number;
  proc: ChildProcess;
  exited: boolean;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  /** Parsed JSON log lines, in order. */
  events: Record<string, any>[];
  /** Log lines that were not JSON (a crash trace, a warning). */
  other: string[];
  /** Set when the driver killed it. */
  killed: boolean;
}

export interface KillRecord {
  pid: number;
  /** hrtime just before SIGKILL was sent, and when the process was seen gone. */
  sentNs: bigint;
  exitNs: bigint;
  /** hrtime of the newest heartbeat mtime of the worker's leases, taken just before the kill (null: none). */
  lastBeatNs: bigint | null;
  /** Ids found in the worker's lease folders once it was dead: the jobs the kill interrupted. */
  jobs: string[];
}

export class Rig {
  readonly workers: WorkerProc[] = [];
  readonly kills: KillRecord[] = [];
  private started = 0;

  constructor(readonly spool: string, readonly workerArgs: (n: number) => string[], readonly globals: (n: number) => string[]) {}

  startWorker(): WorkerProc {
    const n = this.started++;
    const proc = spawn(process.execPath, [BIN, '--json', ...this.globals(n), '--spool', this.spool, 'worker', '--root', MODEL_FIXTURES, ...this.workerArgs(n)], {
      cwd: MODEL_FIXTURES, env: { ...process.env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const w: WorkerProc = { n, pid: proc.pid!, proc, exited: false, exitCode: null, exitSignal: null, events: [], other: [], killed: false };
    let buf = '';
    const take = (d: Buffer) => {
      buf += d.toString('utf8');
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('{')) { try { w.events.push(JSON.parse(line)); continue; } catch { /* not JSON after all */ } }
        if (line.trim() !== '') w.other.push(line);
      }
    };
    proc.stdout!.on('data', take);
    proc.stderr!.on('data', take);
    proc.on('exit', (code, sig) => { w.exited = true; w.exitCode = code; w.exitSignal = sig; });
    this.workers.push(w);
    return w;
  }

  live(): WorkerProc[] { return this.workers.filter((w) => !w.exited && !w.killed); }

  /** SIGKILL a worker, wait until it is gone, and record what it held. */
  async kill(w: WorkerProc): Promise<KillRecord> {
    const lastBeatNs = this.lastBeat(w.pid);
    const gone = new Promise<void>((res) => { if (w.exited) res(); else w.proc.once('exit', () => res()); });
    w.killed = true;
    const sentNs = now();
    w.proc.kill('SIGKILL');
    await gone;
    const exitNs = now();
    const jobs: string[] = [];
    const claimed = join(this.spool, 'claimed');
    for (const name of safeReaddir(claimed)) if (pidOfLease(name) === w.pid) walkJobs(join(claimed, name), jobs);
    const rec: KillRecord = { pid: w.pid, sentNs, exitNs, lastBeatNs, jobs };
    this.kills.push(rec);
    return rec;
  }

  /** The newest heartbeat of the worker's leases, as an hrtime (mtime converted through a clock pair read at once). */
  private lastBeat(pid: number): bigint | null {
    let best: number | null = null;
    const dir = join(this.spool, 'workers');
    for (const name of safeReaddir(dir)) {
      if (pidOfLease(name) !== pid) continue;
      try { const m = lstatSync(join(dir, name)).mtimeMs; if (best === null || m > best) best = m; } catch { /* renamed meanwhile */ }
    }
    if (best === null) return null;
    const hr = now();
    const wall = Date.now();
    return hr - BigInt(Math.round((wall - best) * 1e6));
  }

  stopAll(): void {
    for (const w of this.workers) if (!w.exited) { try { w.proc.kill('SIGKILL'); } catch { /* gone */ } }
  }
}

function safeReaddir(dir: string): string[] {
  try { return readdirSync(dir); } catch { return []; }
}

/** Ids of every SEQ.ID.json under a lease folder (and nested LEASE.dead folders). */
function walkJobs(dir: string, out: string[]): void {
  for (const name of safeReaddir(dir)) {
    const p = join(dir, name);
    let st;
    try { st = lstatSync(p); } catch { continue; }
    if (st.isDirectory()) walkJobs(p, out);
    else { const m = /^\d+\.(.+)\.json$/.exec(name); if (m) out.push(m[1]!); }
  }
}

export interface CliResult { code: number | null; stdout: string; stderr: string; json: any }

/** Run `zcq --json --relaxed --spool SPOOL ARGS` without blocking the driver (many at once). */
export function cli(spool: string, args: string[], input?: string, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [BIN, '--json', '--relaxed', '--spool', spool, ...args], { cwd: MODEL_FIXTURES, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      let json: any;
      try { json = JSON.parse(stdout.trim().split('\n').pop() ?? ''); } catch { json = undefined; }
      res({ code, stdout, stderr, json });
    });
    child.stdin.on('error', () => undefined); // EPIPE: a command that exits without reading its stdin
    child.stdin.end(input ?? '');
  });
}

// ---- the spool on disk, read with nothing from src/ ----

export type StateName = 'pending' | 'deferred' | 'claimed' | 'done' | 'failed' | 'hold';
export interface Place { state: StateName; queue: string | null; path: string; lease?: string }
export interface SpoolScan {
  places: Map<string, Place[]>;
  /** Entries that are neither jobs, queue folders, buckets nor lease folders. */
  strays: string[];
  quarantine: string[];
  /** cancel/ID.TOKEN requests, by id. */
  cancels: Map<string, number>;
}

const JOB = /^([A-Za-z0-9][A-Za-z0-9._@-]{0,199})\.json$/;
const DEFERRED = /^\d{15}\.([A-Za-z0-9][A-Za-z0-9._@-]{0,199})\.json$/;
const CLAIMED = /^\d{1,15}\.([A-Za-z0-9][A-Za-z0-9._@-]{0,199})\.json$/;
const BUCKET = /^\d{8}T\d{4}$/;

function kind(p: string): 'dir' | 'file' | 'other' | 'gone' {
  try { const st = lstatSync(p); return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other'; } catch { return 'gone'; }
}

/** Every job file in every state folder and lease folder. Meant for a quiet spool (a settle): not atomic. */
export function scanSpool(spool: string): SpoolScan {
  const places = new Map<string, Place[]>();
  const strays: string[] = [];
  const add = (id: string, p: Place) => { const l = places.get(id); if (l) l.push(p); else places.set(id, [p]); };
  for (const state of ['pending', 'done', 'failed', 'hold', 'deferred'] as const) {
    const root = join(spool, state);
    for (const e of safeReaddir(root)) {
      const p = join(root, e);
      const k = kind(p);
      if (k === 'gone') continue;
      if (k === 'file' && JOB.test(e) && (state === 'pending' || state === 'hold')) { add(JOB.exec(e)![1]!, { state, queue: null, path: p }); continue; }
      if (k !== 'dir') { if (!e.startsWith('.')) strays.push(p); continue; }
      for (const f of safeReaddir(p)) {
        const fp = join(p, f);
        if (f.startsWith('.')) continue;
        if (state === 'deferred') {
          if (!BUCKET.test(f) || kind(fp) !== 'dir') { strays.push(fp); continue; }
          for (const g of safeReaddir(fp)) {
            const m = DEFERRED.exec(g);
            if (m && kind(join(fp, g)) === 'file') add(m[1]!, { state, queue: e, path: join(fp, g) }); else strays.push(join(fp, g));
          }
          continue;
        }
        const m = JOB.exec(f);
        if (m && kind(fp) === 'file') add(m[1]!, { state, queue: e, path: fp }); else strays.push(fp);
      }
    }
  }
  const walk = (dir: string, lease: string) => {
    for (const f of safeReaddir(dir)) {
      const fp = join(dir, f);
      const k = kind(fp);
      if (k === 'dir' && f.endsWith('.dead')) { walk(fp, f.slice(0, -5)); continue; }
      const m = CLAIMED.exec(f);
      if (m && k === 'file') add(m[1]!, { state: 'claimed', queue: null, path: fp, lease }); else if (k !== 'gone' && !f.startsWith('.')) strays.push(fp);
    }
  };
  const claimed = join(spool, 'claimed');
  // Dot-names are skipped at every level, as every reader skips them: a worker killed while making a folder
  // leaves its `.mkdir.NAME` lock (spool/modes.ts), which housekeeping removes after the leftover age.
  for (const e of safeReaddir(claimed)) { const p = join(claimed, e); if (kind(p) === 'dir') walk(p, e); else if (!e.startsWith('.')) strays.push(p); }
  const cancels = new Map<string, number>();
  for (const f of safeReaddir(join(spool, 'cancel'))) {
    const i = f.lastIndexOf('.');
    if (i > 0) cancels.set(f.slice(0, i), (cancels.get(f.slice(0, i)) ?? 0) + 1);
  }
  return { places, strays, quarantine: safeReaddir(join(spool, 'quarantine')), cancels };
}

export function readRecord(path: string): Record<string, any> | null {
  try { return JSON.parse(readFileSync(path, 'utf8')); } catch { return null; }
}

// ---- the ledger ----

export interface LedgerRun { run: string; id: string; pid: number; attempt: number; startNs: bigint; endNs?: bigint; outcome?: string }

/** Runs by token, from the ledger's S and E lines, read incrementally (a torn last line waits for the next read). */
export class Ledger {
  readonly runs = new Map<string, LedgerRun>();
  private offset = 0;
  private rest = '';
  constructor(readonly path: string) {}

  read(): Map<string, LedgerRun> {
    if (!existsSync(this.path)) return this.runs;
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size > this.offset) {
        const buf = Buffer.alloc(size - this.offset);
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        this.offset += n;
        const text = this.rest + buf.subarray(0, n).toString('utf8');
        const cut = text.lastIndexOf('\n');
        this.rest = text.slice(cut + 1);
        addLines(this.runs, text.slice(0, cut + 1));
      }
    } finally {
      closeSync(fd);
    }
    return this.runs;
  }
}

function addLines(runs: Map<string, LedgerRun>, text: string): void {
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[0] === 'S' && f.length === 6) {
      const r = runs.get(f[4]!);
      if (r) { r.startNs = BigInt(f[5]!); continue; }
      runs.set(f[4]!, { run: f[4]!, id: f[1]!, pid: Number(f[2]), attempt: Number(f[3]), startNs: BigInt(f[5]!) });
    } else if (f[0] === 'E' && f.length === 7) {
      const r = runs.get(f[4]!);
      if (r) { r.endNs = BigInt(f[5]!); r.outcome = f[6]; }
      else runs.set(f[4]!, { run: f[4]!, id: f[1]!, pid: Number(f[2]), attempt: Number(f[3]), startNs: -1n, endNs: BigInt(f[5]!), outcome: f[6] });
    }
  }
}
