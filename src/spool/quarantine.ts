/**
 * Quarantine: where input that is not a job goes, with its reason beside it. Never deleted, never fatal:
 * `quarantine/<name>` (made unique with a suffix if needed) and `quarantine/<name>.reason`, a one-line
 * text saying what was wrong and where the file came from.
 */
import { rename, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isGone } from '../errors.js';
import { newToken } from './ids.js';
import type { Layout } from './layout.js';
import { exists } from './fsops.js';

export async function quarantine(layout: Layout, path: string, name: string, reason: string): Promise<string | null> {
  let target = join(layout.quarantine, basename(name).replace(/^\.+/, '') || 'unnamed');
  if (await exists(target)) target = `${target}.${newToken()}`;
  try {
    await rename(path, target);
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
  await writeFile(`${target}.reason`, `${new Date().toISOString()} ${reason} (was ${path})\n`).catch(() => undefined);
  return target;
}
