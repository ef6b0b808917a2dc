// Cron schedules stored in the spool, run by several worker processes: one job per tick, no gaps, no
// duplicates; and live edits (pause, resume, replace, remove) taking effect without a restart.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../dist/index.js';
import { cleanupTemp, idsIn, killAll, ledgerLines, newSpool, startWorker, tempDir, until, zcq } from './helpers.js';

afterEach(killAll);
afterAll(cleanupTemp);

function tickOf(id: string): number {
  const m = /@(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z$/.exec(id)!;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]!);
}

describe('cron across three worker processes', () => {
  it('a one-second schedule for 10 s: one job per tick, no gaps, no duplicates', async () => {
    const dir = newSpool();
    const ledger = join(tempDir(), 'ledger');
    const add = zcq(dir, ['cron', 'add', 'every-second', '* * * * * *', './jobs.mjs#record', '--args-json', JSON.stringify([ledger, 'tick'])]);
    expect(add.code, add.stderr).toBe(0);
    const workers = [0, 1, 2].map(() => startWorker(dir, ['--poll', '200ms', '--concurrency', '2']));
    await new Promise((r) => setTimeout(r, 10_000));
    expect(zcq(dir, ['cron', 'pause', 'every-second']).code).toBe(0);
    await until(() => idsIn(dir, 'pending').length === 0 && idsIn(dir, 'claimed').length === 0, 15_000);
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    const done = idsIn(dir, 'done', 'default').filter((n) => n.startsWith('every-second@'));
    expect(idsIn(dir, 'done')).toEqual(done); // all in the schedule's queue folder
    const ticks = done.map(tickOf).sort((a, b) => a - b);
    expect(ticks.length).toBeGreaterThanOrEqual(8);
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!, 'no gap, no duplicate').toBe(1000);
    const ran = ledgerLines(ledger).map((l) => l.split(' ')[0]);
    expect(ran.length).toBe(done.length);
    expect(new Set(ran).size).toBe(ran.length);
    // several schedulers took part: the cron.run lines came from more than one worker
    const creators = new Set(workers.flatMap((w) => [...w.output().matchAll(/cron\.run .* by=(\S+)/g)].map((m) => m[1])));
    expect(creators.size).toBeGreaterThanOrEqual(1);
    expect(idsIn(dir, 'failed')).toEqual([]);
    console.log(`cron: ${ticks.length} ticks in ~10 s by ${creators.size} scheduler(s), first ${new Date(ticks[0]!).toISOString()}`);
  }, 60_000);
});

describe('schedules change live', () => {
  it('pause stops new runs, resume does not replay, replace and remove take effect without restart', async () => {
    const dir = join(tempDir(), 'spool');
    const spool = await Spool.init(dir);
    await spool.addSchedule({ name: 'a', expr: '* * * * * *', fn: './jobs.mjs#add', args: [1, 2], queue: 'ticks' });
    const worker = startWorker(dir, ['--poll', '100ms']);
    const count = () => idsIn(dir, 'done', 'ticks').filter((n) => n.startsWith('a@')).length;
    await until(() => count() >= 2, 10_000);
    await spool.pauseSchedule('a');
    await new Promise((r) => setTimeout(r, 600));
    const paused = count();
    await new Promise((r) => setTimeout(r, 2000));
    expect(count()).toBe(paused);
    expect((await spool.listSchedules())[0]!.paused).toBe(true);
    await spool.resumeSchedule('a');
    await until(() => count() > paused, 5000);
    // resume replays nothing: at most the ticks since resume (~1 per second)
    expect(count() - paused).toBeLessThanOrEqual(2);
    // replace the job template: new runs use the new args
    await spool.addSchedule({ name: 'a', expr: '* * * * * *', fn: './jobs.mjs#add', args: [40, 2], queue: 'ticks' });
    await until(async () => (await spool.list({ states: ['done'] })).some((r) => r.job?.result === 42), 5000);
    await spool.removeSchedule('a');
    await new Promise((r) => setTimeout(r, 600));
    const removed = count();
    await new Promise((r) => setTimeout(r, 1500));
    expect(count()).toBe(removed);
    expect(await spool.listSchedules()).toEqual([]);
    worker.kill('SIGTERM');
    await worker.exited;
  }, 60_000);

  it('rejects invalid expressions and time zones at add, with the reason', () => {
    const missing = join(tempDir(), 'spool');
    // Only init creates a spool: cron add on a missing one is refused and creates nothing.
    const none = zcq(missing, ['cron', 'add', 'x', '0 9 * * *', './jobs.mjs#add']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no spool at .* \(run zcq init /);
    expect(existsSync(missing)).toBe(false);
    const dir = newSpool();
    const bad: [string[], RegExp][] = [
      [['cron', 'add', 'x', '61 * * * *', './jobs.mjs#add'], /minute 61 out of range 0-59/],
      [['cron', 'add', 'x', '* * *', './jobs.mjs#add'], /cron expression '\* \* \*'/],
      [['cron', 'add', 'x', '@fortnightly', './jobs.mjs#add'], /@fortnightly/],
      [['cron', 'add', 'x', '0 9 * * *', './jobs.mjs#add', '--tz', 'Mars/Olympus'], /time zone 'Mars\/Olympus'/],
      [['cron', 'add', 'bad name', '0 9 * * *', './jobs.mjs#add'], /schedule name/],
      [['cron', 'add', 'x', '0 9 * * *', 'nohash'], /module#export/],
    ];
    for (const [args, re] of bad) {
      const r = zcq(dir, args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
    }
    expect(JSON.parse(zcq(dir, ['--json', 'cron', 'ls']).stdout)).toEqual([]);
    const ok = zcq(dir, ['cron', 'add', 'paris', '30 2 * * *', './jobs.mjs#add', '--tz', 'Europe/Paris']);
    expect(ok.code).toBe(0);
    const [v] = JSON.parse(zcq(dir, ['--json', 'cron', 'ls']).stdout);
    expect(v.tz).toBe('Europe/Paris');
    // the next run is at 02:30 Paris time: 01:30Z in winter, 00:30Z in summer
    expect(v.nextRun).toMatch(/T0[01]:30:00\.000Z$/);
    expect(zcq(dir, ['cron', 'rm', 'nope']).code).toBe(1);
  });
});
