// Helpers shared by the lease/recovery tests: making a spool (format 2: a spool is created first, with
// `zcq init` or Spool.init), bulk puts through the library, reading what is where, and ledgers written by
// test/fixtures/jobs.mjs (`<id> <event> <pid> <attempt> <epoch ms> [extra]`).
//
// Format 2 layout read here: pending/QUEUE/ID.json, done/QUEUE/ID.json, failed/QUEUE/ID.json,
// deferred/QUEUE/BUCKET/DUEMS15.ID.json, claimed/LEASE/SEQ.ID.json (and claimed/ME/LEASE.dead/SEQ.ID.json).
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../../dist/index.js';
import { ledgerLines, tempDir } from '../helpers.js';

export { Spool };

/** A new, empty format-2 spool in a fresh temp folder (Spool.init, as `zcq init` does). */
export async function newSpool(): Promise<string> {
  const spool = join(tempDir(), 'spool');
  await Spool.init(spool, { durable: false });
  return spool;
}

/** Put n jobs through the library into an existing spool (Spool.open never creates one). */
export async function putMany(spool: string, n: number, fn: string, args: unknown[], opts: Record<string, unknown> = {}): Promise<string[]> {
  const s = await Spool.open(spool, { durable: false });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await s.put(fn, args, opts)).id);
  await s.close();
  return ids;
}

/**
 * Every job file under claimed/ (lease folders and nested `<lease>.dead/` folders). Safe beside live
 * workers: a folder or file that moves away while it is read is simply not listed.
 */
export function claimedFiles(spool: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let ents;
    try { ents = readdirSync(dir, { withFileTypes: true }); } catch (err) { if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code!)) return; throw err; }
    for (const e of ents) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.json')) out.push(p);
    }
  };
  walk(join(spool, 'claimed'));
  return out;
}

/** The claimed files of job `id` (`SEQ.ID.json`, in any lease folder, nested ones included). */
export function claimedOf(spool: string, id: string): string[] {
  const re = new RegExp(`/\\d+\\.${id.replace(/[.]/g, '\\.')}\\.json$`);
  return claimedFiles(spool).filter((p) => re.test(p));
}

export interface LedgerEntry { id: string; event: string; pid: number; attempt: number; at: number; extra?: string }
export function readLedger(path: string): LedgerEntry[] {
  return ledgerLines(path).map((l) => {
    const [id, event, pid, attempt, at, ...rest] = l.split(' ');
    return { id: id!, event: event!, pid: Number(pid), attempt: Number(attempt), at: Number(at), extra: rest.join(' ') || undefined };
  });
}

/** The queue folders of a state (format 2: every queued state holds one folder per queue). */
export function queuesOf(spool: string, state: string): string[] {
  const d = join(spool, state);
  if (!existsSync(d)) return [];
  return readdirSync(d).filter((n) => !n.startsWith('.') && lstatSync(join(d, n)).isDirectory());
}

/** Paths of `STATE/QUEUE/ID.json` for a job, over every queue folder (normally at most one). */
export function pathsIn(spool: string, state: 'done' | 'failed' | 'pending' | 'hold', id: string): string[] {
  return queuesOf(spool, state).map((q) => join(spool, state, q, `${id}.json`)).filter((p) => existsSync(p));
}

/**
 * The job's record in STATE (any queue folder), or null. A job in two queue folders of one state is a
 * bug the caller must see, so that throws.
 */
export function jobIn(spool: string, state: 'done' | 'failed' | 'pending' | 'hold', id: string): Record<string, any> | null {
  const found = pathsIn(spool, state, id);
  if (found.length > 1) throw new Error(`job ${id} is in ${found.length} queue folders of ${state}/: ${found.join(', ')}`);
  if (found.length === 0) return null;
  try { return JSON.parse(readFileSync(found[0]!, 'utf8')); } catch (err) { if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; throw err; }
}

/** Every job file name in a queued state, over all its queue folders (`ID.json`). */
export function namesIn(spool: string, state: 'done' | 'failed' | 'pending' | 'hold'): string[] {
  return queuesOf(spool, state).flatMap((q) => readdirSync(join(spool, state, q)).filter((n) => n.endsWith('.json') && !n.startsWith('.')));
}

/** Jobs waiting in deferred/QUEUE/BUCKET/DUEMS15.ID.json. */
export function deferredFiles(spool: string): { name: string; queue: string; bucket: string; dueMs: number; id: string; path: string }[] {
  const root = join(spool, 'deferred');
  return queuesOf(spool, 'deferred').flatMap((queue) => readdirSync(join(root, queue)).flatMap((bucket) => readdirSync(join(root, queue, bucket)).map((name) => {
    const m = /^(\d{15})\.(.+)\.json$/.exec(name);
    if (!m) throw new Error(`not a deferred job name: deferred/${queue}/${bucket}/${name}`);
    return { name, queue, bucket, dueMs: Number(m[1]), id: m[2]!, path: join(root, queue, bucket, name) };
  })));
}

/** Parse JSON log lines a `zcq --json worker` wrote to stderr. */
export function events(output: string): Record<string, any>[] {
  return output.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l); } catch { return {}; } });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

import { spawn, type ChildProcess } from 'node:child_process';
import { BIN, FIXTURES } from '../helpers.js';

export type Proc = ChildProcess & { output: () => string; exited: Promise<number | null> };
const procs = new Set<Proc>();

/** Start `zcq --json worker --root FIXTURES ARGS` (logs as JSON lines); `env` adds variables (faketime). */
export function worker(spool: string, args: string[] = [], env: NodeJS.ProcessEnv = {}, globals: string[] = [], quiet = false): Proc {
  const child = spawn(process.execPath, [BIN, '--json', ...globals, '--spool', spool, 'worker', '--root', FIXTURES, ...args], {
    cwd: FIXTURES, env: { ...process.env, ...env }, stdio: ['ignore', quiet ? 'ignore' : 'pipe', quiet ? 'ignore' : 'pipe'],
  }) as Proc;
  return track(child);
}

/** Track any child process like a worker (output kept, killed by killWorkers). */
export function track(child: ChildProcess): Proc {
  const p = child as Proc;
  let out = '';
  p.stdout?.on('data', (d) => { out += d; });
  p.stderr?.on('data', (d) => { out += d; });
  p.output = () => out;
  p.exited = new Promise((res) => p.on('exit', (code, sig) => { procs.delete(p); res(code ?? (sig ? 128 : null)); }));
  procs.add(p);
  return p;
}

export function killWorkers(): void {
  for (const c of procs) { try { c.kill('SIGCONT'); c.kill('SIGKILL'); } catch { /* gone */ } }
  procs.clear();
}
