// zcq doctor: reports each kind of inconsistency, exits 1 while any is unrepaired, and with --repair fixes
// them (keeping the later state of a job found in two places), after which the spool is clean (exit 0).
// Format 2: the kinds are 'stale lease' | 'job in two places' | 'loose job' | 'leftover' | 'empty bucket' |
// 'stray file' | 'wrong mode' | 'missing folder'; the same problems are reported by the library's spool.doctor().
import { afterAll, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, names, zcq } from '../helpers.js';
import { jobIn, newSpool, pathsIn, putMany, Spool } from './util.js';

afterAll(cleanupTemp);

it('finds stale leases, jobs in two places, loose jobs, leftovers, empty buckets, strays and wrong modes; --repair fixes them', async () => {
  const spool = await newSpool();
  const [dupe, held, plain, loose] = await putMany(spool, 4, './jobs.mjs#add', [1, 2]);
  const clean = zcq(spool, ['doctor']);
  expect(clean.code).toBe(0);
  expect(clean.stdout).toBe('spool is consistent\n');
  const q = (state: string, ...rest: string[]) => join(spool, state, 'default', ...rest);

  const past = (p: string, s = 7200) => { const t = new Date(Date.now() - s * 1000); utimesSync(p, t, t); };
  // A crashed `zcq retry`: the job is in failed/default/ (old) and pending/default/ (the later state).
  mkdirSync(q('failed'), { recursive: true });
  const failedCopy = q('failed', `${dupe}.json`);
  const job = JSON.parse(readFileSync(q('pending', `${dupe}.json`), 'utf8'));
  writeFileSync(failedCopy, JSON.stringify({ ...job, attempts: 1, failure: { name: 'Error', message: 'x', reason: 'error' }, finished: new Date().toISOString() }));
  past(failedCopy, 60);
  // A dead worker's lease: heartbeat two hours old, holding a job it claimed (claimed/LEASE/SEQ.ID.json).
  const lease = 'deadhost.4242.abcdef';
  mkdirSync(join(spool, 'claimed', lease));
  renameSync(q('pending', `${held}.json`), join(spool, 'claimed', lease, `1.${held}.json`));
  writeFileSync(join(spool, 'workers', `${lease}.json`), JSON.stringify({ kind: 'worker', host: 'deadhost', pid: 4242, leaseMs: 30000 }));
  past(join(spool, 'workers', `${lease}.json`)); past(join(spool, 'claimed', lease));
  // A loose job: put straight into pending/ (by hand), not under its queue folder.
  renameSync(q('pending', `${loose}.json`), join(spool, 'pending', `${loose}.json`));
  // Leftovers, an old empty bucket, strays in a queue folder, in deferred/ and in claimed/.
  writeFileSync(join(spool, 'tmp', 'orphan.json'), '{'); past(join(spool, 'tmp', 'orphan.json'));
  mkdirSync(join(spool, 'deferred', 'default', '20200101T0000'), { recursive: true });
  mkdirSync(q('done'), { recursive: true });
  writeFileSync(q('done', 'notes.txt'), 'hello');
  writeFileSync(q('failed', 'torn.json'), '{"id":"torn","fn":"./jobs.mjs#a');
  writeFileSync(join(spool, 'deferred', 'junk'), 'x');
  writeFileSync(join(spool, 'claimed', 'note'), 'x');
  // A co-user's umask: a queue folder with the wrong mode (the spool's folders are 755 here).
  chmodSync(q('pending'), 0o700);

  const found = zcq(spool, ['doctor']);
  expect(found.code).toBe(1);
  const kinds = found.stdout.trim().split('\n').slice(0, -1).map((l) => l.split('\t').slice(0, 2).join(' ')).sort();
  expect(kinds).toEqual([
    'found empty bucket', 'found job in two places', 'found leftover', 'found loose job', 'found stale lease',
    'found stray file', 'found stray file', 'found stray file', 'found stray file', 'found wrong mode',
  ].sort());
  expect(found.stdout).toMatch(new RegExp(`job ${dupe} is in pending/default and failed/default; keeping pending`));
  expect(found.stdout).toMatch(/\n10 problem\(s\), 0 repaired\n$/);
  // The library reports the same problems.
  const s = await Spool.open(spool, { durable: false });
  const viaApi = (await s.doctor()).map((p) => p.kind).sort();
  expect(viaApi).toEqual(kinds.map((k) => k.slice('found '.length)));
  // Reporting changed nothing.
  expect(existsSync(failedCopy)).toBe(true);
  expect(existsSync(join(spool, 'claimed', lease, `1.${held}.json`))).toBe(true);
  expect(existsSync(join(spool, 'pending', `${loose}.json`))).toBe(true);
  expect(statSync(q('pending')).mode & 0o777).toBe(0o700);

  const fixed = zcq(spool, ['doctor', '--repair']);
  expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
  expect(fixed.stdout).toMatch(/\n10 problem\(s\), 10 repaired\n$/);
  expect(existsSync(failedCopy)).toBe(false);
  expect(jobIn(spool, 'pending', dupe!)).not.toBeNull();
  // The dead lease's job is back in its queue folder, its interrupted attempt recorded.
  const back = jobIn(spool, 'pending', held!)!;
  expect(pathsIn(spool, 'pending', held!)).toEqual([q('pending', `${held}.json`)]);
  expect(back.interrupts).toBe(1);
  expect(back.history[0]).toMatchObject({ outcome: 'interrupted', worker: lease, pid: 4242 });
  expect(names(join(spool, 'claimed'))).toEqual([]);
  expect(existsSync(join(spool, 'workers', `${lease}.json`))).toBe(false);
  // The loose job filed under its queue.
  expect(existsSync(join(spool, 'pending', `${loose}.json`))).toBe(false);
  expect(pathsIn(spool, 'pending', loose!)).toEqual([q('pending', `${loose}.json`)]);
  expect(existsSync(join(spool, 'tmp', 'orphan.json'))).toBe(false);
  expect(existsSync(join(spool, 'deferred', 'default', '20200101T0000'))).toBe(false);
  expect(statSync(q('pending')).mode & 0o777).toBe(0o755);
  const qn = names(join(spool, 'quarantine'));
  for (const n of [`${dupe}.failed.json`, 'notes.txt', 'torn.json', 'junk', 'note']) { expect(qn).toContain(n); expect(qn).toContain(`${n}.reason`); }
  expect(readFileSync(join(spool, 'quarantine', `${dupe}.failed.json.reason`), 'utf8')).toMatch(/second copy/);
  expect(jobIn(spool, 'pending', plain!)).not.toBeNull();
  const again = zcq(spool, ['doctor']);
  expect(again.code, again.stdout).toBe(0);
  expect(again.stdout).toBe('spool is consistent\n');
  expect(await s.doctor()).toEqual([]);
  await s.close();
});

