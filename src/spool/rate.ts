/**
 * Rate limits: at most COUNT job starts per WINDOW, across every machine, for a quota's jobs or a queue's.
 *
 *   rate/NAME/limit.json     {"count": 100, "windowMs": 10000}; NAME is a quota name, or queue~QUEUE for a queue
 *   rate/NAME/W.K            a start token: W = floor(server ms / windowMs), K = 0..COUNT-1 (transitions/rate-take.ts)
 *
 * Windows are counted on the file server's clock (spool/server-clock.ts: each worker's estimate of it),
 * never by comparing one machine's clock with another's: a worker whose own clock is minutes off still
 * takes the token of the window the file server is in. The tokens of windows before the last are removed
 * by the next taker that lists the folder. A queue name and a quota name cannot collide: neither holds `~`.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf, isGone, UsageError } from '../errors.js';
import { QUOTA_BOUNDS } from '../defaults.js';
import { QUEUE_NAME, QUOTA_NAME } from '../job/format.js';
import { readRegularFileSync, unlinkQuietly, writeReplace } from './fsops.js';
import type { Layout } from './layout.js';
import { makeDir } from './modes.js';

export interface Rate { count: number; windowMs: number }
export interface RateEntry { target: string; rate: Rate | null; problem?: string }

const LIMIT_FILE = 'limit.json';
const QUEUE_PREFIX = 'queue~';

/** The folder of a rate target: `NAME` (a quota) or `queue:QUEUE`. */
export function rateFolderName(target: string): string {
  if (target.startsWith('queue:')) {
    const q = target.slice(6);
    if (!QUEUE_NAME.test(q)) throw new UsageError(`rate target '${target.slice(0, 80)}': queue:QUEUE takes a queue name ([A-Za-z0-9._-], at most 64)`, 'ZCQ_BAD_RATE');
    return `${QUEUE_PREFIX}${q}`;
  }
  if (!QUOTA_NAME.test(target)) throw new UsageError(`rate target '${target.slice(0, 80)}': give a quota name (letters, digits, '.', '_', '-') or queue:QUEUE`, 'ZCQ_BAD_RATE');
  return target;
}

/** The target as people write it, from a folder name; null for other names. */
export function targetOfRateFolder(name: string): string | null {
  if (name.startsWith(QUEUE_PREFIX)) { const q = name.slice(QUEUE_PREFIX.length); return QUEUE_NAME.test(q) ? `queue:${q}` : null; }
  return QUOTA_NAME.test(name) ? name : null;
}

export function queueRateFolder(queue: string): string { return `${QUEUE_PREFIX}${queue}`; }

export function rateDir(l: Layout, folder: string): string { return join(l.rate, folder); }

/** Check a rate's numbers (bounds in defaults.ts QUOTA_BOUNDS); throws UsageError. */
export function checkRate(r: Rate): Rate {
  const { rateCount: c, rateWindowMs: w } = QUOTA_BOUNDS;
  if (!Number.isSafeInteger(r.count) || r.count < c.min || r.count > c.max) throw new UsageError(`rate ${r.count}/…: the count must be a whole number from ${c.min} to ${c.max}`, 'ZCQ_BAD_RATE');
  if (!Number.isSafeInteger(r.windowMs) || r.windowMs < w.min || r.windowMs > w.max) throw new UsageError(`rate …/${r.windowMs}ms: the window must be from 1s to 1d`, 'ZCQ_BAD_RATE');
  return r;
}

/** The rate of a folder; null when none is set or limit.json cannot be read (`problem` says why). */
export function readRate(l: Layout, folder: string): { rate: Rate | null; problem?: string } {
  let r;
  try { r = readRegularFileSync(join(rateDir(l, folder), LIMIT_FILE), 4096); } catch (err) {
    if (isGone(err) || errnoOf(err) === 'ENOTDIR') return { rate: null };
    return { rate: null, problem: `cannot read ${LIMIT_FILE}: ${errnoOf(err) ?? (err as Error).message}` };
  }
  if ('bad' in r) return { rate: null, problem: `${LIMIT_FILE} ${r.bad}` };
  try {
    const v = JSON.parse(r.text) as { count?: unknown; windowMs?: unknown };
    return { rate: checkRate({ count: v.count as number, windowMs: v.windowMs as number }) };
  } catch {
    return { rate: null, problem: `${LIMIT_FILE} does not hold {"count": N, "windowMs": MS} within bounds` };
  }
}

/** Every rate set: target and rate. */
export function listRates(l: Layout): RateEntry[] {
  let names: string[];
  try { names = fs.readdirSync(l.rate); } catch { return []; }
  const out: RateEntry[] = [];
  for (const n of names.sort()) {
    const target = targetOfRateFolder(n);
    if (target === null) continue;
    const { rate, problem } = readRate(l, n);
    if (rate === null && !problem) continue;
    out.push({ target, rate, ...(problem ? { problem } : {}) });
  }
  return out;
}

export async function setRate(l: Layout, folder: string, rate: Rate, durable: boolean): Promise<void> {
  makeDir(l.modes, l.rate);
  makeDir(l.modes, rateDir(l, folder));
  await writeReplace(join(rateDir(l, folder), LIMIT_FILE), JSON.stringify(rate) + '\n', { tmpDir: l.tmp, durable, mode: l.modes.fileMode });
}

/** Remove a rate and its tokens. False when none was set. */
export function removeRate(l: Layout, folder: string): boolean {
  const dir = rateDir(l, folder);
  try { fs.lstatSync(join(dir, LIMIT_FILE)); } catch { return false; }
  unlinkQuietly(join(dir, LIMIT_FILE));
  try { for (const n of fs.readdirSync(dir)) if (/^\d+\.\d+$/.test(n)) unlinkQuietly(join(dir, n)); } catch { /* gone */ }
  try { fs.rmdirSync(dir); } catch { /* a token taken meanwhile */ }
  return true;
}
