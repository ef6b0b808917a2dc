// Hand-made job files for the security tests. The spool layout is changing (format 1: STATE/ID.json;
// format 2: STATE/QUEUE/ID.json), so every path a test builds comes from here, judged by the spool's marker.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, type Dirent } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { zcq } from '../helpers.js';

/** The spool's format number, from its marker file. */
export function spoolFormat(spool: string): number {
  return (JSON.parse(readFileSync(join(spool, 'zcq-spool.json'), 'utf8')) as { format: number }).format;
}

/** Where a job file of `state` lives (pending, done, failed; not deferred or claimed). */
export function jobPath(spool: string, state: 'pending' | 'done' | 'failed', id: string, queue = 'default'): string {
  return spoolFormat(spool) >= 2 ? join(spool, state, queue, `${id}.json`) : join(spool, state, `${id}.json`);
}

/** Write a job file by hand, as a person or another program with write access to the spool could. */
export function writeJob(spool: string, state: 'pending' | 'done' | 'failed', id: string, fields: Record<string, unknown>, queue = 'default'): string {
  const path = jobPath(spool, state, id, queue);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify({ id, created: new Date().toISOString(), ...fields }, null, 2) + '\n');
  return path;
}

/** A new spool in `dir` made by `zcq init`. */
export function initSpool(dir: string): string {
  const spool = join(dir, 'spool');
  const r = zcq(null, ['init', spool]);
  if (r.code !== 0) throw new Error(`zcq init failed: ${r.stderr}`);
  return spool;
}

/** Every file under `dir` (recursively; none when it does not exist), as paths relative to it. */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((e) => !e.isDirectory())
    .map((e) => relative(dir, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)));
}
