// A client lease (kind "client": a cancel or hold in progress) that dies after its claim: the job it held
// was never run by it, so recovery puts it back in pending/ with attempts, interrupts and history as they
// were — not failed (the cancel never completed), not counted as an interrupt. And a client recovering a
// dead worker (`zcq recover`) that dies after taking its lease: the next recovery settles the nested
// claimed/CLIENT/DEAD.dead/ by the dead worker's policy, counting its interrupt once.
import { afterAll, afterEach, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, FIXTURES, names, tempDir, until, zcq } from '../helpers.js';
import { claimedFiles, claimedOf, deferredFiles, events, jobIn, killWorkers, newSpool, putMany, readLedger, sleep, track, worker } from './util.js';

afterEach(killWorkers);
afterAll(cleanupTemp);

const FAST = ['--lease', '1s', '--heartbeat', '150ms', '--poll', '100ms'];
const ago = (p: string, s: number) => { const t = new Date(Date.now() - s * 1000); utimesSync(p, t, t); };

it('a cancel killed right after its claim: once its client lease expires, the job is back in pending/ unchanged', async () => {
  const spool = await newSpool();
  const ledger = join(tempDir(), 'ledger');
  const [id] = await putMany(spool, 1, './jobs.mjs#abortableRecord', [ledger, 30_000, 50]);
  // First give the job a history: its worker is SIGKILLed mid-run and recovery counts the interrupt.
  const w1 = worker(spool, FAST);
  await until(() => readLedger(ledger).length === 1, 15_000);
  w1.kill('SIGKILL');
  await w1.exited;
  await sleep(1300);
  expect(zcq(spool, ['recover']).code).toBe(0);
  const before = jobIn(spool, 'pending', id!)!;
  expect([before.attempts, before.interrupts, before.history.length]).toEqual([1, 1, 1]);

  // A cancel, through the library in its own process, killed right after it claimed the job.
  const child = track(spawn(process.execPath, [join(FIXTURES, 'cancel-then-die.mjs'), spool, id!], { cwd: FIXTURES, stdio: ['ignore', 'pipe', 'pipe'] }));
  await child.exited;
  expect(child.signalCode).toBe('SIGKILL');
  expect(child.output()).toBe('claimed\n');
  const held = claimedOf(spool, id!);
  expect(held).toHaveLength(1);
  const clientLease = held[0]!.split('/').at(-2)!;
  const hb = join(spool, 'workers', `${clientLease}.json`);
  expect(JSON.parse(readFileSync(hb, 'utf8'))).toMatchObject({ kind: 'client', pid: child.pid });

  // Within the client's own lease time (60 s) nobody takes it.
  const early = zcq(spool, ['recover']);
  expect(early.code).toBe(0);
  expect(early.stdout).toBe('');
  expect(claimedOf(spool, id!)).toEqual(held);

  // Its heartbeat ages past the lease (as two minutes of silence would make it).
  ago(hb, 120); ago(join(spool, 'claimed', clientLease), 120);
  const r = zcq(spool, ['recover']);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines[0]).toMatch(new RegExp(`^lease\\.expired\\t${clientLease.replace(/\./g, '\\.')}\\tage \\d+s$`));
  expect(lines.slice(1)).toEqual([`job.recovered\t${clientLease}\t${id}\t→ pending`]);
  expect(jobIn(spool, 'failed', id!)).toBeNull();
  expect(claimedOf(spool, id!)).toEqual([]);
  const after = jobIn(spool, 'pending', id!)!;
  // Everything as it was but the run token: the record names the client's claim it was settled under.
  expect(after.run).toBe(`${clientLease}/${held[0]!.split('/').at(-1)!.split('.')[0]}`);
  expect({ ...after, run: undefined }).toEqual({ ...before, run: undefined });

  // And it runs on as if the cancel had never been tried.
  const w2 = worker(spool, FAST);
  await until(() => jobIn(spool, 'done', id!) !== null, 15_000);
  w2.kill('SIGTERM');
  const done = jobIn(spool, 'done', id!)!;
  expect(done.history.map((h: any) => h.outcome)).toEqual(['interrupted', 'done']);
  expect([done.attempts, done.interrupts]).toEqual([2, 1]);
  expect(readLedger(ledger).filter((e) => e.event === 'start')).toHaveLength(2);
}, 40_000);

