/**
 * prune: remove finished records past their retention.
 *
 *   done/QUEUE/ID.json, failed/QUEUE/ID.json  ->  tmp/.prune-RANDOM  ->  (removed)
 *
 * Before: the caller chose what to keep (an age, a count per queue, by the file server's clock).
 * Steps, per file:
 *   1. take it: ONE rename into tmp/ under a fresh name (ENOENT: a retry or a person moved it first);
 *   2. judge what was taken (lstat: its age by the file server's clock) — the file judged is the file
 *      taken, so a record that a retried job wrote again under the same name is never removed unjudged;
 *   3. too young after all: rename it back (its name is free: a job has one copy, and we hold it);
 *      else unlink it.
 * Crash after 1: the record sits in tmp/ and is removed with the temporaries after the leftover age —
 *   which is what pruning wanted. After 3: done.
 * Fence: none needed; retry and prune race on one rename, and the loser gets ENOENT.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { randomName, renameOrGoneSync, unlinkQuietly } from '../fsops.js';
import { queueDir, type Layout } from '../layout.js';
import { idFromName } from '../names.js';
import { listQueues } from '../queues.js';
import { step } from './steps.js';

export interface PruneRule {
  state: 'done' | 'failed';
  /** Remove records older than this (file server's clock); null: no age limit. */
  olderThanMs: number | null;
  /** Keep at most this many per queue (the newest); null: no count limit. */
  keep: number | null;
  queue?: string;
  dryRun?: boolean;
}

export interface PruneReport { removed: { id: string; queue: string; ageMs: number }[] }

export function pruneFinished(l: Layout, serverNowMs: number, rule: PruneRule): PruneReport {
  const rep: PruneReport = { removed: [] };
  for (const queue of listQueues(l[rule.state]).queues) {
    if (rule.queue && queue !== rule.queue) continue;
    const dir = queueDir(l, rule.state, queue);
    const files: { name: string; mtimeMs: number }[] = [];
    for (const name of fs.readdirSync(dir)) {
      if (idFromName(name) === null) continue;
      try { const st = fs.lstatSync(join(dir, name)); if (st.isFile()) files.push({ name, mtimeMs: st.mtimeMs }); } catch { /* moved */ }
    }
    files.sort((a, b) => b.mtimeMs - a.mtimeMs);
    files.forEach((f, i) => {
      const tooOld = rule.olderThanMs !== null && serverNowMs - f.mtimeMs > rule.olderThanMs;
      const tooMany = rule.keep !== null && i >= rule.keep;
      if (!tooOld && !tooMany) return;
      const id = idFromName(f.name)!;
      if (rule.dryRun) { rep.removed.push({ id, queue, ageMs: Math.round(serverNowMs - f.mtimeMs) }); return; }
      const taken = join(l.tmp, randomName('.prune-'));
      if (!renameOrGoneSync(join(dir, f.name), taken)) return;
      step('prune', 1, id);
      let st: fs.Stats;
      try { st = fs.lstatSync(taken); } catch { return; }
      const stillOld = rule.olderThanMs !== null && serverNowMs - st.mtimeMs > rule.olderThanMs;
      if (!stillOld && !tooMany) { renameOrGoneSync(taken, join(dir, f.name)); return; }
      unlinkQuietly(taken);
      rep.removed.push({ id, queue, ageMs: Math.round(serverNowMs - st.mtimeMs) });
    });
  }
  return rep;
}
