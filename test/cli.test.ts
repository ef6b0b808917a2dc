// The whole path through the real `zcq` binary: put → worker → done/failed, inspection commands, exit codes,
// and each bad input named in the spool/worker issue.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, donePath, failedPath, idsIn, names, newSpool, pendingPath, readJob, tempDir, whereIs, zcq } from './helpers.js';

afterAll(cleanupTemp);

function spoolWith(...puts: string[][]): { spool: string; ids: string[] } {
  const spool = newSpool();
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
    expect(names(join(spool, 'pending'))).toEqual(['default']);
    expect(names(join(spool, 'pending', 'default')).sort()).toEqual(ids.map((i) => `${i}.json`).sort());
    drain(spool);
    expect(idsIn(spool, 'pending')).toEqual([]);
    const a = readJob(donePath(spool, ids[0]!));
    expect(a.result).toBe(5);
    expect(a.attempts).toBe(1);
    expect(a.history[0]).toMatchObject({ attempt: 1, outcome: 'done' });
    expect(readJob(donePath(spool, ids[1]!)).result).toEqual([{ id: 7 }]);
    const w = zcq(spool, ['wait', ids[0]!, ids[1]!]);
    expect(w.code).toBe(0);
    expect(w.stdout.trim().split('\n')).toEqual(['5', '[{"id":7}]']);
  });

  it('gives a job its context (id, attempt, queue) through currentJob()', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#ctx', '--queue', 'mail']);
    drain(spool);
    expect(readJob(donePath(spool, ids[0]!, 'mail')).result).toEqual({ id: ids[0], attempt: 1, queue: 'mail', aborted: false });
    expect(whereIs(spool, ids[0]!)).toEqual([`done/mail/${ids[0]}.json`]);
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
    expect(zcq(spool, ['init']).code).toBe(0);
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
      const path = failedPath(spool, ids[i]!);
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
    expect(readJob(failedPath(spool, ids[0]!)).failure.message).toMatch(/process died/);
    const pid = readJob(donePath(spool, ids[1]!)).result;
    expect(typeof pid).toBe('number');
    expect(readJob(failedPath(spool, ids[2]!)).failure.name).toBe('ProcessExitError');
  });

  it('a job returning undefined stores null', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#nothing']);
    drain(spool);
    expect(readJob(donePath(spool, ids[0]!)).result).toBeNull();
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
    const spool = newSpool();
    const refs = [`../${outside.split('/').pop()}/evil.mjs#run`, `${join(outside, 'evil.mjs')}#run`, './link.mjs#run', 'node:fs#readFileSync', 'data:text/javascript,export function run(){}#run'];
    const ids = refs.map((r) => zcq(spool, ['put', r]).stdout.trim());
    const okId = zcq(spool, ['put', './ok.mjs#run']).stdout.trim();
    for (const id of [...ids, okId]) expect(id).toMatch(/^[0-9a-z]{9}-/);
    const r = zcq(spool, ['worker', '--root', root, '--exit-when-idle', '--poll', '100ms'], { cwd: root });
    expect(r.code).toBe(0);
    expect(existsSync(join(outside, 'pwned'))).toBe(false);
    for (const id of ids) {
      const j = readJob(failedPath(spool, id));
      expect(j.failure.code).toBe('ZCQ_BAD_MODULE_REF');
    }
    expect(readJob(failedPath(spool, ids[2]!)).failure.message).toMatch(/outside the worker roots/);
    expect(readJob(donePath(spool, okId)).result).toBe('ok');
  });
});

