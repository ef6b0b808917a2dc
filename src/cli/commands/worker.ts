/** `zcq worker`: run jobs until stopped (SIGINT/SIGTERM drain, a second signal releases at once). */
import { Command, Option } from 'commander';
import { collect, durationOption, globals, intOption, openSpool } from '../common.js';

export function register(program: Command): void {
  program.command('worker')
    .description('claim and run jobs')
    .option('--root <dir>', 'folder job modules must live in (repeatable; default: the current folder)', collect, [])
    .option('-c, --concurrency <n>', 'jobs at once (default: CPU count)', intOption('--concurrency', 1, 1024))
    .option('--poll <duration>', 'poll interval (default 1s)', durationOption('--poll'))
    .option('--queue <name>', 'serve only this queue (repeatable)', collect, [])
    .option('--exit-when-idle', 'exit 0 once no job is pending, claimed or due')
    .option('--max-jobs <n>', 'claim this many jobs, finish them, exit', intOption('--max-jobs', 1, 1e9))
    .option('--threads <n>', 'pool threads the jobs share, with --runtime threads (default: CPU count, at most --concurrency)', intOption('--threads', 1, 1024))
    .addOption(new Option('--runtime <kind>', 'threads; processes for jobs that may crash their process; inline for the worker\'s own event loop (least memory, but a timeout cannot stop a job)').choices(['threads', 'processes', 'inline']).default('threads'))
    .option('--lease <duration>', 'lease time (default 30s; on NFS at least heartbeat + actimeo)', durationOption('--lease'))
    .option('--heartbeat <duration>', 'heartbeat interval (default lease/6)', durationOption('--heartbeat'))
    .option('--grace <duration>', 'on SIGINT/SIGTERM, time running jobs get to finish (default 10s)', durationOption('--grace'))
    .option('--kill-grace <duration>', 'after a timeout or cancel, time before the thread is terminated (default 5s)', durationOption('--kill-grace'))
    .option('--leftover-age <duration>', 'remove crash leftovers (temp and .nfs* files, heartbeats of gone workers) older than this (default 1h; gone workers 1d)', durationOption('--leftover-age'))
    .option('--housekeeping <duration>', 'how often to clean leftovers (default 60s)', durationOption('--housekeeping'))
    .option('--no-watch', 'poll only (no fs.watch)')
    .option('--no-scheduler', 'do not act as a cron scheduler')
    .option('-v, --verbose', 'log every job start, not only outcomes')
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const spool = await openSpool(cmd);
      const { makeLogger } = await import('../../log.js');
      const base = makeLogger({ json: globals(cmd).json });
      const log = o.verbose ? base : (event: string, fields?: Record<string, unknown>) => { if (event !== 'job.start') base(event, fields); };
      const worker = await spool.runWorker({
        roots: o.root as string[], concurrency: o.concurrency as number | undefined, pollMs: o.poll as number | undefined,
        queues: o.queue as string[], exitWhenIdle: Boolean(o.exitWhenIdle), maxJobs: o.maxJobs as number | undefined,
        runtime: o.runtime as 'threads' | 'processes' | 'inline', threads: o.threads as number | undefined, leaseMs: o.lease as number | undefined, heartbeatMs: o.heartbeat as number | undefined,
        leftoverAgeMs: o.leftoverAge as number | undefined, goneWorkerAgeMs: o.leftoverAge as number | undefined, housekeepingMs: o.housekeeping as number | undefined,
        graceMs: o.grace as number | undefined, killGraceMs: o.killGrace as number | undefined, watch: o.watch !== false,
        handleSignals: true, log, scheduler: o.scheduler !== false,
      });
      await worker.done;
    });
}
