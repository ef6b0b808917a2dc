/**
 * Deferred jobs: `deferred/<bucket>/<dueMs>.<id>.json`, bucket = the due time's UTC minute
 * (`YYYYMMDDTHHMM`), dueMs = 13-digit zero-padded epoch milliseconds. Names sort by due time, so finding
 * what is due reads only the bucket names (one small folder) and the buckets at or before now — never the
 * files of jobs due later, however many there are. Folders stay bounded by the jobs due in one minute.
 */
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { listNames, renameOrGone } from './fsops.js';
import { errnoOf } from '../errors.js';
import { SAFE_NAME } from './ids.js';

export function bucketOf(dueMs: number): string {
  const d = new Date(dueMs);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}T${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}

export function deferredName(dueMs: number, id: string): string {
  return `${String(Math.max(0, Math.floor(dueMs))).padStart(13, '0')}.${id}.json`;
}

/** Parse `<dueMs>.<id>.json`; null for anything else. */
export function parseDeferredName(name: string): { dueMs: number; id: string } | null {
  const m = /^(\d{13})\.(.+)\.json$/.exec(name);
  if (!m || !SAFE_NAME.test(m[2]!)) return null;
  return { dueMs: Number(m[1]), id: m[2]! };
}

const BUCKET = /^\d{8}T\d{4}$/;

/** Path where a job due at `dueMs` waits; creates the bucket folder. */
export async function deferredPath(deferredDir: string, dueMs: number, id: string): Promise<string> {
  const dir = join(deferredDir, bucketOf(dueMs));
  await mkdir(dir, { recursive: true });
  return join(dir, deferredName(dueMs, id));
}

export interface DeferredEntry { path: string; dueMs: number; id: string; bucket: string }

/** Every deferred job (for listing); reads every bucket. */
export async function listDeferred(deferredDir: string): Promise<DeferredEntry[]> {
  const out: DeferredEntry[] = [];
  for (const bucket of (await listNames(deferredDir)).filter((b) => BUCKET.test(b)).sort()) {
    for (const name of await listNames(join(deferredDir, bucket))) {
      const p = parseDeferredName(name);
      if (p) out.push({ path: join(deferredDir, bucket, name), bucket, ...p });
    }
  }
  return out.sort((a, b) => a.dueMs - b.dueMs);
}

/** Jobs due at or before `nowMs`, reading only buckets at or before now. Also names of stray files. */
export async function dueDeferred(deferredDir: string, nowMs: number, limit = 1000): Promise<{ due: DeferredEntry[]; strays: string[] }> {
  const nowBucket = bucketOf(nowMs);
  const due: DeferredEntry[] = [];
  const strays: string[] = [];
  const buckets = (await listNames(deferredDir)).filter((b) => !b.startsWith('.')).sort();
  for (const bucket of buckets) {
    if (!BUCKET.test(bucket)) { strays.push(join(deferredDir, bucket)); continue; }
    if (bucket > nowBucket) break;
    const names = await listNames(join(deferredDir, bucket));
    for (const name of names.sort()) {
      if (name.startsWith('.')) continue;
      const p = parseDeferredName(name);
      if (!p) { strays.push(join(deferredDir, bucket, name)); continue; }
      if (p.dueMs > nowMs) break;
      due.push({ path: join(deferredDir, bucket, name), bucket, ...p });
      if (due.length >= limit) return { due, strays };
    }
  }
  return { due, strays };
}

/** Move due jobs to pending/ (rename: ids are unique). Removes emptied buckets older than two minutes. */
export async function promoteDue(deferredDir: string, pendingDir: string, nowMs: number): Promise<number> {
  const { due } = await dueDeferred(deferredDir, nowMs);
  let n = 0;
  const touched = new Set<string>();
  for (const e of due) {
    if (await renameOrGone(e.path, join(pendingDir, `${e.id}.json`))) n++;
    touched.add(e.bucket);
  }
  const old = bucketOf(nowMs - 120_000);
  for (const b of touched) {
    if (b < old) await rmdir(join(deferredDir, b)).catch((err) => { if (errnoOf(err) !== 'ENOTEMPTY' && errnoOf(err) !== 'ENOENT' && errnoOf(err) !== 'EEXIST') throw err; });
  }
  return n;
}
