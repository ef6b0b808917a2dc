/**
 * Cron ticks: the pure, deterministic half of zcq's cron scheduling.
 *
 * Owns: parsing and checking a schedule (cron expression + time zone), computing its tick times,
 * deciding which ticks are due after a gap ("missed" policy), and naming the run of a tick. No file-system
 * access and no hidden clock: every function that needs "now" takes it as an argument.
 *
 * Invariant ("exactly once per tick, however many schedulers run"): the ticks of a schedule are a fixed
 * set T of instants that depends only on (expression, time zone) — never on which machine computes it,
 * its local zone, or where a computation starts. `nextTick(s, t)` is min{x in T : x > t} for every t,
 * so two schedulers that look at overlapping windows find the same ticks. Each tick is turned into one
 * run name, `runName(schedule, tick)`, which the caller creates with an operation only one creator can
 * win, and the per-schedule `lastTick` it stores only moves forward (`dueTicks` never returns a tick at or
 * before it and never returns a smaller `lastTick`).
 *
 * Expressions: 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), aliases
 * @yearly @annually @monthly @weekly @daily @midnight @hourly. Stricter than cron-parser: the field count
 * must be 5 or 6, Jenkins 'H' (random per parser) is refused, '?' is only accepted as a whole
 * day-of-month or day-of-week field, and day-of-month and day-of-week may not both be restricted (cron
 * ORs them, which is almost never what was meant; write '1#1' for "first Monday"). The time zone is an
 * IANA name checked here; without one a schedule runs in UTC — never in the machine's zone, so that
 * schedulers on differently configured machines agree.
 *
 * Daylight-saving time (see docs/cron-dst.md), for a local wall-clock time L the schedule matches:
 *  - L does not exist (clocks jump forward over it): the tick is L read on the old offset, i.e. moved
 *    later by the jump — a daily 02:30 in Paris runs at 03:30 CEST on spring-forward day, once; an hourly
 *    job simply has one hour less (its 02:00 tick is the same instant as 03:00 CEST).
 *  - L happens twice (clocks go back): if the hour field lists all 24 hours ('*', '*\/1', '0-23'), both
 *    passes are ticks — the job runs every real hour (or minute…); otherwise only the first pass is a
 *    tick — a daily 01:30 in New York or 02:30 in Paris runs once on fall-back day, at the first 01:30 /
 *    02:30 (summer time). This is Vixie cron's rule: fixed times once, wildcard hours by real time.
 * Missed ticks (`dueTicks`, window (lastTick ?? created, now]): one tick runs; several (all schedulers
 * were down) run per policy — 'once' (default) the latest only, 'all' the most recent `cap`, 'skip' the
 * latest only if it is within `graceMs` of now (a lone stale tick is skipped too). The returned lastTick
 * is the latest tick of the window even when it did not run.
 *
 * Run names: `<name>@20261201T080000.000Z` (UTC, fixed width, so one schedule's runs sort by tick).
 * Schedule names are [A-Za-z0-9._-]{1,64} without a leading dot; they are case-sensitive, so on a
 * case-insensitive file system 'Daily' and 'daily' would share files: use one case.
 *
 * Ticks are computed from wall-clock readings with the offsets Intl reports (cron-parser only parses and
 * walks the fields, in UTC): cron-parser's own zone handling depends on where a walk starts (starting
 * inside a skipped hour it misses the moved 02:30) and never returns on Australia/Lord_Howe's 30-minute
 * shifts.
 */
import { CronExpressionParser, type CronExpression } from 'cron-parser';
import { ZcqError } from '../errors.js';
import { canonicalTimeZone, isFixedOffsetZone, nextOffsetChange, recentOffsetChange, zoneOffset } from './zone.js';

/** A schedule, a bad schedule name or an impossible tick request. */
export class ScheduleError extends ZcqError {
  declare readonly code: 'ZCQ_BAD_SCHEDULE';
  /** The expression (or schedule name) at fault. */
  readonly input: string;
  /** What is wrong, without the input (the message is `<what> '<input>': <reason>`). */
  readonly reason: string;
  constructor(what: string, input: string, reason: string) {
    super('ZCQ_BAD_SCHEDULE', `${what} '${input}': ${reason}`, 2);
    this.input = input;
    this.reason = reason;
  }
}

function badExpr(expr: string, reason: string): ScheduleError {
  return new ScheduleError('cron expression', expr, reason);
}

