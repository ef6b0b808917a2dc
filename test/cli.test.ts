// The whole path through the real `zcq` binary: put → worker → done/failed, inspection commands, exit codes,
// and each bad input named in the spool/worker issue.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, names, readJob, tempDir, zcq } from './helpers.js';

afterAll(cleanupTemp);

function spoolWith(...puts: string[][]): { spool: string; ids: string[] } {
  const spool = join(tempDir(), 'spool');
  const ids = puts.map((p) => {
    const r = zcq(spool, ['put', ...p]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return r.stdout.trim();
  });
  return { spool, ids };
}

function drain(spool: string, extra: string[] = []): void {
  const r = zcq(spool, ['worker', '--root', '.', '--exit-when-idle', '--poll', '100ms', '--concurrency', '2', ...extra]);
  expect(r.code, r.stderr).toBe(0);
}

describe('put → worker → done', () => {
  it('runs a job from the shell and stores its JSON result', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#add', '2', '3'], ['jobs.mjs#echo', '{"id":7}']);
    expect(ids[0]).toMatch(/^[0-9a-z]{9}-[0-9a-f]{4}[0-9a-z]+-[0-9a-z]+$/);
    expect(names(join(spool, 'pending')).sort()).toEqual(ids.map((i) => `${i}.json`).sort());
    drain(spool);
    expect(names(join(spool, 'pending'))).toEqual([]);
    const a = readJob(join(spool, 'done', `${ids[0]}.json`));
    expect(a.result).toBe(5);
    expect(a.attempts).toBe(1);
    expect(a.history[0]).toMatchObject({ attempt: 1, outcome: 'done' });
    expect(readJob(join(spool, 'done', `${ids[1]}.json`)).result).toEqual([{ id: 7 }]);
    const w = zcq(spool, ['wait', ids[0]!, ids[1]!]);
    expect(w.code).toBe(0);
    expect(w.stdout.trim().split('\n')).toEqual(['5', '[{"id":7}]']);
  });

  it('gives a job its context (id, attempt, queue) through currentJob()', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#ctx', '--queue', 'mail']);
    drain(spool);
    expect(readJob(join(spool, 'done', `${ids[0]}.json`)).result).toEqual({ id: ids[0], attempt: 1, queue: 'mail', aborted: false });
  });

  it('takes typed args with --args-json and prints ids that ls, show and status know', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#add', '--args-json', '[40, 2]']);
    const ls = zcq(spool, ['ls', 'pending']);
    expect(ls.stdout).toContain(ids[0]);
    expect(ls.stdout).toContain('./jobs.mjs#add');
    drain(spool);
    const show = zcq(spool, ['show', ids[0]!.slice(0, 14)]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/state\s+done/);
    expect(show.stdout).toMatch(/result\s+42/);
    const st = JSON.parse(zcq(spool, ['--json', 'status']).stdout);
    expect(st.counts).toMatchObject({ pending: 0, done: 1, failed: 0 });
  });

  it('put --wait prints the result, and exits 1 when the job failed', async () => {
    const spool = join(tempDir(), 'spool');
    zcq(spool, ['init']);
    const { spawn } = await import('node:child_process');
    const { BIN, FIXTURES } = await import('./helpers.js');
    const worker = spawn(process.execPath, [BIN, '--spool', spool, 'worker', '--root', FIXTURES, '--poll', '100ms'], { stdio: 'ignore' });
    try {
      const ok = zcq(spool, ['put', '--wait', './jobs.mjs#add', '1', '1']);
      expect(ok.code).toBe(0);
      expect(ok.stdout.trim()).toBe('2');
      const bad = zcq(spool, ['put', '--wait', './jobs.mjs#boom', 'kaput']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('kaput');
    } finally {
      worker.kill('SIGTERM');
      await new Promise((r) => worker.on('exit', r));
    }
    // SIGTERM drained and released: no lease folder and no heartbeat left behind.
    expect(names(join(spool, 'claimed'))).toEqual([]);
    expect(names(join(spool, 'workers'))).toEqual([]);
  });
});

