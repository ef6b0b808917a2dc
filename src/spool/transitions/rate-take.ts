/**
 * rate-take: a claimed job takes a start token of each rate that applies to it (its queue's, its quotas'),
 * before it runs.
 *
 *   (nothing)  ->  rate/NAME/W.K   W = the window by the file server's clock, K < COUNT; holds the run token
 *
 * Before: the holder claimed and read the job and took its quota slots (quota-take.ts); it has not started.
 *   The caller passes the server time (spool/server-clock.ts estimate), never its own clock.
 * Steps, per rate (in name order):
 *   1. list rate/NAME/ (one readdir, about COUNT names: this window's and the last's tokens); when COUNT
 *      tokens of window W exist, there is no start left in this window; tokens of windows before W-1 are
 *      removed on the way;
 *   2. create rate/NAME/W.K with O_CREAT|O_EXCL|O_NOFOLLOW for the first K not listed (EEXIST: the next K).
 *   When one rate has no token left, the job is put back (transitions/unclaim.ts) and skipped until the
 *   window turns (worker/claimer.ts quotaFreed, looked at each poll). Tokens already taken for it are not
 *   given back: a token counts a start that may have happened, so the limit errs on the side of fewer.
 * Crash after 1: nothing written. After 2: the token counts a start that did not happen (the job is
 *   settled by recovery as any claimed job): a window may see one start fewer, never one more.
 * Fence: none needed; each token is created once, and tokens are never rewritten.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../../errors.js';
import { refusedAsExisting, unlinkQuietly } from '../fsops.js';
import type { Layout } from '../layout.js';
import { makeDir } from '../modes.js';
import { rateDir, type Rate } from '../rate.js';
import { step } from './steps.js';

export type RateResult = { ok: true } | { blocked: string; rate: Rate; nextWindowMs: number };

const TOKEN = /^(\d{1,15})\.(\d{1,6})$/;

/** Take a start token of each `rates` entry (folder name and rate) at server time `serverNowMs`. */
export function takeRateTokens(l: Layout, rates: readonly { folder: string; rate: Rate }[], token: string, serverNowMs: number): RateResult {
  for (const { folder, rate } of [...rates].sort((a, b) => (a.folder < b.folder ? -1 : 1))) {
    const w = Math.floor(serverNowMs / rate.windowMs);
    const dir = rateDir(l, folder);
    const used = new Set<number>();
    let names: string[] = [];
    try {
      if (!fs.lstatSync(dir).isDirectory()) continue; // a symlink or file planted there: no rate applies
      names = fs.readdirSync(dir);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
    for (const n of names) {
      const m = TOKEN.exec(n);
      if (!m) continue;
      const nw = Number(m[1]);
      if (nw === w) used.add(Number(m[2]));
      else if (nw < w - 1) unlinkQuietly(join(dir, n));
    }
    step('rate-take', 1, folder);
    let got = false;
    // Tokens are mostly taken in order: start at the number seen, wrap round to the holes.
    for (let i = 0; i < rate.count && !got && used.size < rate.count; i++) {
      const k = (used.size + i) % rate.count;
      if (used.has(k)) continue;
      got = createToken(l, dir, `${w}.${k}`, token);
      if (!got) used.add(k);
    }
    if (!got) return { blocked: folder, rate, nextWindowMs: (w + 1) * rate.windowMs };
    step('rate-take', 2, folder);
  }
  return { ok: true };
}

/** Whether the window at `serverNowMs` has a start left (one readdir): for waiting jobs, each poll. */
export function rateHasRoom(l: Layout, folder: string, rate: Rate, serverNowMs: number): boolean {
  const w = Math.floor(serverNowMs / rate.windowMs);
  let n = 0;
  try { for (const name of fs.readdirSync(rateDir(l, folder))) { const m = TOKEN.exec(name); if (m && Number(m[1]) === w) n++; } } catch { return true; }
  return n < rate.count;
}

function createToken(l: Layout, dir: string, name: string, token: string): boolean {
  makeDir(l.modes, l.rate);
  makeDir(l.modes, dir);
  let fd: number;
  try {
    fd = fs.openSync(join(dir, name), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, l.modes.fileMode);
  } catch (err) {
    if (refusedAsExisting(err, join(dir, name))) return false;
    throw err;
  }
  try { fs.writeFileSync(fd, token + '\n'); } finally { fs.closeSync(fd); }
  return true;
}
