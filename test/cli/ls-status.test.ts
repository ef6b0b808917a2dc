// zcq ls and zcq status through the real binary: a table on a terminal (script(1) gives the pty), fixed
// tab-separated columns in a pipe, --json shapes, ages by the file's ctime, done hidden by default,
// per-queue counts, paused queues, schedules in their own zone, a live worker's queues and load.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { cleanupTemp, tempDir, until, zcq } from '../helpers.js';
import { OPS, onPty, worker } from './util.js';

afterAll(cleanupTemp);
const workers: ReturnType<typeof worker>[] = [];
afterEach(() => { for (const w of workers.splice(0)) w.kill('SIGKILL'); });

const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/; // TAB and LF allowed
/** ESC sequences a terminal line may carry from script(1) itself: none expected from zcq ls/status. */
const ESC = '\x1b';

function run(spool: string | null, args: string[]) {
  const r = zcq(spool, args, { cwd: OPS });
  return r;
}
function ok(spool: string, args: string[]): string {
  const r = run(spool, args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}
function newSpool(): string {
  const spool = join(tempDir(), 'spool');
  ok(spool, ['init']);
  return spool;
}
const put = (spool: string, ...args: string[]) => ok(spool, ['put', ...args]).trim();
const drain = (spool: string) => ok(spool, ['worker', '--root', OPS, '--exit-when-idle', '--poll', '100ms', '--concurrency', '2']);

/** A spool with a job in every state but claimed: done (1), failed (1), pending (1), deferred (1), hold (1). */
function mixed() {
  const spool = newSpool();
  const done = put(spool, './ops.mjs#steps', '1', '1');
  const failed = put(spool, './ops.mjs#fails', 'bad\x1b[2Jthing\tand\nmore');
  drain(spool);
  const pending = put(spool, './ops.mjs#steps', '1', '1', '--queue', 'mail');
  const deferred = put(spool, './ops.mjs#steps', '1', '1', '--in', '15m');
  const held = put(spool, './ops.mjs#steps', '1', '1', '--queue', 'mail');
  ok(spool, ['hold', held]);
  return { spool, done, failed, pending, deferred, held };
}

describe('zcq ls in a pipe: one job a line, 7 tab-separated columns', () => {
  const m = mixed();

  it('id state queue fn age-seconds attempts extra; done left out; oldest first', () => {
    const out = ok(m.spool, ['ls']);
    expect(out).not.toMatch(RAW_CONTROL);
    const rows = out.trimEnd().split('\n').map((l) => l.split('\t'));
    for (const r of rows) expect(r).toHaveLength(7);
    expect(rows.map((r) => r[0])).toEqual([m.failed, m.pending, m.deferred, m.held]);
    const byId = Object.fromEntries(rows.map((r) => [r[0], r]));
    expect(byId[m.pending]!.slice(1, 4)).toEqual(['pending', 'mail', './ops.mjs#steps']);
    expect(byId[m.held]!.slice(1, 3)).toEqual(['hold', 'mail']);
    for (const r of rows) expect(r[4]).toMatch(/^\d+$/);
    expect(byId[m.failed]![5]).toBe('1');
    expect(byId[m.pending]![5]).toBe('0');
    expect(byId[m.deferred]![6]).toMatch(/^due=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const dueMs = Date.parse(byId[m.deferred]![6]!.slice(4)) - Date.now();
    expect(dueMs).toBeGreaterThan(14 * 60_000);
    // The failure: reason, name and message on one field (tab and newline escaped).
    expect(byId[m.failed]![6]).toBe('reason=error Error: bad\\x1b[2Jthing\\x09and\\x0amore');
    expect(byId[m.pending]![6]).toBe('-');
  });

  it('done jobs with `ls done` or --all; --all and states together are a usage error', () => {
    expect(ok(m.spool, ['ls', 'done']).trimEnd().split('\n').map((l) => l.split('\t').slice(0, 2))).toEqual([[m.done, 'done']]);
    const all = ok(m.spool, ['ls', '--all']).trimEnd().split('\n').map((l) => l.split('\t')[0]);
    expect(all.sort()).toEqual([m.done, m.failed, m.pending, m.deferred, m.held].sort());
    const r = run(m.spool, ['ls', '--all', 'done']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/states or --all/);
    // The man page's pipeline: the first column is the id.
    expect(ok(m.spool, ['ls', 'failed']).split('\t')[0]).toBe(m.failed);
  });

  it('--json: one array with id, state, queue, fn, ageMs, attempts, retries, due, failure', () => {
    const arr = JSON.parse(ok(m.spool, ['--json', 'ls']));
    expect(arr.map((j: { id: string }) => j.id)).toEqual([m.failed, m.pending, m.deferred, m.held]);
    const f = arr[0];
    expect(f).toMatchObject({ id: m.failed, state: 'failed', queue: 'default', fn: './ops.mjs#fails', attempts: 1, retries: 0 });
    expect(f.failure).toEqual({ reason: 'error', name: 'Error', message: 'bad\x1b[2Jthing\tand\nmore' });
    expect(typeof f.ageMs).toBe('number');
    expect(arr[2].due).toMatch(/Z$/);
    expect(JSON.parse(ok(m.spool, ['--json', 'ls', '--all']))).toHaveLength(5);
  });

  it('the age is the time in the state (ctime: a hold is a rename), not since the last write', async () => {
    const spool = newSpool();
    const a = put(spool, './ops.mjs#steps', '1', '1');
    const b = put(spool, './ops.mjs#steps', '1', '1');
    await new Promise((r) => setTimeout(r, 2100));
    ok(spool, ['hold', b]);
    const ages = Object.fromEntries(ok(spool, ['ls']).trimEnd().split('\n').map((l) => l.split('\t')).map((r) => [r[0], Number(r[4])]));
    expect(ages[a]).toBeGreaterThanOrEqual(2);
    expect(ages[b]).toBeLessThan(2);
  });
});

describe('zcq ls on a terminal: an aligned table', () => {
  const m = mixed();

  it('a header, relative times, the failure message, and a note of the done jobs not shown', () => {
    const r = onPty(['--spool', m.spool, 'ls'], { cols: 200 });
    expect(r.code, r.out).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +STATE +QUEUE +FN +AGE\/DUE +ATTEMPTS +INFO$/);
    const row = (id: string) => lines.find((l) => l.startsWith(id))!;
    expect(row(m.deferred)).toMatch(/ deferred +default +\.\/ops\.mjs#steps +in 1[45]m +0\/1$/);
    expect(row(m.pending)).toMatch(/ pending +mail +\.\/ops\.mjs#steps +(now|\d+s ago) +0\/1$/);
    expect(row(m.failed)).toMatch(/ failed +default +\.\/ops\.mjs#fails +(now|\d+s ago) +1\/1 +error: Error: bad\\x1b\[2Jthing\\x09and\\x0amore$/);
    // Columns line up: every row's STATE starts where the header's does.
    const at = lines[0]!.indexOf('STATE');
    for (const l of lines.slice(1, 5)) expect(l.slice(at)).toMatch(/^(pending|deferred|failed|hold) /);
    expect(lines.at(-1)).toBe('(1 done job not shown: zcq ls done, or --all)');
    expect(r.out).not.toContain(ESC);
  });

  it('cut to the terminal width', () => {
    for (const cols of [60, 80]) {
      const r = onPty(['--spool', m.spool, 'ls'], { cols });
      expect(r.code).toBe(0);
      const lines = r.out.trimEnd().split('\n');
      for (const l of lines) expect(Array.from(l).length, `${cols}: ${l}`).toBeLessThanOrEqual(cols);
      expect(lines.some((l) => l.includes('…'))).toBe(true);
      expect(lines[0]).toMatch(/^ID +STATE +QUEUE +FN +AGE\/DUE +ATTEMPTS/);
    }
  });

  it('only deferred jobs: the column is DUE; no job: says so', () => {
    const r = onPty(['--spool', m.spool, 'ls', 'deferred']);
    expect(r.out.split('\n')[0]).toMatch(/^ID +STATE +QUEUE +FN +DUE +ATTEMPTS$/);
    expect(onPty(['--spool', newSpool(), 'ls']).out.trim()).toBe('(no jobs)');
  });
});

describe('zcq status', () => {
  it('counts per queue and state (done and hold too), paused queues, totals, oldest pending; the same in a pipe', () => {
    const m = mixed();
    ok(m.spool, ['pause', 'mail']);
    ok(m.spool, ['pause', 'idle']);
    const out = ok(m.spool, ['status']);
    expect(out).not.toMatch(RAW_CONTROL);
    const lines = out.split('\n');
    expect(lines[0]).toBe(`spool ${m.spool}`);
    const header = lines.find((l) => l.startsWith('QUEUE'))!;
    expect(header).toMatch(/^QUEUE +PENDING +DEFERRED +CLAIMED +HOLD +FAILED +DONE +WAITING$/);
    const cells = (name: string) => lines.find((l) => l.startsWith(name))!.slice(header.indexOf('PENDING')).trim().split(/ +/).map(Number);
    expect(cells('default ')).toEqual([0, 1, 0, 0, 1, 1, 0]);
    expect(cells('mail (paused)')).toEqual([1, 0, 0, 1, 0, 0, 0]);
    expect(cells('idle (paused)')).toEqual([0, 0, 0, 0, 0, 0, 0]);
    expect(cells('total')).toEqual([1, 1, 0, 1, 1, 1, 0]);
    expect(out).toMatch(/^oldest pending: (now|\d+s ago)$/m);
    expect(out).toMatch(/^workers: 0 alive$/m);
    const tty = onPty(['--spool', m.spool, 'status']);
    expect(tty.code).toBe(0);
    const ages = (s: string) => s.replace(/(now|\d+s ago)/g, 'AGE');
    expect(ages(tty.out)).toBe(ages(out));
  });

  it('cron schedules with their next run on their own zone\'s clock', () => {
    const spool = newSpool();
    ok(spool, ['cron', 'add', 'morning', '0 9 * * *', './ops.mjs#steps', '1', '1', '--tz', 'America/New_York']);
    ok(spool, ['cron', 'add', 'tokyo', '30 7 * * *', './ops.mjs#steps', '1', '1', '--tz', 'Asia/Tokyo']);
    const out = ok(spool, ['status']);
    expect(out).toMatch(/^SCHEDULE +EXPR +TZ +NEXT RUN +FN$/m);
    expect(out).toMatch(/^morning +0 9 \* \* \* +America\/New_York +\d{4}-\d\d-\d\d 09:00:00 (EST|EDT|GMT-[45]) \((in [\ddhms]+|now)\) +\.\/ops\.mjs#steps$/m);
    expect(out).toMatch(/^tokyo +30 7 \* \* \* +Asia\/Tokyo +\d{4}-\d\d-\d\d 07:30:00 (JST|GMT\+9) \((in [\dhms]+|now)\) /m);
    const j = JSON.parse(ok(spool, ['--json', 'status']));
    expect(j.schedules.map((s: { name: string }) => s.name)).toEqual(['morning', 'tokyo']);
    expect(j.schedules[0].nextRunLocal).toMatch(/ 09:00:00 /);
    expect(new Date(j.schedules[0].nextRun).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  it('a live worker: its queues, running/concurrency, heartbeat; the running job counted in its queue', async () => {
    const spool = newSpool();
    const gate = join(tempDir(), 'gate');
    const id = put(spool, './ops.mjs#until', gate, '--queue', 'slow');
    const w = worker(spool, ['--queue', 'slow', '--queue', 'other', '--concurrency', '3', '--lease', '3s']);
    workers.push(w);
    await until(() => { const j = JSON.parse(run(spool, ['--json', 'status']).stdout); return j.workers[0]?.running === 1; }, 30_000, 200);
    const j = JSON.parse(ok(spool, ['--json', 'status']));
    expect(j.workers[0]).toMatchObject({ alive: true, running: 1, concurrency: 3, queues: ['slow', 'other'] });
    expect(j.queues.slow).toMatchObject({ claimed: 1 });
    expect(j.counts.claimed).toBe(1);
    const out = ok(spool, ['status']);
    expect(out).toMatch(/^workers: 1 alive$/m);
    expect(out).toMatch(/^WORKER +STATE +QUEUES +RUNNING +HEARTBEAT$/m);
    expect(out).toMatch(new RegExp(`^${j.workers[0].id.replace(/\./g, '\\.')} +alive +slow,other +1/3 +(now|\\d+s ago)$`, 'm'));
    expect(out).toMatch(/^slow +0 +0 +1 +0 +0 +0 +0$/m);
    // ls: the running job with its worker.
    const row = ok(spool, ['ls', 'claimed']).trimEnd().split('\t');
    expect(row.slice(0, 4)).toEqual([id, 'claimed', 'slow', './ops.mjs#until']);
    expect(row[6]).toBe(`worker=${j.workers[0].id}`);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(gate, '');
    w.kill('SIGTERM');
    expect(await w.exited).toBe(0);
  });
});