describe('bad input: one clear line, a non-zero exit, nothing half-written', () => {
  it('rejects malformed commands with exit 2 and leaves pending/ empty', () => {
    const spool = join(tempDir(), 'spool');
    expect(zcq(spool, ['init']).code).toBe(0);
    const bad: [string[], RegExp][] = [
      [['put', 'no-hash-here'], /module#export/],
      [['put', './jobs.mjs#not-an-identifier'], /module#export/],
      [['put', './jobs.mjs#add', '--retries', 'many'], /--retries 'many'/],
      [['put', './jobs.mjs#add', '--timeout', 'soon'], /--timeout 'soon'/],
      [['put', './jobs.mjs#add', '--args-json', '{not json'], /--args-json: not valid JSON/],
      [['put', './jobs.mjs#add', '--args-json', '{"a":1}'], /must be a JSON array/],
      [['put', './jobs.mjs#add', '--queue', '../etc'], /--queue/],
      [['put', './jobs.mjs#add', '--at', 'tomorrowish'], /--at 'tomorrowish'/],
      [['put', './jobs.mjs#add', '--at', '10000-01-01T00:00Z'], /--at '10000-01-01T00:00Z'/],
      [['pause', '../etc'], /queue '\.\.\/etc'/],
      [['hold', '../x'], /job id/],
      [['release', '../x'], /job id/],
      [['retry', '../x'], /job id/],
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
    expect(idsIn(spool, 'pending')).toEqual([]);
    expect(names(join(spool, 'deferred'))).toEqual([]);
    expect(names(join(spool, 'paused'))).toEqual([]);
    expect(names(join(spool, 'tmp'))).toEqual([]);
  });

  it('says clearly when a folder is not a spool, and does not touch it', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'precious.txt'), 'keep me');
    const r = zcq(dir, ['ls']);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^zcq: .*not a zcq spool.*precious\.txt/);
    expect(lines[0]).not.toMatch(/zcq init/); // someone else's folder: not one to init
    expect(names(dir)).toEqual(['precious.txt']);
    // and init refuses to make someone else's folder a spool, naming what it found
    const init = zcq(null, ['init', dir]);
    expect(init.code).toBe(2);
    expect(init.stderr).toMatch(/not a zcq spool.*precious\.txt/);
    expect(names(dir)).toEqual(['precious.txt']);
    const f = join(dir, 'precious.txt');
    const st = zcq(f, ['status']);
    expect(st.code).toBe(2);
    expect(st.stderr).toMatch(/not a zcq spool/);
    expect(readFileSync(f, 'utf8')).toBe('keep me');
  });

  it('init under a missing or non-folder parent: one line naming the parent and what to do, exit 2, nothing made', () => {
    const dir = tempDir();
    const missing = zcq(null, ['init', join(dir, 'nope', 'spool')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split('\n')).toEqual([`zcq: ${join(dir, 'nope', 'spool')}: the folder ${join(dir, 'nope')} does not exist; create it first (zcq init makes only the spool folder itself)`]);
    writeFileSync(join(dir, 'file'), 'x');
    const under = zcq(null, ['init', join(dir, 'file', 'spool')]);
    expect(under.code).toBe(2);
    expect(under.stderr).toMatch(/is not a folder/);
    expect(names(dir)).toEqual(['file']);
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
    // Loose in pending/ (a file put there by hand is adopted into pending/<its queue>/, or set aside).
    const p = join(spool, 'pending');
    writeFileSync(join(p, 'garbage.json'), '{ not json');
    writeFileSync(join(p, 'array.json'), '[1,2,3]');
    writeFileSync(join(p, 'nofn.json'), '{"id":"nofn","args":[]}');
    writeFileSync(join(p, 'huge.json'), JSON.stringify({ fn: './jobs.mjs#add', args: ['x'.repeat(1_100_000)] }));
    mkdirSync(join(p, 'not a queue'));
    symlinkSync('/etc/passwd', join(p, 'link.json'));
    writeFileSync(join(p, 'README'), 'not even json-named');
    writeFileSync(join(p, 'handmade.json'), JSON.stringify({ fn: './jobs.mjs#add', args: [20, 22], queue: 'hand' }));
    // Inside a queue folder (the claimer takes the name, then finds it is not a job).
    const q = join(p, 'default');
    writeFileSync(join(q, 'inqueue.json'), '{ not json either');
    mkdirSync(join(q, 'folder.json'));
    symlinkSync('/etc/passwd', join(q, 'qlink.json'));
    writeFileSync(join(q, 'handmade2.json'), JSON.stringify({ fn: './jobs.mjs#add', args: [1, 41] }));
    drain(spool);
    const quarantined = names(join(spool, 'quarantine'));
    // (quarantine names keep to safe characters: 'not a queue' is set aside as 'not_a_queue')
    for (const n of ['garbage.json', 'array.json', 'nofn.json', 'huge.json', 'not_a_queue', 'link.json', 'README', 'inqueue.json', 'folder.json', 'qlink.json']) {
      expect(quarantined, n).toContain(n);
      expect(quarantined, n).toContain(`${n}.reason`);
    }
    const reason = (n: string) => readFileSync(join(spool, 'quarantine', `${n}.reason`), 'utf8');
    expect(reason('garbage.json')).toMatch(/not valid JSON/);
    expect(reason('link.json')).toMatch(/symbolic link/);
    expect(reason('huge.json')).toMatch(/larger than/);
    expect(reason('inqueue.json')).toMatch(/not valid JSON/);
    expect(reason('qlink.json')).toMatch(/symbolic link/);
    expect(reason('not_a_queue')).toMatch(/not a queue name/);
    expect(reason('folder.json')).toMatch(/folder|directory/);
    expect(readFileSync(join(spool, 'quarantine', 'garbage.json'), 'utf8')).toBe('{ not json');
    expect(readFileSync(join(spool, 'quarantine', 'inqueue.json'), 'utf8')).toBe('{ not json either');
    expect(readJob(donePath(spool, ids[0]!)).result).toBe(2);
    expect(readJob(donePath(spool, 'handmade', 'hand')).result).toBe(42);
    expect(readJob(donePath(spool, 'handmade2')).result).toBe(42);
    // nothing left behind in pending/ but (empty) queue folders, nor in claimed/
    expect(idsIn(spool, 'pending')).toEqual([]);
    expect(names(join(spool, 'pending')).filter((n) => n !== 'default' && n !== 'hand')).toEqual([]);
    expect(names(join(spool, 'claimed'))).toEqual([]);
  });
});

