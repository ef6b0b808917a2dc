// Event logs (src/log.ts): a batched logger writes the lines of one turn of the event loop in one write, in
// order, and loses none when the process exits in that turn; a real `zcq worker` logs every outcome with far
// fewer writes than lines (counted with strace on its stderr).
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Spool } from '../dist/index.js';
import { makeLogger } from '../dist/log.js';
import { BIN, FIXTURES, cleanupTemp, idsIn, ROOT, tempDir } from './helpers.js';

afterAll(cleanupTemp);

/** A stream that keeps each write it is given, as one string. */
function recorder(): Writable & { writes: string[] } {
  const writes: string[] = [];
  const w = new Writable({ write(chunk, _enc, cb) { writes.push(String(chunk)); cb(); } }) as Writable & { writes: string[] };
  w.writes = writes;
  return w;
}
const turn = () => new Promise((res) => setImmediate(res));

describe('makeLogger', () => {
  it('batch: the lines of one turn go out in one write after it, in order; a later turn in a later write', async () => {
    const out = recorder();
    const log = makeLogger({ stream: out, batch: true });
    for (let i = 0; i < 5; i++) log('job.done', { id: `j${i}`, ms: i });
    expect(out.writes).toEqual([]);
    await turn();
    expect(out.writes).toHaveLength(1);
    expect(out.writes[0]!.split('\n').slice(0, -1).map((l) => l.split(' ').slice(1).join(' '))).toEqual(
      [0, 1, 2, 3, 4].map((i) => `job.done id=j${i} ms=${i}`));
    log('job.failed', { id: 'k' });
    await turn();
    expect(out.writes).toHaveLength(2);
    expect(out.writes[1]).toMatch(/ job\.failed id=k\n$/);
  });

  it('batch: 16 KB held goes out at once, without waiting for the turn', () => {
    const out = recorder();
    const log = makeLogger({ stream: out, batch: true, json: true });
    const big = 'x'.repeat(6000);
    log('a', { v: big });
    log('b', { v: big });
    expect(out.writes).toEqual([]);
    log('c', { v: big });
    expect(out.writes).toHaveLength(1);
    expect(out.writes[0]!.trim().split('\n').map((l) => JSON.parse(l).event)).toEqual(['a', 'b', 'c']);
  });

  it('without batch, each line is its own write at once', () => {
    const out = recorder();
    const log = makeLogger({ stream: out });
    log('one');
    log('two', { k: 'v w' });
    expect(out.writes.map((w) => w.split(' ').slice(1).join(' '))).toEqual(['one\n', 'two k="v w"\n']);
  });

  it('batch: lines logged just before process.exit() in the same turn are written, in order', () => {
    const script = `
      const { makeLogger } = await import(${JSON.stringify(join(ROOT, 'dist', 'log.js'))});
      const log = makeLogger({ batch: true, json: true });
      for (let i = 0; i < 3; i++) log('line', { i });
      process.exit(3);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status).toBe(3);
    expect(r.stderr.trim().split('\n').map((l) => JSON.parse(l).i)).toEqual([0, 1, 2]);
  });
});

describe('zcq worker', () => {
  it('logs every outcome of a drain, in fewer writes than lines', async () => {
    const root = tempDir();
    const spool = await Spool.init(join(root, 'spool'));
    const jobs = await spool.putMany(Array.from({ length: 300 }, (_, i) => ({ fn: './jobs.mjs#add', args: [i, 1] })));
    await spool.close();
    const trace = join(root, 'worker.strace');
    const r = spawnSync('strace', ['-f', '-o', trace, '-e', 'trace=write', process.execPath, BIN, '--spool', join(root, 'spool'), 'worker',
      '--root', FIXTURES, '--exit-when-idle', '--relaxed', '-c', '8', '--poll', '50ms'], { cwd: FIXTURES, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(idsIn(join(root, 'spool'), 'done').sort()).toEqual(jobs.map((j) => j.id).sort());
    const done = r.stderr.split('\n').filter((l) => / job\.done /.test(l));
    expect(done).toHaveLength(300);
    expect(new Set(done.map((l) => /id=(\S+)/.exec(l)![1])).size).toBe(300);
    // Writes to the worker's stderr (fd 2): one a line before batching; jobs end several to a turn.
    const writes = readFileSync(trace, 'utf8').split('\n').filter((l) => /^\d+\s+write\(2,/.test(l)).length;
    expect(writes).toBeGreaterThan(0);
    expect(writes).toBeLessThan(200);
  });
});
