/**
 * Time inputs typed by people (CLI flags such as --in / --at / --deadline / --timeout, and API options): durations
 * and "when" instants. Pure functions: "now" and the local time zone are arguments, never read here.
 *
 * Durations (`parseDuration`): one or more <number><unit> parts, units from largest to smallest and each
 * at most once: `500ms` `90s` `15m` `2h` `1d` `1h30m` `1.5h`. Units: ms, s, m (minutes), h, d (24 h).
 * A plain number is SECONDS (`90` = 90 s), as in `sleep 90`; write `500ms` for milliseconds. The result
 * must be a whole number of milliseconds. No sign, no spaces, no months or years (their length varies).
 *
 * Instants (`parseWhen`, for `--at`):
 *  - ISO 8601 with an offset: `2026-12-01T08:00:00Z`, `2026-12-01T09:00+01:00`, `...+0100`, `...+01`;
 *    ' ' may replace 'T'; seconds and a fraction (up to 9 digits, cut to ms) are optional.
 *  - ISO 8601 without an offset (`2026-12-01T08:00`, or a date alone = its midnight) is LOCAL time in
 *    `opts.tz` (default: the zone of the machine running the command — the person typing it means their
 *    clock). A local time skipped by a DST jump is moved later by the jump (02:30 → 03:30 on a
 *    spring-forward night); a repeated one means its first occurrence — the same rule as cron schedules.
 *  - `now`, or `+<duration>` relative to `now` (`+15m`).
 *  - Epoch milliseconds, 12 digits or more (`1764576000000`), as printed by `Date.now()`.
 * Everything else is refused (no `Date.parse` guessing: "12/01" means different days to different people).
 */
import { ZcqError } from '../errors.js';
import { canonicalTimeZone, localToInstant } from './zone.js';

/**
 * A duration (code 'ZCQ_BAD_DURATION') or time (code 'ZCQ_BAD_TIME') that cannot be read. The message
 * is one line starting "not a duration:" / "not a time:" and does not repeat the input (callers prefix
 * the flag and value: "--timeout '90x': not a duration: unknown unit 'x' …"); the input is in `input`.
 */
export class TimeInputError extends ZcqError {
  declare readonly code: 'ZCQ_BAD_DURATION' | 'ZCQ_BAD_TIME';
  readonly input: string | undefined;
  constructor(code: 'ZCQ_BAD_DURATION' | 'ZCQ_BAD_TIME', message: string, input?: string) {
    super(code, message, 2);
    this.input = input;
  }
}

function badDuration(input: string, reason: string): TimeInputError {
  return new TimeInputError('ZCQ_BAD_DURATION', `not a duration: ${reason}`, input);
}

function badTime(input: string, reason: string): TimeInputError {
  return new TimeInputError('ZCQ_BAD_TIME', `not a time: ${reason}`, input);
}

const UNIT_MS: Readonly<Record<string, number>> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
const UNIT_ORDER = ['d', 'h', 'm', 's', 'ms'];
const DURATION_HINT = 'expected e.g. 90s, 15m, 2h, 1d, 500ms or 1h30m (a plain number means seconds)';

