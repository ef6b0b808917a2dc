/**
 * `zcq put <module#fn> [args...]`: add a job; prints its id (or, with --wait, its result).
 * `zcq put -`: add the jobs read from stdin, one JSON object a line, all or (on a bad line) none.
 */
import { Command, Option } from 'commander';
import { PartialPutError, PutItemError, UsageError, ZcqError, writeRemedy } from '../../errors.js';
import type { PutItem, PutOptions } from '../../client/spool.js';
import { CALLBACK_RETRIES } from '../../client/composite.js';
import { JOB_BOUNDS, JOB_DEFAULTS } from '../../defaults.js';
import { JSON_MAX_DEPTH, checkJsonShape } from '../../job/json-limits.js';
import { formatDuration, jsonLine, printable } from '../../text.js';
import { collect, durationOpt, globals, intOpt, jobArgs, line, openSpool, printJson, warn } from '../common.js';

export function register(program: Command): void {
  program.command('put <fn> [args...]')
    .description("add a job running module#export with string args (or --args-json for typed args); prints its id. "
      + "'put -' reads jobs from stdin, one JSON object a line ({\"fn\":\"./jobs.mjs#render\",\"args\":[7],\"queue\":\"x\"}); "
      + 'the options below apply to every line that does not set the field itself')
    .option('--args-json <array>', "the job's arguments as a JSON array, instead of string args")
    .option('-q, --queue <name>', 'queue name', JOB_DEFAULTS.queue)
    .addOption(intOpt('-r, --retries <n>', 'further attempts after a failure', '--retries', JOB_BOUNDS.retries, JOB_DEFAULTS.retries))
    .addOption(durationOpt('--backoff <duration>', 'fixed delay between retries', '--backoff', JOB_BOUNDS.backoffMs, undefined, `exponential with jitter from ${formatDuration(JOB_DEFAULTS.backoff.baseMs)}, capped at ${formatDuration(JOB_DEFAULTS.backoff.maxMs)}`))
    .addOption(durationOpt('-t, --timeout <duration>', 'time limit of one attempt, e.g. 30s', '--timeout', JOB_BOUNDS.timeoutMs, undefined, 'none'))
    .option('--at <time>', 'do not start before this time (ISO 8601, e.g. 2026-12-01T09:00:00+01:00)')
    .option('--in <duration>', 'do not start before this long from now, e.g. 90s, 15m, 2h')
    .option('--deadline <time|duration>', 'fail with "deadline passed" if not started by then')
    .addOption(new Option('--on-interrupt <policy>', 'when its worker dies: retry or fail').choices(['retry', 'fail']).default(JOB_DEFAULTS.onInterrupt))
    .addOption(intOpt('--max-interrupts <n>', 'interruptions before it fails as a poison job', '--max-interrupts', JOB_BOUNDS.maxInterrupts, JOB_DEFAULTS.maxInterrupts))
    .addOption(intOpt('--priority <n>', 'priority: 0 is taken first, 9 last', '--priority', JOB_BOUNDS.priority, JOB_DEFAULTS.priority))
    .option('--quota <name>', 'hold a slot of this quota while running (zcq quota set NAME N); repeatable', (v: string, acc: string[] | undefined) => [...(acc ?? []), v])
    .option('-w, --wait', 'block until the job finishes; print its result; exit 1 if it failed')
    .option('--after <id>', 'wait in waiting/ until this job is done (repeatable); if it fails or is cancelled, fail with reason "dependency failed"', collect)
    .option('--after-any-outcome', 'with --after: run once the jobs listed have ended, whatever their outcome')
    .option('--then <fn>', "when the job is done, put a job fn(result, id) (the job's queue, --retries 5)")
    .option('--catch <fn>', "when the job has failed for good, put a job fn(failure, id) (the job's queue, --retries 5)")
    .option('--then-queue <name>', "with --then: the callback job's queue (default: the job's queue)")
    .addOption(intOpt('--then-retries <n>', 'with --then: further attempts of the callback job after a failure', '--then-retries', JOB_BOUNDS.retries, undefined, String(CALLBACK_RETRIES)))
    .option('--catch-queue <name>', "with --catch: the callback job's queue (default: the job's queue)")
    .addOption(intOpt('--catch-retries <n>', 'with --catch: further attempts of the callback job after a failure', '--catch-retries', JOB_BOUNDS.retries, undefined, String(CALLBACK_RETRIES)))
    .action(async (fn: string, args: string[], o: Record<string, string | string[] | number | boolean | undefined>, cmd: Command) => {
      const opts: PutOptions = {
        queue: o.queue as string, retries: o.retries as number, backoff: o.backoff as number | undefined,
        timeout: o.timeout as number | undefined, at: o.at as string | undefined, in: o.in as string | undefined,
        deadline: o.deadline as string | undefined, onInterrupt: o.onInterrupt as 'retry' | 'fail', maxInterrupts: o.maxInterrupts as number,
        priority: o.priority as number, quota: o.quota as unknown as string[] | undefined,
      };
      if (o.afterAnyOutcome && !o.after) throw new UsageError('--after-any-outcome: give the jobs to wait for with --after ID');
      addComposite(o, opts);
      if (fn === '-') return putLines(cmd, args, o, opts);
      const spool = await openSpool(cmd);
      const job = await spool.put(fn, jobArgs(args, o.argsJson), opts);
      if (!o.wait) {
        if (globals(cmd).json) printJson({ id: job.id, notBefore: job.notBefore });
        else line(job.id);
        return;
      }
      const [rec] = await spool.wait([job.id]);
      if (globals(cmd).json) printJson({ id: job.id, state: rec!.state, result: rec!.job?.result, failure: rec!.job?.failure });
      else if (rec!.state === 'done') line(jsonLine(rec!.job?.result));
      else warn(`job ${job.id} failed: ${rec!.job?.failure?.name}: ${rec!.job?.failure?.message}`);
      if (rec!.state !== 'done') process.exitCode = 1;
    });
}