describe('the folder is the truth: hand moves with mv', () => {
  it('mv failed/Q/X pending/Q/ runs X again as a retry (fresh attempts); mv pending/Q/Y failed/Q/ shelves Y', async () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#flaky', '--args-json', '[2]'], ['./jobs.mjs#add', '5', '5']);
    const { renameSync } = await import('node:fs');
    mkdirSync(join(spool, 'failed', 'default'), { recursive: true }); // as a person would: mkdir -p failed/default
    renameSync(pendingPath(spool, ids[1]!), failedPath(spool, ids[1]!));
    drain(spool);
    expect(existsSync(failedPath(spool, ids[0]!))).toBe(true);
    expect(readJob(failedPath(spool, ids[0]!))).toMatchObject({ attempts: 1 });
    expect(existsSync(failedPath(spool, ids[1]!))).toBe(true); // shelved: never ran
    expect(readJob(failedPath(spool, ids[1]!)).history).toEqual([]);
    renameSync(failedPath(spool, ids[0]!), pendingPath(spool, ids[0]!));
    drain(spool);
    // Format 2: a finished record moved back to pending/ is a retry, as `zcq retry` is — its attempts start
    // over, so flaky(2) fails again on its fresh attempt 1 (format 1 kept counting and it succeeded on 2).
    expect(whereIs(spool, ids[0]!)).toEqual([`failed/default/${ids[0]}.json`]);
    const j = readJob(failedPath(spool, ids[0]!));
    expect(j.attempts).toBe(1);
    expect(j.failure.message).toBe('attempt 1 fails');
    expect(j.history.map((h: { outcome: string; attempt: number }) => `${h.attempt}:${h.outcome}`)).toEqual(['1:failed', '1:failed']);
    expect(j.result).toBeUndefined();
  });

  it('zcq retry, retry --all-failed and ids from stdin', () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#flaky', '--args-json', '[2]'], ['./jobs.mjs#flaky', '--args-json', '[2]'], ['./jobs.mjs#flaky', '--args-json', '[2]']);
    drain(spool);
    expect(idsIn(spool, 'failed', 'default')).toEqual([...ids].sort());
    const r1 = zcq(spool, ['retry', '-'], { input: `${ids[0]}\n` });
    expect(r1.code).toBe(0);
    expect(whereIs(spool, ids[0]!)).toEqual([`pending/default/${ids[0]}.json`]);
    const again = zcq(spool, ['retry', ids[0]!]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/pending, not finished/);
    expect(zcq(spool, ['retry', '--all-failed']).code).toBe(0);
    expect(idsIn(spool, 'failed')).toEqual([]);
    expect(idsIn(spool, 'pending', 'default')).toEqual([...ids].sort());
    drain(spool);
    // retry resets the attempt count, so flaky(2) fails again on its fresh first attempt
    expect(idsIn(spool, 'failed', 'default')).toEqual([...ids].sort());
    for (const id of ids) expect(readJob(failedPath(spool, id)).attempts).toBe(1);
  });

  it('zcq cancel signals a running job through its AbortSignal and records the cancel', async () => {
    const { spool, ids } = spoolWith(['./jobs.mjs#abortable', '60000'], ['./jobs.mjs#spin', '60000']);
    const { startWorker, until, killAll } = await import('./helpers.js');
    const w = startWorker(spool, ['--poll', '100ms', '--heartbeat', '200ms', '--kill-grace', '1s', '--concurrency', '2']);
    try {
      await until(() => idsIn(spool, 'pending').length === 0 && idsIn(spool, 'claimed').length === 2);
      const started = Date.now();
      const r = zcq(spool, ['cancel', ids[0]!, ids[1]!]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/requested/);
      await until(() => idsIn(spool, 'failed').length === 2, 15_000);
      expect(Date.now() - started).toBeLessThan(10_000);
      for (const id of ids) {
        const j = readJob(failedPath(spool, id));
        expect(j.failure.reason).toBe('cancelled');
        expect(j.history.at(-1).outcome).toBe('cancelled');
      }
      // the cooperative job ended through its signal, the spinning one was terminated
      expect(readJob(failedPath(spool, ids[0]!)).failure.name).toBe('AbortError');
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
    const j = readJob(failedPath(spool, ids[0]!));
    expect(j.failure.reason).toBe('cancelled');
    expect(idsIn(spool, 'pending')).toEqual([]);
    expect(names(join(spool, 'claimed'))).toEqual([]);
    expect(zcq(spool, ['cancel', ids[0]!]).stdout).toContain('finished');
  });
});
