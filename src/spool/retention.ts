/**
 * Retention: how long finished records (done/QUEUE/, failed/QUEUE/) are kept, per queue with a spool
 * default, stored in the spool as config/retention.json so that every worker applies the same policy:
 *
 *   {"default":{"done":"7d","failed":"30d","max":100000},"queues":{"reports":{"failed":"90d"}}}
 *
 * - "done", "failed": an age (`7d`, `12h`, `1d12h`, `90m`, `30s`, `500ms`, `0`) after which a record of
 *   that state is removed, judged by the file's mtime on the file server's clock; null (or "off") keeps
 *   them whatever their age.
 * - "max": at most this many records per queue and state (the newest are kept); null (or "off"): no limit.
 * - A queue's entry names only what differs from the default; a field it leaves out comes from "default",
 *   and one "default" leaves out comes from the built-in defaults (defaults.ts RETENTION_DEFAULTS:
 *   done 7d, failed 30d, max 100,000).
 *
 * The file is read bounded (64 KiB, a regular file only: readRegularTextSync) and written only by
 * writeReplace (an exclusive temporary renamed over the name: a planted symlink is replaced, never written
 * through). Bad content is never fatal: what cannot be read — the whole file, or one field — is reported
 * in `problems` and the default applies in its place (the worker logs each distinct problem once).
 * Removing records by a policy is transitions/prune.ts; applyRetention here only picks the rule per queue.
 */
import { join } from 'node:path';
import { errnoOf, isGone, UsageError } from '../errors.js';
import { RETENTION_BOUNDS, RETENTION_DEFAULTS } from '../defaults.js';
import { formatDuration } from '../text.js';
import { readRegularTextSync, writeReplace } from './fsops.js';
import { QUEUE_NAME, type Layout } from './layout.js';
import { makeDir } from './modes.js';
import { listQueues } from './queues.js';
import { pruneFinishedInSlices, type PruneOptions, type PruneReport } from './transitions/prune.js';

/** One policy: ages in milliseconds, a count; null is "no limit". */
export interface RetentionPolicy { done: number | null; failed: number | null; max: number | null }

export interface RetentionConfig {
  /** The spool default, complete (built-in defaults fill what the file leaves out). */
  default: RetentionPolicy;
  /** Per queue, only the fields that differ from the default. */
  queues: Record<string, Partial<RetentionPolicy>>;
}

export interface RetentionRead {
  config: RetentionConfig;
  /** What could not be read, one line each; the defaults applied in its place. */
  problems: string[];
  /** Whether the file exists. */
  stored: boolean;
}

export const RETENTION_FILE = 'retention.json';
const MAX_FILE_BYTES = 64 * 1024;
export const RETENTION_KEYS = ['done', 'failed', 'max'] as const;
export type RetentionKey = (typeof RETENTION_KEYS)[number];

export function builtInPolicy(): RetentionPolicy {
  return { done: RETENTION_DEFAULTS.doneMs, failed: RETENTION_DEFAULTS.failedMs, max: RETENTION_DEFAULTS.max };
}

export function retentionPath(l: Layout): string {
  return join(l.config, RETENTION_FILE);
}

const AGE = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/;

/** An age as written in the file or on the command line: `7d`, `1d12h`, `0`; null for "off"/"never"/null. Throws UsageError. */
export function parseAge(v: unknown, what = 'age'): number | null {
  if (v === null || v === 'off' || v === 'never') return null;
  if (typeof v !== 'string') throw new UsageError(`${what}: ${JSON.stringify(v)} is not an age such as "7d", "12h", "1d12h" or "off"`);
  const s = v.trim();
  if (s === '0') return 0;
  const m = s.length > 0 && s.length <= 40 ? AGE.exec(s) : null;
  if (!m || m.slice(1).every((x) => x === undefined)) throw new UsageError(`${what}: '${s.slice(0, 40)}' is not an age such as 7d, 12h, 1d12h, 90m or off`);
  const [d, h, mi, sec, ms] = m.slice(1).map((x) => (x === undefined ? 0 : Number(x)));
  const total = d! * 86_400_000 + h! * 3_600_000 + mi! * 60_000 + sec! * 1000 + ms!;
  const r = RETENTION_BOUNDS.ageMs;
  if (!Number.isSafeInteger(total) || total < r.min || total > r.max) throw new UsageError(`${what}: '${s}' is out of range (at most ${formatDuration(r.max)})`);
  return total;
}

/** A count: a whole number, or null for "off"/null. Throws UsageError. */
export function parseMax(v: unknown, what = 'max'): number | null {
  if (v === null || v === 'off' || v === 'never') return null;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,10}$/.test(v.trim()) ? Number(v.trim()) : NaN;
  const r = RETENTION_BOUNDS.max;
  if (!Number.isSafeInteger(n) || n < r.min || n > r.max) throw new UsageError(`${what}: ${JSON.stringify(v)} is not a whole number from ${r.min} to ${r.max.toLocaleString('en-US')}, or "off"`);
  return n;
}

/** A value as the file and the commands show it: `7d`, `100000`, `off`. */
export function formatValue(key: RetentionKey, v: number | null): string {
  if (v === null) return 'off';
  return key === 'max' ? String(v) : formatDuration(v);
}

function parseField(key: RetentionKey, v: unknown, what: string): number | null {
  return key === 'max' ? parseMax(v, what) : parseAge(v, what);
}