/**
 * The composite options (issue 12) into `opts`. `--after` ids may be unique prefixes, as everywhere: the
 * library resolves them before anything is written (an ambiguous or unknown one is a usage error).
 */
function addComposite(o: Record<string, unknown>, opts: PutOptions): void {
  if (o.after) opts.after = o.after as string[];
  if (o.afterAnyOutcome) opts.afterAnyOutcome = true;
  for (const kind of ['then', 'catch'] as const) {
    const queue = o[`${kind}Queue`] as string | undefined;
    const retries = o[`${kind}Retries`] as number | undefined;
    const fn = o[kind] as string | undefined;
    if (!fn) {
      if (queue !== undefined) throw new UsageError(`--${kind}-queue: give the callback with --${kind} FN`);
      if (retries !== undefined) throw new UsageError(`--${kind}-retries: give the callback with --${kind} FN`);
      continue;
    }
    // The library checks the queue name and the count again (as for a line of put -), naming the flag.
    opts[kind] = queue === undefined && retries === undefined ? fn : { fn, ...(queue !== undefined ? { queue } : {}), ...(retries !== undefined ? { retries } : {}) };
  }
}

/** The fields a line may have: putMany's item fields, spelled as in the API. */
const FIELDS = ['fn', 'args', 'queue', 'retries', 'backoff', 'timeout', 'at', 'in', 'deadline', 'onInterrupt', 'maxInterrupts', 'priority', 'quota', 'after', 'afterAnyOutcome', 'then', 'catch'];

/**
 * `zcq put -`: every line is read and checked before the first job is written, so a bad line enqueues
 * nothing. The whole input is held in memory (about 1.5 KB per job), hence the caps on its size.
 */