describe('failures end in failed/ with a readable record, never a crashed worker', () => {
  it.each(['threads', 'inline'])('records thrown errors, rejections, missing modules/exports and bad results (--runtime %s)', (runtime) => {
    const cases: [string, string[], RegExp][] = [
      ['./jobs.mjs#boom', ['kaput'], /Error: kaput/],
      ['./jobs.mjs#rejects', [], /RangeError: rejected/],
      ['./jobs.mjs#throwsString', [], /non-Error value: "a string"/],
      ['./nope.mjs#x', [], /not found under the worker roots/],
      ['./jobs.mjs#nope', [], /no exported function 'nope'/],
      ['./jobs.mjs#bigint', [], /ResultNotSerializable/],
      ['./jobs.mjs#circular', [], /ResultNotSerializable/],
      // Inline, a job shares the worker's process: its process.exit() ends the worker (documented).
      ...(runtime === 'threads' ? [['./jobs.mjs#exits', [], /process\.exit/] as [string, string[], RegExp]] : []),
    ];
    const { spool, ids } = spoolWith(...cases.map(([fn, args]) => [fn, ...args]));
    drain(spool, ['--runtime', runtime]);
    cases.forEach(([fn, , re], i) => {
      const path = join(spool, 'failed', `${ids[i]}.json`);
      expect(existsSync(path), `${fn} should be in failed/`).toBe(true);
      const j = readJob(path);
      expect(`${j.failure.name}: ${j.failure.message}`, fn).toMatch(re);
      expect(j.failure.reason).toBe('error');
      expect(j.history[0].outcome).toBe('failed');
    });
    // The stack of a thrown error is kept and shown.
    const show = zcq(spool, ['show', ids[0]!]);
    expect(show.stdout).toContain('at boom');
    const w = zcq(spool, ['wait', ids[0]!]);
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/failed: Error: kaput/);
  });

  it('--runtime processes: a job that kills its own process fails alone; the worker goes on', () => {
    const { spool, ids } = spoolWith(['./crash.mjs#die'], ['./crash.mjs#ok'], ['./crash.mjs#exitNow']);
    drain(spool, ['--runtime', 'processes']);
    expect(readJob(join(spool, 'failed', `${ids[0]}.json`)).failure.message).toMatch(/process died/);
    const pid = readJob(join(spool, 'done', `${ids[1]}.json`)).result;
    expect(typeof pid).toBe('number');
    expect(readJob(join(spool, 'failed', `${ids[2]}.json`)).failure.name).toBe('ProcessExitError');
  });

  it('a job returning undefined stores null', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#nothing']);
    drain(spool);
    expect(readJob(join(spool, 'done', `${ids[0]}.json`)).result).toBeNull();
  });
});

describe('module references that escape the roots are refused', () => {
  it('refuses .., absolute paths outside the roots and symlinks out', () => {
    const outside = tempDir();
    writeFileSync(join(outside, 'evil.mjs'), `import { writeFileSync } from 'node:fs'; export function run() { writeFileSync(${JSON.stringify(join(outside, 'pwned'))}, 'x'); return 'pwned'; }\n`);
    const root = tempDir();
    writeFileSync(join(root, 'ok.mjs'), 'export function run() { return "ok"; }\n');
    symlinkSync(join(outside, 'evil.mjs'), join(root, 'link.mjs'));
    mkdirSync(join(root, 'sub'));
    const spool = join(tempDir(), 'spool');
    const refs = [`../${outside.split('/').pop()}/evil.mjs#run`, `${join(outside, 'evil.mjs')}#run`, './link.mjs#run', 'node:fs#readFileSync', 'data:text/javascript,export function run(){}#run'];
    const ids = refs.map((r) => zcq(spool, ['put', r]).stdout.trim());
    const okId = zcq(spool, ['put', './ok.mjs#run']).stdout.trim();
    const r = zcq(spool, ['worker', '--root', root, '--exit-when-idle', '--poll', '100ms'], { cwd: root });
    expect(r.code).toBe(0);
    expect(existsSync(join(outside, 'pwned'))).toBe(false);
    for (const id of ids) {
      const j = readJob(join(spool, 'failed', `${id}.json`));
      expect(j.failure.code).toBe('ZCQ_BAD_MODULE_REF');
    }
    expect(readJob(join(spool, 'failed', `${ids[2]}.json`)).failure.message).toMatch(/outside the worker roots/);
    expect(readJob(join(spool, 'done', `${okId}.json`)).result).toBe('ok');
  });
});

