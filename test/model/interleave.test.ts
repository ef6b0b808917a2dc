// Model-based interleaving test: a seeded random sequence of operations — put (library and `zcq put -`),
// `zcq retry`, `zcq cancel`, `zcq hold`/`zcq release`, a person's `mv` (pending->hold, hold->pending,
// failed->pending, done->pending, done->pending/ loose), `zcq recover`, `zcq doctor --repair`, and SIGKILL of
// a worker (then a new one) — runs against real `zcq worker` processes (2s leases, 100 ms polls) that claim,
// run and finish the jobs. Operations go in waves (several CLI processes at once, renames in between), in
// batches; after each batch the spool settles (no job pending, deferred or claimed, every run ended) and is
// checked against the model (model.ts): every job in exactly one place, where the model says it may be, and
// no job ran twice at once (the ledger the jobs write, against the kill times).
//
//   ZCQ_MODEL_SEED=N   replay a sequence (the seed is printed on failure and in the summary)
//   ZCQ_MODEL_OPS=N    operations (default 2000; the long run: 20000)
//   ZCQ_MODEL_DEBUG=1  wave timings (2: every zcq call and its answer)
// The seed fixes every random draw (kinds, sizes, delays, job args, victims), all made before the wave's
// first await. What it cannot fix is the workers' timing: which job a draw picks depends on the model's
// state, which depends on earlier answers, so a replay follows the same plan until the first race that
// goes the other way. Each kind of operation goes, per wave, through one `zcq` process (30% of waves, all
// its ids in one call) or through the library facade the CLI calls (the rest): process start-up on a
// shared 2-core machine would otherwise cost minutes.
import { afterAll, expect, it } from 'vitest';
import { renameSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, zcq } from '../helpers.js';
import { Spool } from '../../dist/index.js';
import { Model, MJob, type JobSpec } from './model.js';
import { Prng, modelSeed } from './prng.js';
import { Ledger, Rig, WallSteps, cli, now, scanSpool, sleep, type CliResult, type WorkerProc } from './rig.js';

const SEED = modelSeed();
const OPS = Number(process.env.ZCQ_MODEL_OPS ?? 2000);
const BATCH = 100;
const WORKERS = 3;
const LEASE_MS = 2000;
const QUEUES = ['a', 'b'];
const MAX_KILLS_PER_BATCH = 2;
/** The share of waves in which a kind of operation goes through a `zcq` process rather than the library. */
const CLI_SHARE = 0.3;

const OP_WEIGHTS = {
  put: 20, putMany: 3, putCli: 3, retry: 12, cancel: 10, hold: 9, release: 7, pause: 2, resume: 2,
  mvPendingHold: 6, mvHoldPending: 5, mvFailedPending: 5, mvDonePending: 4, mvDoneLoose: 2,
  recover: 2, doctor: 2, kill: 2,
} as const;
type OpKind = keyof typeof OP_WEIGHTS;

let keep = false;
let rigOf: Rig | undefined;
const root = tempDir('zcq-model-');
afterAll(() => {
  rigOf?.stopAll(); // also after a timeout, when the test body never reached its finally
  if (!keep) rmSync(root, { recursive: true, force: true });
});

