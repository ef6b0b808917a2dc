// Worker names and live configuration (issue 13, first part): `zcq config set/get/ls/rm` and
// `spool.config`, stored in config/workers/ and applied by real `zcq worker` processes within a poll,
// without a restart. Ledgers of start/end stamps (test/fixtures/jobs.mjs abortableRecord) on this
// machine's clock, which the jobs and the test share.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Spool } from '../dist/index.js';
import { cleanupTemp, killAll, names, startWorker, tempDir, until, zcq } from './helpers.js';
import { events, readLedger, sleep, type LedgerEntry } from './recovery/util.js';

afterEach(killAll);
afterAll(cleanupTemp);

const HOST = hostname();
const POLL_MS = 200;
const FAST = ['--poll', `${POLL_MS}ms`, '--lease', '3s', '--no-scheduler'];

async function newSpool(): Promise<Spool> {
  const dir = join(tempDir('zcq-cfg-'), 'spool');
  expect(zcq(null, ['init', dir]).code).toBe(0);
  return Spool.open(dir, { durable: false });
}

function ok(spool: Spool, args: string[]): string {
  const r = zcq(spool.dir, args);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

/** Per job: its start and end stamps (end: Infinity while running). */
function runs(ledger: string): { id: string; start: number; end: number }[] {
  const by = new Map<string, { id: string; start: number; end: number }>();
  for (const e of readLedger(ledger) as LedgerEntry[]) {
    if (e.event === 'start') by.set(e.id, { id: e.id, start: e.at, end: Infinity });
    if (e.event === 'end' && by.has(e.id)) by.get(e.id)!.end = e.at;
  }
  return [...by.values()];
}

/** The most jobs running at once, over the whole ledger. */
function maxOverlap(rs: { start: number; end: number }[]): number {
  const marks = rs.flatMap((r) => [[r.start, 1], [r.end, -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let n = 0, max = 0;
  for (const [, d] of marks) { n += d; max = Math.max(max, n); }
  return max;
}

const configFile = (spool: Spool, file: string) => join(spool.dir, 'config', 'workers', file);

describe('zcq config: the files, the checks', () => {
  it('set, get, ls, rm for a name, host:HOST and *; one file per target, names that cannot collide', async () => {
    const spool = await newSpool();
    expect(ok(spool, ['config', 'set', '*', 'concurrency=3'])).toBe('*\tconcurrency=3\n');
    expect(ok(spool, ['config', 'set', `host:${HOST}`, 'queues=b,a', 'paused=true'])).toBe(`host:${HOST}\tqueues=b,a\tpaused=true\n`);
    expect(ok(spool, ['config', 'set', 'mailer', 'fn=./mail.mjs#*,!*#slow', 'concurrency=8'])).toBe('mailer\tconcurrency=8\tfn=./mail.mjs#*,!*#slow\n');
    expect(names(join(spool.dir, 'config', 'workers')).sort()).toEqual(['_all.json', `host~${HOST}.json`, 'mailer.json'].sort());
    expect(JSON.parse(readFileSync(configFile(spool, `host~${HOST}.json`), 'utf8'))).toEqual({ queues: ['b', 'a'], paused: true });
    expect(ok(spool, ['config', 'ls'])).toBe(`*\tconcurrency=3\nhost:${HOST}\tqueues=b,a\tpaused=true\nmailer\tconcurrency=8\tfn=./mail.mjs#*,!*#slow\n`);
    expect(ok(spool, ['config', 'get', 'mailer'])).toBe('mailer\tconcurrency=8\tfn=./mail.mjs#*,!*#slow\n');
    expect(ok(spool, ['config', 'get', 'nobody'])).toBe('nobody\t(no settings)\n');
    // queues=* and fn=* store null: "all", overriding a lower level.
    ok(spool, ['config', 'set', 'mailer', 'queues=*']);
    expect(JSON.parse(readFileSync(configFile(spool, 'mailer.json'), 'utf8'))).toEqual({ concurrency: 8, queues: null, fn: ['./mail.mjs#*', '!*#slow'] });
    expect(ok(spool, ['config', 'rm', 'mailer', 'fn', 'queues'])).toBe('mailer\tremoved queues,fn\n'); // in the keys' order
    expect(spool.config.get('mailer').settings).toEqual({ concurrency: 8 });
    expect(ok(spool, ['config', 'rm', 'mailer'])).toBe('mailer\tremoved concurrency\n');
    expect(existsSync(configFile(spool, 'mailer.json'))).toBe(false);
    // The last key removed removes the file.
    ok(spool, ['config', 'rm', '*', 'concurrency']);
    expect(existsSync(configFile(spool, '_all.json'))).toBe(false);
    // The library, typed.
    expect(await spool.config.set('pool-1', { concurrency: 2, queues: ['x'], paused: false })).toEqual({ concurrency: 2, queues: ['x'], paused: false });
    expect(spool.config.ls().map((e) => e.target)).toEqual([`host:${HOST}`, 'pool-1']);
    expect(await spool.config.rm('pool-1', ['paused'])).toEqual(['paused']);
    await expect(spool.config.set('pool-1', { concurrency: 0 })).rejects.toMatchObject({ code: 'ZCQ_USAGE' });
    await expect(spool.config.set('pool-1', { colour: 1 } as never)).rejects.toMatchObject({ code: 'ZCQ_USAGE' });
    expect(spool.config.get('pool-1').settings).toEqual({ concurrency: 2, queues: ['x'] });
  });

  it('a bad key or value exits 2 with one line naming it and its range, and writes nothing', async () => {
    const spool = await newSpool();
    ok(spool, ['config', 'set', 'w', 'concurrency=2']);
    const before = readFileSync(configFile(spool, 'w.json'), 'utf8');
    const cases: [string[], RegExp][] = [
      [['concurrency=1025', 'paused=true'], /^zcq: concurrency=1025: concurrency takes a whole number from 1 to 1024\n$/],
      [['paused=true', 'concurrency=0'], /^zcq: concurrency=0: concurrency takes a whole number from 1 to 1024\n$/],
      [['concurrency=two'], /^zcq: concurrency=two: .*1 to 1024\n$/],
      [['queues=a/b'], /^zcq: queues=a\/b: queues takes 1 to 64 queue names .*\n$/],
      [['queues='], /^zcq: queues=: queues takes 1 to 64 queue names/],
      [['fn=a b'], /^zcq: fn=a b: fn takes 1 to 32 glob patterns/],
      [['paused=maybe'], /^zcq: paused=maybe: paused takes true or false\n$/],
      [['colour=red'], /^zcq: 'colour' is not a worker setting \(use concurrency, queues, fn, paused\)\n$/],
      [['concurrency'], /^zcq: config set: 'concurrency': use KEY=VALUE/],
    ];
    for (const [args, msg] of cases) {
      for (const target of ['w', 'fresh']) {
        const r = zcq(spool.dir, ['config', 'set', target, ...args]);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr, args.join(' ')).toMatch(msg);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stdout).toBe('');
      }
    }
    const badTarget = zcq(spool.dir, ['config', 'set', 'a/b', 'concurrency=1']);
    expect(badTarget.code).toBe(2);
    expect(badTarget.stderr).toMatch(/^zcq: target 'a\/b': give a worker name .* host:HOST, or \* for every worker\n$/);
    expect(zcq(spool.dir, ['config', 'rm', 'w', 'colour']).code).toBe(2);
    expect(readFileSync(configFile(spool, 'w.json'), 'utf8')).toBe(before);
    expect(names(join(spool.dir, 'config', 'workers'))).toEqual(['w.json']);
    expect(names(join(spool.dir, 'tmp')).filter((n) => !n.startsWith('.'))).toEqual([]);
  });

  it('a symlink planted at config/workers/X.json is replaced by config set, never written through', async () => {
    const spool = await newSpool();
    mkdirSync(join(spool.dir, 'config', 'workers'), { recursive: true });
    const outside = join(tempDir(), 'victim.json');
    writeFileSync(outside, '{"concurrency":7}\n');
    symlinkSync(outside, configFile(spool, 'x.json'));
    // Reading refuses the link (it is not taken as settings, and nothing is read through it).
    const got = zcq(spool.dir, ['config', 'get', 'x']);
    expect(got.code).toBe(0);
    expect(got.stderr).toMatch(/x\.json: .*symbolic link/);
    expect(got.stdout).toBe('x\n');
    ok(spool, ['config', 'set', 'x', 'paused=true']);
    expect(readFileSync(outside, 'utf8')).toBe('{"concurrency":7}\n');
    expect(lstatSync(configFile(spool, 'x.json')).isFile()).toBe(true);
    expect(JSON.parse(readFileSync(configFile(spool, 'x.json'), 'utf8'))).toEqual({ paused: true });
    // rm removes the name, never what a link points to.
    symlinkSync(outside, configFile(spool, 'y.json'));
    ok(spool, ['config', 'rm', 'y']);
    expect(existsSync(configFile(spool, 'y.json'))).toBe(false);
    expect(readFileSync(outside, 'utf8')).toBe('{"concurrency":7}\n');
  });
});

describe('running workers apply a change within a poll, without a restart', () => {
  it(`zcq config set host:HOST concurrency=1 while a worker runs 4 of 8 slow jobs: within poll+1 s, at most 1 at once`, async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    ok(spool, ['config', 'set', '*', 'concurrency=4']);
    await spool.putMany(Array.from({ length: 8 }, () => ({ fn: './jobs.mjs#abortableRecord', args: [ledger, 1500] })));
    const w = startWorker(spool.dir, [...FAST, '--json']);
    await until(() => runs(ledger).length >= 4, 20_000);
    expect(maxOverlap(runs(ledger))).toBe(4); // the * entry was applied
    const changedAt = Date.now();
    ok(spool, ['config', 'set', `host:${HOST}`, 'concurrency=1']);
    await until(() => names(join(spool.dir, 'done', 'default')).length === 8, 30_000);
    const all = runs(ledger);
    const cut = changedAt + POLL_MS + 1000;
    const later = all.filter((r) => r.start > cut);
    expect(later.length).toBeGreaterThanOrEqual(3);
    for (const r of later) {
      const alongside = all.filter((o) => o !== r && o.start <= r.start && o.end > r.start);
      expect(alongside, `job ${r.id} started at +${r.start - changedAt} ms`).toEqual([]);
    }
    const change = events(w.output()).find((e) => e.event === 'worker.config');
    expect(change).toMatchObject({ concurrency: `1 (host)` });
    expect(w.exitCode).toBe(null); // no restart
  }, 60_000);

  it('queues= switches the queue served, live', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    ok(spool, ['config', 'set', 'qw', 'queues=a']);
    await spool.putMany([1, 2, 3].flatMap(() => [{ fn: './jobs.mjs#abortableRecord', args: [ledger, 1], queue: 'a' }, { fn: './jobs.mjs#abortableRecord', args: [ledger, 1], queue: 'b' }]));
    const w = startWorker(spool.dir, [...FAST, '--name', 'qw']);
    await until(() => names(join(spool.dir, 'done', 'a')).length === 3);
    await sleep(4 * POLL_MS);
    expect(names(join(spool.dir, 'pending', 'b'))).toHaveLength(3);
    ok(spool, ['config', 'set', 'qw', 'queues=b']);
    await until(() => names(join(spool.dir, 'done', 'b')).length === 3, 10_000);
    // And a new job of a is no longer taken.
    await spool.put('./jobs.mjs#abortableRecord', [ledger, 1], { queue: 'a' });
    await sleep(4 * POLL_MS);
    expect(names(join(spool.dir, 'pending', 'a'))).toHaveLength(1);
    expect(w.exitCode).toBe(null);
  }, 60_000);

  it('paused=true: running jobs finish, no new one is taken; zcq config rm resumes', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    const slow = await spool.put('./jobs.mjs#abortableRecord', [ledger, 1500]);
    const w = startWorker(spool.dir, [...FAST, '--name', 'pw', '--concurrency', '4', '--json']);
    await until(() => runs(ledger).length === 1);
    ok(spool, ['config', 'set', 'pw', 'paused=true']);
    // The jobs are put once the worker has taken the change (its log says so), however slow the machine.
    await until(() => events(w.output()).some((e) => e.event === 'worker.config' && e.paused === 'true (name)'), 10_000);
    await spool.putMany(Array.from({ length: 3 }, () => ({ fn: './jobs.mjs#abortableRecord', args: [ledger, 1] })));
    await until(() => existsSync(join(spool.dir, 'done', 'default', `${slow.id}.json`)), 10_000);
    await sleep(4 * POLL_MS);
    expect(runs(ledger)).toHaveLength(1);
    expect(names(join(spool.dir, 'pending', 'default'))).toHaveLength(3);
    const st = JSON.parse(ok(spool, ['--json', 'status'])).workers.find((x: { name?: string }) => x.name === 'pw');
    expect(st.settings.paused).toBe(true);
    expect(st.sources.paused).toBe('name');
    ok(spool, ['config', 'rm', 'pw']);
    await until(() => names(join(spool.dir, 'done', 'default')).length === 4, 10_000);
    expect(w.exitCode).toBe(null);
  }, 60_000);

  it('a flag wins over the configuration, and status says where each setting came from', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    ok(spool, ['config', 'set', 'fw', 'concurrency=5', 'queues=q1']);
    ok(spool, ['config', 'set', `host:${HOST}`, 'fn=./jobs.mjs#*', 'concurrency=6']);
    ok(spool, ['config', 'set', '*', 'paused=false', 'concurrency=7']);
    await spool.putMany(Array.from({ length: 6 }, () => ({ fn: './jobs.mjs#abortableRecord', args: [ledger, 800], queue: 'q1' })));
    startWorker(spool.dir, [...FAST, '--name', 'fw', '--concurrency', '2']);
    await until(() => names(join(spool.dir, 'done', 'q1')).length === 6, 30_000);
    expect(maxOverlap(runs(ledger))).toBe(2);
    const v = JSON.parse(ok(spool, ['--json', 'status'])).workers.find((x: { name?: string }) => x.name === 'fw');
    expect(v).toMatchObject({ name: 'fw', host: HOST, concurrency: 2, queues: ['q1'] });
    expect(v.settings).toEqual({ concurrency: 2, queues: ['q1'], fn: ['./jobs.mjs#*'], paused: false });
    expect(v.sources).toEqual({ concurrency: 'flag', queues: 'name', fn: 'host', paused: '*' });
    const text = ok(spool, ['status']);
    expect(text).toMatch(/^WORKER +NAME +HOST +CONCURRENCY +QUEUES +FN +PAUSED$/m);
    expect(text).toMatch(new RegExp(`^\\S+ +fw +${HOST.replace(/\./g, '\\.')} +2 \\(flag\\) +q1 \\(config fw\\) +\\./jobs\\.mjs#\\* \\(config host:${HOST.replace(/\./g, '\\.')}\\) +no \\(config \\*\\)$`, 'm'));
    // The flag's value is live too: a change to the entry it wins over changes nothing.
    ok(spool, ['config', 'set', 'fw', 'concurrency=9']);
    await sleep(POLL_MS * 3);
    expect(JSON.parse(ok(spool, ['--json', 'status'])).workers.find((x: { name?: string }) => x.name === 'fw').settings.concurrency).toBe(2);
  }, 60_000);

  it('fn=: a job whose function does not match is put back once (not claimed in a loop) and taken when the filter changes', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    ok(spool, ['config', 'set', 'fnw', 'fn=./jobs.mjs#abortable*,!*#abortable']);
    const wanted = await spool.putMany(Array.from({ length: 3 }, () => ({ fn: './jobs.mjs#abortableRecord', args: [ledger, 1] })));
    const other = await spool.putMany(Array.from({ length: 3 }, () => ({ fn: './jobs.mjs#add', args: [1, 2] })));
    const w = startWorker(spool.dir, [...FAST, '--name', 'fnw', '--json', '--verbose']);
    await until(() => names(join(spool.dir, 'done', 'default')).length === 3);
    await sleep(6 * POLL_MS);
    expect(names(join(spool.dir, 'done', 'default')).sort()).toEqual(wanted.map((j) => `${j.id}.json`).sort());
    expect(names(join(spool.dir, 'pending', 'default')).sort()).toEqual(other.map((j) => `${j.id}.json`).sort());
    const skipped = events(w.output()).filter((e) => e.event === 'job.skipped').map((e) => e.id);
    expect(skipped.sort()).toEqual(other.map((j) => j.id).sort()); // each once, over many polls
    // Put back untouched: no attempt counted.
    for (const j of other) expect(JSON.parse(readFileSync(join(spool.dir, 'pending', 'default', `${j.id}.json`), 'utf8')).attempts).toBe(0);
    ok(spool, ['config', 'rm', 'fnw', 'fn']);
    await until(() => names(join(spool.dir, 'done', 'default')).length === 6, 10_000);
    expect(readdirSync(join(spool.dir, 'pending', 'default'))).toEqual([]);
  }, 60_000);

  it('--name is checked (exit 2) and defaults to the host name', async () => {
    const spool = await newSpool();
    const bad = zcq(spool.dir, ['worker', '--name', 'no/slash', '--exit-when-idle']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^zcq: --name 'no\/slash': use letters, digits/);
    const badFn = zcq(spool.dir, ['worker', '--fn', 'a,b c', '--exit-when-idle']);
    expect(badFn.code).toBe(2);
    startWorker(spool.dir, FAST);
    // The first heartbeat (taking the lease) has no settings yet; the next one carries them and their sources.
    await until(() => (JSON.parse(zcq(spool.dir, ['--json', 'status']).stdout).workers as { sources?: unknown }[])[0]?.sources !== undefined);
    const v = JSON.parse(ok(spool, ['--json', 'status'])).workers[0];
    expect(v.name).toBe(HOST.replace(/[^A-Za-z0-9._-]/g, '-'));
    expect(v.sources).toEqual({ concurrency: 'default', queues: 'default', fn: 'default', paused: 'default' });
  }, 30_000);
});
