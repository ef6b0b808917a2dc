// zcq doctor --repair beside live workers: two workers drain 1,000 jobs while `zcq doctor --repair` runs
// over and over. Every file doctor meets is a valid job that is merely moving (pending -> claimed -> done),
// so a healthy, busy spool must read as consistent: nothing quarantined (above all no job file of a live
// lease), no 'stray file' for a file that moved while doctor read it, no copy taken for a second one, no
// live lease judged stale; and every job runs and ends in done/ exactly once (the job's own ledger).
import { afterAll, afterEach, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { BIN, FIXTURES, cleanupTemp, ledgerLines, names, tempDir } from '../helpers.js';
import { claimedFiles, events, killWorkers, namesIn, newSpool, putMany, worker } from './util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

const JOBS = 1000;
const MIN_RUNS = 10;

interface DoctorRun { code: number | null; problems: { kind: string; path: string; detail: string; repaired: boolean }[]; busy: number; out: string }

function doctorRepair(spool: string): Promise<Omit<DoctorRun, 'busy'>> {
  return new Promise((res) => {
    const c = spawn(process.execPath, [BIN, '--json', '--spool', spool, 'doctor', '--repair'], { cwd: FIXTURES, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { out += d; });
    c.on('exit', (code) => {
      let problems: DoctorRun['problems'] = [];
      try { problems = JSON.parse(out).problems; } catch { problems = [{ kind: 'unparsable output', path: '', detail: out, repaired: false }]; }
      res({ code, problems, out });
    });
  });
}

it(`zcq doctor --repair ${MIN_RUNS}+ times beside 2 workers draining ${JOBS} jobs: nothing quarantined, no false report, every job done once`, async () => {
  const spool = await newSpool();
  const ledger = join(tempDir(), 'ledger');
  const ids = await putMany(spool, JOBS, './jobs.mjs#sleepRecord', [ledger, 100]);
  const args = ['--concurrency', '3', '--lease', '5s', '--heartbeat', '500ms', '--poll', '100ms'];
  const ws = [worker(spool, args, {}, ['--relaxed']), worker(spool, args, {}, ['--relaxed'])];
  const busy = () => namesIn(spool, 'pending').length + claimedFiles(spool).length;

  const runs: DoctorRun[] = [];
  const t0 = Date.now();
  while (namesIn(spool, 'done').length < JOBS || runs.length < MIN_RUNS) {
    if (Date.now() - t0 > 150_000) throw new Error(`only ${namesIn(spool, 'done').length} of ${JOBS} done after 150 s`);
    const b = busy();
    runs.push({ ...(await doctorRepair(spool)), busy: b });
  }
  for (const w of ws) w.kill('SIGTERM');
  expect(await Promise.all(ws.map((w) => w.exited))).toEqual([0, 0]);

  // The runs overlapped the work: at least MIN_RUNS started while jobs were pending or claimed.
  const overlapped = runs.filter((r) => r.busy > 0);
  expect(overlapped.length, `doctor runs while jobs were in flight (of ${runs.length})`).toBeGreaterThanOrEqual(MIN_RUNS);
  // A busy, healthy spool is consistent, every time.
  const reported = runs.flatMap((r, i) => r.problems.map((p) => `run ${i} (${r.busy} in flight): ${p.repaired ? 'repaired' : 'found'} ${p.kind} ${p.path} ${p.detail}`));
  expect(reported).toEqual([]);
  expect(runs.map((r) => r.code)).toEqual(runs.map(() => 0));
  expect(names(join(spool, 'quarantine'))).toEqual([]);

  // Every job ran once and is in done/ once; nothing anywhere else.
  const runsOf = new Map<string, number>();
  for (const l of ledgerLines(ledger)) { const id = l.split(' ')[0]!; runsOf.set(id, (runsOf.get(id) ?? 0) + 1); }
  expect([...runsOf.keys()].sort()).toEqual([...ids].sort());
  expect([...runsOf.entries()].filter(([, n]) => n !== 1)).toEqual([]);
  expect(namesIn(spool, 'done').sort()).toEqual(ids.map((id) => `${id}.json`).sort());
  expect(namesIn(spool, 'pending')).toEqual([]);
  expect(namesIn(spool, 'failed')).toEqual([]);
  expect(claimedFiles(spool)).toEqual([]);
  // The workers saw nothing taken from them.
  for (const w of ws) {
    const bad = events(w.output()).filter((e) => ['job.lost', 'job.abandoned', 'lease.lost', 'lease.stale', 'lease.expired', 'job.recovered', 'job.quarantined'].includes(e.event));
    expect(bad).toEqual([]);
  }
  console.log(`doctor-live: ${runs.length} doctor --repair runs (${overlapped.length} with jobs in flight, up to ${Math.max(...runs.map((r) => r.busy))}) beside 2 workers, ${JOBS} jobs in ${Date.now() - t0} ms: no problem reported, nothing quarantined, each job done once`);
}, 200_000);
