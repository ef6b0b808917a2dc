/** `zcq cron add|ls|rm|pause|resume`: schedules stored in the spool, run by every worker's scheduler. */
import { Command, Option } from 'commander';
import { CLI_BOUNDS, CRON_DEFAULTS, JOB_BOUNDS, JOB_DEFAULTS } from '../../defaults.js';
import type { ScheduleView } from '../../schedule/store.js';
import { durationOpt, globals, intOpt, jobArgs, openSpool, printJson, row } from '../common.js';
import { zoned } from '../format.js';

export function register(program: Command): void {
  const cron = program.command('cron').description('recurring jobs: cron schedules stored in the spool');
  cron.command('add <name> <expr> <fn> [args...]')
    .description("add or replace a schedule: 5 fields (or 6 with seconds first) or @hourly/@daily/…; args as for put")
    .option('--tz <zone>', 'IANA time zone, e.g. Europe/Paris', 'UTC')
    .option('--args-json <array>', "the job's arguments as a JSON array")
    .option('-q, --queue <name>', 'queue of the jobs', JOB_DEFAULTS.queue)
    .addOption(intOpt('-r, --retries <n>', 'retries of each job', '--retries', JOB_BOUNDS.retries, JOB_DEFAULTS.retries))
    .addOption(durationOpt('-t, --timeout <duration>', 'time limit of each job', '--timeout', JOB_BOUNDS.timeoutMs, undefined, 'none'))
    .addOption(new Option('--missed <policy>', 'after an outage: once (one run for the missed window), all (every missed tick up to --cap), skip').choices(['once', 'all', 'skip']).default('once'))
    .addOption(intOpt('--cap <n>', 'with --missed all: at most this many catch-up runs', '--cap', CLI_BOUNDS.cronCap, CRON_DEFAULTS.cap))
    .addOption(new Option('--overlap <policy>', 'skip: do not start a tick while the previous run is pending or running').choices(['allow', 'skip']).default('allow'))
    .action(async (name: string, expr: string, fn: string, args: string[], o: Record<string, unknown>, cmd: Command) => {
      const timeoutMs = (o.timeout as number | undefined) ?? null;
      const spool = await openSpool(cmd);
      const s = await spool.addSchedule({ name, expr, tz: o.tz as string | undefined, fn, args: jobArgs(args, o.argsJson), queue: o.queue as string, retries: o.retries as number, timeoutMs, missed: o.missed as 'once', cap: o.cap as number, overlap: o.overlap as 'allow' });
      const [view] = (await spool.listSchedules()).filter((v) => v.name === s.name);
      if (globals(cmd).json) printJson(view && withLocal(view));
      else row(s.name, s.expr, s.tz, `next ${view ? nextText(view) : '-'}`);
    });
  cron.command('ls')
    .description('schedules, their last tick and next run')
    .action(async (_o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const views = await spool.listSchedules();
      if (globals(cmd).json) { printJson(views.map(withLocal)); return; }
      // Times on the schedule's own zone's clock: "next 2026-12-02 02:30:00 GMT+1 Europe/Paris".
      for (const v of views) {
        row(v.name, v.expr, v.tz, v.fn, v.paused ? 'paused' : `next ${nextText(v)}`, `last ${v.lastRun ? inZone(v.lastRun, v.tz) : 'never'}`, `missed=${v.missed}${v.overlap === 'skip' ? ' overlap=skip' : ''}`);
      }
    });
  cron.command('rm <name>').description('remove a schedule').action(async (name: string, _o, cmd: Command) => {
    await (await openSpool(cmd)).removeSchedule(name);
  });
  cron.command('pause <name>').description('stop producing jobs (until resume)').action(async (name: string, _o, cmd: Command) => {
    await (await openSpool(cmd)).pauseSchedule(name);
  });
  cron.command('resume <name>').description('produce jobs again, from now on (paused ticks are not replayed)').action(async (name: string, _o, cmd: Command) => {
    await (await openSpool(cmd)).resumeSchedule(name);
  });
}

/**
 * An instant on the zone's clock with its abbreviation or offset and the zone's name (once when they are the
 * same): "2026-12-02 02:30:00 GMT+1 Europe/Paris", "2026-12-02 01:30:00 UTC".
 */
function inZone(iso: string, tz: string): string {
  const local = zoned(Date.parse(iso), tz);
  return local.endsWith(` ${tz}`) ? local : `${local} ${tz}`;
}

/** The next run on the schedule's zone's clock; '-' when none. */
function nextText(v: ScheduleView): string {
  return v.nextRun ? inZone(v.nextRun, v.tz) : '-';
}

/** --json: the view with the next run as the zone's clock reads it (as status gives it). */
function withLocal(v: ScheduleView): ScheduleView & { nextRunLocal: string | null } {
  return { ...v, nextRunLocal: v.nextRun ? zoned(Date.parse(v.nextRun), v.tz) : null };
}