it('a worker settles an expired client lease made by hand: the job runs once, its attempt the first', async () => {
  const spool = await newSpool();
  const ledger = join(tempDir(), 'ledger');
  const [id] = await putMany(spool, 1, './jobs.mjs#abortableRecord', [ledger, 50]);
  const lease = 'clienthost.4343.abcdef-client'; // a client lease's name ends in -client (ids.ts)
  mkdirSync(join(spool, 'claimed', lease));
  renameSync(join(spool, 'pending', 'default', `${id}.json`), join(spool, 'claimed', lease, `3.${id}.json`));
  writeFileSync(join(spool, 'workers', `${lease}.json`), JSON.stringify({ kind: 'client', host: 'clienthost', pid: 4343, leaseMs: 60_000, started: new Date().toISOString() }));
  ago(join(spool, 'workers', `${lease}.json`), 120); ago(join(spool, 'claimed', lease), 120);

  const w = worker(spool, FAST);
  await until(() => jobIn(spool, 'done', id!) !== null, 15_000);
  w.kill('SIGTERM');
  expect(await w.exited).toBe(0);
  const ev = events(w.output());
  expect(ev.filter((e) => e.event === 'job.recovered').map((e) => [e.worker, e.id, e.to])).toEqual([[lease, id, 'pending']]);
  const done = jobIn(spool, 'done', id!)!;
  expect(done.history.map((h: any) => [h.attempt, h.outcome])).toEqual([[1, 'done']]);
  expect([done.attempts, done.interrupts]).toEqual([1, 0]);
  expect(readLedger(ledger).filter((e) => e.event === 'start')).toHaveLength(1);
  expect(claimedOf(spool, id!)).toEqual([]);
}, 30_000);

it('a zcq recover killed after taking a dead lease: the next recovery settles claimed/CLIENT/DEAD.dead/ by the dead worker\'s policy', async () => {
  const spool = await newSpool();
  const ledger = join(tempDir(), 'ledger');
  const [id] = await putMany(spool, 1, './jobs.mjs#abortableRecord', [ledger, 30_000, 50]);
  const w = worker(spool, FAST);
  await until(() => readLedger(ledger).length === 1, 15_000);
  const dead = events(w.output()).find((e) => e.event === 'worker.start')!.worker;
  w.kill('SIGKILL');
  await w.exited;
  await sleep(1300);

  const child = track(spawn(process.execPath, [join(FIXTURES, 'recover-then-die.mjs'), spool], { cwd: FIXTURES, stdio: ['ignore', 'pipe', 'pipe'] }));
  await child.exited;
  expect(child.signalCode).toBe('SIGKILL');
  expect(child.output()).toBe('taken\n');
  const held = claimedOf(spool, id!);
  expect(held).toHaveLength(1);
  const parts = held[0]!.split('/');
  const client = parts.at(-3)!;
  expect(parts.at(-2)).toBe(`${dead}.dead`);
  expect(parts.at(-1)).toMatch(new RegExp(`^\\d+\\.${id}\\.json$`));
  expect(JSON.parse(readFileSync(join(spool, 'workers', `${client}.json`), 'utf8')).kind).toBe('client');

  ago(join(spool, 'workers', `${client}.json`), 120); ago(join(spool, 'claimed', client), 120);
  const r = zcq(spool, ['recover']);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines[0]).toMatch(new RegExp(`^lease\\.expired\\t${client.replace(/\./g, '\\.')}\\t`));
  // The job is settled as the dead worker's (it was running there), not as the client's (never run).
  expect(lines.slice(1)).toEqual([`job.recovered\t${dead}\t${id}\t→ pending`]);
  const back = jobIn(spool, 'pending', id!)!;
  expect([back.attempts, back.interrupts]).toEqual([1, 1]);
  expect(back.history.map((h: any) => [h.outcome, h.worker, h.pid])).toEqual([['interrupted', dead, w.pid]]);
  expect(claimedFiles(spool)).toEqual([]);
  expect(names(join(spool, 'claimed'))).toEqual([]);
  // Both leases are gone, heartbeats included.
  for (const l of [client, dead]) expect(existsSync(join(spool, 'workers', `${l}.json`)), l).toBe(false);
}, 40_000);

it('a cancel of a deferred job killed after its claim: recovery puts it back in deferred/ at its due time, not in pending/', async () => {
  const spool = await newSpool();
  const dueMs = Date.now() + 3600_000;
  const [id] = await putMany(spool, 1, './jobs.mjs#add', [1, 2], { at: new Date(dueMs) });
  const [was] = deferredFiles(spool);
  expect(was!.id).toBe(id);
  const child = track(spawn(process.execPath, [join(FIXTURES, 'cancel-then-die.mjs'), spool, id!], { cwd: FIXTURES, stdio: ['ignore', 'pipe', 'pipe'] }));
  await child.exited;
  expect(child.output()).toBe('claimed\n');
  expect(deferredFiles(spool)).toEqual([]);
  const clientLease = claimedOf(spool, id!)[0]!.split('/').at(-2)!;
  ago(join(spool, 'workers', `${clientLease}.json`), 120); ago(join(spool, 'claimed', clientLease), 120);
  const r = zcq(spool, ['recover']);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout.trim().split('\n').slice(1)).toEqual([`job.recovered\t${clientLease}\t${id}\t→ deferred`]);
  // Where it waited, under the same name: a worker does not run it an hour early.
  expect(deferredFiles(spool).map((d) => d.path)).toEqual([was!.path]);
  expect(jobIn(spool, 'pending', id!)).toBeNull();
  const job = JSON.parse(readFileSync(was!.path, 'utf8'));
  expect([job.attempts, job.interrupts, job.history]).toEqual([0, 0, []]);
}, 30_000);
