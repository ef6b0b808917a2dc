// Helpers shared by the lease/recovery tests: bulk puts through the library, reading what is where, and
// ledgers written by test/fixtures/jobs.mjs (`<id> <event> <pid> <attempt> <epoch ms> [extra]`).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../../dist/index.js';
import { ledgerLines } from '../helpers.js';

export { Spool };

export async function putMany(spool: string, n: number, fn: string, args: unknown[], opts: Record<string, unknown> = {}): Promise<string[]> {
  const s = await Spool.open(spool, { durable: false });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await s.put(fn, args, opts)).id);
  return ids;
}

/** Every job file under claimed/ (lease folders and nested `<lease>.dead/` folders). */
export function claimedFiles(spool: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const n of readdirSync(dir)) {
      const p = join(dir, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n.endsWith('.json')) out.push(p);
    }
  };
  walk(join(spool, 'claimed'));
  return out;
}

export interface LedgerEntry { id: string; event: string; pid: number; attempt: number; at: number; extra?: string }
export function readLedger(path: string): LedgerEntry[] {
  return ledgerLines(path).map((l) => {
    const [id, event, pid, attempt, at, ...rest] = l.split(' ');
    return { id: id!, event: event!, pid: Number(pid), attempt: Number(attempt), at: Number(at), extra: rest.join(' ') || undefined };
  });
}

export function jobIn(spool: string, state: 'done' | 'failed' | 'pending', id: string): Record<string, any> | null {
  const p = join(spool, state, `${id}.json`);
  return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : null;
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
  let out = '';
  child.stdout?.on('data', (d) => { out += d; });
  child.stderr?.on('data', (d) => { out += d; });
  child.output = () => out;
  child.exited = new Promise((res) => child.on('exit', (code, sig) => { procs.delete(child); res(code ?? (sig ? 128 : null)); }));
  procs.add(child);
  return child;
}

export function killWorkers(): void {
  for (const c of procs) { try { c.kill('SIGCONT'); c.kill('SIGKILL'); } catch { /* gone */ } }
  procs.clear();
}
