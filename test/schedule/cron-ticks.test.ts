// Pure cron-tick logic: parsing, tick times (DST in two zones, plus Lord Howe's 30-minute shift), missed
// windows, run names. No spool, no clock: every "now" is passed in.
import { describe, expect, it } from 'vitest';
import { CronExpressionParser } from 'cron-parser';
import {
  ScheduleError,
  SCHEDULE_ALIASES,
  assertScheduleName,
  dueTicks,
  latestTicks,
  nextTick,
  parseRunName,
  parseSchedule,
  runName,
  scheduleNameProblem,
  scheduleNameValid,
  ticksBetween,
  type Schedule,
} from '../../src/schedule/cron-ticks.js';

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());
const isoList = (ds: Date[]): string[] => ds.map((d) => d.toISOString());
const T = (s: string): number => Date.parse(s);
const MIN = 60_000;
const HOUR = 3_600_000;

/** Wall clock of an instant in a zone, 'YYYY-MM-DD HH:MM:SS'. */
function local(t: Date | number, tz: string): string {
  return new Date(t).toLocaleString('sv-SE', { timeZone: tz });
}

function expectScheduleError(fn: () => unknown, message: string | RegExp): ScheduleError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ScheduleError);
  expect(caught).toBeInstanceOf(Error);
  const e = caught as ScheduleError;
  expect(e.code).toBe('ZCQ_BAD_SCHEDULE');
  expect(e.message).not.toContain('\n');
  if (typeof message === 'string') expect(e.message).toBe(message);
  else expect(e.message).toMatch(message);
  return e;
}

