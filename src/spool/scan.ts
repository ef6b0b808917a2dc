/**
 * Finding jobs by id or listing them: the read-only view of the spool used by `ls`, `show`, `wait`,
 * `status`. The folder a file sits in is its state; names a reader did not expect (dot-names, temp files,
 * `.reason` files) are ignored here and left to the worker's quarantine.
 */
import { join } from 'node:path';
import { opendir } from 'node:fs/promises';
import { isGone } from '../errors.js';
import { idFromName } from '../job/format.js';
import { listDeferred } from './deferred.js';
import { exists, listNames } from './fsops.js';
import type { JobState, Layout } from './layout.js';

export interface Located { id: string; state: JobState; path: string; dueMs?: number; worker?: string }

export async function* scanState(layout: Layout, state: JobState): AsyncGenerator<Located> {
  if (state === 'deferred') {
    for (const e of await listDeferred(layout.deferred)) yield { id: e.id, state, path: e.path, dueMs: e.dueMs };
    return;
  }
  if (state === 'claimed') {
    for (const worker of await listNames(layout.claimed)) {
      if (worker.startsWith('.')) continue;
      for (const name of await listNames(join(layout.claimed, worker))) {
        const id = idFromName(name);
        if (id) yield { id, state, path: join(layout.claimed, worker, name), worker };
        else if (name.endsWith('.dead')) {
          for (const inner of await listNames(join(layout.claimed, worker, name))) {
            const iid = idFromName(inner);
            if (iid) yield { id: iid, state, path: join(layout.claimed, worker, name, inner), worker: name.slice(0, -5) };
          }
        }
      }
    }
    return;
  }
  const dir = layout[state];
  for (const name of await listNames(dir)) {
    const id = idFromName(name);
    if (id) yield { id, state, path: join(dir, name) };
  }
}

export const ALL_STATES: JobState[] = ['pending', 'deferred', 'claimed', 'done', 'failed'];

/** Every place the exact id is (normally one; two only in the instant of a link+unlink move, or after a crash there). */
export async function findExact(layout: Layout, id: string): Promise<Located[]> {
  const found: Located[] = [];
  for (const state of ['pending', 'done', 'failed'] as const) {
    const path = join(layout[state], `${id}.json`);
    if (await exists(path)) found.push({ id, state, path });
  }
  for await (const loc of scanState(layout, 'claimed')) if (loc.id === id) found.push(loc);
  if (found.length === 0) for await (const loc of scanState(layout, 'deferred')) if (loc.id === id) found.push(loc);
  return found;
}

/** Jobs whose id starts with `prefix`, in every state. */
export async function findPrefix(layout: Layout, prefix: string): Promise<Located[]> {
  const out: Located[] = [];
  for (const state of ALL_STATES) for await (const loc of scanState(layout, state)) if (loc.id.startsWith(prefix)) out.push(loc);
  return out;
}

/** Whether a folder holds at least one job name (reads only the first entries: O(1) in the folder size). */
export async function hasJobs(dir: string): Promise<boolean> {
  let d;
  try {
    d = await opendir(dir, { bufferSize: 32 });
  } catch (err) {
    if (isGone(err)) return false;
    throw err;
  }
  try {
    for await (const e of d) if (!e.name.startsWith('.') && e.name.endsWith('.json')) return true;
    return false;
  } catch (err) {
    if (isGone(err)) return false;
    throw err;
  }
}

/** The creation time encoded in an id's first field (base-36 ms), or null. */
export function idTimeMs(id: string): number | null {
  const m = /^([0-9a-z]{9})-/.exec(id);
  if (!m) return null;
  const ms = parseInt(m[1]!, 36);
  return Number.isFinite(ms) ? ms : null;
}
