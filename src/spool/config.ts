/**
 * Live worker configuration, stored in the spool so that a change made from any machine reaches every
 * worker within a poll interval, without a restart (zc.async's agents; Postfix's per-process limits).
 *
 *   config/workers/NAME.json        for the workers named NAME (`zcq worker --name NAME`; default the host name)
 *   config/workers/host~HOST.json   for every worker on host HOST
 *   config/workers/_all.json        for every worker (`*`)
 *
 * The three kinds of names cannot collide: a worker name starts with a letter or digit and holds only
 * [A-Za-z0-9._-], so it never contains `~` and is never `_all`. Each file is a JSON object with any of
 *
 *   "concurrency": 1..1024               jobs at once
 *   "queues": ["a","b"] | null           queues served, in order of preference; null: all, in turn
 *   "fn": ["./mail.mjs#*","!*#slow"] | null   glob filters on a job's function; null: all
 *   "paused": true | false               true: finish running jobs, take no new ones
 *
 * A key a file leaves out comes from the next one down: a command-line flag (or the library option) wins
 * over NAME.json, which wins over host~HOST.json, over _all.json, over the built-in default (resolveSettings).
 *
 * Files are read bounded (64 KiB, a regular file only: readRegularTextSync refuses a symlink, FIFO or
 * device) and written only by writeReplace (an exclusive temporary in tmp/ renamed over the name: a
 * planted symlink is replaced, never written through). Bad content is never fatal to a worker: a key
 * that cannot be read is reported in `problems` and the next level applies in its place.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf, isGone, isMountGone, UsageError } from '../errors.js';
import { CONFIG_BOUNDS, WORKER_BOUNDS } from '../defaults.js';
import { lstatDirSync, openRegularSync, readRegularTextSync, unlinkQuietly, writeReplace } from './fsops.js';
import { QUEUE_NAME, type Layout } from './layout.js';
import { makeDir } from './modes.js';

export const CONFIG_KEYS = ['concurrency', 'queues', 'fn', 'paused'] as const;
export type ConfigKey = (typeof CONFIG_KEYS)[number];

/** One target's settings as stored: only the keys it sets. null for queues/fn: all (overriding lower levels). */
export interface WorkerSettings {
  concurrency?: number;
  queues?: string[] | null;
  fn?: string[] | null;
  paused?: boolean;
}

/** Every key resolved. */
export interface EffectiveSettings {
  concurrency: number;
  queues: string[] | null;
  fn: string[] | null;
  paused: boolean;
}

/** Where a setting came from: a flag (or library option), the entry for the worker's name, its host, `*`, or the built-in default. */
export type SettingSource = 'flag' | 'name' | 'host' | '*' | 'default';
export type SettingSources = Record<ConfigKey, SettingSource>;

export type ConfigTarget = { kind: 'name'; name: string } | { kind: 'host'; host: string } | { kind: 'all' };

/** A worker name, and a host name in `host:HOST`: letters, digits, '.', '_', '-', starting with a letter or digit. */
export const WORKER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,239}$/;
const HOST_PREFIX = 'host~';
const ALL_FILE = '_all.json';
const MAX_FILE_BYTES = 64 * 1024;

export function workersConfigDir(l: Layout): string {
  return join(l.config, 'workers');
}

/** `NAME`, `host:HOST` or `*` as a target; throws UsageError. */
export function parseTarget(s: string): ConfigTarget {
  if (s === '*') return { kind: 'all' };
  if (s.startsWith('host:')) {
    const host = s.slice(5);
    if (!WORKER_NAME.test(host)) throw new UsageError(`target '${s.slice(0, 80)}': host:HOST takes a host name of letters, digits, '.', '_' or '-' (at most 240)`);
    return { kind: 'host', host };
  }
  if (!WORKER_NAME.test(s)) throw new UsageError(`target '${s.slice(0, 80)}': give a worker name (letters, digits, '.', '_' or '-', at most 240), host:HOST, or * for every worker`);
  return { kind: 'name', name: s };
}

/** The target as people write it: `NAME`, `host:HOST`, `*`. */
export function targetLabel(t: ConfigTarget): string {
  return t.kind === 'all' ? '*' : t.kind === 'host' ? `host:${t.host}` : t.name;
}

