// zcq on the multi-machine rig: workers, puts and commands run "on" a machine (its hostname, its mount,
// its clock), logs kept per worker, and the checks every multi-machine test shares.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT } from '../helpers.js';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { readMountedText, useRig, type Rig, type RigOptions, type RunResult } from './rig.js';

export const NODE = process.execPath;
export const MH_FIXTURES = join(ROOT, 'test', 'multihost', 'fixtures');
export const JOBS = './jobs.mjs';
export const SPOOL = 'spool';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The spool as machine i sees it (through its own mount). */
export function spoolOn(rig: Rig, i: number): string { return rig.path(i, SPOOL); }
/** The spool as the file server sees it: exact, no client cache (for the tests' own assertions only). */
export function serverSpool(rig: Rig): string { return join(rig.exportDir, SPOOL); }

/** `zcq --spool <machine i's mount>/spool ARGS` run on machine i. */
export function zcqOn(rig: Rig, i: number, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return rig.run(i, NODE, [BIN, '--spool', spoolOn(rig, i), ...args], { cwd: MH_FIXTURES, ...opts });
}

/** Put n jobs from machine i through the library; resolves with their ids. */
export async function putMany(rig: Rig, i: number, n: number, fn: string, args: unknown[], opts: { relaxed?: boolean; timeoutMs?: number } = {}): Promise<string[]> {
  const r = await rig.run(i, NODE, [join(MH_FIXTURES, 'put-many.mjs'), spoolOn(rig, i), String(n), fn, JSON.stringify(args), ...(opts.relaxed ? ['--relaxed'] : [])], { cwd: MH_FIXTURES, timeoutMs: opts.timeoutMs ?? 120_000 });
  if (r.code !== 0) throw new Error(`put-many on ${rig.machines[i]!.name} exited ${r.code} ${r.signal ?? ''}: ${r.stderr}`);
  const ids = r.stdout.split('\n').filter(Boolean);
  if (ids.length !== n) throw new Error(`put-many on ${rig.machines[i]!.name}: ${ids.length} ids, wanted ${n}`);
  return ids;
}

export interface LogEvent { time: string; event: string; [k: string]: unknown }

export interface RigWorker {
  machine: number;
  child: ChildProcess;
  /** Everything the worker printed (stdout and stderr). */
  output(): string;
  events(): LogEvent[];
  /** Its lease id (from its worker.start line). */
  leaseId(): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Workers started and not yet exited: a test that fails half-way leaves none running into the next one. */
const liveWorkers = new Set<RigWorker>();

/** `zcq --json worker` on machine i, module roots = the multihost fixtures. */
export function startWorker(rig: Rig, i: number, args: string[] = []): RigWorker {
  const child = rig.spawn(i, NODE, [BIN, '--json', '--spool', spoolOn(rig, i), 'worker', '--root', MH_FIXTURES, '--verbose', ...args], { cwd: MH_FIXTURES });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('close', (code, signal) => {
    // ZCQ_MH_DUMP=<dir>: keep every worker's log there (for a failure's post-mortem).
    const dump = process.env.ZCQ_MH_DUMP;
    if (dump) { mkdirSync(dump, { recursive: true }); writeFileSync(join(dump, `${rig.machines[i]!.name}-${child.pid}.log`), out); }
    liveWorkers.delete(worker);
    res({ code, signal });
  }));
  const events = (): LogEvent[] => out.split('\n').filter((l) => l.startsWith('{')).flatMap((l) => { try { return [JSON.parse(l) as LogEvent]; } catch { return []; } });
  const worker: RigWorker = {
    machine: i,
    child,
    output: () => out,
    events,
    async leaseId() {
      // A guard against a worker that never starts, not a figure: six GlusterFS workers starting at once on a
      // loaded 2-core machine took more than 20 s.
      const end = Date.now() + 45_000;
      for (;;) {
        const s = events().find((e) => e.event === 'worker.start');
        if (s) return String(s.worker);
        if (Date.now() > end || child.exitCode !== null) throw new Error(`worker on ${rig.machines[i]!.name} did not start: ${out}`);
        await sleep(50);
      }
    },
    exited,
  };
  liveWorkers.add(worker);
  return worker;
}

/** SIGTERM (drain) and wait. */
export async function stopWorkers(ws: RigWorker[]): Promise<void> {
  for (const w of ws) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  await Promise.all(ws.map((w) => w.exited));
}

/**
 * Error noise in a worker's log: any line that is not a JSON event (a stack trace, a warning), and the
 * events that mean something went wrong rather than a lost race. ENOENT/ESTALE on a lost race are normal
 * and must not show up at all.
 */
export const NOISE_EVENTS = new Set(['worker.periodic.error', 'worker.housekeeping.error', 'worker.duty.error', 'job.unrecorded', 'lease.renew.failed', 'job.quarantined', 'spool.unreachable', 'folder.unreadable']);
export function noiseIn(output: string, alsoBad: string[] = []): string[] {
  const bad = new Set([...NOISE_EVENTS, ...alsoBad]);
  return output.split('\n').filter((l) => {
    if (l.trim() === '') return false;
    let e: LogEvent;
    try { e = JSON.parse(l); } catch { return true; }
    if (bad.has(e.event)) return true;
    return /ENOENT|ESTALE|EEXIST|EIO|ENOTCONN|Unknown system error|Error:|\\n\s+at /.test(JSON.stringify(e)) && !['job.failed', 'job.retry'].includes(e.event);
  });
}

