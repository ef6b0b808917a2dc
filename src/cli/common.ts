/**
 * What every command shares: the global options, opening the spool, reading ids (with `-` for stdin, as
 * Postfix's postsuper does), option parsers that enforce the ranges of defaults.ts, and printing. Commands
 * stay thin: the work is in the library.
 *
 * Printing: anything read from the spool (ids, queues, messages, paths) may hold control characters, so
 * human output goes through `row`/`line`, which escape them (text.ts), and JSON output through `printJson`.
 */
import { Option, type Command } from 'commander';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Spool } from '../client/spool.js';
import { AmbiguousIdError, UsageError, ZcqError } from '../errors.js';
import { parseDuration } from '../schedule/time-input.js';
import type { Range } from '../defaults.js';
import { JSON_MAX_DEPTH, JSON_MAX_VALUE_DEPTH, checkJsonShape } from '../job/json-limits.js';
import { formatDuration, jsonLine, printable, printableValue } from '../text.js';

export interface GlobalOptions { spool?: string; json?: boolean; relaxed?: boolean }

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** The spool folder the command names: --spool, else $ZCQ_SPOOL, else ./spool. */
export async function spoolDir(cmd: Command): Promise<string> {
  const { defaultSpoolDir } = await import('../spool/layout.js');
  return globals(cmd).spool ?? defaultSpoolDir();
}

/**
 * Open the command's spool. Only `zcq init` creates one: any other command meeting a folder without a
 * spool marker says so and exits 2, so that a mistyped --spool does not quietly make a new, empty spool
 * that producers fill and no worker reads.
 */
export async function openSpool(cmd: Command): Promise<Spool> {
  const g = globals(cmd);
  const dir = await spoolDir(cmd);
  const { Spool } = await import('../client/spool.js');
  try {
    return await Spool.open(dir, { create: false, durable: !g.relaxed });
  } catch (err) {
    if (err instanceof ZcqError && (err.code === 'ZCQ_NO_SPOOL' || err.code === 'ZCQ_NOT_A_SPOOL')) {
      const found = await withoutMarker(dir);
      if (found === 'nothing') throw new UsageError(`no spool at ${dir} (run zcq init ${shellWord(dir)})`, 'ZCQ_NO_SPOOL');
      if (found !== null) throw new UsageError(`${dir}: not a zcq spool (no zcq-spool.json, and it holds other files, such as '${found}'); pick another --spool`, 'ZCQ_NOT_A_SPOOL');
    }
    throw err;
  }
}

/**
 * What a folder without a spool marker holds: 'nothing' when it does not exist or holds nothing but
 * hidden files and spool folders (an init cut short: running init again completes it), else the name of
 * one file that is not the spool's, or null when it has a marker after all or cannot be read.
 */
async function withoutMarker(dir: string): Promise<'nothing' | string | null> {
  const { MARKER, STATES, AUX_DIRS } = await import('../spool/layout.js');
  try {
    await lstat(join(dir, MARKER));
    return null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return null;
  }
  let entries: string[];
  try { entries = await readdir(dir); } catch (err) { return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'nothing' : null; }
  const ours = new Set<string>([...STATES, ...AUX_DIRS]);
  return entries.find((e) => !e.startsWith('.') && !ours.has(e)) ?? 'nothing';
}

/** `s` as one word for a POSIX shell: as it is when it is safe, else in single quotes. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
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

/**
 * The full ids of `refs` (ids or unique prefixes), before a command acts on any: a malformed id or an
 * ambiguous prefix is a usage error (exit 2) and nothing is done. A ref that matches no job is passed on
 * as it is, for the command to report among its per-job results.
 */
export async function resolveRefs(spool: Spool, refs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const ref of refs) {
    try {
      out.push((await spool.locate(ref)).id);
    } catch (err) {
      if (err instanceof AmbiguousIdError || err instanceof UsageError) throw err;
      out.push(ref);
    }
  }
  return out;
}

/** One value as JSON on one line (characters a terminal acts on escaped; see text.ts). */
export function printJson(v: unknown): void {
  process.stdout.write(jsonLine(v) + '\n');
}

/** A tab-separated line on stdout, each field made printable (a field can hold no tab or newline). */
export function row(...fields: unknown[]): void {
  process.stdout.write(fields.map((f) => (f === undefined || f === null ? '-' : printableValue(f))).join('\t') + '\n');
}