/** Aliases accepted by parseSchedule, and the six-field (seconds first) expression each stands for. */
export const SCHEDULE_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  '@yearly': '0 0 0 1 1 *',
  '@annually': '0 0 0 1 1 *',
  '@monthly': '0 0 0 1 * *',
  '@weekly': '0 0 0 * * 0',
  '@daily': '0 0 0 * * *',
  '@midnight': '0 0 0 * * *',
  '@hourly': '0 0 * * * *',
});

/** A checked schedule. Plain data (JSON-serialisable); pass it to nextTick / ticksBetween / dueTicks. */
export interface Schedule {
  /** The expression as given (trimmed). */
  readonly expression: string;
  /** The same schedule as six fields, seconds first ('0 30 2 * * *'). */
  readonly fields: string;
  /** Canonical IANA time zone name; 'UTC' when none was given. */
  readonly tz: string;
  /** True when the expression has a seconds field (6 fields). */
  readonly hasSeconds: boolean;
  /** True when the hour field does not list all 24 hours: a repeated local time fires once (DST). */
  readonly fixedHour: boolean;
}

/** What to do when more than one tick fell into the window (schedulers were down or late). */
export type MissedPolicy = 'once' | 'all' | 'skip';

export const DEFAULT_MISSED_POLICY: MissedPolicy = 'once';
/** Default most-recent-ticks limit for the 'all' policy. */
export const DEFAULT_CATCH_UP_CAP = 100;
/** Default grace for the 'skip' policy: a tick older than this is not run. */
export const DEFAULT_GRACE_MS = 60_000;

const FIELD_NAMES = ['second', 'minute', 'hour', 'day-of-month', 'month', 'day-of-week'] as const;
const DOM = 3;
const DOW = 5;
/** Fixed instant used to check that an expression can fire at all (and that the zone loads). */
const PROBE_FROM = Date.UTC(2000, 0, 1);

interface Compiled {
  /**
   * The fields evaluated in UTC. We use it to walk *naive* wall-clock time (local readings stored as if
   * UTC), where there is no DST, and map readings to instants ourselves: cron-parser's own zone handling
   * gives answers that depend on the starting point near a change, and loops forever on the 30-minute
   * shifts of Australia/Lord_Howe.
   */
  naive: CronExpression;
  fixedHour: boolean;
}

const compiledCache = new WeakMap<object, Compiled>();

function quoteField(i: number, raw: string, why: string): string {
  return `${FIELD_NAMES[i]} '${raw}': ${why}`;
}

/** Turn a cron-parser message about one field into ours. */
function fieldReason(i: number, raw: string, msg: string): string {
  const name = FIELD_NAMES[i];
  let m = /got value (\S+) expected range (\d+)-(\d+)/.exec(msg);
  if (m) return `${name} ${m[1]} out of range ${m[2]}-${m[3]}`;
  m = /got range (\S+) expected range (\d+)-(\d+)/.exec(msg);
  if (m) {
    return m[1].includes('NaN') ? quoteField(i, raw, 'malformed range') : `${name} range ${m[1]} out of range ${m[2]}-${m[3]}`;
  }
  m = /Invalid range: (\d+)-(\d+), min/.exec(msg);
  if (m) return `${name} range ${m[1]}-${m[2]} runs backwards (start after end)`;
  if (/Invalid characters/.test(msg)) return quoteField(i, raw, 'invalid characters');
  m = /cannot resolve alias "([^"]*)"/.exec(msg);
  if (m) return quoteField(i, raw, `unknown name '${m[1]}'`);
  if (/cannot repeat at every/.test(msg)) return quoteField(i, raw, 'step must be a positive whole number');
  if (/Invalid repeat|Invalid range|Invalid list|Invalid wildcard/.test(msg)) return quoteField(i, raw, 'malformed');
  return quoteField(i, raw, msg.replace(/\.$/, '').replace(/^[A-Z]/, (c) => c.toLowerCase()));
}

