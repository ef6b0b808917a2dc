/**
 * `zcq dashboard`: serve the spool's web page (live) and its Prometheus metrics at /metrics
 * (src/dashboard/server.ts). Prints the page's address on stdout; logs one line per event on stderr;
 * SIGINT or SIGTERM stops it.
 */
import type { Command } from 'commander';
import { DASHBOARD_BOUNDS as B, DASHBOARD_DEFAULTS as D } from '../../defaults.js';
import { UsageError } from '../../errors.js';
import { durationOpt, globals, intOpt, line, openSpool } from '../common.js';

/** Shorter tokens are guessable by whoever can reach the port. */
const MIN_TOKEN = 16;

export function register(program: Command): void {
  program.command('dashboard')
    .description('serve a live web page over the spool, and Prometheus metrics at /metrics')
    .addOption(intOpt('--port <n>', 'port to listen on (0: any free port)', '--port', B.port, D.port))
    .option('--host <address>', 'address to bind; any other than loopback needs --token-file', D.host)
    .option('--actions', 'offer retry, cancel, hold, release, pause and resume on the page (without it the page is read-only)')
    .option('--token-file <file>', 'every request must carry the token this file holds (Authorization: Bearer TOKEN, or open /?token=TOKEN once)')
    .addOption(durationOpt('--refresh <duration>', 'how often to look at the spool while a page is open', '--refresh', B.refreshMs, D.refreshMs))
    .action(async (o: { port: number; host: string; actions?: boolean; tokenFile?: string; refresh: number }, cmd: Command) => {
      const { checkBind, startDashboard } = await import('../../dashboard/server.js');
      const token = o.tokenFile !== undefined ? await readToken(o.tokenFile) : null;
      checkBind(o.host, token);
      const spool = await openSpool(cmd);
      const { makeLogger } = await import('../../log.js');
      const log = makeLogger({ json: globals(cmd).json });
      let d;
      try {
        d = await startDashboard({ spool, host: o.host, port: o.port, actions: !!o.actions, token, refreshMs: o.refresh, log });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES') throw new UsageError(`--host ${o.host} --port ${o.port}: cannot listen there (${code}); pick another port or address`);
        throw err;
      }
      line(d.url);
      log('dashboard.start', { url: d.url, spool: spool.dir, actions: !!o.actions, token: token !== null });
      await new Promise<void>((resolve) => { for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve()); });
      await d.close();
      await spool.close();
      log('dashboard.stop', {});
    });
}

async function readToken(path: string): Promise<string> {
  const { readRegularFileSync } = await import('../../spool/fsops.js');
  let r;
  try { r = readRegularFileSync(path, 4096); } catch (err) { throw new UsageError(`--token-file ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`); }
  if ('bad' in r) throw new UsageError(`--token-file ${path}: ${r.bad}`);
  const t = r.text.trim();
  if (t.length < MIN_TOKEN || /\s/.test(t)) throw new UsageError(`--token-file ${path}: the token must be one word of at least ${MIN_TOKEN} characters (make one: head -c 24 /dev/urandom | base64 > ${path})`);
  return t;
}
