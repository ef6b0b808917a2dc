/**
 * File names and what they stand for: the one place that turns an id into a name and a name back into an
 * id. Names are the index of the spool: a reader learns a job's id, queue, due time or claim from where its
 * file sits and what it is called, without opening it.
 *
 *   pending/QUEUE/ID.json, done/QUEUE/ID.json, failed/QUEUE/ID.json, hold/QUEUE/ID.json
 *   deferred/QUEUE/BUCKET/DUEMS.ID.json    BUCKET = UTC minute YYYYMMDDTHHMM, DUEMS = 15-digit epoch ms
 *   claimed/LEASE/SEQ.ID.json              SEQ = the lease's claim counter: the run token
 *   waiting/QUEUE/ID.json                  a job waiting for its dependencies (composite jobs)
 *   groups/GID/e.INDEX                     member INDEX's entry: a hard link to its final record
 *   groups/GID/LEVEL.NODE[.first]          fan-in tokens (node complete) and slots (first child to complete)
 *   deps/DEPID/QUEUE~ID                    a reverse dependency edge: ID (of QUEUE) waits for DEPID
 *   callbacks/PARENT.then, PARENT.catch    a callback's run marker; also the callback job's id
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { QUEUE_NAME } from '../job/format.js';
import { SAFE_NAME } from './ids.js';
import type { Layout } from './layout.js';

/** The latest due time a name can hold: the end of year 9999 (names stay fixed-width and sort by time). */
export const MAX_DUE_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const DUE_DIGITS = 15;

export function jobName(id: string): string { return `${id}.json`; }

/** The id a plain job file name (`ID.json`) stands for, or null. */
export function idFromName(name: string): string | null {
  if (!name.endsWith('.json') || name.startsWith('.')) return null;
  const id = name.slice(0, -5);
  return SAFE_NAME.test(id) ? id : null;
}

export function bucketOf(dueMs: number): string {
  const d = new Date(Math.min(Math.max(0, dueMs), MAX_DUE_MS));
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}T${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}

export const BUCKET = /^\d{8}T\d{4}$/;

export function deferredName(dueMs: number, id: string): string {
  return `${String(Math.min(Math.max(0, Math.floor(dueMs)), MAX_DUE_MS)).padStart(DUE_DIGITS, '0')}.${id}.json`;
}

/** Parse `DUEMS.ID.json`; null for anything else. */
export function parseDeferredName(name: string): { dueMs: number; id: string } | null {
  const m = /^(\d{15})\.(.+)\.json$/.exec(name);
  if (!m || !SAFE_NAME.test(m[2]!)) return null;
  return { dueMs: Number(m[1]), id: m[2]! };
}

/** Where a job due at `dueMs` waits. */
export function deferredPath(l: Layout, queue: string, dueMs: number, id: string): string {
  return join(l.deferred, queue, bucketOf(dueMs), deferredName(dueMs, id));
}

export function claimedName(seq: number, id: string): string { return `${seq}.${id}.json`; }

/** Parse `SEQ.ID.json` in a lease folder; null for anything else. */
export function parseClaimedName(name: string): { seq: number; id: string } | null {
  const m = /^(\d{1,15})\.(.+)\.json$/.exec(name);
  if (!m || !SAFE_NAME.test(m[2]!)) return null;
  return { seq: Number(m[1]), id: m[2]! };
}

/** The run token a holder writes into the final record of a run: the claim's lease and sequence number. */
export function runToken(leaseId: string, seq: number): string { return `${leaseId}/${seq}`; }

/** A dead lease taken by a recoverer sits in the recoverer's lease folder as `LEASE.dead`. */
export const DEAD_SUFFIX = '.dead';

/** A cancel request is `cancel/ID.RANDOM`: the id it asks about, or null. */
export function idOfCancelRequest(name: string): string | null {
  const i = name.lastIndexOf('.');
  if (i <= 0) return null;
  const id = name.slice(0, i);
  return SAFE_NAME.test(id) ? id : null;
}

/** A group's fan-in token of a complete node: LEVEL.NODE (level 0: member NODE has arrived). */
export function markerName(level: number, node: number): string { return `${level}.${node}`; }

/** The slot of a node: LEVEL.NODE.first, a link to the token of whichever child completed first. */
export function slotName(level: number, node: number): string { return `${level}.${node}.first`; }

/** Member INDEX's entry in its group: e.INDEX, a hard link to its final record. */
export function entryName(index: number): string { return `e.${index}`; }

/** A reverse dependency edge's name: QUEUE~ID ('~' is in neither a queue name nor an id). */
export function edgeName(queue: string, id: string): string { return `${queue}~${id}`; }

/** Parse QUEUE~ID; null for anything else. */
export function parseEdge(name: string): { queue: string; id: string } | null {
  const i = name.indexOf('~');
  if (i <= 0) return null;
  const queue = name.slice(0, i), id = name.slice(i + 1);
  return QUEUE_NAME.test(queue) && SAFE_NAME.test(id) ? { queue, id } : null;
}

/** The id of a parent's callback: PARENT.then / PARENT.catch (a digest when the parent's id is too long for that). */
export function callbackId(parent: string, kind: 'then' | 'catch'): string {
  const id = `${parent}.${kind}`;
  return SAFE_NAME.test(id) ? id : `cb-${createHash('sha256').update(parent).digest('hex').slice(0, 32)}.${kind}`;
}