it('a state folder and an auxiliary one removed by hand: found, --repair makes them again with the spool\'s mode, and a retry into pending/ then works', async () => {
  const spool = await newSpool();
  const [id] = await putMany(spool, 1, './jobs.mjs#add', [1, 2]);
  // The job fails for good by hand (failed/), then pending/ and progress/ are removed.
  const job = JSON.parse(readFileSync(join(spool, 'pending', 'default', `${id}.json`), 'utf8'));
  mkdirSync(join(spool, 'failed', 'default'), { recursive: true });
  writeFileSync(join(spool, 'failed', 'default', `${id}.json`), JSON.stringify({ ...job, attempts: 1, failure: { name: 'Error', message: 'x', reason: 'error' }, finished: new Date().toISOString() }));
  rmSync(join(spool, 'pending'), { recursive: true });
  rmSync(join(spool, 'progress'), { recursive: true });
  rmSync(join(spool, 'rate'), { recursive: true }); // made when needed: not a problem
  const found = zcq(spool, ['doctor']);
  expect(found.code).toBe(1);
  expect(found.stdout).toMatch(/found\s+missing folder\s+\S*\/pending\b/);
  expect(found.stdout).toMatch(/found\s+missing folder\s+\S*\/progress\b/);
  expect(found.stdout).not.toMatch(/\/rate\b/);
  expect(existsSync(join(spool, 'pending'))).toBe(false); // only reported
  const fixed = zcq(spool, ['doctor', '--repair']);
  expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
  expect(fixed.stdout).toMatch(/repaired\s+missing folder\s+\S*\/pending\b/);
  const spoolMode = statSync(join(spool, 'done')).mode & 0o7777;
  expect(statSync(join(spool, 'pending')).mode & 0o7777).toBe(spoolMode);
  expect(zcq(spool, ['doctor']).stdout).toBe('spool is consistent\n');
  const retry = zcq(spool, ['retry', id!]);
  expect(retry.code, retry.stderr).toBe(0);
  expect(existsSync(join(spool, 'pending', 'default', `${id}.json`))).toBe(true);
});

it('tmp/ removed by hand (a person clearing temporary files): the next temporary makes it again with the spool\'s mode, and doctor finds nothing to report', async () => {
  const spool = await newSpool();
  const mode = statSync(join(spool, 'tmp')).mode & 0o7777;
  rmSync(join(spool, 'tmp'), { recursive: true });
  const [id] = await putMany(spool, 1, './jobs.mjs#add', [1, 2]);
  expect(statSync(join(spool, 'tmp')).mode & 0o7777).toBe(mode);
  rmSync(join(spool, 'tmp'), { recursive: true });
  const run = zcq(spool, ['worker', '--root', '.', '--exit-when-idle', '--poll', '100ms'], { timeout: 20_000 });
  expect(run.code, run.stderr).toBe(0);
  expect(jobIn(spool, 'done', id!)!.result).toBe(3);
  rmSync(join(spool, 'tmp'), { recursive: true });
  const r = zcq(spool, ['doctor']);
  expect(r.stdout + r.stderr).toBe('spool is consistent\n');
  expect(r.code).toBe(0);
});

it('a spool lacking every folder made when needed (layout.ts MADE_WHEN_NEEDED) runs a job, shows its status and is consistent', async () => {
  const spool = await newSpool();
  const { MADE_WHEN_NEEDED } = await import('../../dist/spool/layout.js');
  for (const d of MADE_WHEN_NEEDED) rmSync(join(spool, d), { recursive: true, force: true });
  const [id] = await putMany(spool, 1, './jobs.mjs#add', [1, 2]);
  const run = zcq(spool, ['worker', '--root', '.', '--exit-when-idle', '--poll', '100ms'], { timeout: 20_000 });
  expect(run.code, run.stderr).toBe(0);
  expect(jobIn(spool, 'done', id!)!.result).toBe(3);
  expect(zcq(spool, ['status']).code).toBe(0);
  expect(zcq(spool, ['doctor']).stdout).toBe('spool is consistent\n');
});
