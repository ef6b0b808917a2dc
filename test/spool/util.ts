// Helpers for the hostile-co-user tests: real files, real FIFOs and sockets, a victim outside the spool.
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** A file outside the spool that no zcq call may change. */
export function victim(dir: string, name = 'victim.txt'): { path: string; hash: string } {
  const path = join(dir, name);
  writeFileSync(path, `precious ${name}\n`);
  return { path, hash: sha256(path) };
}

export function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

/** A Unix socket file left behind (the binding process exits; the file stays). */
export function mksock(path: string): void {
  const r = spawnSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', path]);
  if (r.status !== 0) throw new Error(`cannot make a socket at ${path}: ${r.stderr}`);
}

/** Resolve `p` or fail after `ms`: a call that blocks on a FIFO must fail the test, not hang it. */
export async function within<T>(ms: number, p: Promise<T> | T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`did not return within ${ms} ms`)), ms); });
  try { return await Promise.race([Promise.resolve(p), t]); } finally { clearTimeout(timer); }
}

export const isRoot = process.getuid?.() === 0;

import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');
/** file:// URL of a compiled module, e.g. distUrl('spool/fsops.js'). */
export function distUrl(mod: string): string {
  return pathToFileURL(join(DIST, mod)).href;
}

/**
 * Run an ES module snippet in a child `node` (optionally with a umask set before anything loads, or as
 * another user through runuser). A call that blocks a thread on a FIFO would hang the test process
 * itself, timers included; in a child it is killed at `timeoutMs` and the test fails with "timed out".
 * The snippet prints its result with `out(value)` (JSON on stdout).
 */
export function runNode(code: string, opts: { umask?: number; timeoutMs?: number; user?: string } = {}): { ok: boolean; value: any; stderr: string; timedOut: boolean } {
  const prelude = `${opts.umask !== undefined ? `process.umask(${opts.umask});` : ''} const out = (v) => process.stdout.write(JSON.stringify(v));`;
  const args = ['--input-type=module', '-e', `${prelude}\n${code}`];
  const [cmd, argv] = opts.user ? ['runuser', ['-u', opts.user, '--', process.execPath, ...args]] : [process.execPath, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: opts.timeoutMs ?? 5_000, cwd: '/' });
  const timedOut = r.signal === 'SIGTERM' || (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  let value: any;
  try { value = r.stdout ? JSON.parse(r.stdout) : undefined; } catch { value = r.stdout; }
  return { ok: r.status === 0, value, stderr: r.stderr ?? '', timedOut };
}