async function putLines(cmd: Command, args: string[], o: Record<string, unknown>, common: PutOptions): Promise<void> {
  if (args.length > 0 || o.argsJson !== undefined) throw new UsageError('put -: each line carries its own "args"; drop the arguments after -');
  if (o.wait) throw new UsageError("put -: --wait takes one job; pipe the ids into 'zcq wait -' instead");
  if (process.stdin.isTTY) throw new UsageError('put -: reads jobs from standard input, one JSON object a line; pipe them in (zcq put - < jobs.ndjson)');
  const { items, lines } = parseJobLines(await readStdin());
  const spool = await openSpool(cmd);
  const json = globals(cmd).json;
  const print = (ids: string[], notBefore: (string | null)[]) => {
    if (json) printJson(ids.map((id, i) => ({ id, notBefore: notBefore[i] })));
    else if (ids.length > 0) process.stdout.write(ids.map(printable).join('\n') + '\n');
  };
  let jobs;
  try {
    jobs = await spool.putMany(items, common);
  } catch (err) {
    if (err instanceof PutItemError) throw lineError(lines[err.index]!, err.reason, err.code);
    if (err instanceof PartialPutError) {
      // Jobs already published may be running: say which, so that only the rest is put again.
      print(err.enqueued, err.enqueued.map(() => null));
      const why = `${err.path}: cannot write (${(err.cause as NodeJS.ErrnoException).code ?? (err.cause as Error).message})`;
      if (err.enqueued.length === items.length) throw new ZcqError(err.code, `${why}; all ${items.length} jobs were enqueued (ids on standard output) but may not survive a power cut`, 1);
      const next = lines[err.enqueued.length]!;
      throw new ZcqError(err.code, `${why}; the first ${err.enqueued.length} jobs (the lines before line ${next}) were enqueued (ids on standard output), those from line ${next} on were not — ${writeRemedy((err.cause as NodeJS.ErrnoException).code)}, then put them again (tail -n +${next} FILE | zcq put -)`, 1);
    }
    throw err;
  }
  print(jobs.map((j) => j.id), jobs.map((j) => j.notBefore));
}

/** Standard input is read whole and every job built before the first is written: at most this many bytes and jobs (~750 MB). */
const MAX_INPUT = 256 << 20;
const MAX_JOBS = 500_000;
const SPLIT = `split it (split -l ${MAX_JOBS} FILE part.) and run zcq put - on each part`;

export async function readStdin(what = 'put -'): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    size += (c as Buffer).length;
    if (size > MAX_INPUT) throw new UsageError(`${what}: standard input is over ${MAX_INPUT >> 20} MiB; ${SPLIT}; nothing was enqueued`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Jobs from NDJSON text: one object a line; blank lines are skipped; null fields mean the default. */
export function parseJobLines(text: string): { items: PutItem[]; lines: number[] } {
  const items: PutItem[] = [];
  const lines: number[] = [];
  const all = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < all.length; i++) {
    const text = all[i]!.trim();
    if (text === '') continue;
    let v: unknown;
    try { checkJsonShape(text, { maxDepth: JSON_MAX_DEPTH }); } catch (err) { throw lineError(i + 1, (err as Error).message); }
    try { v = JSON.parse(text); } catch (err) { throw lineError(i + 1, `not valid JSON (${(err as Error).message})`); }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw lineError(i + 1, 'must be a JSON object such as {"fn":"./jobs.mjs#render","args":[7]}');
    const item = v as Record<string, unknown>;
    for (const k of Object.keys(item)) {
      if (!FIELDS.includes(k)) throw lineError(i + 1, `unknown field "${k}" (fields: ${FIELDS.join(', ')})`);
      if (item[k] === null) delete item[k];
    }
    if (item.fn === undefined) throw lineError(i + 1, '"fn" is missing; give the function as "module#export"');
    if (items.length === MAX_JOBS) throw new UsageError(`put -: standard input holds more than ${MAX_JOBS.toLocaleString('en-US')} jobs; ${SPLIT}; nothing was enqueued`);
    items.push(item as unknown as PutItem);
    lines.push(i + 1);
  }
  return { items, lines };
}

export function lineError(line: number, why: string, code?: string): UsageError {
  return new UsageError(`standard input, line ${line}: ${why}; nothing was enqueued — fix that line and run again`, code);
}
