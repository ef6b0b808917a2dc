// rate-take (src/spool/transitions/rate-take.ts): start tokens rate/NAME/W.K, W the window by the server
// time the caller passes; at most COUNT per window; old windows' tokens removed; a crash after each step.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setRate } from '../../../dist/spool/rate.js';
import { rateHasRoom, takeRateTokens } from '../../../dist/spool/transitions/rate-take.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, SimulatedCrash, crashAfter, onStep, recordSteps } from './util.js';

afterAll(cleanupTemp);

describe('rate-take', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  const rate = { count: 3, windowMs: 10_000 };
  const tokens = () => fs.readdirSync(join(rig.l.rate, 'r')).filter((n) => n !== 'limit.json').sort();

  it('COUNT tokens per window, named by the window of the server time given; the next window starts afresh; windows before the last are removed', async () => {
    await setRate(rig.l, 'r', rate, true);
    const t0 = 1_000_000_000_000; // window 100000000
    const seen = recordSteps();
    expect(takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/1', t0)).toEqual({ ok: true });
    expect(seen).toEqual(['rate-take:1', 'rate-take:2']);
    expect(takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/2', t0 + 1)).toEqual({ ok: true });
    expect(takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/3', t0 + 9_999)).toEqual({ ok: true });
    expect(rateHasRoom(rig.l, 'r', rate, t0)).toBe(false);
    expect(takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/4', t0 + 5)).toEqual({ blocked: 'r', rate, nextWindowMs: t0 + 10_000 });
    expect(tokens()).toEqual(['100000000.0', '100000000.1', '100000000.2']);
    expect(fs.readFileSync(join(rig.l.rate, 'r', '100000000.1'), 'utf8')).toBe('L/2\n');
    expect(rateHasRoom(rig.l, 'r', rate, t0 + 10_000)).toBe(true);
    expect(takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/5', t0 + 10_000)).toEqual({ ok: true });
    expect(takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/6', t0 + 20_000)).toEqual({ ok: true });
    expect(tokens()).toEqual(['100000001.0', '100000002.0']); // window 100000000 went when 100000002 was listed
  });

  it('a token taken by another worker (EEXIST) is skipped: the next free number', async () => {
    await setRate(rig.l, 'r', rate, true);
    const t0 = 1_000_000_000_000;
    takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/1', t0);
    fs.writeFileSync(join(rig.l.rate, 'r', '100000000.1'), 'other/1\n'); // raced in after our readdir would have run
    expect(takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/2', t0)).toEqual({ ok: true });
    expect(tokens()).toEqual(['100000000.0', '100000000.1', '100000000.2']);
  });

  it('crash after step 1: nothing written; after step 2: the token counts (a start fewer, never one more)', async () => {
    await setRate(rig.l, 'r', rate, true);
    const t0 = 1_000_000_000_000;
    crashAfter('rate-take', 1);
    expect(() => takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/1', t0)).toThrow(SimulatedCrash);
    expect(tokens()).toEqual([]);
    crashAfter('rate-take', 2);
    expect(() => takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/1', t0)).toThrow(SimulatedCrash);
    onStep();
    expect(tokens()).toEqual(['100000000.0']);
    takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/2', t0);
    takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/3', t0);
    expect('blocked' in takeRateTokens(rig.l, [{ folder: 'r', rate }], 'L/4', t0)).toBe(true);
  });
});