/** Milliseconds in a duration such as '90s', '15m', '1h30m', '500ms'; a plain number means seconds. */
export function parseDuration(s: string): number {
  if (typeof s !== 'string') throw badDuration(String(s), 'not a string');
  const input = s.trim();
  if (input === '') throw badDuration(s, `empty; ${DURATION_HINT}`);
  if (input.length > 64) throw badDuration(input.slice(0, 20) + '…', 'too long');
  let total: number;
  if (/^\d+(\.\d+)?$/.test(input)) {
    total = Number(input) * 1000;
  } else {
    if (/^[-+]/.test(input)) throw badDuration(input, `no sign allowed; ${DURATION_HINT}`);
    const part = /(\d+(?:\.\d+)?)([a-zA-Z]+)/y;
    total = 0;
    let pos = 0;
    let lastRank = -1;
    while (pos < input.length) {
      part.lastIndex = pos;
      const m = part.exec(input);
      if (!m) throw badDuration(input, `cannot read '${input.slice(pos)}'; ${DURATION_HINT}`);
      const unit = m[2];
      const rank = UNIT_ORDER.indexOf(unit);
      if (rank < 0) throw badDuration(input, `unknown unit '${unit}' (use ms, s, m, h or d)`);
      if (rank <= lastRank) throw badDuration(input, 'units must go from largest to smallest, each at most once (1h30m, not 30m1h)');
      lastRank = rank;
      total += Number(m[1]) * UNIT_MS[unit];
      pos = part.lastIndex;
    }
  }
  // decimal parts: 1.5h is exact; allow float noise below a microsecond
  const rounded = Math.round(total);
  if (Math.abs(total - rounded) > 1e-3) throw badDuration(input, 'not a whole number of milliseconds');
  if (!Number.isSafeInteger(rounded)) throw badDuration(input, 'too large');
  return rounded;
}

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * The instant meant by an `--at` value (see the header): ISO 8601 with an offset; without one, local
 * time in `opts.tz` (default the machine's zone); `now`; or `+<duration>` after `now`.
 */
export function parseWhen(s: string, now: Date | number, opts: { tz?: string } = {}): Date {
  if (typeof s !== 'string') throw badTime(String(s), 'not a string');
  const input = s.trim();
  const nowMs = now instanceof Date ? now.getTime() : now;
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) throw new RangeError(`now: not a valid time (${String(now)})`);
  if (input === '') throw badTime(s, 'empty; expected e.g. 2026-12-01T08:00:00Z, 2026-12-01T09:00+01:00, now or +15m');
  if (input.toLowerCase() === 'now') return new Date(nowMs);
  if (/^\d{12,16}$/.test(input)) return new Date(Number(input));
  if (input.startsWith('+')) {
    let ms: number;
    try {
      ms = parseDuration(input.slice(1));
    } catch (err) {
      throw badTime(input, (err as Error).message.replace(/^not a duration: /, ''));
    }
    return new Date(nowMs + ms);
  }
  const m = ISO_RE.exec(input);
  if (!m) {
    throw badTime(input, 'expected ISO 8601 such as 2026-12-01T08:00:00Z or 2026-12-01T09:00+01:00 (no offset = local time), now, or +15m');
  }
  const [, y, mo, d, h = '00', mi = '00', sec = '00', frac = '', off] = m;
  if (m[4] === undefined && off !== undefined) throw badTime(input, 'an offset needs a time of day (2026-12-01T00:00+01:00)');
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(sec);
  const ms = Number((frac + '000').slice(0, 3));
  if (month < 1 || month > 12) throw badTime(input, `month ${month} out of range 1-12`);
  const daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate() - (month === 2 && !isLeap(year) ? 1 : 0);
  if (day < 1 || day > daysInMonth) throw badTime(input, `day ${day} out of range 1-${daysInMonth} for ${y}-${mo}`);
  if (hour > 23) throw badTime(input, `hour ${hour} out of range 0-23`);
  if (minute > 59) throw badTime(input, `minute ${minute} out of range 0-59`);
  if (second > 59) throw badTime(input, `second ${second} out of range 0-59`);
  const naive = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, ms)).setUTCFullYear(year);

  if (off !== undefined) {
    if (off.toUpperCase() === 'Z') return new Date(naive);
    const om = /^([+-])(\d{2}):?(\d{2})?$/.exec(off)!;
    const oh = Number(om[2]);
    const omin = Number(om[3] ?? '0');
    if (oh > 23 || omin > 59) throw badTime(input, `offset ${off} out of range`);
    const sign = om[1] === '+' ? 1 : -1;
    return new Date(naive - sign * (oh * 3_600_000 + omin * 60_000));
  }
  const zoneIn = opts.tz ?? new Intl.DateTimeFormat().resolvedOptions().timeZone;
  const zone = canonicalTimeZone(zoneIn);
  if (!zone) throw badTime(input, `unknown time zone '${zoneIn}'`);
  return new Date(localToInstant(naive, zone).instant);
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}
