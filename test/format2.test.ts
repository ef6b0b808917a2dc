// What format 2 changes for people, through the real `zcq` binary: hold/release, pause/resume, queue
// isolation, due times up to year 9999, a finished record moved back by hand, and retries racing each
// other and a worker. Real folders, real processes; a ledger file (O_APPEND) counts runs independently of
// the spool's own records.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BIN, FIXTURES, cleanupTemp, deferredFiles, donePath, failedPath, holdPath, idsIn, killAll, ledgerLines, names, newSpool,
  pendingPath, readJob, startWorker, tempDir, until, whereIs, zcq, type Run,
} from './helpers.js';

afterEach(killAll);
afterAll(cleanupTemp);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `zcq ARGS` as a child process, without blocking the test (for commands that must run at the same time). */
function zcqAsync(spool: string, args: string[]): Promise<Run> {
  return new Promise((res) => {
    const c = spawn(process.execPath, [BIN, '--spool', spool, ...args], { cwd: FIXTURES, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => { stdout += d; });
    c.stderr.on('data', (d) => { stderr += d; });
    c.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

function put(spool: string, args: string[]): string {
  const r = zcq(spool, ['put', ...args]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

function drain(spool: string, extra: string[] = []): void {
  const r = zcq(spool, ['worker', '--root', '.', '--exit-when-idle', '--poll', '100ms', '--concurrency', '2', ...extra]);
  expect(r.code, r.stderr).toBe(0);
}

/** The job ids a ledger saw run, in order. */
const ran = (ledger: string) => ledgerLines(ledger).map((l) => l.split(' ')[0]!);

describe('only zcq init creates a spool', () => {
  it('every other command on a missing spool exits 2 with one line and creates nothing', () => {
    const parent = tempDir();
    const dir = join(parent, 'spool');
    const commands = [
      ['put', './jobs.mjs#add', '1', '2'], ['worker', '--exit-when-idle'], ['ls'], ['show', 'x'], ['retry', 'x'], ['cancel', 'x'],
      ['hold', 'x'], ['release', 'x'], ['pause', 'q'], ['resume', 'q'], ['wait', 'x'], ['status'], ['recover'], ['doctor'], ['cron', 'ls'],
    ];
    for (const args of commands) {
      const r = zcq(dir, args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toEqual([`zcq: no spool at ${dir} (run zcq init ${dir})`]);
    }
    expect(names(parent)).toEqual([]);
    const init = zcq(null, ['init', dir]);
    expect(init.code, init.stderr).toBe(0);
    expect(readJob(join(dir, 'zcq-spool.json'))).toMatchObject({ format: 2 });
    expect(zcq(dir, ['status']).code).toBe(0);
  });
});

describe('hold and release', () => {
  it('zcq hold sets pending and deferred jobs aside; no worker takes them; zcq release puts them back where they belong', async () => {
    const spool = newSpool();
    const ledger = join(tempDir(), 'ledger');
    const p = put(spool, ['./jobs.mjs#record', ledger, 'p', '--queue', 'q1']);
    const later = put(spool, ['./jobs.mjs#record', ledger, 'later', '--in', '1h']);
    const soon = put(spool, ['./jobs.mjs#record', ledger, 'soon', '--in', '2s']);
    const laterFile = deferredFiles(spool).find((f) => f.includes(later))!;
    const h = zcq(spool, ['hold', p, later, soon]);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toContain(`${p}\thold\t(was pending)`);
    expect(h.stdout).toContain(`${later}\thold\t(was deferred)`);
    expect(whereIs(spool, p)).toEqual([`hold/q1/${p}.json`]);
    expect(whereIs(spool, later)).toEqual([`hold/default/${later}.json`]);
    expect(whereIs(spool, soon)).toEqual([`hold/default/${soon}.json`]);
    // held again, or a finished job: refused, exit 1
    const again = zcq(spool, ['hold', p]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/is hold: only pending or deferred jobs can be held/);

    // ls and status show them
    const ls = zcq(spool, ['ls']);
    for (const id of [p, later, soon]) expect(ls.stdout).toMatch(new RegExp(`^${id}\\thold\\t`, 'm'));
    expect(zcq(spool, ['ls', 'hold']).stdout.trim().split('\n')).toHaveLength(3);
    const st = zcq(spool, ['status']);
    // Columns: QUEUE PENDING DEFERRED CLAIMED HOLD FAILED DONE WAITING.
    expect(st.stdout).toMatch(/^total +0 +0 +0 +3 +0 +0 +0$/m);
    expect(st.stdout).toMatch(/^q1 +0 +0 +0 +1 +0 +0 +0$/m);
    expect(st.stdout).toMatch(/^default +0 +0 +0 +2 +0 +0 +0$/m);
    expect(JSON.parse(zcq(spool, ['--json', 'status']).stdout).counts).toMatchObject({ pending: 0, deferred: 0, hold: 3 });

    // A worker finds nothing to do (held jobs are no work) and runs none of them, even once `soon` is due.
    await sleep(2500);
    drain(spool);
    expect(ledgerLines(ledger)).toEqual([]);
    expect(idsIn(spool, 'hold')).toEqual([p, later, soon].sort());

    // release: pending, back to deferred (due ahead, same bucket and name), or pending (due time passed)
    const r = zcq(spool, ['release', p, later, soon]);
    expect(r.code, r.stderr).toBe(0);
    expect(whereIs(spool, p)).toEqual([`pending/q1/${p}.json`]);
    expect(whereIs(spool, later)).toEqual([`deferred/${laterFile}`]);
    expect(whereIs(spool, soon)).toEqual([`pending/default/${soon}.json`]);
    expect(r.stdout).toContain(`${later}\tdeferred\t(was hold)`);
    const notHeld = zcq(spool, ['release', p]);
    expect(notHeld.code).toBe(1);
    expect(notHeld.stderr).toMatch(/not held/);
    drain(spool);
    expect(ran(ledger).sort()).toEqual([p, soon].sort());
    expect(readJob(donePath(spool, p, 'q1')).result).toBe('p');
    expect(idsIn(spool, 'deferred')).toEqual([later]);
  });

  it('a job moved into hold/ by hand is never taken by a running worker', async () => {
    const spool = newSpool();
    const ledger = join(tempDir(), 'ledger');
    const held = put(spool, ['./jobs.mjs#record', ledger, 'held']);
    mkdirSync(join(spool, 'hold', 'default'), { recursive: true });
    renameSync(pendingPath(spool, held), holdPath(spool, held)); // mv pending/default/ID.json hold/default/
    const w = startWorker(spool, ['--poll', '100ms']);
    const others = [1, 2, 3].map((i) => put(spool, ['./jobs.mjs#record', ledger, String(i)]));
    await until(() => idsIn(spool, 'done').length === 3);
    await sleep(1000); // ten polls more
    expect(ran(ledger).sort()).toEqual([...others].sort());
    expect(whereIs(spool, held)).toEqual([`hold/default/${held}.json`]);
    expect(zcq(spool, ['ls', 'hold']).stdout).toContain(held);
    expect(zcq(spool, ['show', held]).stdout).toMatch(/state\s+hold/);
    // released (by the command this time): the running worker takes it
    expect(zcq(spool, ['release', held]).code).toBe(0);
    await until(() => existsSync(donePath(spool, held)));
    expect(ran(ledger)).toContain(held);
    w.kill('SIGTERM');
    expect(await w.exited).toBe(0);
  });
});

describe('pause and resume', () => {
  it('zcq pause Q stops a running worker taking Q within about a poll, other queues go on; zcq resume Q restarts it', async () => {
    const spool = newSpool();
    const ledger = join(tempDir(), 'ledger');
    const w = startWorker(spool, ['--poll', '100ms', '--concurrency', '2']);
    const first = put(spool, ['./jobs.mjs#record', ledger, 'a0', '--queue', 'a']);
    await until(() => existsSync(donePath(spool, first, 'a')));

    const p = zcq(spool, ['pause', 'a']);
    expect(p.code, p.stderr).toBe(0);
    expect(existsSync(join(spool, 'paused', 'a'))).toBe(true);
    await sleep(1000); // about a poll, generously (a loaded machine)
    const a = [1, 2, 3].map((i) => put(spool, ['./jobs.mjs#record', ledger, `a${i}`, '--queue', 'a']));
    const b = [1, 2, 3].map((i) => put(spool, ['./jobs.mjs#record', ledger, `b${i}`, '--queue', 'b']));
    await until(() => b.every((id) => existsSync(donePath(spool, id, 'b'))));
    await sleep(1000);
    expect(idsIn(spool, 'pending', 'a')).toEqual([...a].sort());
    expect(ran(ledger).filter((id) => a.includes(id))).toEqual([]);

    // status shows the pause (text and JSON)
    const st = zcq(spool, ['status']);
    expect(st.stdout).toMatch(/^paused a$/m);
    expect(st.stdout).toMatch(/^a \(paused\) +3 /m);
    expect(JSON.parse(zcq(spool, ['--json', 'status']).stdout).paused).toEqual(['a']);

    const r = zcq(spool, ['resume', 'a']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(spool, 'paused', 'a'))).toBe(false);
    await until(() => a.every((id) => existsSync(donePath(spool, id, 'a'))));
    expect(JSON.parse(zcq(spool, ['--json', 'status']).stdout).paused).toEqual([]);
    expect(ran(ledger).sort()).toEqual([first, ...a, ...b].sort());
    w.kill('SIGTERM');
    expect(await w.exited).toBe(0);
  });
});

describe('queue isolation', () => {
  it('a worker serving only urgent never opens a file of bulk, and --exit-when-idle exits while bulk has work', () => {
    const spool = newSpool();
    const ledger = join(tempDir(), 'ledger');
    const urgent = [1, 2, 3, 4].map((i) => put(spool, ['./jobs.mjs#record', ledger, `u${i}`, '--queue', 'urgent']));
    const bulk = put(spool, ['./jobs.mjs#record', ledger, 'bulk', '--queue', 'bulk']);
    // Junk a reader would quarantine at its first look (a regular file, not valid JSON).
    const junk = join(spool, 'pending', 'bulk', 'junk.json');
    writeFileSync(junk, '{ not json');

    const r = zcq(spool, ['worker', '--root', '.', '--queue', 'urgent', '--exit-when-idle', '--poll', '100ms', '--concurrency', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(ran(ledger).sort()).toEqual([...urgent].sort());
    for (const id of urgent) expect(existsSync(donePath(spool, id, 'urgent'))).toBe(true);
    // bulk untouched: its job still pending, the junk where it was, nothing quarantined
    expect(whereIs(spool, bulk)).toEqual([`pending/bulk/${bulk}.json`]);
    expect(readFileSync(junk, 'utf8')).toBe('{ not json');
    expect(names(join(spool, 'quarantine'))).toEqual([]);

    // The junk is caught as soon as a worker of bulk looks (so the check above could fail).
    drain(spool, ['--queue', 'bulk']);
    expect(names(join(spool, 'quarantine')).sort()).toEqual(['junk.json', 'junk.json.reason']);
    expect(readJob(donePath(spool, bulk, 'bulk')).result).toBe('bulk');
  });
});

describe('due times', () => {
  it('--at 2300-01-01T00:00Z is kept under a 15-digit name, listed, shown and cancellable', () => {
    const spool = newSpool();
    const id = put(spool, ['./jobs.mjs#add', '1', '2', '--at', '2300-01-01T00:00Z']);
    const due = Date.UTC(2300, 0, 1);
    expect(String(due)).toHaveLength(14);
    expect(deferredFiles(spool)).toEqual([`default/23000101T0000/0${due}.${id}.json`]);
    expect(zcq(spool, ['ls', 'deferred']).stdout).toMatch(new RegExp(`^${id}\\tdeferred\\t.*due=2300-01-01T00:00:00\\.000Z$`, 'm'));
    const show = zcq(spool, ['show', id]);
    expect(show.stdout).toMatch(/state\s+deferred/);
    expect(show.stdout).toMatch(/not before\s+2300-01-01T00:00:00\.000Z/);
    drain(spool); // not due: the worker leaves it
    expect(idsIn(spool, 'deferred')).toEqual([id]);
    const c = zcq(spool, ['cancel', id]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain('cancelled');
    expect(deferredFiles(spool)).toEqual([]);
    expect(readJob(failedPath(spool, id)).failure.reason).toBe('cancelled');
  });

  it('a due time after 9999-12-31 is refused: exit 2, one line, nothing enqueued', () => {
    const spool = newSpool();
    const cases: [string[], RegExp][] = [
      [['--at', '10000-01-01'], /--at '10000-01-01'/],
      [['--at', String(Date.UTC(9999, 11, 31, 23, 59, 59, 999) + 1)], /after 9999-12-31/],
      [['--in', '3000000d'], /after 9999-12-31|--in/],
    ];
    for (const [opt, re] of cases) {
      const r = zcq(spool, ['put', './jobs.mjs#add', ...opt]);
      expect(r.code, opt.join(' ')).toBe(2);
      expect(r.stdout, opt.join(' ')).toBe('');
      const lines = r.stderr.trim().split('\n');
      expect(lines, opt.join(' ')).toHaveLength(1);
      expect(lines[0], opt.join(' ')).toMatch(/^zcq: /);
      expect(lines[0], opt.join(' ')).toMatch(re);
    }
    // the last millisecond of 9999 is accepted
    const last = put(spool, ['./jobs.mjs#add', '--at', '9999-12-31T23:59:59.999Z']);
    expect(deferredFiles(spool)).toEqual([`default/99991231T2359/253402300799999.${last}.json`]);
    expect(idsIn(spool, 'pending')).toEqual([]);
    expect(names(join(spool, 'tmp'))).toEqual([]);
  });
});

describe('finished records moved back by hand', () => {
  it('mv done/Q/ID.json pending/Q/ runs it again with attempt 1 and replaces its result', async () => {
    const spool = newSpool();
    const ledger = join(tempDir(), 'ledger');
    const id = put(spool, ['./jobs.mjs#ledgerRun', ledger, '--queue', 'q']);
    drain(spool);
    const first = readJob(donePath(spool, id, 'q'));
    expect(first.result).toEqual({ run: 1, attempt: 1 });
    renameSync(donePath(spool, id, 'q'), pendingPath(spool, id, 'q'));
    drain(spool);
    expect(whereIs(spool, id)).toEqual([`done/q/${id}.json`]);
    const again = readJob(donePath(spool, id, 'q'));
    expect(again.result).toEqual({ run: 2, attempt: 1 });
    expect(again.attempts).toBe(1);
    expect(again.run).not.toBe(first.run); // a new run token: a new claim
    expect(ledgerLines(ledger).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual([`${id} 1`, `${id} 1`]);
  });
});

describe('retry races', () => {
  it('two zcq retry of one job at once, 20 rounds: exactly one wins each round, and each win runs the job once', async () => {
    const spool = newSpool();
    const ledger = join(tempDir(), 'ledger');
    const id = put(spool, ['./jobs.mjs#ledgerRun', ledger]);
    drain(spool);
    expect(ledgerLines(ledger)).toHaveLength(1);
    for (let round = 1; round <= 20; round++) {
      const [a, b] = await Promise.all([zcqAsync(spool, ['retry', id]), zcqAsync(spool, ['retry', id])]);
      const codes = [a.code, b.code].sort();
      expect(codes, `round ${round}: ${a.stderr}${b.stderr}`).toEqual([0, 1]);
      const loser = a.code === 1 ? a : b;
      expect(loser.stderr.trim().split('\n'), `round ${round}`).toHaveLength(1);
      // the loser's rename met ENOENT, or its look-up came after the winner's rename (or, looking at pending/
      // just before and at done/ just after it, found the job nowhere: a miss, never a second move)
      expect(loser.stderr, `round ${round}`).toMatch(/moved meanwhile|is pending, not finished|not found/);
      expect(whereIs(spool, id), `round ${round}`).toEqual([`pending/default/${id}.json`]);
      drain(spool);
      expect(whereIs(spool, id), `round ${round}`).toEqual([`done/default/${id}.json`]);
      expect(ledgerLines(ledger), `round ${round}`).toHaveLength(round + 1);
      expect(readJob(donePath(spool, id)).result).toEqual({ run: round + 1, attempt: 1 });
    }
  }, 240_000);

  it('the loser of a retry or hold race is told so, never credited with the winner\'s move', async () => {
    // The loser's position, made exactly: it found the job in failed/ (or pending/), the winner moved it first.
    const { retryJob } = await import('../dist/spool/transitions/retry.js');
    const { holdJob } = await import('../dist/spool/transitions/hold.js');
    const { openLayout } = await import('../dist/spool/layout.js');
    const spool = newSpool();
    const l = openLayout(spool);
    const id = put(spool, ['./jobs.mjs#add', '1', '2']);
    mkdirSync(join(spool, 'failed', 'default'), { recursive: true });
    renameSync(pendingPath(spool, id), failedPath(spool, id));
    expect(retryJob(l, failedPath(spool, id), 'default', id, false)).toBe(true); // the winner
    expect(retryJob(l, failedPath(spool, id), 'default', id, false)).toBe(false); // the loser: source gone, target there
    expect(holdJob(l, pendingPath(spool, id), 'default', id, false)).toBe(true);
    expect(holdJob(l, pendingPath(spool, id), 'default', id, false)).toBe(false);
    expect(whereIs(spool, id)).toEqual([`hold/default/${id}.json`]);
  });

  it('zcq retry every 100-250 ms against a worker running a job that always throws: the job is never lost', async () => {
    const spool = newSpool();
    const ledger = join(tempDir(), 'ledger');
    const id = put(spool, ['./jobs.mjs#flakyRecord', ledger, '1000000000']);
    const w = startWorker(spool, ['--poll', '100ms', '--heartbeat', '200ms']);
    await until(() => existsSync(failedPath(spool, id)));
    const retries: Promise<Run>[] = [];
    const end = Date.now() + 5000;
    while (Date.now() < end) {
      retries.push(zcqAsync(spool, ['retry', id]));
      await sleep(100 + Math.floor(Math.random() * 150));
    }
    const results = await Promise.all(retries);
    // At the end the job is in exactly one place. With the retries over, the only moves left go forward in the
    // order whereIs walks (pending, claimed, failed): a walk can see a moving job twice, never nowhere.
    const samples: string[][] = [];
    await until(() => { samples.push(whereIs(spool, id)); return samples.at(-1)!.length === 1; }, 5000, 10);
    expect(samples.filter((s) => s.length === 0)).toEqual([]);
    const at = samples.at(-1)!;
    expect(at[0]).toMatch(new RegExp(`^(pending/default/${id}\\.json|claimed/[^/]+/\\d+\\.${id}\\.json|failed/default/${id}\\.json)$`));
    for (const r of results) {
      expect([0, 1], r.stderr).toContain(r.code);
      if (r.code === 1) expect(r.stderr).toMatch(/moved meanwhile|is (pending|claimed), not finished|not found/);
    }
    const wins = results.filter((r) => r.code === 0).length;
    expect(wins).toBeGreaterThan(0);
    // and it settles in failed/, having run once per winning retry (plus its first run)
    await until(() => whereIs(spool, id).length === 1 && existsSync(failedPath(spool, id)), 20_000);
    await sleep(500);
    expect(whereIs(spool, id)).toEqual([`failed/default/${id}.json`]);
    const starts = ledgerLines(ledger).filter((l) => l.split(' ')[1] === 'start');
    expect(starts).toHaveLength(wins + 1);
    expect(readJob(failedPath(spool, id))).toMatchObject({ id, attempts: 1 });
    w.kill('SIGTERM');
    expect(await w.exited).toBe(0);
    expect(names(join(spool, 'quarantine'))).toEqual([]);
  }, 120_000);
});
