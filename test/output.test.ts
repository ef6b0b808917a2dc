// Job output: each attempt's stdout and stderr kept in output/ID.log, in all three runtimes; `zcq logs`,
// `zcq logs -f`, `zcq show`; the worker's own log stays clean JSON; the 1 MiB cap; a planted file.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../dist/index.js';
import { BIN, cleanupTemp, FIXTURES, startWorker, tempDir, until, zcq } from './helpers.js';

afterAll(cleanupTemp);

async function newSpool(): Promise<Spool> {
  return Spool.init(join(tempDir('zcq-out-'), 'spool'), { durable: false });
}

const logOf = (spool: Spool, id: string) => readFileSync(join(spool.dir, 'output', `${id}.log`), 'utf8');
const HEADER = /^--- attempt (\d+) on \S+ pid \d+ at \d{4}-\d\d-\d\dT[\d:.]+Z ---$/;

describe('job output', () => {
  it('zcq --json worker: every line the worker prints is JSON; the job\'s console.log goes to zcq logs', async () => {
    const dir = join(tempDir('zcq-out-'), 'spool');
    expect(zcq(null, ['init', dir]).code).toBe(0);
    const id = zcq(dir, ['put', './output-jobs.mjs#hello', 'hello']).stdout.trim();
    const w = spawn(process.execPath, [BIN, '--spool', dir, '--json', 'worker', '--root', FIXTURES, '--exit-when-idle', '-v'], { cwd: FIXTURES, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    w.stdout.on('data', (d) => { out += d; });
    w.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((res) => w.on('exit', res));
    expect(code).toBe(0);
    for (const line of out.split('\n').filter(Boolean)) expect(() => JSON.parse(line), line).not.toThrow();
    const events = err.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string });
    expect(events.map((e) => e.event)).toContain('job.done');
    expect(out + err).not.toMatch(/\bhello\n/);
    const logs = zcq(dir, ['logs', id]);
    expect(logs.code).toBe(0);
    const lines = logs.stdout.split('\n');
    expect(lines[0]).toMatch(HEADER);
    expect(lines[1]).toBe('hello');
    const shown = zcq(dir, ['show', id]).stdout;
    expect(shown).toMatch(new RegExp(`^output +${join(dir, 'output', `${id}.log`).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+ bytes; zcq logs ${id}\\)$`, 'm'));
    const j = JSON.parse(zcq(dir, ['--json', 'logs', id]).stdout);
    expect(j).toMatchObject({ id, state: 'done' });
    expect(j.output).toContain('hello\n');
  }, 60_000);

  for (const runtime of ['threads', 'inline', 'processes'] as const) {
    it(`${runtime}: console.log/error, process.stdout/stderr.write and currentJob().log go to the job's file; other jobs' to theirs`, async () => {
      const spool = await newSpool();
      const jobs = await spool.putMany([{ fn: './output-jobs.mjs#mixed', args: ['A'] }, { fn: './output-jobs.mjs#mixed', args: ['B'] }, { fn: './output-jobs.mjs#mixed', args: ['C'] }]);
      const worker = await spool.runWorker({ roots: [FIXTURES], runtime, concurrency: 3, threads: 1, pollMs: 50, exitWhenIdle: true, scheduler: false });
      await worker.done;
      for (const [i, job] of jobs.entries()) {
        const tag = 'ABC'[i];
        const lines = logOf(spool, job.id).split('\n');
        expect(lines[0]).toMatch(HEADER);
        expect(lines.slice(1)).toEqual([`out ${tag}`, `err ${tag}`, `raw-out ${tag}`, `raw-err ${tag}`, `log { tag: '${tag}' }`, '']);
      }
      const st = statSync(join(spool.dir, 'output', `${jobs[0]!.id}.log`));
      expect(st.mode & 0o777).toBe(spool.layout.modes.fileMode & 0o777);
    }, 60_000);
  }

  it('each attempt appends under its own header', async () => {
    const spool = await newSpool();
    const job = await spool.put('./output-jobs.mjs#failsOnce', ['t'], { retries: 1, backoff: 10 });
    const worker = await spool.runWorker({ roots: [FIXTURES], runtime: 'inline', pollMs: 50, scheduler: false });
    const [rec] = await spool.wait([job.id], { timeoutMs: 30_000 });
    await worker.stop();
    expect(rec!.state).toBe('done');
    const lines = logOf(spool, job.id).split('\n').filter(Boolean);
    expect(lines.map((l) => HEADER.exec(l)?.[1] ?? l)).toEqual(['1', 't attempt 1', '2', 't attempt 2']);
  }, 60_000);

  it('output is capped at 1 MiB per job: the rest is dropped and counted in one line', async () => {
    const spool = await newSpool();
    const job = await spool.put('./output-jobs.mjs#flood', [1100]);
    const worker = await spool.runWorker({ roots: [FIXTURES], runtime: 'threads', threads: 1, pollMs: 50, exitWhenIdle: true, scheduler: false });
    await worker.done;
    const text = logOf(spool, job.id);
    expect(text.length).toBeLessThan((1 << 20) + 200);
    expect(text.length).toBeGreaterThan(1 << 20);
    const last = text.trimEnd().split('\n').pop()!;
    const dropped = Number(/: (\d+) bytes of this attempt dropped ---$/.exec(last)?.[1]);
    const header = text.indexOf('\n') + 1;
    expect(dropped).toBe(1100 * 1024 - ((1 << 20) - header));
  }, 60_000);

  it('a symlink planted at output/ID.log is moved aside, never written through', async () => {
    const spool = await newSpool();
    const job = await spool.put('./output-jobs.mjs#hello', ['mine']);
    const victim = join(tempDir(), 'victim');
    writeFileSync(victim, 'precious\n');
    mkdirSync(join(spool.dir, 'output'), { recursive: true });
    symlinkSync(victim, join(spool.dir, 'output', `${job.id}.log`));
    const worker = await spool.runWorker({ roots: [FIXTURES], runtime: 'inline', pollMs: 50, exitWhenIdle: true, scheduler: false });
    await worker.done;
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    const path = join(spool.dir, 'output', `${job.id}.log`);
    expect(lstatSync(path).isFile()).toBe(true);
    expect(logOf(spool, job.id)).toMatch(/\nmine\n$/);
    const q = readdirSync(join(spool.dir, 'quarantine'));
    expect(q).toContain(`${job.id}.log`);
    expect(readFileSync(join(spool.dir, 'quarantine', `${job.id}.log.reason`), 'utf8')).toMatch(/symbolic link/);
  }, 60_000);

  it('zcq logs -f follows a running job until it finishes', async () => {
    const spool = await newSpool();
    const worker = startWorker(spool.dir, ['--runtime', 'inline', '--poll', '100ms']);
    const job = await spool.put('./output-jobs.mjs#ticker', [5, 300]);
    await until(() => existsSync(join(spool.dir, 'output', `${job.id}.log`)), 20_000);
    const f = spawn(process.execPath, [BIN, '--spool', spool.dir, 'logs', '-f', job.id], { cwd: FIXTURES, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sawPartial = false;
    f.stdout.on('data', (d) => { out += d; if (!out.includes('tick 4')) sawPartial = true; });
    const code = await new Promise((res) => f.on('exit', res));
    expect(code).toBe(0);
    expect(sawPartial).toBe(true); // printed while the job was still running
    expect(out.split('\n').slice(1)).toEqual(['tick 0', 'tick 1', 'tick 2', 'tick 3', 'tick 4', '']);
    expect((await spool.get(job.id)).state).toBe('done');
    worker.kill('SIGTERM');
    await worker.exited;
  }, 60_000);

  it('zcq logs escapes control characters unless --raw; a job that printed nothing has no output file', async () => {
    const spool = await newSpool();
    const job = await spool.put('./output-jobs.mjs#hello', ['\x1b[31mred\tcell']);
    const quiet = await spool.put('./jobs.mjs#add', [1, 2]);
    const worker = await spool.runWorker({ roots: [FIXTURES], runtime: 'inline', pollMs: 50, exitWhenIdle: true, scheduler: false });
    await worker.done;
    expect(zcq(spool.dir, ['logs', job.id]).stdout.split('\n')[1]).toBe('\\x1b[31mred\tcell');
    expect(zcq(spool.dir, ['logs', '--raw', job.id]).stdout.split('\n')[1]).toBe('\x1b[31mred\tcell');
    // Nothing printed, no file made (creating a file per job would be the dearest step of a no-op job).
    expect(existsSync(join(spool.dir, 'output', `${quiet.id}.log`))).toBe(false);
    const r = zcq(spool.dir, ['logs', quiet.id]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(zcq(spool.dir, ['logs', 'nosuchjob']).code).toBe(1);
  }, 60_000);
});
