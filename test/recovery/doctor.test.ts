// zcq doctor: reports each kind of inconsistency, exits 1 while any is unrepaired, and with --repair fixes
// them (keeping the later state of a job found in two folders), after which the spool is clean (exit 0).
import { afterAll, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, names, tempDir, zcq } from '../helpers.js';
import { jobIn, putMany } from './util.js';

afterAll(cleanupTemp);

it('finds stale leases, jobs in two folders, leftovers, empty buckets and strays; --repair fixes them', async () => {
  const spool = join(tempDir(), 'spool');
  const [dupe, held, plain] = await putMany(spool, 3, './jobs.mjs#add', [1, 2]);
  const clean = zcq(spool, ['doctor']);
  expect(clean.code).toBe(0);
  expect(clean.stdout).toBe('spool is consistent\n');

  const past = (p: string, s = 7200) => { const t = new Date(Date.now() - s * 1000); utimesSync(p, t, t); };
  // A crashed `zcq retry`: the job is in failed/ (old) and pending/ (the later state, with a newer mtime).
  const failedCopy = join(spool, 'failed', `${dupe}.json`);
  const job = JSON.parse(readFileSync(join(spool, 'pending', `${dupe}.json`), 'utf8'));
  writeFileSync(failedCopy, JSON.stringify({ ...job, attempts: 1, failure: { name: 'Error', message: 'x', reason: 'error' }, finished: new Date().toISOString() }));
  past(failedCopy, 60);
  // A dead worker's lease: heartbeat two hours old, holding a job.
  const lease = 'deadhost.4242.abcdef';
  mkdirSync(join(spool, 'claimed', lease));
  copyFileSync(join(spool, 'pending', `${held}.json`), join(spool, 'claimed', lease, `${held}.json`));
  writeFileSync(join(spool, 'pending', `${held}.json`), '');
  (await import('node:fs')).unlinkSync(join(spool, 'pending', `${held}.json`));
  writeFileSync(join(spool, 'workers', `${lease}.json`), JSON.stringify({ host: 'deadhost', pid: 4242, leaseMs: 30000 }));
  past(join(spool, 'workers', `${lease}.json`)); past(join(spool, 'claimed', lease));
  // Leftovers, an old empty bucket, strays.
  writeFileSync(join(spool, 'tmp', 'orphan.json'), '{'); past(join(spool, 'tmp', 'orphan.json'));
  mkdirSync(join(spool, 'deferred', '20200101T0000'));
  writeFileSync(join(spool, 'done', 'notes.txt'), 'hello');
  writeFileSync(join(spool, 'failed', 'torn.json'), '{"id":"torn","fn":"./jobs.mjs#a');
  writeFileSync(join(spool, 'deferred', 'junk'), 'x');

  const found = zcq(spool, ['doctor']);
  expect(found.code).toBe(1);
  const kinds = found.stdout.trim().split('\n').slice(0, -1).map((l) => l.split('\t').slice(0, 2).join(' ')).sort();
  expect(kinds).toEqual(['found empty bucket', 'found job in two folders', 'found leftover', 'found stale lease', 'found stray file', 'found stray file', 'found stray file'].sort());
  expect(found.stdout).toMatch(new RegExp(`job ${dupe} is in pending and failed; keeping pending`));
  // Reporting changed nothing.
  expect(existsSync(failedCopy)).toBe(true);
  expect(existsSync(join(spool, 'claimed', lease, `${held}.json`))).toBe(true);

  const fixed = zcq(spool, ['doctor', '--repair']);
  expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
  expect(fixed.stdout).toMatch(/7 problem\(s\), 7 repaired/);
  expect(existsSync(failedCopy)).toBe(false);
  expect(jobIn(spool, 'pending', dupe!)).not.toBeNull();
  const back = jobIn(spool, 'pending', held!)!;
  expect(back.history[0]).toMatchObject({ outcome: 'interrupted', worker: lease, pid: 4242 });
  expect(names(join(spool, 'claimed'))).toEqual([]);
  expect(existsSync(join(spool, 'tmp', 'orphan.json'))).toBe(false);
  expect(existsSync(join(spool, 'deferred', '20200101T0000'))).toBe(false);
  const q = names(join(spool, 'quarantine'));
  for (const n of [`${dupe}.failed.json`, 'notes.txt', 'torn.json', 'junk']) { expect(q).toContain(n); expect(q).toContain(`${n}.reason`); }
  expect(jobIn(spool, 'pending', plain!)).not.toBeNull();
  const again = zcq(spool, ['doctor']);
  expect(again.code).toBe(0);
  expect(again.stdout).toBe('spool is consistent\n');
});
