/**
 * Parsing the times and durations people type: `--in 90s`, `--timeout 1h30m`, `--at 2026-12-01T09:00+01:00`.
 * Errors are typed (`ZCQ_BAD_DURATION`, `ZCQ_BAD_TIME`) with a one-line message saying what is accepted.
 */
import { ZcqError } from '../errors.js';

export class TimeInputError extends ZcqError {
  constructor(code: 'ZCQ_BAD_DURATION' | 'ZCQ_BAD_TIME', message: string) { super(code, message, 2); }
}

const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** '500ms', '90s', '15m', '2h', '1d', '1h30m'; a plain number means seconds. */
export function parseDuration(s: string): number {
  const t = String(s).trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) { total += Number(m[1]) * UNIT[m[2]!]!; pos = re.lastIndex; }
  if (pos === 0 || pos !== t.length) throw new TimeInputError('ZCQ_BAD_DURATION', `not a duration; use e.g. 500ms, 90s, 15m, 2h, 1d or 1h30m`);
  return Math.round(total);
}

/** An ISO 8601 time (with an offset or Z; without one it is local time), or epoch milliseconds. */
export function parseWhen(s: string, _now: Date = new Date()): Date {
  const t = String(s).trim();
  if (/^\d{12,}$/.test(t)) return new Date(Number(t));
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(t)) {
    throw new TimeInputError('ZCQ_BAD_TIME', 'not a time; use ISO 8601, e.g. 2026-12-01T09:00:00+01:00');
  }
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) throw new TimeInputError('ZCQ_BAD_TIME', 'not a valid date; use ISO 8601, e.g. 2026-12-01T09:00:00+01:00');
  return d;
}
