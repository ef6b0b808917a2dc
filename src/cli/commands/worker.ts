/** `zcq worker`: run jobs until stopped (SIGINT/SIGTERM drain, a second signal releases at once). */
import { Command, Option } from 'commander';
import { stat } from 'node:fs/promises';
import { UsageError } from '../../errors.js';
import { WORKER_BOUNDS, WORKER_DEFAULTS, defaultHeartbeatMs, maxHeartbeatMs } from '../../defaults.js';
import { WORKER_NAME, parseSetting } from '../../spool/config.js';
import { formatDuration } from '../../text.js';
import { collect, durationOpt, durationOption, globals, intOpt, openSpool } from '../common.js';

const B = WORKER_BOUNDS;
const D = WORKER_DEFAULTS;

export function register(program: Command): void {
  program.command('worker')
    .description('claim and run jobs')
    .option('--name <name>', 'the worker\'s name: the live configuration for it applies (zcq config set NAME ...); several workers may share one (default: the host name)')
    .option('--root <dir>', 'folder job modules must live in (repeatable; default: the current folder)', collect)
    .addOption(intOpt('-c, --concurrency <n>', 'jobs at once (wins over zcq config concurrency=)', '--concurrency', B.concurrency, undefined, 'zcq config, else the CPU count'))
    .addOption(durationOpt('--poll <duration>', 'poll interval', '--poll', B.pollMs, D.pollMs))
    .option('--queue <name>', 'serve only this queue, in the order given (repeatable; wins over zcq config queues=; default: all)', collect)
    .option('--fn <glob>', 'take only jobs whose function matches (repeatable; * any characters, ? one, !GLOB excludes; wins over zcq config fn=)', collect)
    .option('--exit-when-idle', 'exit 0 once no job is pending, claimed or due')
    .addOption(intOpt('--max-jobs <n>', 'claim this many jobs, finish them, exit', '--max-jobs', B.maxJobs))
    .addOption(intOpt('--threads <n>', 'pool threads the jobs share, with --runtime threads', '--threads', B.threads, undefined, 'CPU count, at most --concurrency'))
    .addOption(new Option('--runtime <kind>', 'threads; processes for jobs that may crash their process; inline for the worker\'s own event loop (least memory, but a timeout cannot stop a job)').choices(['threads', 'processes', 'inline']).default(D.runtime))
    .addOption(durationOpt('--lease <duration>', 'lease time; on NFS at least heartbeat + actimeo', '--lease', B.leaseMs, D.leaseMs))
    .addOption(new Option('--heartbeat <duration>', `heartbeat interval (${formatDuration(B.heartbeatMs.min)} to lease/2) (default: lease/${D.heartbeatDivisor})`).argParser(parseHeartbeat))
    .addOption(durationOpt('--grace <duration>', 'on SIGINT/SIGTERM, time running jobs get to finish', '--grace', B.graceMs, D.graceMs))
    .addOption(durationOpt('--kill-grace <duration>', 'after a timeout or cancel, time before the thread is terminated', '--kill-grace', B.killGraceMs, D.killGraceMs))
    .addOption(durationOpt('--leftover-age <duration>', `remove crash leftovers (temp and .nfs* files) older than this; heartbeats of gone workers after ${formatDuration(D.goneWorkerAgeMs)}, or this when given`, '--leftover-age', B.leftoverAgeMs, D.leftoverAgeMs))
    .addOption(durationOpt('--housekeeping <duration>', 'how often to clean leftovers and prune finished records by the retention settings (zcq retention)', '--housekeeping', B.housekeepingMs, D.housekeepingMs))
    .option('--no-watch', 'poll only (no fs.watch)')
    .option('--no-scheduler', 'do not act as a cron scheduler')
    .option('-v, --verbose', 'log every job start, not only outcomes')
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const leaseMs = o.lease as number;
      const heartbeatMs = o.heartbeat as number | undefined;
      if (heartbeatMs !== undefined && heartbeatMs > maxHeartbeatMs(leaseMs)) {
        throw new UsageError(`--heartbeat '${formatDuration(heartbeatMs)}': must be at most half the lease (${formatDuration(maxHeartbeatMs(leaseMs))} with --lease ${formatDuration(leaseMs)}); give a shorter heartbeat or a longer --lease`);
      }
      const name = o.name as string | undefined;
      if (name !== undefined && !WORKER_NAME.test(name)) throw new UsageError(`--name '${name.slice(0, 80)}': use letters, digits, '.', '_' or '-' (at most 240), starting with a letter or digit`);
      const fn = o.fn as string[] | undefined;
      if (fn) parseSetting('fn', fn);
      const roots = (o.root as string[] | undefined) ?? [];
      await checkRoots(roots);
      const spool = await openSpool(cmd);
      const { makeLogger } = await import('../../log.js');
      const base = makeLogger({ json: globals(cmd).json, batch: true });
      const log = o.verbose ? base : (event: string, fields?: Record<string, unknown>) => { if (event !== 'job.start' && event !== 'job.skipped') base(event, fields); };
      const leftoverGiven = cmd.getOptionValueSource('leftoverAge') !== 'default';
      const worker = await spool.runWorker({
        name, fn, roots, concurrency: o.concurrency as number | undefined, pollMs: o.poll as number,
        queues: (o.queue as string[] | undefined) ?? [], exitWhenIdle: Boolean(o.exitWhenIdle), maxJobs: o.maxJobs as number | undefined,
        runtime: o.runtime as 'threads' | 'processes' | 'inline', threads: o.threads as number | undefined,
        leaseMs, heartbeatMs: heartbeatMs ?? defaultHeartbeatMs(leaseMs),
        leftoverAgeMs: o.leftoverAge as number,
        // One option sets both ages when given; otherwise gone workers keep their own, longer default.
        goneWorkerAgeMs: leftoverGiven ? o.leftoverAge as number : D.goneWorkerAgeMs,
        housekeepingMs: o.housekeeping as number,
        graceMs: o.grace as number, killGraceMs: o.killGrace as number, watch: o.watch !== false,
        handleSignals: true, log, scheduler: o.scheduler !== false,
      });
      await worker.done;
    });
}

/** --heartbeat: its own range here; the bound by the lease is checked once both are known. */
function parseHeartbeat(v: string): number {
  return durationOption('--heartbeat', { min: B.heartbeatMs.min, max: B.leaseMs.max / 2 })(v);
}

/** Every --root must be a folder that exists: a typo would otherwise fail every job with "not found". */
async function checkRoots(roots: string[]): Promise<void> {
  for (const r of roots) {
    let isDir: boolean;
    try { isDir = (await stat(r)).isDirectory(); } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(`--root '${r}': ${code === 'ENOENT' || code === 'ENOTDIR' ? 'no such folder' : `cannot be read (${code})`}; give the folder that holds the job modules`);
    }
    if (!isDir) throw new UsageError(`--root '${r}': not a folder; give the folder that holds the job modules`);
  }
}
