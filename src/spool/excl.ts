/**
 * Creating files the safe way in a shared folder: a new name nobody could have planted (random), opened
 * with O_CREAT|O_EXCL|O_NOFOLLOW, so that a co-user's symlink or FIFO at a predictable name can never make
 * us write through it. Everything zcq writes goes through a name made here and is then renamed into place.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { umaskStrips } from './modes.js';

const C = fs.constants;
export const CREATE_EXCL = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_NONBLOCK;

/** A fresh random name in `dir` starting with `prefix`. */
export function randomName(dir: string, prefix: string): string {
  return join(dir, `${prefix}${randomBytes(9).toString('base64url')}`);
}

/**
 * Create a new file under a random name in `dir`, write `data`, fsync when durable, close (its error
 * checked: NFS reports write errors there). Removes the file on failure. Returns its path.
 */
export function createExclusiveSync(dir: string, prefix: string, data: string | Uint8Array, durable: boolean, mode: number): string {
  const path = randomName(dir, prefix);
  const fd = fs.openSync(path, CREATE_EXCL, mode & 0o777);
  try {
    if (umaskStrips(mode)) fs.fchmodSync(fd, mode & 0o777);
    fs.writeFileSync(fd, data);
    if (durable) fs.fsyncSync(fd);
  } catch (err) {
    try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.unlinkSync(path); } catch { /* gone */ }
    throw err;
  }
  try { fs.closeSync(fd); } catch (err) { try { fs.unlinkSync(path); } catch { /* gone */ } throw err; }
  return path;
}

/** Open an exclusive new file for the caller to write (fsync on the pool etc.). Returns fd and path. */
export function openExclusiveSync(dir: string, prefix: string, mode: number): { fd: number; path: string } {
  const path = randomName(dir, prefix);
  const fd = fs.openSync(path, CREATE_EXCL, mode & 0o777);
  if (umaskStrips(mode)) { try { fs.fchmodSync(fd, mode & 0o777); } catch (err) { fs.closeSync(fd); fs.unlinkSync(path); throw err; } }
  return { fd, path };
}
