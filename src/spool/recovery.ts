/**
 * Recovery of dead leases: any live process may run it; no dedicated reaper. A lease is dead when its
 * heartbeat's age, by the file server's clock, exceeds its lease time (the holder's own lease time, read
 * from its heartbeat, or ours when unreadable). The recoverer renames the dead folder into its own lease
 * folder (one atomic rename: one winner, and the frozen holder is fenced out), then settles each job:
 * a job whose final content was already written goes to done/ or failed/; any other goes by its interrupt
 * policy. If the recoverer dies halfway, the jobs sit inside its own lease and the next recoverer finishes.
 */
import { readFile, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isGone, LeaseLostError } from '../errors.js';
import { parseJob, JobFormatError, type Job } from '../job/format.js';
import { recordInterrupt } from '../job/policy.js';
import { listNames, readRegularFile, renameOrGone, renameOrGoneSync } from './fsops.js';
import type { Layout } from './layout.js';
import type { Lease } from './lease.js';
import { quarantine } from './quarantine.js';
import type { ServerClock } from './server-clock.js';

export interface RecoveryEvent { event: 'lease.expired' | 'job.recovered' | 'job.quarantined'; worker: string; id?: string; to?: string; ageMs?: number; reason?: string }

interface HolderInfo { worker: string; host: string; pid: number; leaseMs: number }

/** Who held a lease: from its heartbeat's content when readable, else from the lease id itself. */
function holderInfoFrom(worker: string, heartbeat: string | undefined, defaultLeaseMs: number): HolderInfo {
  const m = /^(.*)\.(\d+)\.[a-z0-9]+$/.exec(worker);
  const info: HolderInfo = { worker, host: m?.[1] ?? '?', pid: m ? Number(m[2]) : 0, leaseMs: defaultLeaseMs };
  try {
    const hb = JSON.parse(heartbeat ?? '');
    if (typeof hb.host === 'string') info.host = hb.host.slice(0, 255);
    if (Number.isInteger(hb.pid)) info.pid = hb.pid;
    if (Number.isInteger(hb.leaseMs) && hb.leaseMs >= 1000 && hb.leaseMs <= 86_400_000) info.leaseMs = hb.leaseMs;
  } catch { /* gone or torn: judge by defaults */ }
  return info;
}

async function holderInfo(layout: Layout, worker: string, defaultLeaseMs: number): Promise<HolderInfo> {
  const text = await readFile(join(layout.workers, `${worker}.json`), 'utf8').catch(() => undefined);
  return holderInfoFrom(worker, text, defaultLeaseMs);
}

/**
 * A lease's holder and age by the server clock. One open of the heartbeat gives both its age and the
 * holder's own lease time; a lease without a heartbeat is judged by its folder (it never lacks both long).
 */
export async function judgeLease(layout: Layout, clock: ServerClock, worker: string, defaultLeaseMs: number): Promise<{ info: HolderInfo; ageMs: number | null; expired: boolean }> {
  const hb = await clock.readAged(join(layout.workers, `${worker}.json`));
  const info = holderInfoFrom(worker, hb?.text, defaultLeaseMs);
  const ageMs = hb?.ageMs ?? (await clock.ageOf(join(layout.claimed, worker)));
  return { info, ageMs, expired: ageMs !== null && ageMs > info.leaseMs };
}

/** One pass over claimed/: take and settle every dead lease. */
export async function recoverDeadLeases(layout: Layout, clock: ServerClock, me: Lease, log: (e: RecoveryEvent) => void): Promise<number> {
  let recovered = 0;
  for (const worker of await listNames(layout.claimed)) {
    if (worker === me.id || worker.startsWith('.')) continue;
    const { info, ageMs: age, expired } = await judgeLease(layout, clock, worker, me.info.leaseMs);
    if (!expired || age === null) continue;
    if (!me.freshToJudge()) break; // we might be the stale one: do not judge others
    const taken = join(me.dir, `${worker}.dead`);
    if (!(await renameOrGone(join(layout.claimed, worker), taken))) continue; // another recoverer won
    log({ event: 'lease.expired', worker, ageMs: Math.round(age) });
    recovered += await settleDeadFolder(layout, me, taken, info, log);
    await unlink(join(layout.workers, `${worker}.json`)).catch(() => undefined);
  }
  return recovered;
}

/** Settle every job in a dead lease folder (also nested dead folders a dead recoverer was settling). */
export async function settleDeadFolder(layout: Layout, me: Lease, dir: string, holder: HolderInfo, log: (e: RecoveryEvent) => void): Promise<number> {
  let n = 0;
  const endIso = new Date().toISOString(); // a record for people, never compared across machines
  for (const name of await listNames(dir)) {
    const path = join(dir, name);
    if (name.endsWith('.dead')) {
      const inner = name.slice(0, -5);
      n += await settleDeadFolder(layout, me, path, await holderInfo(layout, inner, holder.leaseMs), log);
      continue;
    }
    if (name.startsWith('.')) continue;
    const id = name.endsWith('.json') ? name.slice(0, -5) : name;
    const read = await readRegularFile(path).catch((err) => { if (isGone(err)) return null; throw err; });
    if (read === null) continue;
    let job: Job;
    try {
      if ('bad' in read) throw new JobFormatError(read.bad);
      job = parseJob(read.text, id);
    } catch (err) {
      const reason = err instanceof JobFormatError ? err.message : String(err);
      await quarantine(layout, path, name, `${reason} (found in the lease of dead worker ${holder.worker})`);
      log({ event: 'job.quarantined', worker: holder.worker, id, reason });
      continue;
    }
    // Each job leaves the dead lease by ONE rename, after its new content was written in place (inside our
    // own lease, so fenced): it is never in two folders, and a recoverer that dies halfway leaves it in
    // exactly one place for the next recoverer. (A link+unlink here once let a killed recoverer's leftover
    // copy be published again while the first copy ran: a job run twice under a live lease.)
    let to: string;
    if (job.finished && job.history.length > 0 && job.history[job.history.length - 1]!.worker === holder.worker) {
      // The holder wrote its final record but died before the move: finish the move for it.
      to = job.failure ? 'failed' : 'done';
    } else {
      to = recordInterrupt(job, holder, endIso).to;
      try {
        me.rewrite(job, path);
      } catch (err) {
        if (err instanceof LeaseLostError) return n; // our own lease was taken: whoever took it settles the rest
        throw err;
      }
    }
    const target = join(to === 'done' ? layout.done : to === 'failed' ? layout.failed : layout.pending, `${id}.json`);
    if (!renameOrGoneSync(path, target)) continue;
    n++;
    log({ event: 'job.recovered', worker: holder.worker, id, to });
  }
  await rmdir(dir).catch(() => undefined);
  return n;
}