describe('bad input: one clear line, a non-zero exit, nothing half-written', () => {
  it('rejects malformed commands with exit 2 and leaves pending/ empty', () => {
    const spool = join(tempDir(), 'spool');
    zcq(spool, ['init']);
    const bad: [string[], RegExp][] = [
      [['put', 'no-hash-here'], /module#export/],
      [['put', './jobs.mjs#not-an-identifier'], /module#export/],
      [['put', './jobs.mjs#add', '--retries', 'many'], /--retries 'many'/],
      [['put', './jobs.mjs#add', '--timeout', 'soon'], /--timeout 'soon'/],
      [['put', './jobs.mjs#add', '--args-json', '{not json'], /--args-json: not valid JSON/],
      [['put', './jobs.mjs#add', '--args-json', '{"a":1}'], /must be a JSON array/],
      [['put', './jobs.mjs#add', '--queue', '../etc'], /--queue/],
      [['put', './jobs.mjs#add', '--at', 'tomorrowish'], /--at 'tomorrowish'/],
      [['ls', 'bogus'], /state 'bogus'/],
      [['show', '../x'], /job id/],
      [['frobnicate'], /unknown command/],
    ];
    for (const [args, re] of bad) {
      const r = zcq(spool, args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.stderr.trim().split('\n')[0]).toMatch(/^zcq: /);
    }
    expect(names(join(spool, 'pending'))).toEqual([]);
    expect(names(join(spool, 'tmp'))).toEqual([]);
  });

  it('says clearly when a folder is not a spool, and does not touch it', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'precious.txt'), 'keep me');
    const r = zcq(dir, ['ls']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a zcq spool.*precious\.txt/);
    expect(names(dir)).toEqual(['precious.txt']);
    const f = join(dir, 'precious.txt');
    expect(zcq(f, ['status']).stderr).toMatch(/not a zcq spool/);
  });

  it('exits 1 for an unknown id and 2 for an ambiguous prefix', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#add', '1', '2'], ['./jobs.mjs#add', '3', '4']);
    const nf = zcq(spool, ['show', 'zzzzzzzzz']);
    expect(nf.code).toBe(1);
    expect(nf.stderr).toMatch(/job zzzzzzzzz: not found/);
    const common = ids[0]!.slice(0, 3);
    expect(ids[1]!.startsWith(common)).toBe(true);
    const amb = zcq(spool, ['show', common]);
    expect(amb.code).toBe(2);
    expect(amb.stderr).toMatch(/matches 2 jobs/);
  });

  it('quarantines files in pending/ that are not jobs, with a reason, and keeps going', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#add', '1', '1']);
    const p = join(spool, 'pending');
    writeFileSync(join(p, 'garbage.json'), '{ not json');
    writeFileSync(join(p, 'array.json'), '[1,2,3]');
    writeFileSync(join(p, 'nofn.json'), '{"id":"nofn","args":[]}');
    writeFileSync(join(p, 'huge.json'), JSON.stringify({ fn: './jobs.mjs#add', args: ['x'.repeat(1_100_000)] }));
    mkdirSync(join(p, 'folder.json'));
    symlinkSync('/etc/passwd', join(p, 'link.json'));
    writeFileSync(join(p, 'README'), 'not even json-named');
    writeFileSync(join(p, 'handmade.json'), JSON.stringify({ fn: './jobs.mjs#add', args: [20, 22] }));
    drain(spool);
    const q = names(join(spool, 'quarantine'));
    for (const n of ['garbage.json', 'array.json', 'nofn.json', 'huge.json', 'folder.json', 'link.json', 'README']) {
      expect(q, n).toContain(n);
      expect(q, n).toContain(`${n}.reason`);
    }
    expect(readFileSync(join(spool, 'quarantine', 'garbage.json.reason'), 'utf8')).toMatch(/not valid JSON/);
    expect(readFileSync(join(spool, 'quarantine', 'link.json.reason'), 'utf8')).toMatch(/symbolic link/);
    expect(readFileSync(join(spool, 'quarantine', 'huge.json.reason'), 'utf8')).toMatch(/larger than/);
    expect(readFileSync(join(spool, 'quarantine', 'garbage.json'), 'utf8')).toBe('{ not json');
    expect(readJob(join(spool, 'done', `${ids[0]}.json`)).result).toBe(2);
    expect(readJob(join(spool, 'done', 'handmade.json')).result).toBe(42);
  });
});