function compile(fields6: string, exprForErrors: string): Compiled {
  let naive: CronExpression;
  try {
    naive = CronExpressionParser.parse(fields6, { tz: 'UTC', strict: true, currentDate: new Date(PROBE_FROM) });
  } catch (err) {
    const msg = (err as Error).message;
    if (/day of month/i.test(msg)) {
      const f = fields6.split(' ');
      throw badExpr(exprForErrors, `day-of-month '${f[DOM]}' never occurs in month '${f[4]}'`);
    }
    throw badExpr(exprForErrors, msg.replace(/\.$/, ''));
  }
  try {
    naive.next();
  } catch (err) {
    throw badExpr(exprForErrors, `never fires (${(err as Error).message})`);
  }
  return { naive, fixedHour: naive.fields.hour.values.length < 24 };
}

/**
 * Check a cron expression and time zone. Throws ScheduleError (code 'ZCQ_BAD_SCHEDULE') with a one-line
 * message such as "cron expression '61 * * * *': minute 61 out of range 0-59".
 */
export function parseSchedule(expr: string, tz?: string | null): Schedule {
  if (typeof expr !== 'string') throw badExpr(String(expr), 'not a string');
  const expression = expr.trim();
  if (expression === '') throw badExpr(expr, 'empty (expected 5 fields, 6 with seconds, or an alias such as @daily)');
  if (expression.length > 256) throw badExpr(expression.slice(0, 40) + '…', 'too long');

  let fields6: string;
  let hasSeconds: boolean;
  if (expression.startsWith('@')) {
    const alias = SCHEDULE_ALIASES[expression.toLowerCase()];
    if (!alias) {
      throw badExpr(expression, `unknown alias (use one of ${Object.keys(SCHEDULE_ALIASES).join(' ')}, or 5 or 6 fields)`);
    }
    fields6 = alias;
    hasSeconds = false;
  } else {
    const atoms = expression.split(/\s+/);
    if (atoms.length !== 5 && atoms.length !== 6) {
      throw badExpr(
        expression,
        `${atoms.length} field${atoms.length === 1 ? '' : 's'}; expected 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)`,
      );
    }
    hasSeconds = atoms.length === 6;
    const six = hasSeconds ? atoms : ['0', ...atoms];
    for (let i = 0; i < 6; i++) {
      const raw = six[i];
      if (/H/.test(raw.replace(/[a-z]{3}/gi, ''))) {
        throw badExpr(expression, quoteField(i, raw, "'H' (hashed/random) values are not supported"));
      }
      if (raw.includes('?') && !((i === DOM || i === DOW) && raw === '?')) {
        throw badExpr(expression, quoteField(i, raw, "'?' is only allowed as a whole day-of-month or day-of-week field"));
      }
      // check this field alone, so the error can name it
      const probe = ['0', '*', '*', '*', '*', '*'];
      probe[i] = raw === '?' ? '*' : raw;
      try {
        CronExpressionParser.parse(probe.join(' '), { tz: 'UTC', currentDate: new Date(PROBE_FROM) });
      } catch (err) {
        throw badExpr(expression, fieldReason(i, raw, (err as Error).message));
      }
    }
    const restricted = (s: string): boolean => s !== '*' && s !== '?';
    if (restricted(six[DOM]) && restricted(six[DOW])) {
      throw badExpr(
        expression,
        `day-of-month '${six[DOM]}' and day-of-week '${six[DOW]}' are both set, which cron treats as either/or; ` +
          `set one to '*' (for "first Monday" use day-of-week 1#1)`,
      );
    }
    fields6 = six.map((f, i) => ((i === DOM || i === DOW) && f === '?' ? '*' : f)).join(' ');
  }

  let zone = 'UTC';
  if (tz !== undefined && tz !== null) {
    const canonical = canonicalTimeZone(tz);
    if (!canonical) {
      throw badExpr(expression, `unknown time zone '${String(tz)}' (use an IANA name such as Europe/Paris or UTC)`);
    }
    zone = canonical;
  }
  const compiled = compile(fields6, expression);
  const schedule: Schedule = Object.freeze({ expression, fields: fields6, tz: zone, hasSeconds, fixedHour: compiled.fixedHour });
  compiledCache.set(schedule, compiled);
  return schedule;
}

function compiledOf(s: Schedule): Compiled {
  let c = compiledCache.get(s);
  if (!c) {
    // a Schedule read back from JSON: check it again rather than trust it
    if (!s || typeof s.fields !== 'string' || typeof s.tz !== 'string') {
      throw new ScheduleError('schedule', JSON.stringify(s) ?? String(s), 'not a schedule (use parseSchedule)');
    }
    const zone = canonicalTimeZone(s.tz);
    if (!zone) throw badExpr(s.expression ?? s.fields, `unknown time zone '${s.tz}'`);
    if (s.fields.split(' ').length !== 6) throw badExpr(s.expression ?? s.fields, 'stored fields are not six fields');
    c = compile(s.fields, s.expression ?? s.fields);
    compiledCache.set(s, c);
  }
  return c;
}