export function targetFile(t: ConfigTarget): string {
  return t.kind === 'all' ? ALL_FILE : t.kind === 'host' ? `${HOST_PREFIX}${t.host}.json` : `${t.name}.json`;
}

export function targetPath(l: Layout, t: ConfigTarget): string {
  return join(workersConfigDir(l), targetFile(t));
}

/** The target a file in config/workers/ is for; null for any other name (temporaries, strays). */
export function targetOfFile(file: string): ConfigTarget | null {
  if (!file.endsWith('.json')) return null;
  if (file === ALL_FILE) return { kind: 'all' };
  const base = file.slice(0, -5);
  if (base.startsWith(HOST_PREFIX)) { const host = base.slice(HOST_PREFIX.length); return WORKER_NAME.test(host) ? { kind: 'host', host } : null; }
  return WORKER_NAME.test(base) ? { kind: 'name', name: base } : null;
}

/** A worker name made of a host name: characters a name may not hold become '-'. */
export function nameFromHost(host: string): string {
  const s = host.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 240);
  return s.length > 0 ? s : 'worker';
}

const RANGE_TEXT: Record<ConfigKey, string> = {
  concurrency: `a whole number from ${WORKER_BOUNDS.concurrency.min} to ${WORKER_BOUNDS.concurrency.max}`,
  queues: `${CONFIG_BOUNDS.queues.min} to ${CONFIG_BOUNDS.queues.max} queue names ([A-Za-z0-9._-], at most 64 characters) separated by commas, or * for all`,
  fn: `${CONFIG_BOUNDS.fnPatterns.min} to ${CONFIG_BOUNDS.fnPatterns.max} glob patterns (* any characters, ? one, !PATTERN excludes; at most ${CONFIG_BOUNDS.fnPatternChars.max} characters, no commas) separated by commas, or * for all`,
  paused: 'true or false',
};

/** What a key accepts, in words (for errors and help). */
export function rangeOf(key: ConfigKey): string { return RANGE_TEXT[key]; }

function bad(key: ConfigKey, v: unknown): UsageError {
  const shown = typeof v === 'string' ? v.slice(0, 80) : (JSON.stringify(v) ?? String(v)).slice(0, 80);
  return new UsageError(`${key}=${shown}: ${key} takes ${RANGE_TEXT[key]}`);
}

function isConfigKey(k: string): k is ConfigKey {
  return (CONFIG_KEYS as readonly string[]).includes(k);
}

/** Throws UsageError naming the setting and the keys there are. */
export function checkKey(k: string): ConfigKey {
  if (!isConfigKey(k)) throw new UsageError(`'${k.slice(0, 40)}' is not a worker setting (use ${CONFIG_KEYS.join(', ')})`);
  return k;
}

/** A list value: a JSON array, or a string separated by commas; `*` or null is "all" (null). */
function listOf(key: ConfigKey, v: unknown): string[] | null {
  if (v === null || v === '*') return null;
  let items: unknown[];
  if (typeof v === 'string') items = v.split(',').map((x) => x.trim());
  else if (Array.isArray(v)) items = v;
  else throw bad(key, v);
  const range = key === 'queues' ? CONFIG_BOUNDS.queues : CONFIG_BOUNDS.fnPatterns;
  if (items.length < range.min || items.length > range.max) throw bad(key, v);
  const out: string[] = [];
  for (const x of items) {
    if (typeof x !== 'string') throw bad(key, v);
    if (key === 'queues' ? !QUEUE_NAME.test(x) : !validPattern(x)) throw bad(key, x);
    if (!out.includes(x)) out.push(x);
  }
  if (key === 'fn' && out.length === 1 && out[0] === '*') return null;
  return out;
}

function validPattern(p: string): boolean {
  const body = p.startsWith('!') ? p.slice(1) : p;
  // eslint-disable-next-line no-control-regex
  return body.length >= CONFIG_BOUNDS.fnPatternChars.min && p.length <= CONFIG_BOUNDS.fnPatternChars.max && !/[,\s\x00-\x1f\x7f]/.test(p);
}

/**
 * One setting's value from the command line (a string) or a file or the library (its JSON type).
 * Throws UsageError naming the key and what it takes.
 */
