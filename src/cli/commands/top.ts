/**
 * `zcq top`: `zcq status` and the running jobs, redrawn every second on the terminal's alternate screen
 * until q (or Ctrl-C). stdin is put in raw mode when it is a terminal, so q acts without Enter; the
 * terminal is restored however the command ends. stdout must be a terminal: `zcq top | ...` is refused
 * (exit 2) — a pipe wants `zcq status` or `zcq --json status`.
 *
 * Each frame reads the spool as `zcq status` does, plus the running jobs' files and their progress
 * annotations (at most the workers' total concurrency of small reads). Frames never overlap: the next
 * one starts an interval after the previous one was drawn.
 */
import { lstatSync } from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { Spool } from '../../client/spool.js';
import { durationOpt, globals, openSpool } from '../common.js';
import { ago, cut, table } from '../format.js';
import { jsonLine, printable } from '../../text.js';
import { gatherStatus, renderStatus } from './status.js';

const INTERVAL = { min: 100, max: 3_600_000 };

export function register(program: Command): void {
  program.command('top')
    .description('status and running jobs, redrawn every interval until q or Ctrl-C (needs a terminal)')
    .addOption(durationOpt('--interval <duration>', 'time between redraws', '--interval', INTERVAL, 1000))
    .action(async (o: { interval: number }, cmd: Command) => {
      if (!process.stdout.isTTY) throw new UsageError('top: standard output is not a terminal; use zcq status (or zcq --json status) in a pipe');
      if (globals(cmd).json) throw new UsageError('top: no --json form; use zcq --json status');
      const spool = await openSpool(cmd);
      await run(spool, o.interval);
    });
}

async function run(spool: Spool, intervalMs: number): Promise<void> {
  const out = process.stdout;
  const stdin = process.stdin;
  let quit = false;
  let wake: (() => void) | undefined;
  const stop = () => { quit = true; wake?.(); };
  const onKey = (b: Buffer) => {
    const k = b.toString('utf8');
    // q, Q, Ctrl-C (raw mode delivers it as a byte, not SIGINT), Ctrl-D.
    if (/[qQ\x03\x04]/.test(k)) stop();
    else wake?.(); // any other key redraws at once
  };
  const onResize = () => wake?.();
  // Alternate screen, cursor hidden; undone in the finally below (and at exit, in case of a crash).
  const restore = () => { out.write('\x1b[?25h\x1b[?1049l'); };
  out.write('\x1b[?1049h\x1b[?25l');
  process.once('exit', restore);
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  out.on('resize', onResize);
  if (stdin.isTTY) { stdin.setRawMode(true); stdin.resume(); stdin.on('data', onKey); }
  try {
    while (!quit) {
      const frame = await render(spool, intervalMs);
      if (quit) break;
      const rows = out.rows > 0 ? out.rows : 24;
      // Home, each line then erase-to-end-of-line, then erase below: no flicker, no leftovers.
      out.write('\x1b[H' + frame.slice(0, rows).map((l) => l + '\x1b[K').join('\r\n') + '\x1b[J');
      await new Promise<void>((res) => { const t = setTimeout(res, intervalMs); wake = () => { clearTimeout(t); res(); }; });
      wake = undefined;
    }
  } finally {
    if (stdin.isTTY) { stdin.off('data', onKey); stdin.setRawMode(false); stdin.pause(); }
    out.off('resize', onResize);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    process.off('exit', restore);
    restore();
  }
}

/** One frame: a title, the status view, the running jobs. */
async function render(spool: Spool, intervalMs: number): Promise<string[]> {
  const width = process.stdout.columns > 0 ? process.stdout.columns : 80;
  const v = await gatherStatus(spool);
  const running = await spool.list({ states: ['claimed'] });
  const lines: string[] = [];
  lines.push(cut(printable(`zcq top  ${new Date(v.now).toISOString().slice(0, 19).replace('T', ' ')} UTC  every ${intervalMs / 1000}s  (q quits)`), width));
  lines.push(...renderStatus(v, width).slice(1)); // the title line replaces status's "spool ..." line
  lines.push('');
  if (running.length === 0) { lines.push('no job running'); return lines; }
  const rows: unknown[][] = [];
  for (const r of running) {
    let forMs: number | null = null;
    try { forMs = Math.max(0, v.now - lstatSync(r.path).ctimeMs); } catch { /* finished meanwhile */ }
    const p = await spool.progress(r.id).catch(() => null);
    rows.push([r.id, r.job?.queue, r.job?.fn, r.worker, ago(forMs), p ? jsonLine(p.value) : null]);
  }
  lines.push(...table([
    { header: 'RUNNING', shrink: 4, min: 10 }, { header: 'QUEUE', shrink: 3, min: 5 }, { header: 'FN', shrink: 2, min: 8 },
    { header: 'WORKER', shrink: 3, min: 8 }, { header: 'STARTED', align: 'right' }, { header: 'PROGRESS', shrink: 1, min: 8 },
  ], rows, width));
  return lines;
}