/** A policy's fields from a JSON object; fields that cannot be read are left out and reported. */
function readPolicy(o: unknown, where: string, problems: string[]): Partial<RetentionPolicy> {
  const out: Partial<RetentionPolicy> = {};
  if (typeof o !== 'object' || o === null || Array.isArray(o)) { problems.push(`${where}: not a JSON object`); return out; }
  for (const [k, v] of Object.entries(o)) {
    if (!(RETENTION_KEYS as readonly string[]).includes(k)) { problems.push(`${where}.${k}: unknown setting (use done, failed, max)`); continue; }
    try { out[k as RetentionKey] = parseField(k as RetentionKey, v, `${where}.${k}`); } catch (err) { problems.push((err as Error).message); }
  }
  return out;
}

/** Parse the file's text; never throws. */
export function parseRetention(text: string): { config: RetentionConfig; problems: string[] } {
  const problems: string[] = [];
  const config: RetentionConfig = { default: builtInPolicy(), queues: {} };
  let o: unknown;
  try { o = JSON.parse(text); } catch (err) { return { config, problems: [`not valid JSON (${(err as Error).message})`] }; }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return { config, problems: ['not a JSON object'] };
  const { default: def, queues, ...rest } = o as Record<string, unknown>;
  for (const k of Object.keys(rest)) problems.push(`${k}: unknown key (use "default" and "queues")`);
  if (def !== undefined) Object.assign(config.default, readPolicy(def, 'default', problems));
  if (queues !== undefined) {
    if (typeof queues !== 'object' || queues === null || Array.isArray(queues)) problems.push('queues: not a JSON object');
    else {
      for (const [q, p] of Object.entries(queues)) {
        if (!QUEUE_NAME.test(q)) { problems.push(`queues: '${q.slice(0, 64)}' is not a queue name`); continue; }
        config.queues[q] = readPolicy(p, `queues.${q}`, problems);
      }
    }
  }
  return { config, problems };
}

/** The spool's retention settings; built-in defaults when the file is missing. Bad content is in `problems`, never thrown. */
export function readRetention(l: Layout): RetentionRead {
  let text: string;
  try {
    text = readRegularTextSync(retentionPath(l), MAX_FILE_BYTES);
  } catch (err) {
    const config: RetentionConfig = { default: builtInPolicy(), queues: {} };
    if (isGone(err) || errnoOf(err) === 'ENOTDIR') return { config, problems: [], stored: false };
    return { config, problems: [`cannot be read: ${(err as Error).message}`], stored: true };
  }
  const r = parseRetention(text);
  return { ...r, problems: r.problems.map((p) => `${retentionPath(l)}: ${p}`), stored: true };
}

/** The policy that applies to `queue`: its own fields, the default's for the rest. */
export function policyFor(config: RetentionConfig, queue: string): RetentionPolicy {
  return { ...config.default, ...(config.queues[queue] ?? {}) };
}

/** The file's JSON form: values as people write them ("7d", 100000, null). */
export function retentionJson(config: RetentionConfig): { default: Record<string, string | number | null>; queues: Record<string, Record<string, string | number | null>> } {
  const one = (p: Partial<RetentionPolicy>) => {
    const o: Record<string, string | number | null> = {};
    for (const k of RETENTION_KEYS) if (k in p) o[k] = p[k] === null ? null : k === 'max' ? p[k]! : formatDuration(p[k]!);
    return o;
  };
  const queues: Record<string, Record<string, string | number | null>> = {};
  for (const q of Object.keys(config.queues).sort()) queues[q] = one(config.queues[q]!);
  return { default: one(config.default), queues };
}

/** Store the settings: an exclusive temporary in tmp/, renamed over config/retention.json. */
export async function writeRetention(l: Layout, config: RetentionConfig, durable: boolean): Promise<void> {
  makeDir(l.modes, l.config);
  const text = JSON.stringify(retentionJson(config), null, 2) + '\n';
  await writeReplace(retentionPath(l), text, { tmpDir: l.tmp, durable, mode: l.modes.fileMode });
}

export interface ApplyOptions extends PruneOptions {
  /** Only this queue (default: every queue). */
  queue?: string;
  /** Only this state (default: both). */
  state?: 'done' | 'failed';
  /** Instead of the policy's age for the state. */
  olderThanMs?: number | null;
  /** Instead of the policy's max. */
  keep?: number | null;
  dryRun?: boolean;
}

/**
 * Prune every queue of done/ and failed/ by its policy (or by the overrides given): one pruneFinished per
 * queue and state. Resolves with the reports merged.
 */
export async function applyRetention(l: Layout, serverNowMs: number, config: RetentionConfig, opts: ApplyOptions = {}): Promise<PruneReport> {
  const total: PruneReport = { removed: [], count: 0, errors: [] };
  for (const state of opts.state ? [opts.state] : (['done', 'failed'] as const)) {
    for (const queue of listQueues(l[state]).queues) {
      if (opts.queue !== undefined && queue !== opts.queue) continue;
      const p = policyFor(config, queue);
      const olderThanMs = opts.olderThanMs !== undefined ? opts.olderThanMs : p[state];
      const keep = opts.keep !== undefined ? opts.keep : p.max;
      if (olderThanMs === null && keep === null) continue;
      const r = await pruneFinishedInSlices(l, serverNowMs, { state, queue, olderThanMs, keep, dryRun: opts.dryRun }, opts);
      total.removed.push(...r.removed);
      total.count += r.count;
      total.errors.push(...r.errors);
      if (opts.shouldStop?.()) return total;
    }
  }
  return total;
}