function toMs(t: Date | number, what: string): number {
  const ms = t instanceof Date ? t.getTime() : t;
  if (typeof ms !== 'number' || !Number.isFinite(ms)) throw new RangeError(`${what}: not a valid time (${String(t)})`);
  return ms;
}

/** The first naive time matching the fields strictly after naive time `x` (ms). */
function naiveAfter(c: Compiled, x: number): number {
  const from = Math.floor(x / 1000) * 1000; // ticks are whole seconds: "after x" = "after floor(x)"
  c.naive.reset(new Date(from));
  const r = c.naive.next().getTime();
  if (!(r > from)) throw new Error(`cron-parser returned ${new Date(r).toISOString()} for a time after ${new Date(from).toISOString()}`);
  return r;
}

/**
 * min{x in T : x > after}, in ms.
 *
 * The instants are cut into intervals of constant UTC offset o_k, [T_k, T_k+1). Within one, the ticks are
 *  - real ticks: L - o_k for matching naive readings L in [T_k + o_k, T_k+1 + o_k) — minus, for a
 *    fixed-hour schedule right after clocks went back (o_k-1 > o_k), the readings below T_k + o_k-1,
 *    which were already shown before the change (second pass);
 *  - after clocks jumped forward (o_k > o_k-1), skipped ticks: L - o_k-1 for matching L in the skipped
 *    readings [T_k + o_k-1, T_k + o_k), i.e. in [T_k, T_k + jump).
 * We look at the interval holding `after`, then the next ones, and stop at the first that has a tick.
 */
function nextTickMs(s: Schedule, after: number): number {
  const c = compiledOf(s);
  const tz = s.tz;
  const a = Math.floor(after / 1000) * 1000;
  let o = zoneOffset(a, tz);
  if (isFixedOffsetZone(tz)) return naiveAfter(c, a + o) - o;
  const prev = recentOffsetChange(a, tz); // a change further back no longer matters (MAX_SHIFT_MS)
  let start = prev ? prev.at : -Infinity; // T_k
  let oPrev = prev ? prev.before : o; // o_k-1 (= o when no recent change)
  for (let guard = 0; guard < 10_000; guard++) {
    // skipped readings, moved later by the jump
    let skipped = Infinity;
    if (o > oPrev) {
      const L = naiveAfter(c, Math.max(a + oPrev, start + oPrev - 1));
      if (L < start + o) skipped = L - oPrev;
    }
    // real readings
    const secondPassEnd = c.fixedHour && oPrev > o ? start + oPrev : start + o;
    const L = naiveAfter(c, Math.max(a + o, secondPassEnd - 1));
    const t = L - o;
    const from = Math.max(a, start);
    const change = nextOffsetChange(from, t, tz); // does this interval end before t?
    const real = change === null ? t : Infinity;
    const best = Math.min(real, skipped);
    if (best !== Infinity) return best;
    // no tick in this interval: go on to the next one
    oPrev = o;
    start = change as number;
    o = zoneOffset(start, tz);
  }
  throw new Error(`nextTick: no tick found after ${new Date(after).toISOString()} for '${s.expression}' in ${tz}`);
}

/** The first tick strictly after `after`. */
export function nextTick(schedule: Schedule, after: Date | number): Date {
  return new Date(nextTickMs(schedule, toMs(after, 'after')));
}

function checkCap(cap: number, what = 'cap'): void {
  if (!Number.isSafeInteger(cap) || cap < 1) throw new RangeError(`${what}: expected a whole number >= 1, got ${String(cap)}`);
}

/**
 * Ticks t with afterExclusive < t <= untilInclusive, oldest first, at most `cap` of them (the oldest
 * `cap`; see latestTicks for the newest).
 */
export function ticksBetween(schedule: Schedule, afterExclusive: Date | number, untilInclusive: Date | number, cap: number): Date[] {
  checkCap(cap);
  const until = toMs(untilInclusive, 'untilInclusive');
  const out: Date[] = [];
  let t = toMs(afterExclusive, 'afterExclusive');
  while (out.length < cap) {
    t = nextTickMs(schedule, t);
    if (t > until) break;
    out.push(new Date(t));
  }
  return out;
}