/** A line of text on stdout, made printable. */
export function line(s: string): void {
  process.stdout.write(printable(s) + '\n');
}

/** A `zcq: ...` line on stderr, made printable. */
export function warn(s: string): void {
  process.stderr.write(`zcq: ${printable(s)}\n`);
}

export function age(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** How a range reads in help and errors: "1 to 1024", "0 to 1h", "1 to 1,000,000,000". */
export function describeRange(r: Range, unit: 'count' | 'ms'): string {
  const f = (n: number) => (n === 0 ? '0' : unit === 'ms' ? formatDuration(n) : n >= 10_000 ? groupThousands(n) : String(n));
  return `${f(r.min)} to ${f(r.max)}`;
}

/**
 * 1000000 → "1,000,000", as toLocaleString('en-US') writes it. Not toLocaleString itself: its first call
 * loads ICU's number formatting, ~40 ms of CPU, and every command builds its help text (these ranges) at
 * start, so `zcq put` paid it on each call.
 */
export function groupThousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Parse a whole-number option within `range`, with an error naming the option, its value and the range. */
export function intOption(name: string, range: Range): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < range.min || n > range.max) {
      throw new UsageError(`${name} '${printable(v)}': must be a whole number from ${describeRange(range, 'count')}`);
    }
    return n;
  };
}

/**
 * Parse a duration option ('90s', '1h30m') within `range` (milliseconds), with an error naming the
 * option, its value and the range.
 */
export function durationOption(name: string, range: Range): (v: string) => number {
  return (v: string) => {
    let ms: number;
    try { ms = parseDuration(v); } catch (err) { throw new UsageError(`${name} '${printable(v)}': ${(err as Error).message}`, 'ZCQ_BAD_DURATION'); }
    if (ms < range.min || ms > range.max) throw new UsageError(`${name} '${printable(v)}': must be from ${describeRange(range, 'ms')}`, 'ZCQ_BAD_DURATION');
    return ms;
  };
}

/**
 * A duration option with its range in the help. Its default is `defaultMs`, shown by commander as
 * "(default: 30s)", or when the default is not a fixed value (it depends on the machine or another
 * option) `defaultText`, shown the same way.
 */
export function durationOpt(flags: string, description: string, name: string, range: Range, defaultMs?: number, defaultText?: string): Option {
  const o = new Option(flags, withRange(description, describeRange(range, 'ms'), defaultText)).argParser(durationOption(name, range));
  return defaultMs === undefined ? o : o.default(defaultMs, formatDuration(defaultMs));
}

/** A whole-number option with its range in the help; its default as for durationOpt. */
export function intOpt(flags: string, description: string, name: string, range: Range, defaultValue?: number, defaultText?: string): Option {
  const o = new Option(flags, withRange(description, describeRange(range, 'count'), defaultText)).argParser(intOption(name, range));
  return defaultValue === undefined ? o : o.default(defaultValue);
}

function withRange(description: string, range: string, defaultText?: string): string {
  return `${description} (${range})${defaultText === undefined ? '' : ` (default: ${defaultText})`}`;
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
    try { checkJsonShape(String(argsJson), { maxDepth: JSON_MAX_VALUE_DEPTH }); } catch (err) { throw new UsageError(`--args-json: ${(err as Error).message}; a job file holds at most ${JSON_MAX_DEPTH} levels`); }
    try { parsed = JSON.parse(String(argsJson)); } catch (err) { throw new UsageError(`--args-json: not valid JSON (${(err as Error).message})`); }
    if (!Array.isArray(parsed)) throw new UsageError('--args-json: must be a JSON array, e.g. \'[{"id":7}]\'');
    return parsed;
  }
  if (args.length === 1 && /^\s*[[{]/.test(args[0]!)) {
    // The value becomes args[0]: one level inside the args array.
    try { checkJsonShape(args[0]!, { maxDepth: JSON_MAX_VALUE_DEPTH - 1 }); } catch (err) { throw new UsageError(`argument: ${(err as Error).message}; a job file holds at most ${JSON_MAX_DEPTH} levels`); }
    try { return [JSON.parse(args[0]!)]; } catch { return args; }
  }
  return args;
}

export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}
