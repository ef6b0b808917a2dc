/**
 * Names that must be unique across machines (NFS rule 12: host + pid + counter + random).
 * Job ids sort by creation time as plain strings: a fixed-width base-36 millisecond clock comes first.
 */
import { randomBytes, createHash } from 'node:crypto';
import { hostname } from 'node:os';

let counter = 0;
const hostTag = createHash('sha1').update(hostname()).digest('hex').slice(0, 4);

function rand36(n: number): string {
  const bytes = randomBytes(n);
  let s = '';
  for (const b of bytes) s += (b % 36).toString(36);
  return s;
}

/** `<ms base36, 9 chars>-<host 4 hex><pid base36>-<counter base36><3 random>` e.g. `mhfx1k2z0-a3f2r4k-0x7q`. */
export function newJobId(nowMs = Date.now()): string {
  counter = (counter + 1) % 36 ** 4;
  return `${nowMs.toString(36).padStart(9, '0')}-${hostTag}${process.pid.toString(36)}-${counter.toString(36)}${rand36(3)}`;
}

/**
 * A lease's identity, its folder name under claimed/: `<host>.<pid>.<random>`, and for a client (a cancel,
 * a recovery by hand) `<host>.<pid>.<random>-client`: the kind is in the name, so a recoverer knows a
 * client never ran its jobs even when the client's heartbeat is gone.
 */
export function newWorkerId(kind: 'worker' | 'client' = 'worker'): string {
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40) || 'host';
  return `${host}.${process.pid}.${rand36(6)}${kind === 'client' ? '-client' : ''}`;
}

/** The parts of a lease id as newWorkerId makes it (read loosely: a name made by hand or by an older version); null for any other name. */
export function parseLeaseName(name: string): { host: string; pid: number; kind: 'worker' | 'client' } | null {
  const m = /^(.*)\.(\d+)\.[a-z0-9]+(-client)?$/.exec(name);
  return m ? { host: m[1]!, pid: Number(m[2]), kind: m[3] ? 'client' : 'worker' } : null;
}

/** A worker's lease folder name in claimed/: not a client's, not a dot-name, nothing planted under another shape. */
export function isWorkerLeaseName(name: string): boolean {
  return !name.startsWith('.') && parseLeaseName(name)?.kind === 'worker';
}

/** A short unique token for temp names. */
export function newToken(): string {
  return `${process.pid.toString(36)}${rand36(8)}`;
}

export { SAFE_NAME } from '../job/format.js';