describe('the folder is the truth: hand moves with mv', () => {
  it('mv failed/X pending/ runs X again; mv pending/Y failed/ shelves Y', async () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#flaky', '--args-json', '[2]'], ['./jobs.mjs#add', '5', '5']);
    const { renameSync } = await import('node:fs');
    renameSync(join(spool, 'pending', `${ids[1]}.json`), join(spool, 'failed', `${ids[1]}.json`));
    drain(spool);
    expect(existsSync(join(spool, 'failed', `${ids[0]}.json`))).toBe(true);
    expect(existsSync(join(spool, 'failed', `${ids[1]}.json`))).toBe(true); // shelved: never ran
    expect(readJob(join(spool, 'failed', `${ids[1]}.json`)).history).toEqual([]);
    renameSync(join(spool, 'failed', `${ids[0]}.json`), join(spool, 'pending', `${ids[0]}.json`));
    drain(spool);
    const j = readJob(join(spool, 'done', `${ids[0]}.json`));
    expect(j.result).toBe(2);
    expect(j.history.map((h: { outcome: string }) => h.outcome)).toEqual(['failed', 'done']);
  });

  it('zcq retry, retry --all-failed and ids from stdin', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#flaky', '--args-json', '[2]'], ['./jobs.mjs#flaky', '--args-json', '[2]'], ['./jobs.mjs#flaky', '--args-json', '[2]']);
    drain(spool);
    expect(names(join(spool, 'failed'))).toHaveLength(3);
    const r1 = zcq(spool, ['retry', '-'], { input: `${ids[0]}\n` });
    expect(r1.code).toBe(0);
    expect(names(join(spool, 'pending'))).toEqual([`${ids[0]}.json`]);
    const again = zcq(spool, ['retry', ids[0]!]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/pending, not finished/);
    expect(zcq(spool, ['retry', '--all-failed']).code).toBe(0);
    expect(names(join(spool, 'failed'))).toEqual([]);
    drain(spool);
    // retry resets the attempt count, so flaky(2) fails again on its fresh first attempt
    expect(names(join(spool, 'failed'))).toHaveLength(3);
  });

  it('zcq cancel signals a running job through its AbortSignal and records the cancel', async () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#abortable', '60000'], ['./jobs.mjs#spin', '60000']);
    const { startWorker, until, killAll } = await import('./helpers.js');
    const w = startWorker(spool, ['--poll', '100ms', '--heartbeat', '200ms', '--kill-grace', '1s', '--concurrency', '2']);
    try {
      await until(() => names(join(spool, 'pending')).length === 0);
      const started = Date.now();
      const r = zcq(spool, ['cancel', ids[0]!, ids[1]!]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/requested/);
      await until(() => names(join(spool, 'failed')).length === 2, 15_000);
      expect(Date.now() - started).toBeLessThan(10_000);
      for (const id of ids) {
        const j = readJob(join(spool, 'failed', `${id}.json`));
        expect(j.failure.reason).toBe('cancelled');
        expect(j.history.at(-1).outcome).toBe('cancelled');
      }
      // the cooperative job ended through its signal, the spinning one was terminated
      expect(readJob(join(spool, 'failed', `${ids[0]}.json`)).failure.name).toBe('AbortError');
      // the worker removes the requests once the jobs are recorded (just after the move to failed/)
      await until(() => names(join(spool, 'cancel')).length === 0, 5000);
    } finally {
      killAll();
    }
  });

  it('zcq cancel moves a pending job to failed with reason "cancelled"', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#add', '1', '2']);
    const r = zcq(spool, ['cancel', ids[0]!]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('cancelled');
    const j = readJob(join(spool, 'failed', `${ids[0]}.json`));
    expect(j.failure.reason).toBe('cancelled');
    expect(names(join(spool, 'pending'))).toEqual([]);
    expect(names(join(spool, 'claimed'))).toEqual([]);
    expect(zcq(spool, ['cancel', ids[0]!]).stdout).toContain('finished');
  });
});
