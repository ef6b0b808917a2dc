// Durations and --at times as people type them; "now" and the zone are passed in.
import { describe, expect, it } from 'vitest';
import { TimeInputError, parseDuration, parseWhen } from '../../src/schedule/time-input.js';

function expectBad(fn: () => unknown, code: 'ZCQ_BAD_DURATION' | 'ZCQ_BAD_TIME', message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(TimeInputError);
  const e = caught as TimeInputError;
  expect(e.code).toBe(code);
  expect(e.exitCode).toBe(2);
  expect(e.message).not.toContain('\n');
  expect(e.message).toMatch(message);
}

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90_000],
    ['15m', 900_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1d2h3m4s5ms', 93_784_005],
    ['1.5h', 5_400_000],
    ['0.5s', 500],
    ['90', 90_000], // a plain number is seconds
    ['1.25', 1250],
    ['0', 0],
    ['  15m  ', 900_000],
  ])('%s = %i ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([
    ['', /^not a duration: empty; expected e\.g\. 90s, 15m, 2h, 1d, 500ms or 1h30m \(a plain number means seconds\)$/],
    ['abc', /^not a duration: cannot read 'abc'/],
    ['10x', /^not a duration: unknown unit 'x' \(use ms, s, m, h or d\)$/],
    ['1w', /unknown unit 'w'/],
    ['5M', /unknown unit 'M'/],
    ['30m1h', /units must go from largest to smallest, each at most once \(1h30m, not 30m1h\)/],
    ['1h1h', /units must go from largest to smallest/],
    ['-5s', /no sign allowed/],
    ['+5s', /no sign allowed/],
    ['1 h', /cannot read '1 h'/],
    ['1h 30m', /cannot read ' 30m'/],
    ['0.0001s', /not a whole number of milliseconds/],
    ['9999999999999999d', /too large/],
    ['15m!', /cannot read '!'/],
  ])('rejects %j', (input, message) => {
    expectBad(() => parseDuration(input), 'ZCQ_BAD_DURATION', message);
  });

  it('keeps the input on the error and does not repeat it in the message', () => {
    try {
      parseDuration('90x');
      expect.unreachable();
    } catch (err) {
      expect((err as TimeInputError).input).toBe('90x');
      expect((err as Error).message).not.toContain('90x');
    }
  });
});