describe('parseSchedule', () => {
  it('reads 5 fields as minute..day-of-week with seconds 0, in UTC by default', () => {
    const s = parseSchedule('  30 2 * * *  ');
    expect(s).toMatchObject({ expression: '30 2 * * *', fields: '0 30 2 * * *', tz: 'UTC', hasSeconds: false, fixedHour: true });
    expect(iso(nextTick(s, T('2026-05-01T00:00:00Z')))).toBe('2026-05-01T02:30:00.000Z');
  });

  it('reads 6 fields as seconds first', () => {
    const s = parseSchedule('*/15 * * * * *');
    expect(s.hasSeconds).toBe(true);
    expect(s.fixedHour).toBe(false);
    expect(isoList(ticksBetween(s, T('2026-05-01T00:00:00Z'), T('2026-05-01T00:01:00Z'), 10))).toEqual([
      '2026-05-01T00:00:15.000Z',
      '2026-05-01T00:00:30.000Z',
      '2026-05-01T00:00:45.000Z',
      '2026-05-01T00:01:00.000Z',
    ]);
  });

  it('accepts the aliases, in any case, and each means what cron means by it', () => {
    const from = T('2026-05-13T10:15:00Z'); // a Wednesday
    const want: Record<string, string> = {
      '@yearly': '2027-01-01T00:00:00.000Z',
      '@annually': '2027-01-01T00:00:00.000Z',
      '@monthly': '2026-06-01T00:00:00.000Z',
      '@weekly': '2026-05-17T00:00:00.000Z', // Sunday
      '@daily': '2026-05-14T00:00:00.000Z',
      '@midnight': '2026-05-14T00:00:00.000Z',
      '@hourly': '2026-05-13T11:00:00.000Z',
    };
    expect(Object.keys(SCHEDULE_ALIASES).sort()).toEqual(Object.keys(want).sort());
    for (const [alias, next] of Object.entries(want)) {
      expect(iso(nextTick(parseSchedule(alias), from)), alias).toBe(next);
      expect(iso(nextTick(parseSchedule(alias.toUpperCase()), from)), alias.toUpperCase()).toBe(next);
    }
    expect(parseSchedule('@hourly').fixedHour).toBe(false);
    expect(parseSchedule('@daily').fixedHour).toBe(true);
  });

  it('accepts names, L, nth weekday and ? as a whole day field', () => {
    const from = T('2026-05-13T10:15:00Z');
    expect(iso(nextTick(parseSchedule('0 9 * * mon-fri'), T('2026-05-15T10:00:00Z')))).toBe('2026-05-18T09:00:00.000Z');
    expect(iso(nextTick(parseSchedule('0 0 L * *'), from))).toBe('2026-05-31T00:00:00.000Z');
    expect(iso(nextTick(parseSchedule('0 0 * * 5L'), from))).toBe('2026-05-29T00:00:00.000Z'); // last Friday
    expect(iso(nextTick(parseSchedule('0 9 * * 1#1'), from))).toBe('2026-06-01T09:00:00.000Z'); // first Monday
    expect(iso(nextTick(parseSchedule('0 0 ? * 1'), from))).toBe('2026-05-18T00:00:00.000Z');
    expect(iso(nextTick(parseSchedule('0 12 1 jan,jul *'), from))).toBe('2026-07-01T12:00:00.000Z');
  });

  it('rejects a wrong number of fields (cron-parser would pad "* * *")', () => {
    expect(() => CronExpressionParser.parse('* * *')).not.toThrow(); // the leniency we guard against
    expectScheduleError(() => parseSchedule('* * *'), /^cron expression '\* \* \*': 3 fields; expected 5 .* or 6 \(seconds first\)$/);
    expectScheduleError(() => parseSchedule('* * * * * * *'), /'\* \* \* \* \* \* \*': 7 fields; expected 5/);
    expectScheduleError(() => parseSchedule('0'), /'0': 1 field; expected 5/);
    expectScheduleError(() => parseSchedule('   '), /empty/);
  });

  it.each([
    ['61 * * * *', "cron expression '61 * * * *': minute 61 out of range 0-59"],
    ['60 * * * * *', "cron expression '60 * * * * *': second 60 out of range 0-59"],
    ['0 24 * * *', "cron expression '0 24 * * *': hour 24 out of range 0-23"],
    ['0 0 32 * *', "cron expression '0 0 32 * *': day-of-month 32 out of range 1-31"],
    ['0 0 * 13 *', "cron expression '0 0 * 13 *': month 13 out of range 1-12"],
    ['0 0 * * 8', "cron expression '0 0 * * 8': day-of-week 8 out of range 0-7"],
    ['a b c d e', "cron expression 'a b c d e': minute 'a': invalid characters"],
    ['0 0 * foo *', "cron expression '0 0 * foo *': month 'foo': unknown name 'foo'"],
    ['5-1 * * * *', "cron expression '5-1 * * * *': minute range 5-1 runs backwards (start after end)"],
    ['*/0 * * * *', "cron expression '*/0 * * * *': minute '*/0': step must be a positive whole number"],
    ['0 5- * * *', "cron expression '0 5- * * *': hour '5-': malformed range"],
    ['1,,2 * * * *', "cron expression '1,,2 * * * *': minute '1,,2': malformed"],
    ['1.5 * * * *', "cron expression '1.5 * * * *': minute '1.5': invalid characters"],
    ['H * * * *', "cron expression 'H * * * *': minute 'H': 'H' (hashed/random) values are not supported"],
    ['0 0 * * H', "cron expression '0 0 * * H': day-of-week 'H': 'H' (hashed/random) values are not supported"],
    ['? * * * *', "cron expression '? * * * *': minute '?': '?' is only allowed as a whole day-of-month or day-of-week field"],
    ['0 0 30 2 *', "cron expression '0 0 30 2 *': day-of-month '30' never occurs in month '2'"],
    ['@every 5m', /^cron expression '@every 5m': unknown alias \(use one of @yearly .*@hourly, or 5 or 6 fields\)$/],
    ['@reboot', /'@reboot': unknown alias/],
  ] as const)('rejects %s with the reason', (expr, message) => {
    const e = expectScheduleError(() => parseSchedule(expr), message);
    expect(e.input).toBe(expr);
  });

  it('accepts THU (the H in a day name is not a hash)', () => {
    expect(iso(nextTick(parseSchedule('0 0 * * THU'), T('2026-05-13T10:00:00Z')))).toBe('2026-05-14T00:00:00.000Z');
  });

  it('rejects day-of-month together with day-of-week (cron ORs them)', () => {
    expectScheduleError(() => parseSchedule('0 0 13 * 5'), /'0 0 13 \* 5': day-of-month '13' and day-of-week '5' are both set, .*1#1/);
    expect(() => parseSchedule('0 0 13 * ?')).not.toThrow();
  });

  it('rejects a bad time zone at parse time, not at the first tick', () => {
    // cron-parser itself only fails when asked for a tick
    expect(() => CronExpressionParser.parse('0 * * * *', { tz: 'Europe/Nowhere' })).not.toThrow();
    expectScheduleError(
      () => parseSchedule('0 * * * *', 'Europe/Nowhere'),
      "cron expression '0 * * * *': unknown time zone 'Europe/Nowhere' (use an IANA name such as Europe/Paris or UTC)",
    );
    for (const tz of ['local', 'system', '+03:00', 'UTC+3', '', 'Europe/Paris; rm -rf /']) {
      expectScheduleError(() => parseSchedule('0 * * * *', tz), /unknown time zone/);
    }
  });

  it('canonicalises the zone; null or undefined means UTC, whatever the machine zone', () => {
    expect(parseSchedule('0 9 * * *', 'europe/paris').tz).toBe('Europe/Paris');
    expect(parseSchedule('0 9 * * *', null).tz).toBe('UTC');
    const before = process.env.TZ;
    process.env.TZ = 'Asia/Tokyo';
    try {
      expect(new Date(T('2026-05-01T00:00:00Z')).getHours()).toBe(9); // the process zone did change
      expect(iso(nextTick(parseSchedule('0 9 * * *'), T('2026-05-01T00:00:00Z')))).toBe('2026-05-01T09:00:00.000Z');
    } finally {
      if (before === undefined) delete process.env.TZ;
      else process.env.TZ = before;
    }
  });

  it('a schedule read back from JSON works (and is checked again)', () => {
    const s = parseSchedule('0 9 * * *', 'Europe/Paris');
    const back = JSON.parse(JSON.stringify(s)) as Schedule;
    expect(iso(nextTick(back, T('2026-01-10T00:00:00Z')))).toBe('2026-01-10T08:00:00.000Z');
    expectScheduleError(() => nextTick({ ...back, tz: 'Mars/Olympus' }, 0), /unknown time zone 'Mars\/Olympus'/);
  });
});

describe('nextTick / ticksBetween', () => {
  const every5 = parseSchedule('*/5 * * * *');

  it('nextTick is strictly after, at millisecond precision', () => {
    expect(iso(nextTick(every5, T('2026-05-01T08:05:00.000Z')))).toBe('2026-05-01T08:10:00.000Z');
    expect(iso(nextTick(every5, T('2026-05-01T08:04:59.999Z')))).toBe('2026-05-01T08:05:00.000Z');
    expect(iso(nextTick(every5, new Date('2026-05-01T08:05:00.001Z')))).toBe('2026-05-01T08:10:00.000Z');
  });

  it('honours the zone, summer and winter', () => {
    const s = parseSchedule('0 9 * * *', 'Europe/Paris');
    expect(iso(nextTick(s, T('2026-01-10T00:00:00Z')))).toBe('2026-01-10T08:00:00.000Z');
    expect(iso(nextTick(s, T('2026-07-10T00:00:00Z')))).toBe('2026-07-10T07:00:00.000Z');
  });

  it('ticksBetween: (after, until], oldest first, at most cap', () => {
    const a = T('2026-05-01T08:00:00Z');
    expect(isoList(ticksBetween(every5, a, a + 15 * MIN, 10))).toEqual([
      '2026-05-01T08:05:00.000Z',
      '2026-05-01T08:10:00.000Z',
      '2026-05-01T08:15:00.000Z',
    ]);
    expect(isoList(ticksBetween(every5, a, a + 15 * MIN, 2))).toEqual(['2026-05-01T08:05:00.000Z', '2026-05-01T08:10:00.000Z']);
    expect(ticksBetween(every5, a, a + 4 * MIN, 10)).toEqual([]);
    expect(ticksBetween(every5, a, a - HOUR, 10)).toEqual([]);
    expect(() => ticksBetween(every5, a, a + HOUR, 0)).toThrow(RangeError);
    expect(() => ticksBetween(every5, NaN, a, 1)).toThrow(RangeError);
  });

  it('latestTicks: the newest ones, oldest first', () => {
    const a = T('2026-05-01T08:00:00Z');
    expect(isoList(latestTicks(every5, a, a + 15 * MIN + 1, 2))).toEqual(['2026-05-01T08:10:00.000Z', '2026-05-01T08:15:00.000Z']);
    expect(latestTicks(every5, a, a + 15 * MIN, 100)).toHaveLength(3);
  });

  it('a leap-day schedule finds Feb 29 years ahead', () => {
    expect(iso(nextTick(parseSchedule('0 0 29 2 *'), T('2026-05-01T00:00:00Z')))).toBe('2028-02-29T00:00:00.000Z');
  });
});

describe('DST', () => {
  // Paris: 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z); 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z)
  // New York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z); 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z)
  const paris = 'Europe/Paris';
  const ny = 'America/New_York';

  /** The ticks of `s` whose local date (in its zone) is `date`. */
  function ticksOnLocalDate(s: Schedule, date: string): string[] {
    const around = T(`${date}T00:00:00Z`);
    return ticksBetween(s, around - 30 * HOUR, around + 30 * HOUR, 500)
      .filter((t) => local(t, s.tz).startsWith(date))
      .map((t) => `${t.toISOString()} ${local(t, s.tz).slice(11)}`);
  }

  it('spring forward, Paris: a daily 02:30 (which does not exist that night) runs once, at 03:30 CEST', () => {
    const s = parseSchedule('30 2 * * *', paris);
    expect(ticksOnLocalDate(s, '2026-03-28')).toEqual(['2026-03-28T01:30:00.000Z 02:30:00']);
    expect(ticksOnLocalDate(s, '2026-03-29')).toEqual(['2026-03-29T01:30:00.000Z 03:30:00']);
    expect(ticksOnLocalDate(s, '2026-03-30')).toEqual(['2026-03-30T00:30:00.000Z 02:30:00']);
  });

  it('spring forward: starting inside the skipped hour still finds the moved tick (cron-parser does not)', () => {
    const s = parseSchedule('30 2 * * *', paris);
    const at = T('2026-03-29T01:10:00Z'); // 03:10 CEST, before the moved 03:30 tick
    expect(iso(nextTick(s, at))).toBe('2026-03-29T01:30:00.000Z');
    const cp = CronExpressionParser.parse('30 2 * * *', { tz: paris, currentDate: new Date(at) }).next().toISOString();
    expect(cp).toBe('2026-03-30T00:30:00.000Z'); // what cron-parser alone says: skips that day's run
  });

  it('spring forward, New York: a daily 02:30 runs once, at 03:30 EDT', () => {
    const s = parseSchedule('30 2 * * *', ny);
    expect(ticksOnLocalDate(s, '2026-03-08')).toEqual(['2026-03-08T07:30:00.000Z 03:30:00']);
    expect(ticksOnLocalDate(s, '2026-03-09')).toEqual(['2026-03-09T06:30:00.000Z 02:30:00']);
  });

  it('spring forward: an hourly job has one run less and no double run at 03:00', () => {
    const s = parseSchedule('0 * * * *', paris);
    const ticks = ticksBetween(s, T('2026-03-28T23:30:00Z'), T('2026-03-29T03:30:00Z'), 100);
    expect(ticks.map((t) => local(t, paris).slice(11, 16))).toEqual(['01:00', '03:00', '04:00', '05:00']);
    expect(isoList(ticks)).toEqual(['2026-03-29T00:00:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-29T02:00:00.000Z', '2026-03-29T03:00:00.000Z']);
  });

  it('fall back, Paris: a daily 02:30 runs once, on the first 02:30 (CEST)', () => {
    const s = parseSchedule('30 2 * * *', paris);
    expect(ticksOnLocalDate(s, '2026-10-25')).toEqual(['2026-10-25T00:30:00.000Z 02:30:00']);
    // starting in the second pass (02:15 CET) does not give the second 02:30
    expect(iso(nextTick(s, T('2026-10-25T01:15:00Z')))).toBe('2026-10-26T01:30:00.000Z');
  });

  it('fall back, New York: a daily 01:30 runs once, on the first 01:30 (EDT)', () => {
    const s = parseSchedule('30 1 * * *', ny);
    expect(ticksOnLocalDate(s, '2026-11-01')).toEqual(['2026-11-01T05:30:00.000Z 01:30:00']);
    const from115est = T('2026-11-01T06:15:00Z'); // 01:15 EST, second pass
    expect(iso(nextTick(s, from115est))).toBe('2026-11-02T06:30:00.000Z');
    // cron-parser alone fires the repeated 01:30 again
    expect(CronExpressionParser.parse('30 1 * * *', { tz: ny, currentDate: new Date(from115est) }).next().toISOString()).toBe(
      '2026-11-01T06:30:00.000Z',
    );
  });

  it('fall back: an hourly job runs every real hour, twice at 01:00 local (New York) / 02:00 (Paris)', () => {
    const h = parseSchedule('0 * * * *', ny);
    const ticks = ticksBetween(h, T('2026-11-01T04:30:00Z'), T('2026-11-01T08:30:00Z'), 100);
    expect(isoList(ticks)).toEqual(['2026-11-01T05:00:00.000Z', '2026-11-01T06:00:00.000Z', '2026-11-01T07:00:00.000Z', '2026-11-01T08:00:00.000Z']);
    expect(ticks.map((t) => local(t, ny).slice(11, 16))).toEqual(['01:00', '01:00', '02:00', '03:00']);
    const p = ticksBetween(parseSchedule('@hourly', paris), T('2026-10-24T23:30:00Z'), T('2026-10-25T02:30:00Z'), 100);
    expect(p.map((t) => local(t, paris).slice(11, 16))).toEqual(['02:00', '02:00', '03:00']);
  });

  it('fall back: a schedule with fixed hours (every 20 min during 01:xx) runs the repeated hour once', () => {
    const s = parseSchedule('*/20 1 * * *', ny);
    expect(ticksOnLocalDate(s, '2026-11-01')).toEqual([
      '2026-11-01T05:00:00.000Z 01:00:00',
      '2026-11-01T05:20:00.000Z 01:20:00',
      '2026-11-01T05:40:00.000Z 01:40:00',
    ]);
  });

  it('seconds schedules cross a change without gaps or duplicates', () => {
    const s = parseSchedule('*/30 * * * * *', ny);
    const from = T('2026-11-01T05:58:00Z');
    const ticks = ticksBetween(s, from, from + 4 * MIN, 100).map((t) => t.getTime());
    expect(ticks).toHaveLength(8);
    for (let i = 1; i < ticks.length; i++) expect(ticks[i] - ticks[i - 1]).toBe(30_000);
  });

  it('Australia/Lord_Howe (30-minute shifts, where cron-parser loops forever): hourly job, each real hour', () => {
    const tz = 'Australia/Lord_Howe'; // 2026-04-05 02:00 +11 -> 01:30 +10:30 (15:00Z)
    const cp = CronExpressionParser.parse('0 * * * *', { tz, currentDate: new Date(T('2026-04-04T12:00:00Z')) });
    expect(() => { for (let i = 0; i < 4; i++) cp.next(); }).toThrow(/loop limit/); // cron-parser alone
    const ticks = ticksBetween(parseSchedule('0 * * * *', tz), T('2026-04-04T12:30:00Z'), T('2026-04-04T17:00:00Z'), 100);
    expect(ticks.map((t) => `${t.toISOString().slice(11, 16)}=${local(t, tz).slice(11, 16)}`)).toEqual([
      '13:00=00:00',
      '14:00=01:00',
      '15:30=02:00',
      '16:30=03:00',
    ]);
  });

  // ---- the invariant, against a brute-force oracle ---------------------------------------------------
  // T (by definition, see cron-ticks.ts): scan every minute; an instant is a tick if its wall clock
  // matches (unless it repeats an earlier reading and the hour is fixed), or if it lies within a jump
  // forward and the skipped reading it stands for matches.
  function oracle(expr: string, tz: string, from: number, to: number): number[] {
    const fields = CronExpressionParser.parse(expr, { tz: 'UTC' });
    const fixedHour = fields.fields.hour.values.length < 24;
    const fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
    const cache = new Map<number, number>();
    const wall = (t: number): number => {
      let w = cache.get(t);
      if (w === undefined) {
        const p: Record<string, string> = {};
        for (const x of fmt.formatToParts(t)) p[x.type] = x.value;
        w = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute, +p.second);
        cache.set(t, w);
      }
      return w;
    };
    const out: number[] = [];
    for (let t = from; t <= to; t += MIN) {
      const w = wall(t);
      let tick = false;
      if (fields.includesDate(new Date(w))) {
        let repeated = false;
        for (let d = MIN; d <= 3 * HOUR && !repeated; d += MIN) if (wall(t - d) === w) repeated = true;
        tick = !(repeated && fixedHour);
      }
      if (!tick) {
        // inside a jump forward? find the jump among the last 3 h
        for (let d = MIN; d <= 3 * HOUR; d += MIN) {
          const jump = wall(t - d + MIN) - wall(t - d) - MIN; // > 0: clocks jumped forward at t - d + 1 min
          if (jump > 0) {
            const at = t - d + MIN;
            if (t - at < jump && fields.includesDate(new Date(w - jump))) tick = true;
            break;
          }
        }
      }
      if (tick) out.push(t);
    }
    return out;
  }

  const transitions: Array<[string, string]> = [
    [paris, '2026-03-29T01:00:00Z'],
    [paris, '2026-10-25T01:00:00Z'],
    [ny, '2026-03-08T07:00:00Z'],
    [ny, '2026-11-01T06:00:00Z'],
    ['Australia/Lord_Howe', '2026-04-04T15:00:00Z'],
    ['Australia/Lord_Howe', '2026-10-03T15:30:00Z'],
  ];
  const exprs = ['30 2 * * *', '30 1 * * *', '0 * * * *', '0,30 * * * *', '*/20 2 * * *', '* 2 * * *', '0 1-3 * * *', '15 2,3 * * 0'];

  it.each(transitions)('%s around %s: nextTick(t) = first oracle tick after t, from any t', (tz, at) => {
    const center = T(at);
    let checked = 0;
    for (const expr of exprs) {
      const s = parseSchedule(expr, tz);
      const set = oracle(expr, tz, center - 8 * HOUR, center + 8 * 24 * HOUR);
      expect(set.length).toBeGreaterThan(0);
      for (let a = center - 6 * HOUR; a <= center + 6 * HOUR; a += 7 * MIN) {
        for (const x of [a, a + 1, a + 59_999]) {
          const want = set.find((t) => t > x);
          expect(nextTick(s, x).getTime(), `${expr} ${tz} after ${new Date(x).toISOString()}`).toBe(want);
          checked++;
        }
      }
      // and ticksBetween over the whole day agrees with the oracle
      const got = ticksBetween(s, center - 6 * HOUR, center + 30 * HOUR, 10_000).map((t) => t.getTime());
      expect(got, expr).toEqual(set.filter((t) => t > center - 6 * HOUR && t <= center + 30 * HOUR));
    }
    expect(checked).toBeGreaterThan(1000);
  });
});

