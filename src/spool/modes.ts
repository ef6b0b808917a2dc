/**
 * The modes of what zcq creates. A shared spool belongs to one Unix group: its folders are setgid and
 * group-writable (2775), so entries made by any member get the group, and every member's worker can rename
 * jobs between folders; its files are 0664 (read by every member; never written in place by another).
 * Modes are set explicitly, whatever the creator's umask: a member with umask 077 must not make folders
 * the others cannot write.
 */
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';

export interface SpoolModes { group: string | null; dir: number; file: number }

export const DEFAULT_MODES: SpoolModes = { group: null, dir: 0o2775, file: 0o664 };
export const PRIVATE_MODES: SpoolModes = { group: null, dir: 0o755, file: 0o644 };

/** The modes a spool's marker records (format-2 markers without them: the shared defaults). */
export function modesFromMarker(m: { group?: unknown; dirMode?: unknown; fileMode?: unknown }): SpoolModes {
  const oct = (v: unknown, d: number) => (typeof v === 'string' && /^[0-7]{3,4}$/.test(v) ? parseInt(v, 8) : d);
  return { group: typeof m.group === 'string' ? m.group : null, dir: oct(m.dirMode, DEFAULT_MODES.dir), file: oct(m.fileMode, DEFAULT_MODES.file) };
}

let umaskCache: number | undefined;
/** The process umask, read once (reading it means setting it back, so do it once). */
export function currentUmask(): number {
  if (umaskCache === undefined) { const u = process.umask(0o022); process.umask(u); umaskCache = u; }
  return umaskCache;
}

/** Whether a file created with `mode` needs an explicit chmod to get it (the umask strips some of its bits). */
export function umaskStrips(mode: number): boolean {
  return ((mode & 0o777) & ~currentUmask()) !== (mode & 0o777);
}

/**
 * Make each folder (parents first; existing ones are left as they are) with the spool's folder mode.
 * mkdir(2) applies the umask and drops the setgid bit on some systems, so a folder we create is chmodded.
 */
export function makeDirs(modes: SpoolModes, dirs: readonly string[]): void {
  for (const d of dirs) makeDir(modes, d);
}

/**
 * Make one folder (not its parents) unless it exists. False when it existed. An existing entry must be a
 * real folder: a co-user's symlink or file in its place is refused (ENOTDIR), never followed.
 */
export function makeDir(modes: SpoolModes, dir: string): boolean {
  try {
    if (fs.lstatSync(dir).isDirectory()) return false;
    throw Object.assign(new Error(`ENOTDIR: ${dir} is not a folder (a symbolic link or a file is in its place)`), { code: 'ENOTDIR', path: dir });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  try {
    fs.mkdirSync(dir, modes.dir & 0o777);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return makeDir(modes, dir);
    throw err;
  }
  fs.chmodSync(dir, modes.dir);
  return true;
}

/** The numeric id of a Unix group, by name (`getent group`), for `zcq init --group`. */
export function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  let out = '';
  try { out = execFileSync('getent', ['group', name], { encoding: 'utf8' }); } catch { /* not found */ }
  const gid = Number(out.split(':')[2]);
  if (!out || !Number.isInteger(gid)) throw Object.assign(new Error(`--group ${name}: no such group (see getent group)`), { code: 'ZCQ_NO_GROUP' });
  return gid;
}