/**
 * The latest tick t with lo < t <= hi, or null. Does not walk the whole window: steps back from hi by
 * `hint` (doubling) until a tick is found, walks forward a few ticks, and bisects if there are more
 * (nextTick is monotone because T is fixed). About 2·log2(window / hint) nextTick calls at worst, however
 * many ticks the window holds; 2-3 when `hint` is the spacing of the ticks.
 */
function latestTickMs(s: Schedule, lo: number, hi: number, hint = 1000): number | null {
  if (hi <= lo || nextTickMs(s, lo) > hi) return null;
  let upper = Math.floor(hi / 1000) * 1000; // nextTick(upper) > hi: the tick at or before hi is not after it
  let span = Math.max(1000, Math.floor(hint / 1000) * 1000);
  let lower: number;
  let x: number;
  for (;;) {
    lower = Math.max(lo, upper - span);
    x = nextTickMs(s, lower);
    if (x <= hi) break;
    upper = lower;
    span *= 2;
  }
  // x is a tick in (lower, hi]; P(m) := nextTick(m) <= hi holds for m = lower and fails for m = upper
  let a = lower;
  for (let i = 0; i < 8; i++) {
    const y = nextTickMs(s, x);
    if (y > hi) return x;
    a = x;
    x = y;
  }
  // many ticks between: bisect on whole seconds for the last m with P(m); the tick is nextTick(m)
  let lowS = Math.ceil(a / 1000);
  let highS = upper / 1000;
  if (nextTickMs(s, lowS * 1000) > hi) lowS = Math.floor(a / 1000); // a had ms: keep P(low) true
  while (highS - lowS > 1) {
    const mid = Math.floor((lowS + highS) / 2);
    if (nextTickMs(s, mid * 1000) <= hi) lowS = mid;
    else highS = mid;
  }
  return nextTickMs(s, Math.max(lowS * 1000, lo));
}

/** The newest `count` ticks t with afterExclusive < t <= untilInclusive, oldest first. */
export function latestTicks(schedule: Schedule, afterExclusive: Date | number, untilInclusive: Date | number, count: number): Date[] {
  checkCap(count, 'count');
  const lo = toMs(afterExclusive, 'afterExclusive');
  let hi = toMs(untilInclusive, 'untilInclusive');
  const out: number[] = [];
  let hint = 1000;
  while (out.length < count) {
    const t = latestTickMs(schedule, lo, hi, hint);
    if (t === null) break;
    if (out.length > 0) hint = out[out.length - 1] - t;
    out.push(t);
    hi = t - 1;
  }
  return out.reverse().map((t) => new Date(t));
}

export interface DueTicksInput {
  schedule: Schedule;
  /** The last tick already handled (stored by the caller), or null if none yet. */
  lastTick: Date | number | null;
  now: Date | number;
  /** When the schedule was created: with no lastTick, ticks after this are considered. */
  created: Date | number;
  /** Default 'once'. */
  missed?: MissedPolicy;
  /** 'all': at most this many (the most recent). Default DEFAULT_CATCH_UP_CAP. */
  cap?: number;
  /** 'skip': a tick older than now - graceMs does not run. Default 60 s; make it at least 2 poll intervals. */
  graceMs?: number;
}

export interface DueTicks {
  /** Ticks that should produce a job now, oldest first. */
  due: Date[];
  /**
   * The value to store as the schedule's last tick: the latest tick of the window, even when it was
   * skipped; the old lastTick when the window held none. Never earlier than the lastTick passed in.
   */
  lastTick: Date | null;
  /** True when the window held ticks that are not in `due` (missed and dropped by the policy). */
  dropped: boolean;
}

/**
 * Which ticks should produce a job now. The window is (lastTick ?? created, now]:
 *  - no tick in it: nothing is due (also when now <= lastTick: a clock that went back never re-runs);
 *  - exactly one: it is due — except under 'skip' when it is older than graceMs;
 *  - several (ticks were missed): 'once' → only the latest; 'all' → the most recent `cap`, oldest
 *    first; 'skip' → the latest, and only if it is within graceMs of now (else nothing).
 * 'skip' applies its grace to a lone tick too, so that a daily job does not run hours late after an
 * outage (like Kubernetes' startingDeadlineSeconds); graceMs must exceed the scheduler's poll interval.
 */