describe('dueTicks', () => {
  const perMinute = parseSchedule('* * * * *');
  const created = T('2026-05-01T00:00:00Z');
  const eight = T('2026-05-01T08:00:00Z');

  it('nothing when no tick is in (lastTick, now]', () => {
    const r = dueTicks({ schedule: perMinute, lastTick: eight, now: eight + 59_999, created });
    expect(r).toEqual({ due: [], lastTick: new Date(eight), dropped: false });
  });

  it('lastTick only moves forward: now before lastTick (clock went back) gives nothing and keeps it', () => {
    const r = dueTicks({ schedule: perMinute, lastTick: eight, now: eight - 10 * MIN, created });
    expect(r.due).toEqual([]);
    expect(iso(r.lastTick)).toBe('2026-05-01T08:00:00.000Z');
    expect(dueTicks({ schedule: perMinute, lastTick: eight, now: eight, created }).due).toEqual([]);
  });

  it('one tick in the window runs, whatever the policy (when fresh)', () => {
    for (const missed of ['once', 'all', 'skip'] as const) {
      const r = dueTicks({ schedule: perMinute, lastTick: eight, now: eight + MIN + 5_000, created, missed });
      expect(isoList(r.due), missed).toEqual(['2026-05-01T08:01:00.000Z']);
      expect(iso(r.lastTick)).toBe('2026-05-01T08:01:00.000Z');
      expect(r.dropped).toBe(false);
    }
  });

  it('with no lastTick the window starts at creation (a tick at the creation instant is not due)', () => {
    const r = dueTicks({ schedule: perMinute, lastTick: null, now: eight + 90_000, created: eight });
    expect(isoList(r.due)).toEqual(['2026-05-01T08:01:00.000Z']);
    expect(dueTicks({ schedule: perMinute, lastTick: null, now: eight + 30_000, created: eight })).toEqual({ due: [], lastTick: null, dropped: false });
  });

  describe('all workers down for an hour, per-minute schedule (60 missed ticks)', () => {
    const now = T('2026-05-01T09:00:20Z');
    const base = { schedule: perMinute, lastTick: eight, now, created };

    it("'once' (the default) gives one job, for the latest tick", () => {
      for (const r of [dueTicks(base), dueTicks({ ...base, missed: 'once' })]) {
        expect(isoList(r.due)).toEqual(['2026-05-01T09:00:00.000Z']);
        expect(iso(r.lastTick)).toBe('2026-05-01T09:00:00.000Z');
        expect(r.dropped).toBe(true);
      }
    });

    it("'all' with cap 10 gives the 10 most recent, oldest first; with cap 100 all 60", () => {
      const r = dueTicks({ ...base, missed: 'all', cap: 10 });
      expect(r.due).toHaveLength(10);
      expect(iso(r.due[0])).toBe('2026-05-01T08:51:00.000Z');
      expect(iso(r.due[9])).toBe('2026-05-01T09:00:00.000Z');
      expect(r.dropped).toBe(true);
      expect(iso(r.lastTick)).toBe('2026-05-01T09:00:00.000Z');
      const all = dueTicks({ ...base, missed: 'all', cap: 100 });
      expect(all.due).toHaveLength(60);
      expect(iso(all.due[0])).toBe('2026-05-01T08:01:00.000Z');
      expect(all.dropped).toBe(false);
      expect(isoList(all.due)).toEqual(isoList(ticksBetween(perMinute, eight, now, 1000)));
    });

    it("'skip' runs only a current tick: 1 within the grace, 0 outside it; lastTick advances either way", () => {
      const fresh = dueTicks({ ...base, missed: 'skip' }); // latest tick is 20 s old, default grace 60 s
      expect(isoList(fresh.due)).toEqual(['2026-05-01T09:00:00.000Z']);
      expect(fresh.dropped).toBe(true);
      const stale = dueTicks({ ...base, missed: 'skip', graceMs: 10_000 });
      expect(stale.due).toEqual([]);
      expect(iso(stale.lastTick)).toBe('2026-05-01T09:00:00.000Z');
      expect(stale.dropped).toBe(true);
    });
  });

  it("'skip' also drops a lone tick that is hours late (daily job after an outage); 'once' runs it", () => {
    const daily = parseSchedule('0 8 * * *');
    const input = { schedule: daily, lastTick: T('2026-05-01T08:00:00Z'), now: T('2026-05-02T13:00:00Z'), created };
    expect(dueTicks({ ...input, missed: 'skip' })).toEqual({ due: [], lastTick: new Date('2026-05-02T08:00:00Z'), dropped: true });
    expect(isoList(dueTicks({ ...input, missed: 'once' }).due)).toEqual(['2026-05-02T08:00:00.000Z']);
  });

  it('a year-long outage of a per-second schedule is answered without walking 31 million ticks', () => {
    const s = parseSchedule('* * * * * *', 'Europe/Paris');
    const start = performance.now();
    const now = T('2027-05-01T12:34:56.789Z');
    const once = dueTicks({ schedule: s, lastTick: T('2026-05-01T00:00:00Z'), now, created, missed: 'once' });
    const all = dueTicks({ schedule: s, lastTick: T('2026-05-01T00:00:00Z'), now, created, missed: 'all', cap: 5 });
    expect(performance.now() - start).toBeLessThan(2000);
    expect(isoList(once.due)).toEqual(['2027-05-01T12:34:56.000Z']);
    expect(isoList(all.due)).toEqual([
      '2027-05-01T12:34:52.000Z', '2027-05-01T12:34:53.000Z', '2027-05-01T12:34:54.000Z', '2027-05-01T12:34:55.000Z', '2027-05-01T12:34:56.000Z',
    ]);
  });

  it("'all' across fall-back gives each real hour once", () => {
    const s = parseSchedule('0 * * * *', 'America/New_York');
    const r = dueTicks({ schedule: s, lastTick: T('2026-11-01T03:30:00Z'), now: T('2026-11-01T08:10:00Z'), created, missed: 'all', cap: 50 });
    expect(r.due.map((t) => local(t, 'America/New_York').slice(11, 16))).toEqual(['00:00', '01:00', '01:00', '02:00', '03:00']);
  });

  it('rejects a bad policy, cap or time', () => {
    const base = { schedule: perMinute, lastTick: eight, now: eight + HOUR, created };
    expect(() => dueTicks({ ...base, missed: 'sometimes' as 'once' })).toThrow(RangeError);
    expect(() => dueTicks({ ...base, missed: 'all', cap: 0 })).toThrow(RangeError);
    expect(() => dueTicks({ ...base, cap: 1.5 })).toThrow(RangeError);
    expect(() => dueTicks({ ...base, graceMs: -1 })).toThrow(RangeError);
    expect(() => dueTicks({ ...base, now: new Date('nope') })).toThrow(RangeError);
  });

  it('schedulers with skewed clocks sharing one lastTick produce every tick exactly once', () => {
    // several schedulers take turns on the shared state; their clocks are up to 90 s apart and go back
    const s = parseSchedule('*/1 * * * *');
    const offsets = [0, -90_000, 45_000, -30_000, 90_000, 0, -60_000];
    let last: Date | null = null;
    const produced: string[] = [];
    let maxNow = 0;
    let rnd = 12345;
    const rand = (): number => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 400; i++) {
      const now = eight + i * 20_000 + offsets[i % offsets.length] + Math.floor(rand() * 5_000);
      const r = dueTicks({ schedule: s, lastTick: last, now, created: eight, missed: 'all', cap: 1000 });
      if (last) {
        expect(r.lastTick!.getTime()).toBeGreaterThanOrEqual(last.getTime());
        for (const t of r.due) expect(t.getTime()).toBeGreaterThan(last.getTime());
      }
      produced.push(...isoList(r.due));
      last = r.lastTick;
      maxNow = Math.max(maxNow, now);
    }
    expect(new Set(produced).size).toBe(produced.length);
    expect(produced).toEqual(isoList(ticksBetween(s, eight, last!, 10_000)));
    expect(produced.length).toBeGreaterThan(120);
    expect(last!.getTime()).toBe(Math.floor(maxNow / MIN) * MIN);
  });
});