it(`model: ${OPS} random operations against ${WORKERS} real workers, settled and checked every ${BATCH}`, async () => {
  const rng = new Prng(SEED);
  const spool = join(root, 'spool');
  const ledger = join(root, 'ledger');
  const runsOf = new Ledger(ledger);
  expect(zcq(null, ['init', spool]).code).toBe(0);
  const lib = await Spool.open(spool, { durable: false });
  const model = new Model();
  const counts: Record<string, number> = {};
  const count = (k: string, n = 1) => { counts[k] = (counts[k] ?? 0) + n; };
  const killedPids = model.killedPids;
  const lostLeases = model.lostLeases;
  const eventsSeen = new Map<WorkerProc, number>();
  const otherSeen = new Map<WorkerProc, number>();
  const deferredRecoveries: { id: string; lease: string; to: string; how: string }[] = [];
  const t0 = Date.now();
  const wallSteps = new WallSteps();

  // Worker 0 runs durable (fsyncs, GroupSync); the others --relaxed, for the sake of 2 shared cores.
  const rig = new Rig(spool,
    () => ['--lease', `${LEASE_MS}ms`, '--heartbeat', '300ms', '--poll', '100ms', '--concurrency', '2', '--no-scheduler'],
    (n) => (n === 0 ? [] : ['--relaxed']));
  rigOf = rig;
  for (let i = 0; i < WORKERS; i++) rig.startWorker();

  const fail = (why: string): never => {
    keep = true;
    const tail = rig.workers.map((w) => `worker ${w.n} pid ${w.pid}${w.killed ? ' (killed)' : ''}: ${w.other.slice(-5).join(' | ')}`).join('\n');
    throw new Error(`seed ${SEED} (replay: ZCQ_MODEL_SEED=${SEED} ZCQ_MODEL_OPS=${OPS}); spool kept at ${spool}\n${why}\n${tail}`);
  };

  const DEBUG = Boolean(process.env.ZCQ_MODEL_DEBUG);
  const run = async (args: string[], input?: string): Promise<CliResult> => {
    const t = Date.now();
    const r = await cli(spool, args, input);
    if (process.env.ZCQ_MODEL_DEBUG === '2') console.log(`  ${Date.now() - t} ms zcq ${args.join(' ').slice(0, 80)} -> ${r.code} ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 200)}`);
    return r;
  };
  const paused = new Set<string>();
  const cliCall = async (args: string[], input?: string, json = true): Promise<CliResult> => {
    const r = await run(args, input);
    if (r.code === 2 || r.code === null || (json && r.json === undefined)) model.violate(`zcq ${args.join(' ')}: exit ${r.code}, ${r.stderr.trim().slice(0, 500)}`);
    return r;
  };

  /** New worker log lines: who lost a lease, what recoverers settled, anything a worker should never say. */
  const readWorkerEvents = () => {
    for (const w of rig.workers) {
      const from = eventsSeen.get(w) ?? 0;
      for (const e of w.events.slice(from)) {
        if (e.event === 'lease.lost' || e.event === 'lease.stale') { lostLeases.add(e.worker); count(`worker ${e.event}`); }
        else if (e.event === 'job.recovered') {
          deferredRecoveries.push({ id: e.id, lease: e.worker, to: e.to, how: `worker pid ${w.pid} recovery` });
          const j = model.jobs.get(e.id);
          if (j && j.mode === 'flow' && (e.to === 'pending' || e.to === 'failed')) j.interrupted = true;
        } else if (e.event === 'job.quarantined' || e.event === 'job.error') model.violate(`worker pid ${w.pid}: ${JSON.stringify(e)}`);
        else if (e.event === 'worker.duty.error') { model.note(`duty error: ${String(e.duty)}: ${String(e.error).slice(0, 120)}`); }
        else if (e.event === 'job.abandoned' || e.event === 'job.lost') model.note(`${e.event}: ${e.reason}`);
      }
      eventsSeen.set(w, w.events.length);
      // Under --json a worker writes JSON lines only: anything else is a warning or a crash trace.
      const seenOther = otherSeen.get(w) ?? 0;
      for (const line of w.other.slice(seenOther)) model.violate(`worker pid ${w.pid} wrote: ${line.slice(0, 300)}`);
      otherSeen.set(w, w.other.length);
    }
  };

  // ---- choosing jobs ----
  const recent: MJob[] = [];
  const inWave = new Set<string>();
  const pool = (pred: (j: MJob) => boolean): MJob[] => [...model.jobs.values()].filter((j) => !inWave.has(j.id) && pred(j));
  const choose = (pred: (j: MJob) => boolean, preferRecent = true): MJob | null => {
    const r = preferRecent ? recent.filter((j) => !inWave.has(j.id) && pred(j)) : [];
    const xs = r.length > 0 && rng.chance(0.7) ? r : pool(pred);
    if (xs.length === 0) return null;
    const j = rng.pick(xs);
    inWave.add(j.id);
    j.verified = undefined; // an operation on it: read its record again at the next settle
    return j;
  };
  const any = () => true;
  /** Likely still pending: not finished, in a queue paused now, or put deferred. */
  const waiting = (x: MJob) => x.mode === 'flow' && (paused.has(x.spec.queue) || x.spec.deferred) && rng.chance(0.8);

  const newSpec = (): JobSpec => ({
    queue: rng.pick(QUEUES), retries: rng.int(0, 2), failUntil: rng.chance(0.5) ? 0 : rng.int(1, 3),
    ms: rng.int(10, 200), abortable: rng.chance(0.5), onInterrupt: rng.chance(0.8) ? 'retry' : 'fail', deferred: rng.chance(0.12), inMs: rng.int(200, 1200),
  });
  const putOpts = (s: JobSpec) => ({ queue: s.queue, retries: s.retries, backoff: '50ms', onInterrupt: s.onInterrupt, ...(s.deferred ? { in: `${s.inMs}ms` } : {}) });
  const jobArgs = (s: JobSpec) => [ledger, s.ms, s.failUntil, s.abortable];
  const track = (j: MJob) => { model.add(j); recent.push(j); if (recent.length > 40) recent.shift(); };

  // ---- one wave: several operations at once ----
  let killsThisBatch = 0;
  const wave = async (size: number) => {
    inWave.clear();
    const libPuts: JobSpec[] = [];
    const cliPuts: JobSpec[] = [];
    const ids: Record<'retry' | 'cancel' | 'hold' | 'release', MJob[]> = { retry: [], cancel: [], hold: [], release: [] };
    const renames: { kind: OpKind; j: MJob }[] = [];
    const manyPuts: JobSpec[][] = [];
    const pauses: { q: string; on: boolean }[] = [];
    let recovers = 0;
    let doctors = 0;
    let kill = false;
    let n = 0;
    while (n < size) {
      let k: OpKind = rng.weighted(OP_WEIGHTS);
      if (k === 'kill' && (kill || killsThisBatch >= MAX_KILLS_PER_BATCH)) k = 'put';
      let j: MJob | null = null;
      switch (k) {
        case 'retry': j = choose((x) => x.mode === 'final') ?? choose(any); break;
        case 'cancel': j = rng.chance(0.75) ? choose(waiting) ?? choose((x) => x.mode === 'flow') : choose(any); break;
        case 'hold': j = rng.chance(0.85) ? choose(waiting) ?? choose((x) => x.mode === 'flow') : choose(any); break;
        case 'release': j = rng.chance(0.85) ? choose((x) => x.mode === 'hold', false) : choose(any); break;
        case 'mvPendingHold': j = choose(waiting) ?? choose((x) => x.mode === 'flow'); break;
        case 'mvHoldPending': j = choose((x) => x.mode === 'hold', false); break;
        case 'mvFailedPending': j = choose((x) => x.mode === 'final' && x.seen !== 'done', false); break;
        case 'mvDonePending': case 'mvDoneLoose': j = choose((x) => x.mode === 'final' && x.seen === 'done', false); break;
        default: break;
      }
      if (['retry', 'cancel', 'hold', 'release', 'mvPendingHold', 'mvHoldPending', 'mvFailedPending', 'mvDonePending', 'mvDoneLoose'].includes(k) && !j) k = 'put';
      n++;
      count(k);
      switch (k) {
        case 'put': libPuts.push(newSpec()); break;
        case 'putCli': cliPuts.push(newSpec()); break;
        case 'putMany': manyPuts.push(Array.from({ length: rng.int(3, 15) }, newSpec)); break;
        case 'pause': case 'resume': pauses.push({ q: rng.pick(QUEUES), on: k === 'pause' }); break;
        case 'retry': case 'cancel': case 'hold': case 'release': ids[k].push(j!); break;
        case 'recover': recovers++; break;
        case 'doctor': doctors++; break;
        case 'kill': kill = true; killsThisBatch++; break;
        default: renames.push({ kind: k, j: j! });
      }
    }

    // Each kind of operation goes, this wave, through one `zcq` process (all its ids at once) or through the
    // library in this process — the same code the CLI calls — to keep process start-ups affordable on 2 cores.
    const viaCli = { retry: rng.chance(CLI_SHARE), cancel: rng.chance(CLI_SHARE), hold: rng.chance(CLI_SHARE), release: rng.chance(CLI_SHARE), pause: rng.chance(CLI_SHARE), recover: rng.chance(CLI_SHARE), doctor: rng.chance(CLI_SHARE) };
    const pauseDelays = pauses.map(() => rng.int(0, 100));
    const tasks: Promise<void>[] = [];
    // Puts through the library, in this process.
    tasks.push((async () => {
      for (const s of libPuts) {
        const job = await lib.put('./jobs.mjs#step', jobArgs(s), putOpts(s));
        track(new MJob(job.id, s, 'put'));
      }
      for (const specs of manyPuts) {
        const jobs = await lib.putMany(specs.map((s) => ({ fn: './jobs.mjs#step', args: jobArgs(s), ...putOpts(s) })));
        jobs.forEach((job, i) => track(new MJob(job.id, specs[i]!, 'putMany')));
      }
    })());
    for (const [i, { q, on }] of pauses.entries()) {
      tasks.push((async () => {
        await sleep(pauseDelays[i]!);
        if (viaCli.pause) await cliCall([on ? 'pause' : 'resume', q], undefined, false);
        else if (on) await lib.pause(q); else await lib.resume(q);
        if (on) paused.add(q); else paused.delete(q);
      })());
    }
    if (cliPuts.length > 0) {
      tasks.push((async () => {
        const lines = cliPuts.map((s) => JSON.stringify({ fn: './jobs.mjs#step', args: jobArgs(s), ...putOpts(s) })).join('\n') + '\n';
        const r = await cliCall(['put', '-'], lines);
        const out = Array.isArray(r.json) ? r.json : [];
        if (out.length !== cliPuts.length) model.violate(`zcq put -: ${cliPuts.length} jobs given, ${out.length} ids printed`);
        out.forEach((o: { id: string }, i: number) => track(new MJob(o.id, cliPuts[i]!, 'zcq put')));
      })());
    }
    const answers = async (what: 'retry' | 'cancel' | 'hold' | 'release', cliNow: boolean, idList: string[]): Promise<any[]> => {
      if (cliNow) { count(`${what} via zcq`, idList.length); return (await cliCall([what, ...idList])).json ?? []; }
      try {
        return await lib[what](idList);
      } catch (err) {
        model.violate(`Spool.${what}(${idList.join(' ')}) threw ${(err as Error).stack}`);
        return [];
      }
    };
    const results = (res: any[], what: string, list: MJob[]): Map<string, any> => {
      const m = new Map<string, any>();
      for (const x of Array.isArray(res) ? res : []) m.set(x.id, x);
      for (const j of list) if (!m.has(j.id)) model.violate(`${what}: no answer for ${j.id} (${JSON.stringify(res).slice(0, 300)})`);
      return m;
    };
    if (ids.retry.length > 0) {
      tasks.push((async () => {
        const m = results(await answers('retry', viaCli.retry, ids.retry.map((j) => j.id)), 'retry', ids.retry);
        for (const j of ids.retry) {
          const x = m.get(j.id);
          if (!x) continue;
          if (x.ok) {
            if (x.from !== 'done' && x.from !== 'failed') model.violate(`zcq retry ${j.id}: ok from ${x.from}`);
            model.sawFinished(j, x.from, undefined, 'zcq retry');
            model.newLife(j);
          } else if (x.from === null) model.violate(`zcq retry ${j.id}: not found (${x.why}): ${j.describe()}`);
          else if (x.from === 'done' || x.from === 'failed') model.violate(`zcq retry ${j.id}: found ${x.from}, then failed to move it: ${x.why}`);
          else model.sawUnfinished(j, x.from, 'zcq retry');
        }
      })());
    }
    if (ids.cancel.length > 0) {
      tasks.push((async () => {
        const m = results(await answers('cancel', viaCli.cancel, ids.cancel.map((j) => j.id)), 'cancel', ids.cancel);
        for (const j of ids.cancel) {
          const x = m.get(j.id);
          if (!x) continue;
          count(`cancel:${x.result}`);
          if (x.result === 'cancelled') {
            model.sawUnfinished(j, x.was, 'zcq cancel');
            j.mode = 'final'; j.seen = 'failed:cancelled';
          } else if (x.result === 'requested') {
            model.sawUnfinished(j, x.was, 'zcq cancel');
            j.cancelAsked = true;
          } else if (x.result === 'finished') model.sawFinished(j, x.was, undefined, 'zcq cancel');
          else model.violate(`zcq cancel ${j.id}: ${x.result} (${x.why}): ${j.describe()}`);
        }
      })());
    }
    for (const what of ['hold', 'release'] as const) {
      if (ids[what].length === 0) continue;
      tasks.push((async () => {
        const m = results(await answers(what, viaCli[what], ids[what].map((j) => j.id)), what, ids[what]);
        for (const j of ids[what]) {
          const x = m.get(j.id);
          if (!x) continue;
          if (x.was === null) { model.violate(`zcq ${what} ${j.id}: not found (${x.why}): ${j.describe()}`); continue; }
          if (x.was === 'done' || x.was === 'failed') { model.sawFinished(j, x.was, undefined, `zcq ${what}`); continue; }
          model.sawUnfinished(j, x.was, `zcq ${what}`);
          if (!x.ok) {
            if (what === 'release' && x.was === 'hold') model.violate(`zcq release ${j.id}: found in hold/, then failed to move it: ${x.why}`);
            continue;
          }
          count(`${what}:ok`);
          if (what === 'hold') j.mode = 'hold';
          else j.mode = 'flow';
        }
      })());
    }
    // A person's mv, at a random moment among the CLI calls.
    for (const { kind, j } of renames) {
      tasks.push((async () => {
        await sleep(rng.int(0, 150));
        const q = j.spec.queue;
        const [from, to] = kind === 'mvPendingHold' ? ['pending', 'hold'] : kind === 'mvHoldPending' ? ['hold', 'pending'] : kind === 'mvFailedPending' ? ['failed', 'pending'] : ['done', 'pending'];
        const src = join(spool, from!, q, `${j.id}.json`);
        const dst = kind === 'mvDoneLoose' ? join(spool, 'pending', `${j.id}.json`) : join(spool, to!, q, `${j.id}.json`);
        let rec: any = null;
        if (from === 'failed' || from === 'done') { try { rec = JSON.parse(readFileSync(src, 'utf8')); } catch { /* not there */ } }
        try {
          renameSync(src, dst);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          count(`${kind}:ENOENT`);
          if (from === 'hold' || from === 'failed' || from === 'done') model.violate(`mv ${from}/${q}/${j.id}.json: ENOENT, though the model has it there: ${j.describe()}`);
          return;
        }
        count(`${kind}:ok`);
        if (from === 'pending') { model.sawUnfinished(j, 'pending', `mv ${from}->${to}`); j.mode = 'hold'; return; }
        if (from === 'hold') { model.sawUnfinished(j, 'hold', `mv ${from}->${to}`); j.mode = 'flow'; return; }
        model.sawFinished(j, from as 'done' | 'failed', rec?.failure?.reason, `mv ${from}->${to}`);
        model.newLife(j);
      })());
    }
    for (let i = 0; i < recovers; i++) {
      tasks.push((async () => {
        await sleep(rng.int(0, 100));
        const events = viaCli.recover ? (await cliCall(['recover'])).json : await lib.recover();
        for (const e of Array.isArray(events) ? events : []) {
          if (e.event === 'job.recovered') deferredRecoveries.push({ id: e.id, lease: e.worker, to: e.to, how: 'zcq recover' });
          if (e.event === 'job.quarantined') model.violate(`zcq recover quarantined: ${JSON.stringify(e)}`);
          if (e.event === 'job.recovered' && (e.to === 'pending' || e.to === 'failed')) { const j = model.jobs.get(e.id); if (j && j.mode === 'flow') j.interrupted = true; }
        }
      })());
    }
    for (let i = 0; i < doctors; i++) {
      tasks.push((async () => {
        await sleep(rng.int(0, 100));
        let problems: any[];
        if (viaCli.doctor) {
          const r = await run(['doctor', '--repair']);
          if (r.json === undefined || !Array.isArray(r.json.problems)) { model.violate(`zcq doctor --repair: exit ${r.code}: ${r.stderr.slice(0, 500)}`); return; }
          problems = r.json.problems;
        } else problems = await lib.doctor({ repair: true });
        for (const p of problems) {
          count(`doctor:${p.kind}`);
          if (p.kind === 'job in two places' || p.kind === 'stray file') model.violate(`zcq doctor --repair: ${p.kind}: ${p.path}: ${p.detail}`);
        }
      })());
    }
    if (kill) {
      // Every random draw happens here, in order, before any await: the seed fixes the operations.
      const delay = rng.int(0, 150);
      const pickVictim = rng.next();
      tasks.push((async () => {
        await sleep(delay);
        const victims = rig.live();
        const w = victims[Math.floor(pickVictim * victims.length)]!;
        killedPids.add(w.pid);
        const k = await rig.kill(w);
        for (const id of k.jobs) { const j = model.jobs.get(id); if (j && j.mode === 'flow') j.interrupted = true; }
        count('kill:jobs', k.jobs.length);
        rig.startWorker();
      })());
    }
    await Promise.all(tasks);
    readWorkerEvents();
  };

  // ---- settle: stop, wait until nothing is pending, deferred, claimed or running ----
  const settle = async (batch: number) => {
    const started = Date.now();
    for (const q of QUEUES) await lib.resume(q);
    paused.clear();
    let quietOnce = false;
    for (;;) {
      const scan = scanSpool(spool);
      let busy = 0;
      for (const places of scan.places.values()) for (const p of places) if (p.state === 'pending' || p.state === 'deferred' || p.state === 'claimed') busy++;
      const live = new Set(rig.live().map((w) => w.pid));
      const open = [...runsOf.read().values()].filter((r) => r.endNs === undefined && live.has(r.pid)).length;
      if (busy === 0 && open === 0) { if (quietOnce) break; quietOnce = true; } else quietOnce = false;
      if (Date.now() - started > 60_000) {
        const left = [...scan.places.entries()].filter(([, ps]) => ps.some((p) => p.state !== 'done' && p.state !== 'failed' && p.state !== 'hold')).slice(0, 10);
        model.violate(`no settle within 60 s: ${busy} jobs pending/deferred/claimed (${left.map(([id, ps]) => `${id}: ${ps.map((p) => p.path.slice(spool.length)).join(' ')}`).join('; ')}), ${open} runs open`);
        break;
      }
      await sleep(quietOnce ? 150 : 100);
    }
    const quietNs = now();
    await sleep(50); // the last log lines through the pipes
    readWorkerEvents();
    for (const w of rig.workers) if (w.exited && !w.killed) model.violate(`worker pid ${w.pid} exited by itself (code ${w.exitCode}, signal ${w.exitSignal}): ${w.other.slice(-5).join(' | ')}`);
    model.where = `batch ${batch} settle`;
    for (const r of deferredRecoveries.splice(0)) model.recovered(r.id, r.lease, r.to, killedPids, lostLeases, r.how);
    const runs = runsOf.read();
    model.checkSettled(scanSpool(spool), runs);
    model.checkLedger(runs, rig.kills, rig.workers, LEASE_MS, quietNs, wallSteps);
    count('settle ms', Date.now() - started);
  };

  try {
    const batches = Math.ceil(OPS / BATCH);
    let done = 0;
    for (let b = 0; b < batches; b++) {
      killsThisBatch = 0;
      let left = Math.min(BATCH, OPS - done);
      let w = 0;
      while (left > 0) {
        const size = Math.min(left, rng.int(10, 30));
        model.where = `batch ${b} wave ${w++}`;
        const tw = Date.now();
        await wave(size);
        if (DEBUG) console.log(`wave ${model.where}: ${size} ops, ${Date.now() - tw} ms`);
        left -= size;
        done += size;
        await sleep(rng.int(0, 120));
      }
      await settle(b);
      if (model.violations.length > 0) fail(`${model.violations.length} violation(s) at batch ${b}:\n  ${model.violations.slice(0, 25).join('\n  ')}`);
    }
  } finally {
    rig.stopAll();
    wallSteps.stop();
  }

  const runs = runsOf.read();
  const ops = Object.entries(counts).filter(([k]) => (k in OP_WEIGHTS)).map(([k, v]) => `${k} ${v}`).join(', ');
  const total = Object.entries(counts).filter(([k]) => (k in OP_WEIGHTS)).reduce((s, [, v]) => s + v, 0);
  const finals = { done: 0, failed: 0, hold: 0 };
  for (const j of model.jobs.values()) { if (j.mode === 'hold') finals.hold++; else if (j.seen === 'done') finals.done++; else finals.failed++; }
  const extra = Object.entries(counts).filter(([k]) => !(k in OP_WEIGHTS)).map(([k, v]) => `${k} ${v}`).join(', ');
  const notes = Object.entries(model.notes).map(([k, v]) => `${k} ${v}`).join('; ');
  console.log(`model seed ${SEED}: ${total} ops (${ops}); ${model.jobs.size} jobs (done ${finals.done}, failed ${finals.failed}, hold ${finals.hold}), ${runs.size} runs, ${rig.kills.length} kills, ${rig.workers.length} workers, ${Math.round((Date.now() - t0) / 1000)} s\n  ${extra}\n  ${notes}`);
  expect(total).toBeGreaterThanOrEqual(OPS);
  expect(rig.kills.length).toBeGreaterThan(0);
}, Math.max(240_000, OPS * 150));