export function parseSetting(key: ConfigKey, v: unknown): WorkerSettings[ConfigKey] {
  switch (key) {
    case 'concurrency': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,7}$/.test(v.trim()) ? Number(v.trim()) : NaN;
      const r = WORKER_BOUNDS.concurrency;
      if (!Number.isInteger(n) || n < r.min || n > r.max) throw bad(key, v);
      return n;
    }
    case 'queues':
    case 'fn':
      return listOf(key, v);
    case 'paused':
      if (v === true || v === 'true') return true;
      if (v === false || v === 'false') return false;
      throw bad(key, v);
  }
}

/** Settings from a JSON object (a file's content, or the library's argument): every key checked; throws UsageError. */
export function parseSettings(o: unknown): WorkerSettings {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new UsageError('worker settings: give an object {concurrency?, queues?, fn?, paused?}');
  const out: WorkerSettings = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    const key = checkKey(k);
    (out as Record<string, unknown>)[key] = parseSetting(key, v);
  }
  return out;
}

/** A file's text; never throws: what cannot be read is left out and reported. */
export function parseSettingsText(text: string): { settings: WorkerSettings; problems: string[] } {
  let o: unknown;
  try { o = JSON.parse(text); } catch (err) { return { settings: {}, problems: [`not valid JSON (${(err as Error).message})`] }; }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return { settings: {}, problems: ['not a JSON object'] };
  const settings: WorkerSettings = {};
  const problems: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    try { const key = checkKey(k); (settings as Record<string, unknown>)[key] = parseSetting(key, v); } catch (err) { problems.push((err as Error).message); }
  }
  return { settings, problems };
}

/** The file's JSON form: the keys in their order. */
export function settingsJson(s: WorkerSettings): WorkerSettings {
  const out: WorkerSettings = {};
  for (const k of CONFIG_KEYS) if (k in s && s[k] !== undefined) (out as Record<string, unknown>)[k] = s[k];
  return out;
}

/** A value as `config get` shows it: `4`, `a,b`, `*`, `true`. */
export function formatSetting(key: ConfigKey, v: WorkerSettings[ConfigKey]): string {
  if (key === 'queues' || key === 'fn') return v === null || v === undefined ? '*' : (v as string[]).join(',');
  return String(v);
}

export interface TargetRead {
  settings: WorkerSettings;
  /** What could not be read (the next level applies in its place). */
  problems: string[];
  /** Whether the file exists (a symlink or other non-file counts: it is there, and ignored). */
  stored: boolean;
}

/** One target's stored settings. Never throws for bad content; a spool that cannot be read throws. */
export function readTarget(l: Layout, t: ConfigTarget): TargetRead {
  const path = targetPath(l, t);
  let text: string;
  try {
    text = readRegularTextSync(path, MAX_FILE_BYTES);
  } catch (err) {
    if (isGone(err) || errnoOf(err) === 'ENOTDIR') return { settings: {}, problems: [], stored: false };
    return { settings: {}, problems: [`${path}: ${(err as Error).message}`], stored: true };
  }
  const r = parseSettingsText(text);
  return { settings: r.settings, problems: r.problems.map((p) => `${path}: ${p}`), stored: true };
}

/** config/ and config/workers/ as real folders (made when missing); a symlink or file in their place is refused. */
function workersDirForWriting(l: Layout): string {
  makeDir(l.modes, l.config);
  const dir = workersConfigDir(l);
  makeDir(l.modes, dir);
  if (!lstatDirSync(l.config) || !lstatDirSync(dir)) throw new UsageError(`${dir}: not a real folder (a symlink?); remove it and try again`, 'ZCQ_UNSAFE_FILE');
  return dir;
}

/**
 * Store a target's settings whole (an exclusive temporary renamed over the name); no keys left: the file
 * is removed. Two people changing one target at the same moment: the last write wins, never a torn file.
 */
export async function writeTarget(l: Layout, t: ConfigTarget, s: WorkerSettings, durable: boolean): Promise<void> {
  workersDirForWriting(l);
  const path = targetPath(l, t);
  const json = settingsJson(s);
  if (Object.keys(json).length === 0) { removeTarget(l, t); return; }
  await writeReplace(path, JSON.stringify(json) + '\n', { tmpDir: l.tmp, durable, mode: l.modes.fileMode });
}

/** Remove a target's file (whatever is at the name: unlink never follows a symlink). True when there was one. */
export function removeTarget(l: Layout, t: ConfigTarget): boolean {
  const path = targetPath(l, t);
  try { fs.lstatSync(path); } catch { return false; }
  unlinkQuietly(path);
  return true;
}

