// Shared test helpers: temporary spools, running the real `zcq` binary, reading ledgers.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = join(ROOT, 'bin', 'zcq');
export const FIXTURES = join(ROOT, 'test', 'fixtures');

const made: string[] = [];
export function tempDir(prefix = 'zcq-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}
export function cleanupTemp(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface Run { code: number | null; stdout: string; stderr: string }

/** Run `zcq ARGS` synchronously with the given spool (cwd = the fixtures folder unless told). */
export function zcq(spool: string | null, args: string[], opts: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Run {
  const full = spool ? ['--spool', spool, ...args] : args;
  const r: SpawnSyncReturns<string> = spawnSync(process.execPath, [BIN, ...full], {
    cwd: opts.cwd ?? FIXTURES, input: opts.input ?? '', encoding: 'utf8', env: { ...process.env, ...opts.env }, timeout: opts.timeout ?? 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Start a `zcq worker` process (killed by `stopAll` if still running). */
const children = new Set<ChildProcess>();
export function startWorker(spool: string, args: string[] = [], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess & { output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, '--spool', spool, 'worker', '--root', FIXTURES, ...args], {
    cwd: opts.cwd ?? FIXTURES, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess & { output: () => string; exited: Promise<number | null> };
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  child.output = () => out;
  child.exited = new Promise((res) => child.on('exit', (code) => { children.delete(child); res(code); }));
  children.add(child);
  return child;
}
export function killAll(): void {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  children.clear();
}

export function ledgerLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
}

export function names(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')) : [];
}

export function readJob(path: string): Record<string, any> {
  return JSON.parse(readFileSync(path, 'utf8'));
}

export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 20_000, stepMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
