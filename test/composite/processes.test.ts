// Composite jobs with real `zcq worker` processes, one SIGKILLed and replaced every second: 10 parallel
// groups of 8 and 4 serial chains of 6. Every postprocess runs with all its entries, and once — unless the
// worker running it was SIGKILLed after its function wrote the ledger line and before the outcome was
// recorded, when recovery runs it again (the interrupt policy): a second run is allowed only after a run by
// a killed worker. Serial members start only after the previous member ended.
import { afterAll, afterEach, expect, it } from 'vitest';
import { join } from 'node:path';
import { Spool } from '../../dist/index.js';
import { cleanupTemp, killAll, ledgerLines, newSpool, startWorker, tempDir } from '../helpers.js';

afterEach(killAll);
afterAll(cleanupTemp);

const F = './composite.mjs';

it('parallel and serial groups under SIGKILLs: each postprocess with every entry, once unless its worker was killed; serial order kept', async () => {
  const dir = newSpool();
  const ledger = join(tempDir(), 'ledger');
  const spool = await Spool.open(dir, { durable: false });
  const handles = [];
  for (let g = 0; g < 10; g++) {
    handles.push(await spool.parallel(Array.from({ length: 8 }, (_, i) => ({ fn: `${F}#slow`, args: [ledger, `p${g}-${i}`, 40] })), { postprocess: `${F}#joinNoted` }));
  }
  for (let c = 0; c < 4; c++) {
    handles.push(await spool.serial(Array.from({ length: 6 }, (_, k) => ({ fn: `${F}#slow`, args: [ledger, `s${c}-${k}`, 40] })), { postprocess: `${F}#joinNoted` }));
  }
  const args = ['--lease', '2s', '--heartbeat', '300ms', '--poll', '100ms', '--concurrency', '3', '--relaxed'];
  const env = { ZCQ_TEST_LEDGER: ledger };
  const workers = Array.from({ length: 3 }, () => startWorker(dir, args, { env }));
  let kills = 0;
  const killed = new Set<number>();
  const t0 = Date.now();
  const waiting = spool.wait(handles.map((h) => h.id), { timeoutMs: 120_000 });
  let settled = false;
  void waiting.finally(() => { settled = true; });
  while (!settled && Date.now() - t0 < 12_000) {
    await new Promise((r) => setTimeout(r, 1000));
    const i = kills % workers.length;
    killed.add(workers[i]!.pid!);
    workers[i]!.kill('SIGKILL');
    kills++;
    workers[i] = startWorker(dir, args, { env });
  }
  const recs = await waiting;
  killAll();

  expect(kills).toBeGreaterThan(0);
  const lines = ledgerLines(ledger);
  for (const [n, h] of handles.entries()) {
    const rec = recs[n]!;
    expect(rec.state, `postprocess ${h.id}: ${JSON.stringify(rec.job?.failure)}`).toBe('done');
    const joins = lines.filter((l) => l.startsWith(`join ${h.id} `));
    expect(joins.length, `postprocess of group ${n} never ran`).toBeGreaterThan(0);
    const pidOf = (l: string) => Number(/ pid=(\d+)$/.exec(l)?.[1]);
    for (const early of joins.slice(0, -1)) {
      expect(killed.has(pidOf(early)), `postprocess of group ${n} ran ${joins.length} times, an earlier run by live worker ${pidOf(early)}: ${joins.join(' | ')}`).toBe(true);
    }
    const size = h.kind === 'parallel' ? 8 : 6;
    const tags = Array.from({ length: size }, (_, i) => (h.kind === 'parallel' ? `p${n}-${i}` : `s${n - 10}-${i}`));
    for (const j of joins) expect(j.replace(/ pid=\d+$/, '')).toBe(`join ${h.id} ${tags.map((t) => `done:${t}`).join(',')}`);
    if (h.kind === 'serial') {
      for (let k = 1; k < size; k++) {
        const lastEnd = lines.lastIndexOf(lines.filter((l) => l.startsWith(`end ${tags[k - 1]} `)).pop()!);
        const firstStart = lines.findIndex((l) => l.startsWith(`start ${tags[k]} `));
        expect(firstStart, `${tags[k]} started before ${tags[k - 1]} ended`).toBeGreaterThan(lastEnd);
      }
    }
  }
}, 150_000);
