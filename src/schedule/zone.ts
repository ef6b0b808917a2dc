/**
 * Time-zone arithmetic for the schedule module, on top of `Intl.DateTimeFormat` only (no luxon import:
 * luxon is cron-parser's dependency, not ours).
 *
 * Owns: checking an IANA zone name, reading the wall clock of an instant in a zone, and turning a wall
 * clock reading back into an instant. Pure functions: no file system, no `Date.now()`.
 *
 * "Naive" times below are wall-clock readings stored as if they were UTC milliseconds
 * (`Date.UTC(y, mo, d, h, mi, s, ms)`), which lets ordinary arithmetic walk the local calendar without
 * any DST jumps.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, f);
  }
  return f;
}

/**
 * The canonical spelling of an IANA time zone (`'europe/paris'` → `'Europe/Paris'`), or `null` when the
 * name is unknown. Fixed offsets such as `'+03:00'` and the machine-dependent `'local'` are refused:
 * a schedule must mean the same instants on every machine that reads it.
 */
export function canonicalTimeZone(tz: string): string | null {
  if (typeof tz !== 'string' || !/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(tz) || tz.length > 64) return null;
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

/** The wall clock of instant `t` (ms) in `tz`, as a naive time (see the header). */
export function wallClock(t: number, tz: string): number {
  const ms = ((t % 1000) + 1000) % 1000;
  const whole = t - ms;
  const p: Record<string, string> = {};
  for (const part of formatter(tz).formatToParts(whole)) p[part.type] = part.value;
  let year = Number(p.year);
  if (p.era === 'BC' || p.era === 'B') year = 1 - year;
  const hour = Number(p.hour) % 24; // some ICU builds print midnight as 24 even with h23
  const naive = Date.UTC(year, Number(p.month) - 1, Number(p.day), hour, Number(p.minute), Number(p.second));
  // Date.UTC maps years 0-99 to 1900-1999; correct that (irrelevant for real schedules, but keep it exact)
  const fixed = year >= 0 && year < 100 ? new Date(naive).setUTCFullYear(year) : naive;
  return fixed + ms;
}

/** The zone's offset from UTC at instant `t`, in ms (Paris in winter: +3 600 000). */
export function zoneOffset(t: number, tz: string): number {
  return wallClock(t, tz) - t;
}

/** How a naive wall-clock time maps onto real instants in a zone. */
export type LocalTimeKind = 'unique' | 'repeated' | 'skipped';

export interface LocalInstant {
  /**
   * The instant: for a `'repeated'` time (clocks went back) the earlier of the two; for a `'skipped'`
   * time (clocks jumped forward over it) the time read on the old offset, i.e. shifted forward by the
   * size of the jump (02:30 on a spring-forward night in Paris → 03:30 CEST).
   */
  instant: number;
  kind: LocalTimeKind;
  /** For `'repeated'`: the later of the two instants. */
  later?: number;
}

const DAY = 86_400_000;

/**
 * Turn a naive wall-clock time into an instant in `tz` (Temporal's "compatible" disambiguation).
 * Assumes at most one offset change within a day of the time, which holds for every zone in tzdb.
 */
export function localToInstant(naive: number, tz: string): LocalInstant {
  const before = zoneOffset(naive - DAY, tz);
  const after = zoneOffset(naive + DAY, tz);
  const candidates: number[] = [];
  for (const off of before === after ? [before] : [before, after]) {
    const t = naive - off;
    if (wallClock(t, tz) === naive && !candidates.includes(t)) candidates.push(t);
  }
  candidates.sort((a, b) => a - b);
  if (candidates.length === 0) return { instant: naive - before, kind: 'skipped' };
  if (candidates.length === 1) return { instant: candidates[0], kind: 'unique' };
  return { instant: candidates[0], kind: 'repeated', later: candidates[candidates.length - 1] };
}

/**
 * Longest clock change we look around for. tzdb's ordinary DST shifts are 30 min to 2 h; a transition
 * further back than this cannot affect instants after it (skipped or repeated local times are over).
 */
export const MAX_SHIFT_MS = 3 * 3_600_000;

/** Probe step when looking for the next offset change (no zone changes offset twice within a week). */
const PROBE_STEP_MS = 7 * DAY;

/** Zones whose offset never changes (skip all transition searches). */
export function isFixedOffsetZone(tz: string): boolean {
  return /^(Etc\/)?(UTC|UCT|GMT|Universal|Zulu|Greenwich)([+-]\d{1,2})?$/.test(tz);
}

/** Bisect (1 s resolution) for the first instant in (lo, hi] whose offset differs from offset(lo). */
function bisectChange(lo: number, hi: number, tz: string): number {
  const off0 = zoneOffset(lo, tz);
  let a = Math.floor(lo / 1000);
  let b = Math.ceil(hi / 1000);
  while (b - a > 1) {
    const mid = Math.floor((a + b) / 2);
    if (zoneOffset(mid * 1000, tz) === off0) a = mid;
    else b = mid;
  }
  return b * 1000;
}

/**
 * The first instant in (from, to] at which the offset differs from the offset at `from` (a zone
 * transition), or null. Probes weekly, then bisects.
 */
export function nextOffsetChange(from: number, to: number, tz: string): number | null {
  if (isFixedOffsetZone(tz) || to <= from) return null;
  const off0 = zoneOffset(from, tz);
  for (let p = from; p < to; ) {
    const q = Math.min(p + PROBE_STEP_MS, to);
    if (zoneOffset(q, tz) !== off0) return bisectChange(p, q, tz);
    p = q;
  }
  return null;
}

/**
 * The last zone transition in (t - MAX_SHIFT_MS, t], with the offsets before and after it, or null.
 */
export function recentOffsetChange(t: number, tz: string): { at: number; before: number; after: number } | null {
  if (isFixedOffsetZone(tz)) return null;
  const lo = t - MAX_SHIFT_MS;
  const before = zoneOffset(lo, tz);
  const after = zoneOffset(t, tz);
  if (before === after) return null;
  const at = bisectChange(lo, t, tz);
  return { at, before: zoneOffset(at - 1000, tz), after: zoneOffset(at, tz) };
}
