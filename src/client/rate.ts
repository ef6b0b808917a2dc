/**
 * `spool.rate`: at most COUNT job starts per WINDOW across every machine, for a quota's jobs (target NAME)
 * or a queue's (target queue:QUEUE); windows by the file server's clock (spool/rate.ts, transitions/rate-take.ts).
 * Everything is checked before anything is written (UsageError, exit 2 on the command line).
 */
import { UsageError } from '../errors.js';
import { parseDuration } from '../schedule/time-input.js';
import type { Layout } from '../spool/layout.js';
import { checkRate, listRates, rateFolderName, readRate, removeRate, setRate, type Rate, type RateEntry } from '../spool/rate.js';

export type { Rate, RateEntry } from '../spool/rate.js';

/** `100/10s`, `5/1m`, `1000/1h` (or a Rate) as a checked Rate. */
export function parseRate(v: string | Rate): Rate {
  if (typeof v !== 'string') return checkRate(v);
  const m = /^(\d{1,9})\/(.{1,64})$/.exec(v.trim());
  if (!m) throw new UsageError(`rate '${v.slice(0, 80)}': write COUNT/WINDOW, e.g. 100/10s or 5/1m`, 'ZCQ_BAD_RATE');
  let windowMs: number;
  try { windowMs = parseDuration(m[2]!); } catch (err) { throw new UsageError(`rate '${v.slice(0, 80)}': ${(err as Error).message}`, 'ZCQ_BAD_RATE'); }
  return checkRate({ count: Number(m[1]), windowMs });
}

export class Rates {
  constructor(private readonly layout: Layout, private readonly durable: boolean) {}

  /** At most `rate` starts per window for `target`: a quota name, or queue:QUEUE. */
  async set(target: string, rate: string | Rate): Promise<RateEntry> {
    const folder = rateFolderName(target);
    const r = parseRate(rate);
    await setRate(this.layout, folder, r, this.durable);
    return { target, rate: r };
  }

  get(target: string): RateEntry {
    const { rate, problem } = readRate(this.layout, rateFolderName(target));
    return { target, rate, ...(problem ? { problem } : {}) };
  }

  ls(): RateEntry[] { return listRates(this.layout); }

  /** Remove the rate of `target`. False when none was set. */
  rm(target: string): boolean { return removeRate(this.layout, rateFolderName(target)); }
}
