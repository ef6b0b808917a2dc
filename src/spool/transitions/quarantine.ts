/**
 * quarantine: set aside an entry that is not a job (or must not be touched), with its reason beside it.
 *
 *   any spool entry at PATH  ->  quarantine/NAME          (NAME = the given name, made safe; or NAME.RANDOM)
 *                                quarantine/NAME.reason   one line: "ISO-TIME REASON (was PATH)"
 *
 * Never deleted, never fatal. The entry moves as itself: a symlink, FIFO, socket or a folder (a lease
 * folder that is a symlink to someone's home) is renamed, and rename(2) moves a symlink, never its target.
 *
 * Before: PATH is in a folder the caller may change (its own lease folder, a queue folder it scans).
 * Steps:
 *   1. lstat PATH (gone: nothing to do, null) to know whether a folder or a non-folder is moving;
 *   2. reserve the final name exclusively: quarantine/NAME, else quarantine/NAME.RANDOM — for a non-folder
 *      an empty file created O_CREAT|O_EXCL|O_NOFOLLOW, for a folder an empty folder (mkdir is exclusive),
 *      both mode 0700/0600 so that no co-user can put anything into the reservation. rename(2) silently
 *      replaces an existing target; reserving first means the only entry it can replace is our own empty
 *      placeholder (a file is replaced by a non-folder, an empty folder by a folder). Checking a random
 *      name with lstat and renaming would leave a window in which the name is not ours;
 *   3. rename PATH over the reservation. ENOENT/ESTALE: someone else moved it first (normal), the
 *      reservation is removed, null. EISDIR/ENOTDIR/ENOTEMPTY/EEXIST: PATH changed kind since step 1 (a
 *      co-user swapped it): the reservation is removed and steps 1-3 are tried again (3 times at most);
 *   4. write NAME.reason with writeReplace: an exclusive temporary in tmp/ renamed over the name, so a
 *      symlink planted at the (predictable) reason name is replaced, not written through. The line is
 *      escaped (control characters, newlines, backslash as \xNN) and quotes at most 200 bytes of the
 *      reason — which may itself quote the file — so a quarantined file cannot forge log lines. A reason
 *      that cannot be written (disk full) does not undo the move.
 * Crash after 2: an empty placeholder at quarantine/NAME with no .reason; PATH is where it was and the
 *   next pass (worker, recovery, doctor) quarantines it again under NAME.RANDOM. Doctor may remove empty
 *   placeholders without a .reason.
 * Crash after 3: the entry is in quarantine/ without a .reason; nobody completes it (doctor reports it).
 * Fence for a stale actor: PATH lies in the caller's lease folder or in a folder it just listed; an actor
 *   whose lease was taken finds PATH gone (ENOENT: null) — the recoverer owns it now. A co-user who renames
 *   something over our placeholder between steps 2 and 3 loses only their own entry.
 */
import * as fss from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';
import { errnoOf, isGone } from '../../errors.js';
import type { Layout } from '../layout.js';
import { DEFAULT_FILE_MODE, remadeIfGone, writeReplace } from '../fsops.js';
import { step } from './steps.js';

/** Bytes of the caller's reason kept in a .reason line. */
export const MAX_REASON_BYTES = 200;

export interface QuarantineOptions {
  /** Mode of the .reason file (the spool's file mode). */
  mode?: number;
  /** fsync the reason and the quarantine folder. */
  durable?: boolean;
}

/**
 * Move `path` into quarantine/ under `name` (made safe and unique) and write its reason. Returns the new
 * path, or null when `path` was gone (someone else moved it). Throws on other errors (EACCES, EXDEV, ...).
 */
export async function quarantine(layout: Layout, path: string, name: string, reason: string, opts: QuarantineOptions = {}): Promise<string | null> {
  const base = safeQuarantineName(name);
  let target: string | null = null;
  for (let attempt = 0; target === null; attempt++) {
    let st: fss.Stats;
    try { st = fss.lstatSync(path); } catch (err) { if (isGone(err)) return null; throw err; }
    const folder = st.isDirectory();
    const reserved = reserve(layout.quarantine, base, folder);
    step('quarantine', 2, reserved);
    try {
      fss.renameSync(path, reserved);
      target = reserved;
    } catch (err) {
      unreserve(reserved, folder);
      if (isGone(err)) return null;
      const code = errnoOf(err);
      const kindChanged = code === 'EISDIR' || code === 'ENOTDIR' || code === 'ENOTEMPTY' || code === 'EEXIST';
      if (!kindChanged || attempt >= 2) throw err;
    }
  }
  step('quarantine', 3, target);
  const line = `${new Date().toISOString()} ${escapeLine(capBytes(reason, MAX_REASON_BYTES))} (was ${escapeLine(path)})\n`;
  await writeReplace(`${target}.reason`, line, { tmpDir: layout.tmp, durable: opts.durable, mode: opts.mode ?? DEFAULT_FILE_MODE }).catch(() => undefined);
  return target;
}

/** The name an entry gets in quarantine/: the last path component, no leading dots, only safe characters. */
export function safeQuarantineName(name: string): string {
  let s = basename(name).replace(/^\.+/, '').replace(/[^A-Za-z0-9._@-]/g, '_').slice(0, 200);
  if (s === '') s = 'unnamed';
  // A quarantined file named X.reason would pass for the reason of X.
  if (s.endsWith('.reason')) s += '_';
  return s;
}

/**
 * Reserve quarantine/BASE (or BASE.RANDOM when taken) exclusively: an empty file (O_CREAT|O_EXCL|O_NOFOLLOW,
 * EEXIST for any entry, a symlink included) or an empty folder (mkdir, EEXIST likewise). Private modes:
 * nobody else can fill the reserved folder, which would make our rename fail with ENOTEMPTY.
 */
function reserve(dir: string, base: string, folder: boolean): string {
  let remade = false;
  for (let i = 0; ; i++) {
    const p = i === 0 ? join(dir, base) : join(dir, `${base}.${randomBytes(6).toString('hex')}`);
    try {
      if (folder) {
        fss.mkdirSync(p, 0o700);
      } else {
        const C = fss.constants;
        fss.closeSync(fss.openSync(p, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600));
      }
      return p;
    } catch (err) {
      // quarantine/ removed by hand: made again (fsops.ts remadeIfGone).
      if (errnoOf(err) === 'ENOENT' && !remade && remadeIfGone(dir)) { remade = true; i--; continue; }
      if (errnoOf(err) !== 'EEXIST' || i >= 5) throw err;
    }
  }
}

/** Remove our placeholder — only while it still is an empty one (a co-user may have put something there). */
function unreserve(p: string, folder: boolean): void {
  try {
    if (folder) fss.rmdirSync(p); // fails on a non-empty folder or a non-folder: left alone
    else {
      const st = fss.lstatSync(p);
      if (st.isFile() && st.size === 0) fss.unlinkSync(p);
    }
  } catch { /* gone, or not ours any more */ }
}

/** At most `max` bytes of `s` in UTF-8, cut on a character boundary, with "…" when cut. */
function capBytes(s: string, max: number): string {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return s;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.toString('utf8', 0, end) + '…';
}

/**
 * One line, whatever the input: C0 and C1 control characters, DEL and backslash as \xNN, the Unicode line
 * and paragraph separators as \u2028 / \u2029. A file name with a newline cannot start a forged line.
 */
export function escapeLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f\\\u2028\u2029]/g, (c) => {
    const n = c.charCodeAt(0);
    return n > 0xff ? `\\u${n.toString(16)}` : `\\x${n.toString(16).padStart(2, '0')}`;
  });
}