describe('parseWhen', () => {
  const now = new Date('2026-05-01T10:00:00.000Z');

  it.each([
    ['2026-12-01T08:00:00Z', '2026-12-01T08:00:00.000Z'],
    ['2026-12-01T08:00Z', '2026-12-01T08:00:00.000Z'],
    ['2026-12-01t08:00:00z', '2026-12-01T08:00:00.000Z'],
    ['2026-12-01 08:00:00Z', '2026-12-01T08:00:00.000Z'],
    ['2026-12-01T09:00+01:00', '2026-12-01T08:00:00.000Z'],
    ['2026-12-01T09:00:00+0100', '2026-12-01T08:00:00.000Z'],
    ['2026-12-01T09:00:00+01', '2026-12-01T08:00:00.000Z'],
    ['2026-12-01T03:00:00-05:00', '2026-12-01T08:00:00.000Z'],
    ['2026-12-01T05:15:00-02:45', '2026-12-01T08:00:00.000Z'],
    ['2026-12-01T08:00:00.123456789Z', '2026-12-01T08:00:00.123Z'],
    ['2026-12-01T08:00:00,5Z', '2026-12-01T08:00:00.500Z'],
    ['2028-02-29T00:00Z', '2028-02-29T00:00:00.000Z'],
  ])('%s with an offset is that instant', (input, want) => {
    expect(parseWhen(input, now).toISOString()).toBe(want);
  });

  it('without an offset: local time in the given zone (winter, summer, date alone = midnight)', () => {
    expect(parseWhen('2026-12-01T09:00', now, { tz: 'Europe/Paris' }).toISOString()).toBe('2026-12-01T08:00:00.000Z');
    expect(parseWhen('2026-07-01T09:00', now, { tz: 'Europe/Paris' }).toISOString()).toBe('2026-07-01T07:00:00.000Z');
    expect(parseWhen('2026-07-01', now, { tz: 'America/New_York' }).toISOString()).toBe('2026-07-01T04:00:00.000Z');
    expect(parseWhen('2026-07-01T09:00', now, { tz: 'UTC' }).toISOString()).toBe('2026-07-01T09:00:00.000Z');
  });

  it('without an offset or zone: the machine zone', () => {
    const machine = new Intl.DateTimeFormat().resolvedOptions().timeZone;
    expect(parseWhen('2026-07-01T09:00', now).getTime()).toBe(parseWhen('2026-07-01T09:00', now, { tz: machine }).getTime());
    const before = process.env.TZ;
    process.env.TZ = 'Asia/Tokyo';
    try {
      expect(parseWhen('2026-07-01T09:00', now).toISOString()).toBe('2026-07-01T00:00:00.000Z');
    } finally {
      if (before === undefined) delete process.env.TZ;
      else process.env.TZ = before;
    }
  });

  it('a local time skipped by DST moves later by the jump; a repeated one is its first occurrence', () => {
    expect(parseWhen('2026-03-29T02:30', now, { tz: 'Europe/Paris' }).toISOString()).toBe('2026-03-29T01:30:00.000Z'); // 03:30 CEST
    expect(parseWhen('2026-10-25T02:30', now, { tz: 'Europe/Paris' }).toISOString()).toBe('2026-10-25T00:30:00.000Z'); // CEST pass
    expect(parseWhen('2026-11-01T01:30', now, { tz: 'America/New_York' }).toISOString()).toBe('2026-11-01T05:30:00.000Z'); // EDT pass
    expect(parseWhen('2026-03-08T02:30', now, { tz: 'America/New_York' }).toISOString()).toBe('2026-03-08T07:30:00.000Z'); // 03:30 EDT
  });

  it('now, +duration and epoch milliseconds', () => {
    expect(parseWhen('now', now).toISOString()).toBe('2026-05-01T10:00:00.000Z');
    expect(parseWhen('NOW', now.getTime()).toISOString()).toBe('2026-05-01T10:00:00.000Z');
    expect(parseWhen('+15m', now).toISOString()).toBe('2026-05-01T10:15:00.000Z');
    expect(parseWhen('+1h30m', now.getTime()).toISOString()).toBe('2026-05-01T11:30:00.000Z');
    expect(parseWhen('+90', now).toISOString()).toBe('2026-05-01T10:01:30.000Z');
    expect(parseWhen('1764576000000', now).toISOString()).toBe('2025-12-01T08:00:00.000Z');
  });

  it.each([
    ['', /^not a time: empty/],
    ['tomorrow', /^not a time: expected ISO 8601 such as 2026-12-01T08:00:00Z/],
    ['12/01/2026', /expected ISO 8601/],
    ['2026-12-01T8:00Z', /expected ISO 8601/],
    ['2026-12-01T08Z', /expected ISO 8601/],
    ['2026-13-01T00:00Z', /^not a time: month 13 out of range 1-12$/],
    ['2026-02-29T00:00Z', /^not a time: day 29 out of range 1-28 for 2026-02$/],
    ['2026-04-31', /day 31 out of range 1-30/],
    ['2026-12-01T24:00Z', /hour 24 out of range 0-23/],
    ['2026-12-01T23:60Z', /minute 60 out of range 0-59/],
    ['2026-12-01T23:59:60Z', /second 60 out of range 0-59/],
    ['2026-12-01T09:00+25:00', /offset \+25:00 out of range/],
    ['2026-12-01+01:00', /an offset needs a time of day/],
    ['+15x', /^not a time: unknown unit 'x'/],
    ['+', /^not a time: empty/],
    ['12345', /expected ISO 8601/],
  ])('rejects %j', (input, message) => {
    expectBad(() => parseWhen(input, now, { tz: 'UTC' }), 'ZCQ_BAD_TIME', message);
  });

  it('rejects an unknown zone and an invalid now', () => {
    expectBad(() => parseWhen('2026-12-01T09:00', now, { tz: 'Mars/Olympus' }), 'ZCQ_BAD_TIME', /unknown time zone 'Mars\/Olympus'/);
    expect(() => parseWhen('now', new Date('nope'))).toThrow(RangeError);
  });
});
