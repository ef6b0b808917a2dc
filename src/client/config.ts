/**
 * `spool.config`: the live configuration of workers (config/workers/; the files, their keys and the
 * precedence are spool/config.ts). A target is a worker name, `host:HOST`, or `*` (every worker).
 * Every value is checked before anything is written: a bad key or value throws UsageError (exit 2 on the
 * command line) naming the key and what it takes, and the file is left as it was. A change is a
 * read-modify-write of one small file: two people changing one target at the same moment, the last wins
 * (each write is whole: never a torn file). Running workers apply it within a poll interval.
 */
import { UsageError } from '../errors.js';
import type { Layout } from '../spool/layout.js';
import {
  CONFIG_KEYS, checkKey, listTargets, parseSetting, parseTarget, readTarget, removeTarget, settingsJson, targetLabel, targetPath, writeTarget,
  type ConfigKey, type WorkerSettings,
} from '../spool/config.js';

export type { ConfigKey, EffectiveSettings, SettingSource, SettingSources, WorkerSettings } from '../spool/config.js';

/** What `set` takes: each value in its JSON type or as the command line writes it ("4", "a,b", "*", "true"). */
export interface WorkerSettingsInput {
  concurrency?: number | string;
  /** Queue names in order of preference; null or "*": all. */
  queues?: string[] | string | null;
  /** Glob patterns on the job's function (`*`, `?`, `!PATTERN` excludes); null or "*": all. */
  fn?: string[] | string | null;
  paused?: boolean | string;
}

export interface ConfigEntry {
  /** `NAME`, `host:HOST` or `*`. */
  target: string;
  /** The keys this entry sets. */
  settings: WorkerSettings;
  path: string;
  /** Whether the file exists. */
  stored: boolean;
  /** What in the file could not be read (workers apply the next level in its place). */
  problems: string[];
}

export class WorkerConfig {
  constructor(private readonly layout: Layout, private readonly durable: boolean) {}

  /** One target's entry (its own keys only). */
  get(target: string): ConfigEntry {
    const t = parseTarget(target);
    const r = readTarget(this.layout, t);
    return { target: targetLabel(t), settings: settingsJson(r.settings), path: targetPath(this.layout, t), stored: r.stored, problems: r.problems };
  }

  /** Every entry: `*` first, then hosts, then names. */
  ls(): ConfigEntry[] {
    return listTargets(this.layout).map((t) => this.get(targetLabel(t)));
  }

  /**
   * Set keys of a target's entry (the others stay). Everything is checked first; nothing is written when
   * one key or value is bad. A file that cannot be read (a symlink planted at the name, torn JSON) is
   * replaced by what could be read plus this change. Returns the entry's settings as stored.
   */
  async set(target: string, values: WorkerSettingsInput): Promise<WorkerSettings> {
    const t = parseTarget(target);
    if (typeof values !== 'object' || values === null || Array.isArray(values)) throw new UsageError(`config set: give an object {${CONFIG_KEYS.join('?, ')}?}`);
    const patch: WorkerSettings = {};
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) continue;
      const key = checkKey(k);
      (patch as Record<string, unknown>)[key] = parseSetting(key, v);
    }
    if (Object.keys(patch).length === 0) throw new UsageError(`config set: give at least one of ${CONFIG_KEYS.map((k) => `${k}=`).join(', ')}`);
    const next = { ...readTarget(this.layout, t).settings, ...patch };
    await writeTarget(this.layout, t, next, this.durable);
    return settingsJson(next);
  }

  /**
   * Remove keys of a target's entry, or (no keys) the whole entry: the next level applies again.
   * Returns the keys that were set and are now gone.
   */
  async rm(target: string, keys: readonly string[] = []): Promise<ConfigKey[]> {
    const t = parseTarget(target);
    const wanted = keys.map(checkKey);
    const r = readTarget(this.layout, t);
    if (wanted.length === 0) {
      const had = Object.keys(settingsJson(r.settings)) as ConfigKey[];
      removeTarget(this.layout, t);
      return had;
    }
    const next: WorkerSettings = { ...r.settings };
    const gone = CONFIG_KEYS.filter((k) => wanted.includes(k) && next[k] !== undefined);
    for (const k of wanted) delete next[k];
    if (gone.length > 0 || r.problems.length > 0) await writeTarget(this.layout, t, next, this.durable);
    return gone;
  }
}
