// Control characters from spool files never reach the terminal raw: ls, show, status, error lines and the
// worker's text log escape them; JSON output and JSON logs stay one line per value and parse back.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDuration, jsonLine, printable } from '../../dist/text.js';
import { cleanupTemp, tempDir, zcq } from '../helpers.js';
import { initSpool, writeJob } from './spool-files.js';

afterAll(cleanupTemp);

/** Anything a terminal acts on, other than the newline that ends each line. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** The same but TAB, which separates the fields of ls and status lines. */
const RAW_CONTROL_BUT_TAB = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe('printable', () => {
  it('escapes C0, DEL, C1, line separators, bidi controls and lone surrogates; keeps other text', () => {
    expect(printable('a\x1b[2Jb\tc\nd\x00\x7f\x9b')).toBe('a\\x1b[2Jb\\x09c\\x0ad\\x00\\x7f\\x9b');
    expect(printable('x\u2028y\u202ez\u2066')).toBe('x\\u2028y\\u202ez\\u2066');
    expect(printable('lone \ud800 and \udc00 here')).toBe('lone \\ud800 and \\udc00 here');
    expect(printable('pair 😀 é ü 東京 C:\\path')).toBe('pair 😀 é ü 東京 C:\\path');
    expect(printable('')).toBe('');
  });

  it('jsonLine escapes what JSON.stringify leaves raw, and parses back to the same value', () => {
    const v = { m: 'a\x1b\x7f\x9b\u2028\u202e\ud800b', n: [1, 'é'] };
    const s = jsonLine(v);
    expect(s).not.toMatch(RAW_CONTROL);
    expect(s).not.toContain('\n');
    expect(JSON.parse(s)).toEqual(v);
  });

  it('formatDuration writes what parseDuration reads', () => {
    expect([30_000, 100, 3_600_000, 86_400_000, 5_400_000, 1500, 0].map(formatDuration)).toEqual(['30s', '100ms', '1h', '1d', '1h30m', '1s500ms', '0ms']);
  });
});

describe('command output from hand-made files', () => {
  const EVIL = 'owned\x1b]0;title\x07\x1b[2J\tTAB\u009b31m\u202eevil';

  it('ls, show and status print no raw control character, and keep one record a line', () => {
    const spool = initSpool(tempDir());
    writeJob(spool, 'failed', 'evil1', {
      fn: './a\tb\x1b[31m.mjs#run', args: [EVIL], attempts: 1, finished: new Date().toISOString(),
      failure: { name: 'Error', message: `message ${EVIL}\nsecond line`, stack: `Error: ${EVIL}\n    at run (./x.mjs:1:1)\x1b[0m`, reason: `reason ${EVIL}` },
      history: [{ attempt: 1, worker: 'w\x1b[1m', host: 'h\x9b', pid: 1, start: new Date().toISOString(), outcome: 'failed', error: EVIL }],
    });
    // A queue folder whose name is not a queue name: never listed as a queue, raw or escaped.
    mkdirSync(join(spool, 'pending', `q${EVIL}`), { recursive: true });
    writeJob(spool, 'pending', 'evil2', { fn: './x.mjs#run' });
    // A heartbeat file's name is shown by status.
    mkdirSync(join(spool, 'workers'), { recursive: true });
    writeFileSync(join(spool, 'workers', 'host\x1b[2J.1.x.json'), '{}\n');

    const ls = zcq(spool, ['ls', 'failed']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).not.toMatch(RAW_CONTROL_BUT_TAB);
    const lines = ls.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.split('\t')).toHaveLength(7);
    expect(lines[0]).toContain('./a\\x09b\\x1b[31m.mjs#run');

    const show = zcq(spool, ['show', 'evil1']);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).not.toMatch(RAW_CONTROL);
    expect(show.stdout).toContain('owned\\x1b]0;title\\x07\\x1b[2J\\x09TAB\\x9b31m\\u202eevil');
    // The message's own newline is escaped (one field, one line); the stack keeps its lines, each escaped.
    expect(show.stdout).toMatch(/^failure {5}Error: message .*\\x0asecond line \(reason: reason /m);
    expect(show.stdout).toMatch(/^ {6}at run \(\.\/x\.mjs:1:1\)\\x1b\[0m$/m);

    const status = zcq(spool, ['status']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).not.toMatch(RAW_CONTROL_BUT_TAB);
    expect(status.stdout).not.toContain('qowned');
    expect(status.stdout).toMatch(/^default +1 +0 +0 +0 +1 +0 +0$/m);
    expect(status.stdout).toContain('host\\x1b[2J.1.x');

    // --json: one line, the same characters once parsed.
    const json = zcq(spool, ['--json', 'show', 'evil1']);
    expect(json.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(json.stdout).not.toMatch(RAW_CONTROL);
    expect(JSON.parse(json.stdout).job.failure.reason).toBe(`reason ${EVIL}`);
  });

  it('error lines escape what the user or the spool gave', () => {
    const spool = initSpool(tempDir());
    const r = zcq(spool, ['show', 'a\x1b[2Jb']);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
    expect(r.stderr).toMatch(/^zcq: job id 'a\\x1b\[2Jb': /);
    const u = zcq(spool, ['ls', '--x\x1b[2J']);
    expect(u.code).toBe(2);
    expect(u.stderr).not.toMatch(RAW_CONTROL);
    expect(u.stderr).toContain("unknown option '--x\\x1b[2J'");
  });
});

describe('worker logs', () => {
  const MESSAGE = 'line1\nline2\x1b[2J\u009b31m\u202eend';

  function failingJob(): { spool: string; root: string } {
    const root = tempDir();
    writeFileSync(join(root, 'evil.mjs'), `export function run() { throw new Error(${JSON.stringify(MESSAGE)}); }\n`);
    const spool = initSpool(tempDir());
    const put = zcq(spool, ['put', './evil.mjs#run'], { cwd: root });
    expect(put.code, put.stderr).toBe(0);
    return { spool, root };
  }

  it('text lines escape a failure message: one event a line, no raw control character', () => {
    const { spool, root } = failingJob();
    const w = zcq(spool, ['worker', '--root', root, '--exit-when-idle', '--poll', '100ms'], { cwd: root });
    expect(w.code, w.stderr).toBe(0);
    expect(w.stderr).not.toMatch(RAW_CONTROL);
    const failed = w.stderr.split('\n').filter((l) => / job\.failed /.test(l));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain('line1\\nline2\\u001b[2J\\x9b31m\\u202eend');
  });

  it('JSON lines carry the message exactly, one event a line', () => {
    const { spool, root } = failingJob();
    const w = zcq(spool, ['--json', 'worker', '--root', root, '--exit-when-idle', '--poll', '100ms'], { cwd: root });
    expect(w.code, w.stderr).toBe(0);
    expect(w.stderr).not.toMatch(RAW_CONTROL);
    const events = w.stderr.trimEnd().split('\n').map((l) => JSON.parse(l) as { event: string; error?: string });
    const failed = events.filter((e) => e.event === 'job.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.error).toBe(`Error: ${MESSAGE}`);
  });
});
