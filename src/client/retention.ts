/**
 * `spool.retention`: read and change the spool's retention settings (config/retention.json; the format and
 * its rules are spool/retention.ts). Workers apply them in their housekeeping; `spool.prune()` applies
 * them by hand. Changes are read-modify-write of one small file: two people setting at the same moment,
 * the last one wins (each write is whole: never a torn file).
 */
import { UsageError } from '../errors.js';
import { QUEUE_NAME, type Layout } from '../spool/layout.js';
import {
  RETENTION_KEYS, builtInPolicy, formatValue, parseAge, parseMax, policyFor, readRetention, retentionJson, retentionPath, writeRetention,
  type RetentionConfig, type RetentionKey, type RetentionPolicy,
} from '../spool/retention.js';

export type { RetentionConfig, RetentionPolicy } from '../spool/retention.js';

/** What `set` takes: an age as a string (`"7d"`) or milliseconds, a count, or null for no limit. */
export interface RetentionPatch { done?: string | number | null; failed?: string | number | null; max?: number | string | null }

export interface RetentionView {
  /** The default and each queue's own settings, as stored (built-in defaults where the file says nothing). */
  config: RetentionConfig;
  /** The file's JSON form ("7d", 100000, null). */
  json: ReturnType<typeof retentionJson>;
  path: string;
  stored: boolean;
  /** What could not be read in the file (the defaults applied in its place). */
  problems: string[];
}

/** `'*'` names the spool default. */
export type RetentionTarget = string;

export class Retention {
  constructor(private readonly layout: Layout, private readonly durable: boolean) {}

  /** The settings, and what in the file could not be read. */
  view(): RetentionView {
    const r = readRetention(this.layout);
    return { config: r.config, json: retentionJson(r.config), path: retentionPath(this.layout), stored: r.stored, problems: r.problems };
  }

  /** The policy in force for `queue` (its own settings over the default), or the default for `'*'`/none. */
  get(queue: RetentionTarget = '*'): RetentionPolicy {
    const { config } = readRetention(this.layout);
    if (queue === '*') return { ...config.default };
    checkQueue(queue);
    return policyFor(config, queue);
  }

  /**
   * Change the default (`'*'`) or a queue's settings; fields not given stay as they are. Ages are strings
   * such as "7d" or milliseconds; null removes the limit. Returns the policy now in force for the target.
   * A file with content that cannot be read is replaced by what could be read plus this change.
   */
  async set(queue: RetentionTarget, patch: RetentionPatch): Promise<RetentionPolicy> {
    if (queue !== '*') checkQueue(queue);
    const fields = parsePatch(patch);
    const { config } = readRetention(this.layout);
    if (queue === '*') Object.assign(config.default, fields);
    else config.queues[queue] = { ...(config.queues[queue] ?? {}), ...fields };
    await writeRetention(this.layout, config, this.durable);
    return queue === '*' ? { ...config.default } : policyFor(config, queue);
  }

  /** Remove a queue's own settings (it follows the default again); `'*'` puts the default back to the built-in one. Returns whether anything changed. */
  async remove(queue: RetentionTarget): Promise<boolean> {
    const { config } = readRetention(this.layout);
    if (queue === '*') {
      const before = JSON.stringify(config.default);
      config.default = builtInPolicy();
      if (before === JSON.stringify(config.default)) return false;
    } else {
      checkQueue(queue);
      if (!(queue in config.queues)) return false;
      delete config.queues[queue];
    }
    await writeRetention(this.layout, config, this.durable);
    return true;
  }

  /** A policy's values as people write them: {done:"7d", failed:"30d", max:"100000"} ("off" for no limit). */
  static format(p: Partial<RetentionPolicy>): Partial<Record<RetentionKey, string>> {
    const out: Partial<Record<RetentionKey, string>> = {};
    for (const k of RETENTION_KEYS) if (k in p) out[k] = formatValue(k, p[k] ?? null);
    return out;
  }
}

function checkQueue(queue: string): void {
  if (!QUEUE_NAME.test(queue)) throw new UsageError(`queue '${queue}': use letters, digits, '.', '_' or '-' (at most 64), or '*' for the default`);
}

function parsePatch(patch: RetentionPatch): Partial<RetentionPolicy> {
  if (typeof patch !== 'object' || patch === null) throw new UsageError('retention: give {done?, failed?, max?}');
  const out: Partial<RetentionPolicy> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if (k === 'max') out.max = parseMax(v, 'max');
    else if (k === 'done' || k === 'failed') out[k] = typeof v === 'number' ? ageFromMs(v, k) : parseAge(v, k);
    else throw new UsageError(`retention: unknown setting '${k}' (use done, failed, max)`);
  }
  return out;
}

function ageFromMs(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new UsageError(`${what}: ${v} is not a whole number of milliseconds`);
  return parseAge(`${v}ms`, what)!;
}
