// zcq doctor --repair beside a person's hold and release by hand (mv pending/q/ID.json hold/q/, and back),
// found while building the model test: doctor saw the one job in pending/ and in hold/ (it moved between
// two looks), took it for a job in two places, and quarantined the "second copy" — the only one. A rename
// keeps the inode, so one file seen twice is now told from a real second copy (cp), which is still repaired.
import { afterAll, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTemp, tempDir } from '../helpers.js';
import { Spool } from '../../dist/index.js';
import { MODEL_FIXTURES } from './rig.js';

afterAll(cleanupTemp);

it('doctor --repair never quarantines a job a person is moving between pending/ and hold/', async () => {
  const dir = join(tempDir('zcq-doctor-race-'), 'spool');
  const s = await Spool.init(dir, { durable: false });
  const job = await s.put('./jobs.mjs#step', [], { queue: 'q' });
  // Other jobs make doctor's first pass long enough to see the moving job twice.
  await s.putMany(Array.from({ length: 300 }, () => ({ fn: './jobs.mjs#step', queue: 'r' })));
  const a = join(dir, 'pending', 'q', `${job.id}.json`);
  const b = join(dir, 'hold', 'q', `${job.id}.json`);
  mkdirSync(join(dir, 'hold', 'q'), { recursive: true });
  const ms = 10_000;
  const flipper = spawn(process.execPath, [join(MODEL_FIXTURES, 'flip.mjs'), a, b, String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let flips = '';
  flipper.stdout.on('data', (d) => { flips += d; });
  const exited = new Promise((res) => flipper.on('exit', res));
  const end = Date.now() + ms;
  let runs = 0;
  while (Date.now() < end && readdirSync(join(dir, 'quarantine')).length === 0) { await s.doctor({ repair: true }); runs++; }
  await exited;
  expect(readdirSync(join(dir, 'quarantine')), `after ${runs} doctor runs and ${flips.trim()} renames`).toEqual([]);
  expect([existsSync(a), existsSync(b)].filter(Boolean)).toHaveLength(1);
  expect(runs).toBeGreaterThan(5);

  // A real second copy is still repaired: the hold/ copy is quarantined, the pending one kept.
  if (existsSync(b)) await s.release([job.id]);
  mkdirSync(join(dir, 'hold', 'q'), { recursive: true });
  copyFileSync(a, b);
  const problems = await s.doctor({ repair: true });
  expect(problems.filter((p) => p.kind === 'job in two places').map((p) => p.repaired)).toEqual([true]);
  expect(existsSync(a)).toBe(true);
  expect(existsSync(b)).toBe(false);
}, 30_000);
