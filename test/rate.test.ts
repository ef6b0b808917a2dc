// Rate limits (issue 13): `zcq rate set TARGET COUNT/WINDOW`, TARGET a quota name or queue:QUEUE: at most
// COUNT starts per window across every worker, windows by the file server's clock (here the local file
// system's, which is this machine's: the ledger's stamps and the windows share it). Real `zcq worker` processes.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../dist/index.js';
import { cleanupTemp, killAll, names, startWorker, tempDir, until, watchRateTokens, zcq } from './helpers.js';
import { readLedger } from './recovery/util.js';

afterEach(killAll);
afterAll(cleanupTemp);

const FAST = ['--poll', '200ms', '--lease', '3s', '--no-scheduler', '--runtime', 'inline'];

async function newSpool(): Promise<Spool> {
  const dir = join(tempDir('zcq-rate-'), 'spool');
  expect(zcq(null, ['init', dir]).code).toBe(0);
  return Spool.open(dir, { durable: false });
}

/** Starts per window of `windowMs` (by start stamp), for the windows from the first start's to `endMs`'s. */
function perWindow(ledger: string, windowMs: number, ids?: Set<string>): Map<number, number> {
  const m = new Map<number, number>();
  for (const e of readLedger(ledger)) {
    if (e.event !== 'start' || (ids && !ids.has(e.id))) continue;
    const w = Math.floor(e.at / windowMs);
    m.set(w, (m.get(w) ?? 0) + 1);
  }
  return m;
}

describe('zcq rate: the commands', () => {
  it('set, ls, rm; bad input exits 2 with one line and writes nothing', async () => {
    const spool = await newSpool();
    expect(zcq(spool.dir, ['rate', 'set', 'queue:mail', '100/10s']).stdout).toBe('queue:mail\t100/10s\n');
    expect(zcq(spool.dir, ['rate', 'set', 'api', '5/1m']).stdout).toBe('api\t5/1m\n');
    expect(JSON.parse(zcq(spool.dir, ['--json', 'rate', 'ls']).stdout)).toEqual([
      { target: 'api', rate: { count: 5, windowMs: 60_000 } }, { target: 'queue:mail', rate: { count: 100, windowMs: 10_000 } }]);
    for (const args of [['rate', 'set', 'api', '0/1s'], ['rate', 'set', 'api', '5'], ['rate', 'set', 'api', '5/10ms'], ['rate', 'set', 'api', '5/2d'], ['rate', 'set', 'queue:', '1/1s'], ['rate', 'set', 'a~b', '1/1s']]) {
      const r = zcq(spool.dir, args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
    expect(spool.rate.get('api').rate).toEqual({ count: 5, windowMs: 60_000 });
    expect(zcq(spool.dir, ['rate', 'rm', 'api']).stdout).toBe('api\tremoved\n');
    expect(names(join(spool.dir, 'rate'))).toEqual(['queue~mail']);
  });
});

describe('rate: real workers', () => {
  it('queue:r at 8/2s, three workers: every start charged to a window, at most 8 in each, about 8 a window over 5 windows', async () => {
    // Counted by the window each start's token was taken in, not by the job's own stamp: on a loaded machine a
    // job's first line came late enough after its token that 12 stamps fell in one window (a CI dry run).
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    zcq(spool.dir, ['rate', 'set', 'queue:r', '8/2s']);
    const jobs = await spool.putMany(Array.from({ length: 80 }, () => ({ fn: './jobs.mjs#abortableRecord', args: [ledger, 20] })), { queue: 'r' });
    const tokens = watchRateTokens(join(spool.dir, 'rate', 'queue~r'));
    const ws = [0, 1, 2].map(() => startWorker(spool.dir, [...FAST, '--concurrency', '4']));
    try {
      await until(() => readLedger(ledger).filter((e) => e.event === 'start').length >= 56, 40_000);
    } finally { tokens.stop(); }
    for (const w of ws) w.kill('SIGTERM');
    await Promise.all(ws.map((w) => w.exited));
    const started = new Set(readLedger(ledger).filter((e) => e.event === 'start').map((e) => e.id));
    const windowOfRun = new Map([...tokens.seen.values()].map((t) => [t.run, t.window]));
    const m = new Map<number, number>();
    for (const j of jobs) {
      if (!started.has(j.id)) continue;
      const run = JSON.parse(readFileSync(join(spool.dir, 'done', 'r', `${j.id}.json`), 'utf8')).run as string;
      const w = windowOfRun.get(run);
      expect(w, `job ${j.id} (run ${run}) started without a token`).toBeDefined();
      m.set(w!, (m.get(w!) ?? 0) + 1);
    }
    const windows = [...m.keys()].sort((a, b) => a - b);
    for (const w of windows) expect(m.get(w)!, `window ${w}`).toBeLessThanOrEqual(8);
    // By stamp, a start may still land in the window after its token's: never more than the two windows allow.
    for (const [w, n] of perWindow(ledger, 2000)) expect(n, `stamps in window ${w}`).toBeLessThanOrEqual(16);
    // Five whole windows after the first (which may be partial): within 10% of 5 x 8.
    const five = windows.slice(1, 6).reduce((n, w) => n + m.get(w)!, 0);
    expect(windows.length).toBeGreaterThanOrEqual(6);
    expect(five).toBeGreaterThanOrEqual(36);
    expect(five).toBeLessThanOrEqual(44);
  }, 90_000);

  it('a rate on a quota limits its jobs only', async () => {
    const spool = await newSpool();
    const ledger = join(tempDir(), 'ledger');
    zcq(spool.dir, ['rate', 'set', 'slow', '3/2s']);
    const limited = await spool.putMany(Array.from({ length: 9 }, () => ({ fn: './jobs.mjs#abortableRecord', args: [ledger, 10] })), { quota: 'slow' });
    const free = await spool.putMany(Array.from({ length: 9 }, () => ({ fn: './jobs.mjs#abortableRecord', args: [ledger, 10] })));
    const w = startWorker(spool.dir, [...FAST, '--concurrency', '4']);
    await spool.wait([...limited, ...free].map((j) => j.id));
    w.kill('SIGTERM');
    await w.exited;
    const m = perWindow(ledger, 2000, new Set(limited.map((j) => j.id)));
    for (const [win, n] of m) expect(n, `window ${win}`).toBeLessThanOrEqual(4);
    expect(m.size).toBeGreaterThanOrEqual(3);
  }, 60_000);
});
