// A reader that stops early (`zcq ls | head -1`) closes the pipe under zcq: the command ends quietly with
// its own exit status, no stack trace. The outputs here exceed the pipe buffer (64 KiB on Linux), so zcq is
// still writing when the reader goes away and really meets EPIPE.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { BIN, FIXTURES, cleanupTemp, tempDir, zcq } from '../helpers.js';
import { initSpool, writeJob } from './spool-files.js';

afterAll(cleanupTemp);

const JOBS = 3000; // about 70 bytes a line in ls: ~200 KiB

/** Run a bash pipeline with pipefail: its status is zcq's unless zcq exited 0. */
function pipeline(script: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', ['-c', `set -o pipefail; ${script}`], { cwd: FIXTURES, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe('closed pipes', () => {
  let spool: string;
  let zcqCmd: string;
  beforeAll(() => {
    spool = initSpool(tempDir());
    const lines = Array.from({ length: JOBS }, (_, i) => JSON.stringify({ fn: './jobs.mjs#add', args: [i, 1] })).join('\n');
    const put = zcq(spool, ['put', '-'], { input: lines });
    expect(put.code, put.stderr).toBe(0);
    // A failed job whose stack alone is ~300 KiB: show is still printing it when grep -q has its match.
    writeJob(spool, 'failed', 'bigstack', {
      fn: './jobs.mjs#boom', attempts: 1, finished: new Date().toISOString(),
      failure: { name: 'Error', message: 'needle', reason: 'error', stack: Array.from({ length: 6000 }, (_, i) => `    at frame${i} (./jobs.mjs:${i}:1)`).join('\n') },
    });
    zcqCmd = `${q(process.execPath)} ${q(BIN)} --spool ${q(spool)}`;
  });

  it('zcq ls | head -1: exit 0, nothing on stderr', () => {
    const r = pipeline(`${zcqCmd} ls | head -1`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('zcq --json ls | head -c 100: exit 0, nothing on stderr', () => {
    const r = pipeline(`${zcqCmd} --json ls | head -c 100`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('zcq show ID | grep -q: exit 0, nothing on stderr', () => {
    const r = pipeline(`${zcqCmd} show bigstack | grep -q needle`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('zcq status | head -1 and zcq --help | head -1: exit 0, nothing on stderr', () => {
    for (const cmd of [`${zcqCmd} status | head -1`, `${zcqCmd} --help | head -1`, `${zcqCmd} worker --help | head -1`]) {
      const r = pipeline(cmd);
      expect(r.stderr, cmd).toBe('');
      expect(r.code, cmd).toBe(0);
      expect(r.stdout.split('\n').filter(Boolean), cmd).toHaveLength(1);
    }
  });

  it('a closed stderr does not turn an error into a crash: the exit status stays 2', () => {
    const r = pipeline(`${zcqCmd} ls bogus-state 2>&1 >/dev/null | head -c 0`);
    expect(r.code).toBe(2);
  });
});