/** The targets that have a file, sorted: `*`, then hosts, then names. */
export function listTargets(l: Layout): ConfigTarget[] {
  let names: string[];
  try { names = fs.readdirSync(workersConfigDir(l)); } catch { return []; }
  const rank = (t: ConfigTarget) => (t.kind === 'all' ? 0 : t.kind === 'host' ? 1 : 2);
  return names.map(targetOfFile).filter((t): t is ConfigTarget => t !== null)
    .sort((a, b) => rank(a) - rank(b) || (targetLabel(a) < targetLabel(b) ? -1 : 1));
}

/* ------------------------------------------------------------------------------------------------------
 * Resolution: which value applies to one worker, and where it came from.
 * ---------------------------------------------------------------------------------------------------- */

export interface ConfigLayers { name: WorkerSettings; host: WorkerSettings; all: WorkerSettings }

/** flag > name > host > * > default, key by key. */
export function resolveSettings(flags: WorkerSettings, layers: ConfigLayers, defaults: EffectiveSettings): { settings: EffectiveSettings; sources: SettingSources } {
  const settings = { ...defaults };
  const sources = {} as SettingSources;
  for (const k of CONFIG_KEYS) {
    sources[k] = 'default';
    const order: [SettingSource, WorkerSettings][] = [['flag', flags], ['name', layers.name], ['host', layers.host], ['*', layers.all]];
    for (const [src, s] of order) {
      if (s[k] !== undefined) { (settings as Record<string, unknown>)[k] = s[k]; sources[k] = src; break; }
    }
  }
  return { settings, sources };
}

/** A glob as a RegExp: `*` any run of characters, `?` one character, everything else itself. */
function globRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) re += ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  return new RegExp(`^${re}$`, 's');
}

/**
 * The filter of an `fn` list: a job is taken when its function matches at least one pattern without `!`
 * (or there is none) and no `!PATTERN`. null: every job.
 */
export function fnFilter(patterns: readonly string[] | null): (fn: string) => boolean {
  if (!patterns) return () => true;
  const include = patterns.filter((p) => !p.startsWith('!')).map(globRegExp);
  const exclude = patterns.filter((p) => p.startsWith('!')).map((p) => globRegExp(p.slice(1)));
  return (fn) => (include.length === 0 || include.some((r) => r.test(fn))) && !exclude.some((r) => r.test(fn));
}

/**
 * A worker's view of its three files, re-read each poll. A file whose identity, size and mtime have not
 * changed since the last look is not read again (an open and fstat each: at most three small files per poll).
 */
export class ConfigReader {
  private readonly cache = new Map<string, { key: string; read: TargetRead }>();
  private readonly targets: { layer: keyof ConfigLayers; target: ConfigTarget }[];

  constructor(private readonly layout: Layout, readonly name: string, readonly host: string | null) {
    this.targets = [
      { layer: 'name', target: { kind: 'name', name } },
      ...(host !== null && WORKER_NAME.test(host) ? [{ layer: 'host' as const, target: { kind: 'host' as const, host } }] : []),
      { layer: 'all', target: { kind: 'all' } },
    ];
  }

  /** The three layers, and every problem found in them. */
  read(): { layers: ConfigLayers; problems: string[] } {
    const layers: ConfigLayers = { name: {}, host: {}, all: {} };
    const problems: string[] = [];
    for (const { layer, target } of this.targets) {
      const path = targetPath(this.layout, target);
      let key: string;
      try {
        // open+fstat, not stat: on NFS an open revalidates the attributes (close-to-open), so a change made
        // on another machine is seen at the next poll rather than after the attribute cache time.
        const { fd, st } = openRegularSync(path);
        fs.closeSync(fd);
        key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
      } catch (err) {
        if (isMountGone(err)) throw err; // not a problem of the entry: the worker backs off (worker.ts mountGone)
        if (!isGone(err) && errnoOf(err) !== 'ENOTDIR') problems.push(`${path}: ${(err as Error).message}`);
        this.cache.delete(path);
        continue;
      }
      let hit = this.cache.get(path);
      if (!hit || hit.key !== key) { hit = { key, read: readTarget(this.layout, target) }; this.cache.set(path, hit); }
      layers[layer] = hit.read.settings;
      problems.push(...hit.read.problems);
    }
    return { layers, problems };
  }
}
