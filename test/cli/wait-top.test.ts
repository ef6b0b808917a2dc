// zcq wait (progress in place on a terminal, warnings when nothing will run a job) and zcq top (redrawn
// until q or Ctrl-C on a terminal, refused in a pipe), through the real binary with real workers.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, tempDir, until, zcq } from '../helpers.js';
import { OPS, onPty, spawnOnPty, worker } from './util.js';

afterAll(cleanupTemp);
const procs: { kill: (s?: NodeJS.Signals) => boolean }[] = [];
afterEach(() => { for (const p of procs.splice(0)) p.kill('SIGKILL'); });

function ok(spool: string, args: string[]): string {
  const r = zcq(spool, args, { cwd: OPS });
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}
function newSpool(): string {
  const spool = join(tempDir(), 'spool');
  ok(spool, ['init']);
  return spool;
}
const put = (spool: string, ...args: string[]) => ok(spool, ['put', ...args]).trim();

describe('zcq wait', () => {
  it('on a terminal: the state and latest progress on one line rewritten in place, erased before the result', async () => {
    const spool = newSpool();
    const id = put(spool, './ops.mjs#steps', '5', '400');
    const w = worker(spool, ['--lease', '3s']);
    procs.push(w);
    // Until its first heartbeat no worker serves the queue, and wait would rightly warn.
    await until(() => readdirSync(join(spool, 'workers')).some((n) => n.endsWith('.json')));
    const r = onPty(['--spool', spool, 'wait', id], { cols: 200 });
    expect(r.code, r.out).toBe(0);
    // Rewritten in place: carriage return, text, erase to the end of the line; several progress steps seen.
    const frames = r.out.split('\r').filter((f) => f.startsWith('waiting: '));
    expect(frames.length).toBeGreaterThan(1);
    for (const f of frames) expect(f).toMatch(new RegExp(`^waiting: ${id} (pending|running)( \\(attempt 1: \\{"step":\\d,"of":5\\}\\))?\\x1b\\[K$`));
    expect(frames.some((f) => f.includes('{"step":'))).toBe(true);
    // Erased, then the result on its own line; no warning (a worker serves the queue).
    expect(r.out).toMatch(/\r\x1b\[K"stepped"\n$/);
    expect(r.out).not.toContain('warning');
  });

  it('in a pipe: no status line; a warning when no live worker serves the job\'s queue (one for another queue does)', async () => {
    const spool = newSpool();
    const id = put(spool, './ops.mjs#steps', '1', '1', '--queue', 'nobody');
    const w = worker(spool, ['--queue', 'other', '--lease', '3s']);
    procs.push(w);
    await until(() => JSON.parse(zcq(spool, ['--json', 'status']).stdout).workers.length === 1, 20_000, 100);
    const r = zcq(spool, ['wait', id, '--timeout', '1s'], { cwd: OPS });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`zcq: warning: no live worker serves queue nobody (job ${id} waiting); start one: zcq worker --queue nobody\n`);
    expect(r.stderr).toMatch(/zcq: wait: timed out; not finished: /);
    expect(r.stderr).not.toContain('\r');
    expect(r.stdout).toBe('');
  });

  it('warns about a paused queue and a held job; says nothing when a worker serves the job', async () => {
    const spool = newSpool();
    const paused = put(spool, './ops.mjs#steps', '1', '1', '--queue', 'p');
    const held = put(spool, './ops.mjs#steps', '1', '1', '--queue', 'p');
    ok(spool, ['hold', held]);
    ok(spool, ['pause', 'p']);
    const w = worker(spool, ['--lease', '3s']);
    procs.push(w);
    await until(() => JSON.parse(zcq(spool, ['--json', 'status']).stdout).workers.length === 1, 20_000, 100);
    const r = zcq(spool, ['wait', paused, held, '--timeout', '1s'], { cwd: OPS });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`zcq: warning: job ${held} is held: no worker takes it until 'zcq release ${held}'\n`);
    expect(r.stderr).toContain(`zcq: warning: queue p is paused: job ${paused} will not start until 'zcq resume p'\n`);
    expect(r.stderr).not.toContain('no live worker');
    ok(spool, ['resume', 'p']);
    ok(spool, ['release', held]);
    const done = zcq(spool, ['wait', paused, held, '--timeout', '30s'], { cwd: OPS });
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toBe('');
    expect(done.stdout).toBe('"stepped"\n"stepped"\n');
  });
});

describe('zcq top', () => {
  it('refuses when stdout is not a terminal (exit 2)', () => {
    const spool = newSpool();
    const r = zcq(spool, ['top'], { cwd: OPS });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^zcq: top: standard output is not a terminal; use zcq status/);
  });

  it('redraws status and the running jobs with their progress until q; restores the terminal', async () => {
    const spool = newSpool();
    const gate = join(tempDir(), 'gate');
    const id = put(spool, './ops.mjs#steps', '200', '100', '--queue', 'slow');
    put(spool, './ops.mjs#until', gate, '--queue', 'slow');
    const w = worker(spool, ['--lease', '3s', '--concurrency', '2']);
    procs.push(w);
    const top = spawnOnPty(['--spool', spool, 'top', '--interval', '200ms'], 160);
    procs.push(top);
    await until(() => /"step":\d+/.test(top.output()) && top.output().includes('./ops.mjs#until'), 30_000, 100);
    const before = top.output().length;
    await until(() => top.output().length > before + 200, 10_000, 50); // redrawn again
    const out = top.output();
    expect(out).toContain('\x1b[?1049h'); // alternate screen
    expect(out).toMatch(/zcq top +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC +every 0\.2s +\(q quits\)/);
    expect(out).toMatch(/QUEUE +PENDING +DEFERRED +CLAIMED +HOLD +FAILED +DONE/);
    expect(out).toMatch(/RUNNING +QUEUE +FN +WORKER +STARTED +PROGRESS/);
    expect(out).toMatch(new RegExp(`${id} +slow +\\./ops\\.mjs#steps +\\S+ +(now|\\d+s ago) +\\{"step":\\d+,"of":200\\}`));
    top.stdin!.write('q');
    expect(await top.exited).toBe(0);
    expect(top.output().slice(out.length - 20)).toContain('\x1b[?25h\x1b[?1049l'); // cursor back, main screen
    writeFileSync(gate, '');
  });

  it('Ctrl-C ends it too (raw mode: a byte, not a signal), exit 0', async () => {
    const spool = newSpool();
    const top = spawnOnPty(['--spool', spool, 'top', '--interval', '200ms']);
    procs.push(top);
    await until(() => top.output().includes('no job running'), 20_000, 100);
    top.stdin!.write('\x03');
    expect(await top.exited).toBe(0);
    expect(top.output()).toContain('\x1b[?1049l');
  });

  it('status --help and top --help: each option\'s default once', () => {
    const r = onPty(['top', '--help']);
    expect(r.code).toBe(0);
    expect(r.out.replace(/\s+/g, ' ')).toContain('--interval <duration> time between redraws (100ms to 1h) (default: 1s)');
    for (const g of ['--spool <dir>', '--json', '--relaxed']) expect(r.out).toContain(g);
  });
});
