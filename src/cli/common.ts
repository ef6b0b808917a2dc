/**
 * What every command shares: the global options, opening the spool, reading ids (with `-` for stdin, as
 * Postfix's postsuper does), and printing. Commands stay thin: the work is in the library.
 */
import type { Command } from 'commander';
import type { Spool } from '../client/spool.js';
import { UsageError } from '../errors.js';
import { parseDuration } from '../schedule/time-input.js';

export interface GlobalOptions { spool?: string; json?: boolean; relaxed?: boolean }

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

export async function openSpool(cmd: Command, create = false): Promise<Spool> {
  const g = globals(cmd);
  const { Spool } = await import('../client/spool.js');
  const { defaultSpoolDir } = await import('../spool/layout.js');
  return Spool.open(g.spool ?? defaultSpoolDir(), { create, durable: !g.relaxed });
}

/** Ids from the arguments; a lone `-` reads whitespace-separated ids from stdin. */
export async function readIds(args: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const a of args) {
    if (a === '-') {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      out.push(...Buffer.concat(chunks).toString('utf8').split(/\s+/).filter(Boolean));
    } else out.push(a);
  }
  if (out.length === 0) throw new UsageError('give at least one job id (or - to read ids from stdin)');
  return out;
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v) + '\n');
}

export function age(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** Parse an integer option with a clear error naming the option. */
export function intOption(name: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < min || n > max) throw new UsageError(`${name} '${v}': must be an integer from ${min} to ${max}`);
    return n;
  };
}

/**
 * A job's arguments from the command line, the same for `put` and `cron add`: strings as given, typed
 * JSON from `--args-json '[...]'`, and a lone JSON object or array argument taken as typed data
 * (`zcq put ./jobs.mjs#render '{"id":7}'`).
 */
export function jobArgs(args: string[], argsJson: unknown): unknown[] {
  if (argsJson !== undefined) {
    if (args.length > 0) throw new UsageError('give string args or --args-json, not both');
    let parsed: unknown;
    try { parsed = JSON.parse(String(argsJson)); } catch (err) { throw new UsageError(`--args-json: not valid JSON (${(err as Error).message})`); }
    if (!Array.isArray(parsed)) throw new UsageError('--args-json: must be a JSON array, e.g. \'[{"id":7}]\'');
    return parsed;
  }
  if (args.length === 1 && /^\s*[[{]/.test(args[0]!)) {
    try { return [JSON.parse(args[0]!)]; } catch { return args; }
  }
  return args;
}

/** Parse a duration option ('90s', '1h30m') with a clear error naming the option. */
export function durationOption(name: string): (v: string) => number {
  return (v: string) => {
    try { return parseDuration(v); } catch (err) { throw new UsageError(`${name} '${v}': ${(err as Error).message}`); }
  };
}

export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}
