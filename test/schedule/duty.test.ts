// The scheduler duty of a worker (src/schedule/duty.ts): the schedule store and its modules (cron-parser,
// proper-lockfile) load at the first pass that finds a schedule, not at start; a schedule added while the
// worker runs still ticks. A real worker in its own Node process, the schedule added by `zcq cron add`.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FIXTURES, ROOT, cleanupTemp, idsIn, killAll, newSpool, startWorker, tempDir, until, zcq } from '../helpers.js';

afterEach(killAll);
afterAll(cleanupTemp);

// A worker run through the library, reporting each 200 ms whether the store's dependencies are loaded
// (CommonJS packages imported from ES modules land in require.cache).
const CHILD = `
import { createRequire } from 'node:module';
const { Spool } = await import(process.env.ZCQ_DIST);
const spool = await Spool.open(process.env.SPOOL);
await spool.runWorker({ roots: [process.env.ROOTS], pollMs: 100, heartbeatMs: 200 });
const cache = createRequire(import.meta.url).cache;
setInterval(() => {
  const loaded = Object.keys(cache).filter((k) => /[\\\\/](cron-parser|proper-lockfile)[\\\\/]/.test(k)).length > 0;
  process.stdout.write('loaded=' + loaded + '\\n');
}, 200);
`;

describe('the scheduler duty', () => {
  it('loads the schedule store only once a schedule exists, and a schedule added to a running worker ticks', async () => {
    const dir = newSpool();
    const script = join(tempDir(), 'child.mjs');
    writeFileSync(script, CHILD);
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, ZCQ_DIST: pathToFileURL(join(ROOT, 'dist', 'index.js')).href, SPOOL: dir, ROOTS: FIXTURES },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    try {
      // Several passes (poll 100 ms) with no schedule: nothing of the store loaded.
      await until(() => (out.match(/loaded=/g) ?? []).length >= 4, 15_000);
      expect(out, out).not.toContain('loaded=true');
      const add = zcq(dir, ['cron', 'add', 'tick', '* * * * * *', './jobs.mjs#add', '--args-json', '[1,2]', '--queue', 'ticks']);
      expect(add.code, add.stderr).toBe(0);
      await until(() => idsIn(dir, 'done', 'ticks').some((n) => n.startsWith('tick@')), 10_000);
      await until(() => out.includes('loaded=true'), 5_000);
      expect(out).not.toMatch(/cron\.error|duty\.error/);
    } finally {
      child.kill('SIGKILL');
    }
  }, 40_000);

  it('a FIFO planted where cron/schedules belongs: the pass says what is there, never opens it, and jobs run', async () => {
    const dir = newSpool();
    mkdirSync(join(dir, 'cron'), { recursive: true });
    execFileSync('mkfifo', [join(dir, 'cron', 'schedules')]);
    const put = zcq(dir, ['put', './jobs.mjs#add', '[2,3]']);
    expect(put.code, put.stderr).toBe(0);
    const w = startWorker(dir, ['--poll', '100ms']);
    await until(() => idsIn(dir, 'done').length === 1, 15_000);
    await until(() => w.output().includes('worker.duty.error'), 5_000);
    expect(w.output()).toMatch(/cron\/schedules: exists and is a FIFO, not a folder/);
  }, 30_000);
});
