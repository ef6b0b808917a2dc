// `zcq cron ls` through the real binary: the next run on the schedule's own zone's clock (with the zone's
// abbreviation, the IANA name in the tz field), and "last never" until the schedule has made a job — not the
// creation time the scheduler's window starts from.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cleanupTemp, idsIn, killAll, newSpool, startWorker, until, zcq } from '../helpers.js';

afterEach(killAll);
afterAll(cleanupTemp);

/** `zcq cron ls` in a pipe: one schedule a line, tab-separated fields. */
function cronLs(dir: string): string[][] {
  const r = zcq(dir, ['cron', 'ls']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trimEnd().split('\n').filter(Boolean).map((l) => l.split('\t'));
}

/** The wall clock of `iso` in `tz`, as "YYYY-MM-DD HH:MM:SS", computed here independently of zcq. */
function wallClock(iso: string, tz: string): string {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-GB', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' })
    .formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/** A tick from a run id NAME@YYYYMMDDTHHMMSS.mmmZ, as ISO. */
function tickIso(id: string): string {
  const m = /@(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z$/.exec(id)!;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`;
}

describe('zcq cron ls', () => {
  it('shows next on the schedule\'s zone clock with its abbreviation, and last never before a run', () => {
    const dir = newSpool();
    const add = zcq(dir, ['cron', 'add', 'paris', '30 12 * * *', './jobs.mjs#add', '--tz', 'Europe/Paris', '--args-json', '[1,2]']);
    expect(add.code, add.stderr).toBe(0);
    // cron add prints the next run the same way.
    expect(add.stdout).toMatch(/^paris\t30 12 \* \* \*\tEurope\/Paris\tnext \d{4}-\d\d-\d\d 12:30:00 \S+ Europe\/Paris\n$/);

    const [row] = cronLs(dir);
    expect(row!.slice(0, 4)).toEqual(['paris', '30 12 * * *', 'Europe/Paris', './jobs.mjs#add']);
    // 12:30 in Paris, whatever the season (UTC would read 10:30 or 11:30), its offset (GMT+1 or GMT+2 in Node's
    // en-US data; CET/CEST elsewhere) and the zone's name.
    expect(row![4]).toMatch(/^next \d{4}-\d\d-\d\d 12:30:00 (GMT\+[12]|CES?T) Europe\/Paris$/);
    expect(row![5]).toBe('last never');
    expect(row![6]).toBe('missed=once');

    const [v] = JSON.parse(zcq(dir, ['--json', 'cron', 'ls']).stdout);
    expect(v.nextRun).toMatch(/T1[01]:30:00\.000Z$/);
    expect(row![4]!.slice(0, 'next '.length + 19)).toBe(`next ${wallClock(v.nextRun, 'Europe/Paris')}`);
    expect(`next ${v.nextRunLocal} Europe/Paris`).toBe(row![4]);
    expect(v.lastRun).toBeNull();
    // The scheduler's window starts at the creation time: that is lastTick, not what "last" shows.
    expect(v.lastTick).not.toBeNull();

    // A paused schedule says so instead of a next run; last is still never.
    expect(zcq(dir, ['cron', 'pause', 'paris']).code).toBe(0);
    expect(cronLs(dir)[0]!.slice(4, 6)).toEqual(['paused', 'last never']);
  });

  it('after a worker ran it: last is the tick of the latest job made, on the zone clock', async () => {
    const dir = newSpool();
    const add = zcq(dir, ['cron', 'add', 'tokyo', '* * * * * *', './jobs.mjs#add', '--tz', 'Asia/Tokyo', '--args-json', '[1,2]']);
    expect(add.code, add.stderr).toBe(0);
    expect(cronLs(dir)[0]![5]).toBe('last never');
    const w = startWorker(dir, ['--poll', '200ms', '--concurrency', '2']);
    await until(() => idsIn(dir, 'done', 'default').some((n) => n.startsWith('tokyo@')), 30_000);
    // Stop producing jobs, then compare with the newest job the schedule made.
    expect(zcq(dir, ['cron', 'pause', 'tokyo']).code).toBe(0);
    await until(() => idsIn(dir, 'pending').length === 0 && idsIn(dir, 'claimed').length === 0, 30_000);
    w.kill('SIGTERM');
    await w.exited;

    // (A pass that read the schedule just before the pause may have made one more: look in pending/ too.)
    const made = [...idsIn(dir, 'done', 'default'), ...idsIn(dir, 'pending', 'default')].filter((n) => n.startsWith('tokyo@')).sort();
    const newest = tickIso(made[made.length - 1]!);
    const [v] = JSON.parse(zcq(dir, ['--json', 'cron', 'ls']).stdout);
    expect(v.lastRun).toBe(newest);
    const row = cronLs(dir)[0]!;
    expect(row[4]).toBe('paused');
    // Tokyo has no daylight-saving time: UTC+9 (GMT+9 or JST, by the ICU data).
    expect(row[5]).toMatch(/^last \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ Asia\/Tokyo$/);
    expect(row[5]!.slice('last '.length, 'last '.length + 19)).toBe(wallClock(newest, 'Asia/Tokyo'));
    expect(wallClock(newest, 'Asia/Tokyo')).not.toBe(wallClock(newest, 'UTC'));

    // Another schedule in the same zone: 09:00 on Tokyo's clock (00:00 UTC), never run.
    expect(zcq(dir, ['cron', 'add', 'nine', '0 9 * * *', './jobs.mjs#add', '--tz', 'Asia/Tokyo']).code).toBe(0);
    const nine = cronLs(dir).find((r) => r[0] === 'nine')!;
    expect(nine[4]).toMatch(/^next \d{4}-\d\d-\d\d 09:00:00 \S+ Asia\/Tokyo$/);
    expect(nine[5]).toBe('last never');
  }, 90_000);
});
