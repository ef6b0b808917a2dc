/**
 * Cleaning what crashes leave behind, after a safe age judged by the server's clock: temp files in tmp/
 * (a put or a rewrite that died before publishing: never a published job; spare inodes only when their
 * lease is gone), `.nfs*` silly-rename leftovers
 * (NFS rule 10), heartbeats of workers gone for a day with no lease folder, cancel requests for jobs long
 * finished, and progress annotations not updated for a day. Nothing here touches a published job file.
 */
import { rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { listNames } from './fsops.js';
import type { Layout } from './layout.js';
import type { ServerClock } from './server-clock.js';

export interface LeftoverReport { path: string; what: string; ageMs: number }

export async function findLeftovers(layout: Layout, clock: ServerClock, opts: { tmpAgeMs?: number; workerAgeMs?: number } = {}): Promise<LeftoverReport[]> {
  const tmpAge = opts.tmpAgeMs ?? 3_600_000;
  const workerAge = opts.workerAgeMs ?? 86_400_000;
  const out: LeftoverReport[] = [];
  const consider = async (path: string, what: string, minAge: number) => {
    const age = await clock.ageOf(path).catch(() => null);
    if (age !== null && age > minAge) out.push({ path, what, ageMs: Math.round(age) });
  };
  const leases = new Set(await listNames(layout.claimed));
  for (const name of await listNames(layout.tmp)) {
    // A live lease's spare inode keeps the mtime of the job file it came from, however old: not a leftover.
    const spareOf = /^\.spare-(.+)-\d+$/.exec(name)?.[1];
    if (spareOf !== undefined && leases.has(spareOf)) continue;
    await consider(join(layout.tmp, name), 'orphan temp file', tmpAge);
  }
  for (const dir of [layout.pending, layout.done, layout.failed, layout.claimed]) {
    for (const name of await listNames(dir)) if (name.startsWith('.nfs')) await consider(join(dir, name), 'NFS silly-rename leftover', tmpAge);
  }
  for (const name of await listNames(layout.workers)) {
    if (name.endsWith('.json') && !leases.has(name.slice(0, -5))) await consider(join(layout.workers, name), 'heartbeat of a gone worker', workerAge);
  }
  for (const name of await listNames(layout.cancel)) await consider(join(layout.cancel, name), 'old cancel request', workerAge);
  // A progress annotation not updated for a day belongs to a job long finished (or silent: its next
  // update writes it again).
  for (const name of await listNames(layout.progress)) await consider(join(layout.progress, name), 'old progress annotation', workerAge);
  return out;
}

export async function cleanLeftovers(layout: Layout, clock: ServerClock, opts: { log?: Logger; tmpAgeMs?: number; workerAgeMs?: number } = {}): Promise<LeftoverReport[]> {
  const found = await findLeftovers(layout, clock, opts);
  for (const f of found) {
    await (f.what === 'orphan temp file' ? rm(f.path, { force: true, recursive: true }) : unlink(f.path)).catch(() => undefined);
    opts.log?.('spool.cleaned', { path: f.path, what: f.what, ageMs: f.ageMs });
  }
  return found;
}
