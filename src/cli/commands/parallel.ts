/**
 * `zcq parallel [--postprocess FN] < items.ndjson` and `zcq serial [--postprocess FN] < items.ndjson`:
 * composite jobs (zc.async's parallel and serial, Celery's chord and chain). The items are read as for
 * `zcq put -` (one JSON object a line, all or, on a bad line, none); the command prints the id of the
 * postprocess job, which `zcq wait` waits on. The postprocess receives one argument: the members'
 * entries in input order, `{ id, state, result }` or `{ id, state, failure }`; without --postprocess a
 * built-in one returns that array as its result.
 */
import { Command, Option } from 'commander';
import { PutItemError, UsageError } from '../../errors.js';
import type { PutOptions } from '../../client/spool.js';
import { JOB_BOUNDS, JOB_DEFAULTS } from '../../defaults.js';
import { formatDuration, jsonLine } from '../../text.js';
import { durationOpt, globals, intOpt, line, openSpool, printJson, warn } from '../common.js';
import { lineError, parseJobLines, readStdin } from './put.js';

export type CompositeKind = 'parallel' | 'serial';

const ABOUT: Record<CompositeKind, string> = {
  parallel: 'run the jobs read from stdin (one JSON object a line, as for put -) all at once, on any workers, then a postprocess job with their results; prints the postprocess id',
  serial: 'run the jobs read from stdin (one JSON object a line, as for put -) one after the other, each once the previous one is done (a failure stops the chain: the rest end cancelled), then a postprocess job with their results; prints the postprocess id',
};

export function register(program: Command): void {
  for (const kind of ['parallel', 'serial'] as const) registerComposite(program, kind);
}

function registerComposite(program: Command, kind: CompositeKind): void {
  program.command(kind)
    .description(ABOUT[kind])
    .option('-p, --postprocess <fn>', 'module#export run once every member has ended, with their entries [{id, state, result|failure}] in input order (default: a built-in one that returns them)')
    .option('-q, --queue <name>', 'queue of the members that set none, and of the postprocess', JOB_DEFAULTS.queue)
    .addOption(intOpt('-r, --retries <n>', 'further attempts after a failure, for every member that sets none', '--retries', JOB_BOUNDS.retries, JOB_DEFAULTS.retries))
    .addOption(durationOpt('--backoff <duration>', 'fixed delay between retries', '--backoff', JOB_BOUNDS.backoffMs, undefined, `exponential with jitter from ${formatDuration(JOB_DEFAULTS.backoff.baseMs)}`))
    .addOption(durationOpt('-t, --timeout <duration>', 'time limit of one attempt of a member, e.g. 30s', '--timeout', JOB_BOUNDS.timeoutMs, undefined, 'none'))
    .addOption(new Option('--on-interrupt <policy>', 'when a member\'s worker dies: retry or fail').choices(['retry', 'fail']).default(JOB_DEFAULTS.onInterrupt))
    .addOption(intOpt('--max-interrupts <n>', 'interruptions before a member fails as a poison job', '--max-interrupts', JOB_BOUNDS.maxInterrupts, JOB_DEFAULTS.maxInterrupts))
    .option('-w, --wait', 'block until the postprocess finishes; print its result; exit 1 if it failed')
    .action(async (o: Record<string, string | number | boolean | undefined>, cmd: Command) => {
      if (process.stdin.isTTY) throw new UsageError(`${kind}: reads its jobs from standard input, one JSON object a line; pipe them in (zcq ${kind} < items.ndjson)`);
      const common: PutOptions = {
        queue: o.queue as string, retries: o.retries as number, backoff: o.backoff as number | undefined,
        timeout: o.timeout as number | undefined, onInterrupt: o.onInterrupt as 'retry' | 'fail', maxInterrupts: o.maxInterrupts as number,
      };
      const { items, lines } = parseJobLines(await readStdin(kind));
      if (items.length === 0) throw new UsageError(`${kind}: standard input holds no job; give one JSON object a line ({"fn":"./jobs.mjs#render","args":[7]})`);
      const spool = await openSpool(cmd);
      let handle;
      try {
        // The options apply to every line that does not set the field itself, as for put -; the
        // postprocess takes the queue (the library's CompositeOptions would give them to it alone).
        const members = items.map((item) => ({ ...common, ...item }));
        handle = await spool[kind](members, { queue: common.queue, postprocess: o.postprocess as string | undefined });
      } catch (err) {
        if (err instanceof PutItemError) throw lineError(lines[err.index]!, err.reason, err.code);
        throw err;
      }
      const json = globals(cmd).json;
      if (!o.wait) {
        if (json) printJson({ id: handle.id, group: handle.group, members: handle.members });
        else line(handle.id);
        return;
      }
      const [rec] = await spool.wait([handle.id]);
      if (json) printJson({ id: handle.id, group: handle.group, members: handle.members, state: rec!.state, result: rec!.job?.result, failure: rec!.job?.failure });
      else if (rec!.state === 'done') line(jsonLine(rec!.job?.result));
      else warn(`postprocess ${handle.id} failed: ${rec!.job?.failure?.name}: ${rec!.job?.failure?.message}`);
      if (rec!.state !== 'done') process.exitCode = 1;
    });
}