/** Names in a folder of the server's copy of the spool (exact; dot-names skipped). */
export function serverNames(rig: Rig, ...parts: string[]): string[] {
  const d = join(serverSpool(rig), ...parts);
  // A folder can go between a listing of its parent and its own (a recoverer's LEASE.dead settled): none.
  // ESTALE (-116, no name in Node): GlusterFS's answer for a folder renamed away under a cached handle.
  try { return readdirSync(d).filter((n) => !n.startsWith('.')); } catch (e) { const x = e as NodeJS.ErrnoException; if (['ENOENT', 'ENOTDIR'].includes(x.code ?? '') || x.errno === -116) return []; throw e; }
}

/** The queue folders of a state (format 2: pending/QUEUE/, done/QUEUE/, failed/QUEUE/, ...), server's view. */
export function serverQueues(rig: Rig, state: string): string[] {
  const d = join(serverSpool(rig), state);
  return serverNames(rig, state).filter((n) => { try { return statSync(join(d, n)).isDirectory(); } catch { return false; } });
}

/**
 * Job file names (`ID.json`) of a queued state over all its queue folders, server's view. A name that is
 * not a queue folder straight in the state folder (a loose job, a stray) is listed too, so that nothing
 * left there escapes an assertion.
 */
export function serverJobNames(rig: Rig, state: 'pending' | 'done' | 'failed' | 'hold'): string[] {
  const d = join(serverSpool(rig), state);
  return serverNames(rig, state).flatMap((n) => { let dir = false; try { dir = statSync(join(d, n)).isDirectory(); } catch { return []; } return dir ? serverNames(rig, state, n) : [n]; });
}

/** A job's record in a queued state (in whichever queue folder it is). */
export function serverJob(rig: Rig, state: 'pending' | 'done' | 'failed' | 'hold', id: string): Record<string, any> {
  const found = serverQueues(rig, state).map((q) => join(serverSpool(rig), state, q, `${id}.json`)).filter((p) => existsSync(p));
  if (found.length !== 1) throw new Error(`job ${id}: ${found.length} files in ${state}/ (${found.join(', ')})`);
  return JSON.parse(readMountedText(found[0]!));
}

/**
 * Jobs held by every lease folder of claimed/, by the server's exact view: claimed/LEASE/SEQ.ID.json, and
 * the jobs of dead leases it took and is settling (claimed/LEASE/DEAD.dead/SEQ.ID.json) count as its own.
 */
export function serverClaimed(rig: Rig): Map<string, string[]> {
  const m = new Map<string, string[]>();
  const idsIn = (...parts: string[]): string[] => serverNames(rig, 'claimed', ...parts).flatMap((n) => {
    if (n.endsWith('.dead')) return idsIn(...parts, n);
    const c = /^\d+\.(.+)\.json$/.exec(n);
    return c ? [c[1]!] : [];
  });
  for (const lease of serverNames(rig, 'claimed')) m.set(lease, idsIn(lease));
  return m;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, stepMs = 50): Promise<number> {
  const t0 = performance.now();
  while (!(await cond())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(stepMs);
  }
  return performance.now() - t0;
}

/** A local-disk temp dir for ledgers (shared by every machine of the rig: one kernel, exact O_APPEND). */
export function localDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'zcq-mh-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface LedgerLine { id: string; event: string; host: string; pid: number; attempt: number; at: number }
export function readLedger(path: string): LedgerLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => {
    const [id, event, host, pid, attempt, at] = l.split(' ');
    return { id: id!, event: event!, host: host!, pid: Number(pid), attempt: Number(attempt), at: Number(at) };
  });
}

export function countBy<T>(xs: T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) { const k = key(x); out[k] = (out[k] ?? 0) + 1; }
  return out;
}

/** For failure messages: where the jobs are (server's view) and the last lines of each worker's log. */
export function spoolReport(rig: Rig, workers: RigWorker[] = [], tail = 8): string {
  const dump = process.env.ZCQ_MH_DUMP;
  if (dump) {
    mkdirSync(dump, { recursive: true });
    for (const w of workers) writeFileSync(join(dump, `${rig.machines[w.machine]!.name}-${w.child.pid}.log`), w.output());
  }
  const counts = [...(['pending', 'done', 'failed'] as const).map((s) => `${s}=${serverJobNames(rig, s).length}`), `quarantine=${serverNames(rig, 'quarantine').length}`];
  const claimed = [...serverClaimed(rig)].map(([l, ids]) => `${l}:${ids.length}`);
  const logs = workers.map((w) => `--- ${rig.machines[w.machine]!.name} pid ${w.child.pid} exit ${w.child.exitCode ?? w.child.signalCode ?? 'running'}\n` + w.output().trimEnd().split('\n').slice(-tail).join('\n'));
  return `${counts.join(' ')} claimed: ${claimed.join(' ') || 'none'}\n${logs.join('\n')}`;
}

/**
 * Inside a describe(): a rig, the spool made from machine `initOn` (a zcq command like any other), and a
 * local folder for ledgers (local disk is shared by every "machine" here, so an O_APPEND ledger is exact).
 */
export function useSpoolRig(opts: RigOptions, initOn = 0): { rig: Rig; local: { dir: string; cleanup: () => void } } {
  const rig = useRig(opts);
  const local = localDir();
  afterAll(local.cleanup);
  // A test that failed before its stopWorkers: its workers drain (SIGTERM), or are killed after 20 s.
  afterEach(async () => {
    const left = [...liveWorkers];
    if (left.length === 0) return;
    for (const w of left) w.child.kill('SIGCONT'); // a test that stopped one (SIGSTOP) and failed before waking it
    const killer = setTimeout(() => { for (const w of left) w.child.kill('SIGKILL'); }, 20_000);
    await stopWorkers(left);
    clearTimeout(killer);
  }, 30_000);
  beforeAll(async () => {
    const r = await zcqOn(rig, initOn, ['init']);
    expect(r.code, r.stderr).toBe(0);
  });
  return { rig, local };
}
