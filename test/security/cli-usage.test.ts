// Usage errors: every bound enforced with exit 2 and one line naming the option; ambiguous prefixes exit 2
// for every command; only init creates a spool; help goes where it should and shows each default once.
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_BOUNDS, CRON_DEFAULTS, JOB_BOUNDS, JOB_DEFAULTS, WORKER_BOUNDS, WORKER_DEFAULTS, defaultHeartbeatMs, inRange, maxHeartbeatMs } from '../../dist/defaults.js';
import { formatDuration } from '../../dist/text.js';
import { cleanupTemp, tempDir, zcq } from '../helpers.js';
import { filesUnder, initSpool, jobPath } from './spool-files.js';

afterAll(cleanupTemp);

/** stderr is one line, `zcq: ` then the message. */
function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^zcq: /);
  return lines[0]!;
}

describe('bounds of duration and count options', () => {
  // [command and options, the option the error must name]; every value is just outside its range.
  const cases: [string[], string][] = [
    [['worker', '--lease', '999ms'], '--lease'],
    [['worker', '--lease', '1d1ms'], '--lease'],
    [['worker', '--heartbeat', '99ms'], '--heartbeat'],
    [['worker', '--heartbeat', '16s'], '--heartbeat'], // over half the default 30s lease
    [['worker', '--lease', '10s', '--heartbeat', '6s'], '--heartbeat'],
    [['worker', '--poll', '49ms'], '--poll'],
    [['worker', '--poll', '1h1ms'], '--poll'],
    [['worker', '--housekeeping', '999ms'], '--housekeeping'],
    [['worker', '--housekeeping', '2d'], '--housekeeping'],
    [['worker', '--grace', '1d1s'], '--grace'],
    [['worker', '--kill-grace', '61m'], '--kill-grace'],
    [['worker', '--concurrency', '0'], '--concurrency'],
    [['worker', '--concurrency', '1025'], '--concurrency'],
    [['worker', '--threads', '0'], '--threads'],
    [['worker', '--threads', '257'], '--threads'],
    [['worker', '--max-jobs', '0'], '--max-jobs'],
    [['worker', '--max-jobs', '1000000001'], '--max-jobs'],
    [['worker', '--leftover-age', '59s'], '--leftover-age'],
    [['worker', '--leftover-age', '366d'], '--leftover-age'],
    [['doctor', '--leftover-age', '59s'], '--leftover-age'],
    [['put', './jobs.mjs#add', '--retries', '10001'], '--retries'],
    [['put', './jobs.mjs#add', '--retries', '-1'], '--retries'],
    [['put', './jobs.mjs#add', '--max-interrupts', '10001'], '--max-interrupts'],
    [['put', './jobs.mjs#add', '--timeout', '366d'], '--timeout'],
    [['put', './jobs.mjs#add', '--timeout', '0'], '--timeout'],
    [['put', './jobs.mjs#add', '--backoff', '366d'], '--backoff'],
    [['wait', 'x', '--timeout', '366d'], '--timeout'],
    [['ls', '--limit', '0'], '--limit'],
    [['cron', 'add', 'n', '@daily', './jobs.mjs#add', '--retries', '10001'], '--retries'],
    [['cron', 'add', 'n', '@daily', './jobs.mjs#add', '--timeout', '366d'], '--timeout'],
    [['cron', 'add', 'n', '@daily', './jobs.mjs#add', '--cap', '1001'], '--cap'],
  ];

  let shared: string | undefined;
  it.each(cases)('%j exits 2 naming %s', (args, option) => {
    const spool = shared ??= initSpool(tempDir());
    const r = zcq(spool, args, { timeout: 20_000 });
    expect(r.code, r.stderr).toBe(2);
    const line = oneLine(r.stderr);
    expect(line.startsWith(`zcq: ${option} '`), line).toBe(true);
    expect(line).toMatch(/must be/);
    // Refused before anything ran: no job, no worker heartbeat.
    for (const d of ['pending', 'workers']) expect(filesUnder(join(spool, d)), d).toEqual([]);
  });

  it('every default lies within its own range (defaults.ts)', () => {
    for (const k of ['leaseMs', 'pollMs', 'graceMs', 'killGraceMs', 'leftoverAgeMs', 'goneWorkerAgeMs', 'housekeepingMs'] as const) {
      expect(inRange(WORKER_DEFAULTS[k], WORKER_BOUNDS[k]), k).toBe(true);
    }
    for (const lease of [WORKER_BOUNDS.leaseMs.min, WORKER_DEFAULTS.leaseMs, WORKER_BOUNDS.leaseMs.max]) {
      const hb = defaultHeartbeatMs(lease);
      expect(hb >= WORKER_BOUNDS.heartbeatMs.min && hb <= maxHeartbeatMs(lease), `lease ${lease}`).toBe(true);
    }
    expect(inRange(JOB_DEFAULTS.retries, JOB_BOUNDS.retries)).toBe(true);
    expect(inRange(JOB_DEFAULTS.maxInterrupts, JOB_BOUNDS.maxInterrupts)).toBe(true);
    expect(inRange(JOB_DEFAULTS.backoff.baseMs, JOB_BOUNDS.backoffMs) && inRange(JOB_DEFAULTS.backoff.maxMs, JOB_BOUNDS.backoffMs)).toBe(true);
    expect(inRange(CRON_DEFAULTS.cap, CLI_BOUNDS.cronCap)).toBe(true);
  });

  it('accepts the edges of the ranges', () => {
    const spool = initSpool(tempDir());
    const w = zcq(spool, ['worker', '--lease', '1s', '--heartbeat', '500ms', '--poll', '50ms', '--housekeeping', '1s', '--grace', '0', '--kill-grace', '1h', '--concurrency', '1', '--threads', '1', '--leftover-age', '1m', '--exit-when-idle'], { timeout: 20_000 });
    expect(w.code, w.stderr).toBe(0);
    const p = zcq(spool, ['put', './jobs.mjs#add', '--retries', '10000', '--max-interrupts', '0', '--timeout', '365d', '--backoff', '0']);
    expect(p.code, p.stderr).toBe(0);
  });

  it('job arguments nested deeper than a job file may hold are refused at put, nothing enqueued', () => {
    const spool = initSpool(tempDir());
    const nest = (d: number) => '['.repeat(d) + ']'.repeat(d);
    const deep: [string[], string | undefined, RegExp][] = [
      [['put', './jobs.mjs#add', '--args-json', nest(64)], undefined, /^zcq: --args-json: nested deeper than 63 levels/],
      [['put', './jobs.mjs#add', nest(63)], undefined, /^zcq: argument: nested deeper than 62 levels/],
      [['put', '-'], `{"fn":"./jobs.mjs#add","args":${nest(64)}}\n`, /^zcq: standard input, line 1: nested deeper than 64 levels/],
      [['put', '-'], `{"fn":"./jobs.mjs#add","args":${'['.repeat(100_000)}\n`, /^zcq: standard input, line 1: nested deeper than 64 levels/],
    ];
    for (const [args, input, re] of deep) {
      const r = zcq(spool, args, { input });
      expect(r.code, r.stderr).toBe(2);
      expect(oneLine(r.stderr)).toMatch(re);
    }
    expect(filesUnder(join(spool, 'pending'))).toEqual([]);
    // One level less is accepted.
    expect(zcq(spool, ['put', './jobs.mjs#add', '--args-json', nest(63)]).code).toBe(0);
  });

  it('a --root that is not a folder is a usage error naming --root and the folder', () => {
    const spool = initSpool(tempDir());
    const missing = join(tempDir(), 'nonexistent');
    const r = zcq(spool, ['worker', '--root', missing, '--exit-when-idle']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe(`zcq: --root '${missing}': no such folder; give the folder that holds the job modules`);
  });
});

describe('ids', () => {
  it('an ambiguous prefix exits 2 for show, wait, retry and cancel alike, and changes nothing', () => {
    const spool = initSpool(tempDir());
    const ids = [1, 2].map(() => zcq(spool, ['put', './jobs.mjs#add', '1', '2']).stdout.trim());
    let n = 0;
    while (ids[0]![n] === ids[1]![n]) n++;
    expect(n).toBeGreaterThan(0);
    const prefix = ids[0]!.slice(0, n);
    for (const cmd of ['show', 'wait', 'retry', 'cancel']) {
      const r = zcq(spool, [cmd, prefix], { timeout: 20_000 });
      expect(r.code, `${cmd}: ${r.stderr}`).toBe(2);
      expect(oneLine(r.stderr)).toBe(`zcq: job id prefix '${prefix}' matches 2 jobs; give more characters`);
    }
    // With a good id before it: still nothing done (ids are resolved before any is acted on).
    expect(zcq(spool, ['cancel', ids[0]!, prefix]).code).toBe(2);
    for (const id of ids) expect(existsSync(jobPath(spool, 'pending', id)), id).toBe(true);
    // An unknown id is not a usage error: exit 1.
    expect(zcq(spool, ['cancel', 'zzzzzz']).code).toBe(1);
    expect(zcq(spool, ['retry', 'zzzzzz']).code).toBe(1);
    expect(zcq(spool, ['show', 'zzzzzz']).code).toBe(1);
  });
});

describe('only init creates a spool', () => {
  it.each([['ls'], ['status'], ['put', './jobs.mjs#add', '1'], ['show', 'x'], ['worker', '--exit-when-idle'], ['recover'], ['doctor'], ['cron', 'ls']])('%j on a missing spool: one line, exit 2, nothing created', (...args) => {
    const dir = join(tempDir(), 'nospool');
    const r = zcq(dir, args);
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toBe(`zcq: no spool at ${dir} (run zcq init ${dir})`);
    expect(existsSync(dir)).toBe(false);
  });

  it('an empty folder is not made a spool by any command but init', () => {
    const dir = join(tempDir(), 'empty');
    mkdirSync(dir);
    const r = zcq(dir, ['put', './jobs.mjs#add', '1']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe(`zcq: no spool at ${dir} (run zcq init ${dir})`);
    expect(readdirSync(dir)).toEqual([]);
    expect(zcq(null, ['init', dir]).code).toBe(0);
    expect(zcq(dir, ['put', './jobs.mjs#add', '1']).code).toBe(0);
  });

  it('a folder holding other files is not called a missing spool (init would refuse it)', async () => {
    const dir = tempDir();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'precious.txt'), 'keep me');
    const r = zcq(dir, ['ls']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe(`zcq: ${dir}: not a zcq spool (no zcq-spool.json, and it holds other files, such as 'precious.txt'); pick another --spool`);
    expect(readdirSync(dir)).toEqual(['precious.txt']);
  });

  it('init --group refuses a name that is not a group name', () => {
    const dir = join(tempDir(), 's');
    const r = zcq(null, ['init', dir, '--group', 'no such;group']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/^zcq: --group 'no such;group': not a group name/);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('help and usage', () => {
  it('zcq alone and zcq cron alone print help on stderr and exit 2', () => {
    for (const args of [[], ['cron']]) {
      const r = zcq(null, args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^Usage: zcq /);
    }
    const h = zcq(null, ['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^Usage: zcq /);
  });

  it('unknown commands and options exit 2', () => {
    expect(zcq(null, ['frobnicate']).code).toBe(2);
    expect(zcq(null, ['ls', '--frobnicate']).code).toBe(2);
    expect(zcq(null, ['worker', '--frobnicate']).code).toBe(2);
  });

  const COMMANDS = ['init', 'put', 'worker', 'ls', 'show', 'retry', 'cancel', 'wait', 'status', 'recover', 'doctor', 'cron', 'cron add'];

  it('every command shows the global options, each default once, wrapped to 80 columns', () => {
    for (const c of COMMANDS) {
      const r = zcq(null, [...c.split(' '), '--help']);
      expect(r.code, c).toBe(0);
      for (const g of ['--spool <dir>', '--json', '--relaxed']) expect(r.stdout, `${c} ${g}`).toContain(g);
      const flat = r.stdout.replace(/\s+/g, ' ');
      expect(flat, c).not.toMatch(/\(default: [^)]*\) *\(default:/);
      expect(flat, c).not.toContain('(default: [])');
      // The cron add usage line is wider than 80 columns by itself; commander then leaves it unwrapped.
      if (c !== 'cron' && c !== 'cron add') for (const l of r.stdout.split('\n')) expect(l.length, `${c}: ${l}`).toBeLessThanOrEqual(80);
    }
  });

  it('help prints the defaults the worker and put use (defaults.ts)', () => {
    const flat = zcq(null, ['worker', '--help']).stdout.replace(/\s+/g, ' ');
    expect(flat).toContain(`--lease <duration> lease time; on NFS at least heartbeat + actimeo (1s to 1d) (default: ${formatDuration(WORKER_DEFAULTS.leaseMs)})`);
    for (const [flag, ms] of [['--poll', WORKER_DEFAULTS.pollMs], ['--grace', WORKER_DEFAULTS.graceMs], ['--kill-grace', WORKER_DEFAULTS.killGraceMs], ['--leftover-age', WORKER_DEFAULTS.leftoverAgeMs], ['--housekeeping', WORKER_DEFAULTS.housekeepingMs]] as const) {
      expect(flat).toMatch(new RegExp(`${flag} <duration> [^]*?\\(default: ${formatDuration(ms)}\\)`));
    }
    const put = zcq(null, ['put', '--help']).stdout;
    expect(put.replace(/\s+/g, ' ')).toContain(`(default: ${JOB_DEFAULTS.maxInterrupts})`);
    expect(put).not.toContain('the options are their defaults');
  });
});
