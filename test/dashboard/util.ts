// Helpers for the dashboard tests: a real `zcq dashboard` process (its address read from its first line
// on stdout), Debian's chromium driven by playwright-core, and where screenshots go.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, FIXTURES, ROOT } from '../helpers.js';

export const ARTIFACTS = join(ROOT, 'test-artifacts');
export const CHROMIUM = '/usr/bin/chromium';

export interface DashboardProcess { url: string; child: ChildProcess; output: () => string; stop: () => Promise<void> }

/** Start `zcq dashboard --port 0` on `spool` with `args`; resolves once it printed its address. */
export function startDashboard(spool: string, args: string[] = []): Promise<DashboardProcess> {
  const child = spawn(process.execPath, [BIN, '--spool', spool, 'dashboard', '--port', '0', '--refresh', '200ms', ...args], { cwd: FIXTURES, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /^(http:\/\/\S+)\n/.exec(out);
      if (m) resolve({ url: m[1]!, child, output: () => out + err, stop: async () => { child.kill('SIGTERM'); await exited; } });
    });
    child.on('exit', (code) => reject(new Error(`zcq dashboard exited ${code}: ${err}`)));
  });
}

export function artifact(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}