describe('runName', () => {
  it('is <name>@<UTC compact ISO with ms>', () => {
    expect(runName('nightly-report', new Date('2026-12-01T08:00:00Z'))).toBe('nightly-report@20261201T080000.000Z');
    expect(runName('a', T('2026-01-02T03:04:05.678Z'))).toBe('a@20260102T030405.678Z');
  });

  it('is file-name safe, unique per tick and sorts in tick order', () => {
    const s = parseSchedule('*/7 * * * * *', 'Europe/Paris');
    const ticks = ticksBetween(s, T('2026-10-25T00:55:00Z'), T('2026-10-25T01:10:00Z'), 1000); // across fall-back
    const names = ticks.map((t) => runName('sync.v2_eu-west', t));
    expect(new Set(names).size).toBe(ticks.length);
    expect([...names].sort()).toEqual(names);
    for (const n of names) expect(n).toMatch(/^[A-Za-z0-9._-]+@\d{8}T\d{6}\.\d{3}Z$/);
    const years = [T('1999-12-31T23:59:59.999Z'), T('2000-01-01T00:00:00Z'), T('2026-02-03T04:05:06Z'), T('2100-01-01T00:00:00Z')];
    const ys = years.map((t) => runName('x', t));
    expect([...ys].sort()).toEqual(ys);
    expect(runName('x', years[0])).not.toBe(runName('y', years[0]));
  });

  it('parseRunName inverts it and refuses anything else', () => {
    const tick = new Date('2026-12-01T08:00:00.250Z');
    expect(parseRunName(runName('nightly', tick))).toEqual({ scheduleName: 'nightly', tick });
    for (const bad of ['nightly', 'nightly@2026-12-01T08:00:00Z', '@20261201T080000.000Z', 'a b@20261201T080000.000Z', 'x@20261301T080000.000Z', 'x@20261201T080000.000Z.json']) {
      expect(parseRunName(bad), bad).toBeNull();
    }
  });

  it('schedule names: letters, digits, - _ . ; 1-64 chars; no leading dot; clear errors', () => {
    for (const ok of ['a', 'A-b_c.d', '0day', 'x'.repeat(64), 'v1..2']) expect(scheduleNameValid(ok), ok).toBe(true);
    const bad: Array<[string, RegExp]> = [
      ['', /empty/],
      ['.hidden', /must not start with a dot/],
      ['..', /must not start with a dot/],
      ['a b', /character " " not allowed/],
      ['a/b', /character "\/" not allowed/],
      ['a@b', /character "@" not allowed/],
      ['é', /character "é" not allowed/],
      ['x'.repeat(65), /65 characters \(at most 64\)/],
    ];
    for (const [name, why] of bad) {
      expect(scheduleNameValid(name), name).toBe(false);
      expect(scheduleNameProblem(name)).toMatch(why);
      expectScheduleError(() => assertScheduleName(name), new RegExp(`^schedule name '${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}': `));
      expect(() => runName(name, 0)).toThrow(ScheduleError);
    }
  });
});