export function dueTicks(input: DueTicksInput): DueTicks {
  const { schedule } = input;
  const missed = input.missed ?? DEFAULT_MISSED_POLICY;
  if (missed !== 'once' && missed !== 'all' && missed !== 'skip') {
    throw new RangeError(`missed: expected 'once', 'all' or 'skip', got ${String(missed)}`);
  }
  const cap = input.cap ?? DEFAULT_CATCH_UP_CAP;
  checkCap(cap);
  const graceMs = input.graceMs ?? DEFAULT_GRACE_MS;
  if (!(graceMs >= 0) || !Number.isFinite(graceMs)) throw new RangeError(`graceMs: expected a number >= 0, got ${String(graceMs)}`);
  const now = toMs(input.now, 'now');
  const last = input.lastTick === null || input.lastTick === undefined ? null : toMs(input.lastTick, 'lastTick');
  const start = last ?? toMs(input.created, 'created');
  const unchanged: DueTicks = { due: [], lastTick: last === null ? null : new Date(last), dropped: false };

  if (now <= start) return unchanged;
  const first = nextTickMs(schedule, start);
  if (first > now) return unchanged;
  const latest = latestTickMs(schedule, start, now) as number; // non-null: `first` is in the window
  const several = latest !== first;
  const lastTick = new Date(latest);

  if (missed === 'skip') {
    const fresh = now - latest <= graceMs;
    return { due: fresh ? [new Date(latest)] : [], lastTick, dropped: several || !fresh };
  }
  if (!several) return { due: [new Date(latest)], lastTick, dropped: false };
  if (missed === 'once') return { due: [new Date(latest)], lastTick, dropped: true };
  const due = latestTicks(schedule, start, now, cap);
  return { due, lastTick, dropped: due[0].getTime() !== first };
}

const NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

/** Why `name` is not a valid schedule name, or null if it is. */
export function scheduleNameProblem(name: string): string | null {
  if (typeof name !== 'string') return 'not a string';
  if (NAME_RE.test(name)) return null;
  if (name.length === 0) return 'empty (use 1-64 letters, digits, -, _ or .)';
  if (name.length > 64) return `${name.length} characters (at most 64)`;
  if (name.startsWith('.')) return 'must not start with a dot';
  const bad = [...name].find((ch) => !/[A-Za-z0-9._-]/.test(ch)) ?? '?';
  return `character ${JSON.stringify(bad)} not allowed (use letters, digits, -, _ or .)`;
}

/** Letters, digits, '-', '_', '.'; 1 to 64 characters; no leading dot. */
export function scheduleNameValid(name: string): boolean {
  return scheduleNameProblem(name) === null;
}

/** Throw ScheduleError ("schedule name 'a b': character \" \" not allowed …") unless the name is valid. */
export function assertScheduleName(name: string): void {
  const problem = scheduleNameProblem(name);
  if (problem) throw new ScheduleError('schedule name', String(name), problem);
}

function compactUtc(t: number): string {
  const iso = new Date(t).toISOString(); // 2026-12-01T08:00:00.000Z
  if (!/^\d{4}-/.test(iso)) throw new RangeError(`tick ${iso}: outside years 0000-9999`);
  return iso.replace(/[-:]/g, ''); // 20261201T080000.000Z
}

/**
 * The run name of (schedule, tick): `<name>@<tick in UTC, 20261201T080000.000Z>`. File-name safe, one
 * per (name, tick), and run names of one schedule sort in tick order (fixed width).
 */
export function runName(scheduleName: string, tick: Date | number): string {
  assertScheduleName(scheduleName);
  return `${scheduleName}@${compactUtc(toMs(tick, 'tick'))}`;
}

const RUN_RE = /^([^@]+)@(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z$/;

/** Inverse of runName, or null when `run` is not a run name. */
export function parseRunName(run: string): { scheduleName: string; tick: Date } | null {
  const m = RUN_RE.exec(run);
  if (!m || !scheduleNameValid(m[1])) return null;
  const t = Date.parse(`${m[2]}-${m[3]}-${m[4]}T${m[5]}:${m[6]}:${m[7]}.${m[8]}Z`);
  if (!Number.isFinite(t) || compactUtc(t) !== run.slice(m[1].length + 1)) return null;
  return { scheduleName: m[1], tick: new Date(t) };
}
