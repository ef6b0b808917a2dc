// Shared test helpers: temporary spools, running the real `zcq` binary, reading ledgers, and where a job's
// file sits in the format-2 layout (pending/QUEUE/ID.json, deferred/QUEUE/BUCKET/DUEMS15.ID.json,
// claimed/LEASE/SEQ.ID.json; see SPEC-format2.md and man/zcq-spool.5).
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, existsSync, readdirSync, lstatSync } from 'node:fs';
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
/**
 * Create a spool at `dir` the way `zcq init` does (format 2: only init creates a spool; Spool.open and every
 * other command refuse a missing one). Returns `dir`.
 */
export function initSpool(dir: string): string {
  const r = spawnSync(process.execPath, [BIN, 'init', dir], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`zcq init ${dir} exited ${r.status}: ${r.stderr}`);
  return dir;
}

/** A fresh, initialised spool in its own temporary folder: `<tmp>/spool`. */
export function newSpool(): string {
  return initSpool(join(tempDir(), 'spool'));
}

const DEFAULT_QUEUE = 'default';
export type FlatState = 'pending' | 'done' | 'failed' | 'hold';
/** Where a job of `queue` sits in a flat per-queue state: STATE/QUEUE/ID.json. */
export function jobPath(spool: string, state: FlatState, queue: string, id: string): string {
  return join(spool, state, queue, `${id}.json`);
}
export const pendingPath = (spool: string, id: string, queue = DEFAULT_QUEUE) => jobPath(spool, 'pending', queue, id);
export const donePath = (spool: string, id: string, queue = DEFAULT_QUEUE) => jobPath(spool, 'done', queue, id);
export const failedPath = (spool: string, id: string, queue = DEFAULT_QUEUE) => jobPath(spool, 'failed', queue, id);
export const holdPath = (spool: string, id: string, queue = DEFAULT_QUEUE) => jobPath(spool, 'hold', queue, id);

/** Every job file under deferred/, as QUEUE/BUCKET/NAME. */
export function deferredFiles(spool: string): string[] {
  const d = join(spool, 'deferred');
  return names(d).flatMap((q) => names(join(d, q)).flatMap((b) => names(join(d, q, b)).map((n) => `${q}/${b}/${n}`)));
}

/**
 * The ids whose files sit in `state` (all queues, or one), sorted: from names only. Loose files straight in
 * pending/ or hold/ count too (queue null); claimed/ is read across lease folders (SEQ.ID.json).
 */
export function idsIn(spool: string, state: 'pending' | 'deferred' | 'claimed' | 'done' | 'failed' | 'hold', queue?: string): string[] {
  const dir = join(spool, state);
  const out: string[] = [];
  if (state === 'claimed') {
    for (const lease of names(dir)) for (const n of names(join(dir, lease))) { const m = /^\d+\.(.+)\.json$/.exec(n); if (m) out.push(m[1]!); }
    return out.sort();
  }
  if (state === 'deferred') {
    for (const p of deferredFiles(spool)) { const [q, , n] = p.split('/'); if (queue === undefined || q === queue) out.push(/^\d{15}\.(.+)\.json$/.exec(n!)![1]!); }
    return out.sort();
  }
  for (const e of names(dir)) {
    const p = join(dir, e);
    if (isDir(p)) { if (queue === undefined || e === queue) for (const n of names(p)) if (n.endsWith('.json')) out.push(n.slice(0, -5)); }
    else if (queue === undefined && e.endsWith('.json')) out.push(e.slice(0, -5));
  }
  return out.sort();
}

/** Every file in the spool's job states that names job `id`, as paths relative to the spool (normally one). */
export function whereIs(spool: string, id: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const n of names(join(spool, rel))) {
      const r = `${rel}/${n}`;
      if (isDir(join(spool, r))) walk(r);
      else if (n === `${id}.json` || n.endsWith(`.${id}.json`)) out.push(r);
    }
  };
  for (const s of ['pending', 'deferred', 'claimed', 'done', 'failed', 'hold']) walk(s);
  return out.sort();
}

function isDir(p: string): boolean {
  try { return lstatSync(p).isDirectory(); } catch { return false; }
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

/**
 * Watch a rate folder (rate/TARGET/): every token file WINDOW.K seen, with the run token of the claim that
 * took it (a done record carries the same `run`), its window and its mtime. Looked at every `everyMs` (a
 * window's files are removed in a later one) and once more at `stop()`.
 */
export function watchRateTokens(dir: string, everyMs = 50): { seen: Map<string, { window: number; run: string; mtimeMs: number }>; stop(): void } {
  const seen = new Map<string, { window: number; run: string; mtimeMs: number }>();
  const look = () => {
    let list: string[] = [];
    try { list = readdirSync(dir); } catch { return; }
    for (const n of list) {
      const m = /^(\d+)\.\d+$/.exec(n);
      if (!m || seen.has(n)) continue;
      let fd: number;
      try { fd = openSync(join(dir, n), 'r'); } catch { continue; } // removed meanwhile (an old window's)
      try {
        const run = readFileSync(fd, 'utf8').trim();
        if (run !== '') seen.set(n, { window: Number(m[1]), run, mtimeMs: fstatSync(fd).mtimeMs });
      } catch { /* looked at again next time */ } finally { try { closeSync(fd); } catch { /* ESTALE on a GlusterFS close */ } }
    }
  };
  const timer = setInterval(look, everyMs);
  return { seen, stop: () => { clearInterval(timer); look(); } };
}
