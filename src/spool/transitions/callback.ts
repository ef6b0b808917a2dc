/**
 * callback: a job that ended puts its `then` (done) or `catch` (failed for good) callback, exactly once.
 *
 *   tmp/.cb-CBID-X/{job.json,put}  ->  callbacks/CBID/{job.json,put}           CBID = PARENT.then or PARENT.catch
 *   callbacks/CBID/job.json        ->  pending/QUEUE/CBID.json                 (callbacks/CBID/put stays)
 *
 * Before: the parent's final record is in place in its claim (finish.ts step 4): callbacks are put inside
 *   finish, between its steps 4 and 5, by whoever finishes the parent (worker, recovery, cancel). The
 *   callback's spec (fn, queue, retries) comes from the parent's `then` / `catch` field, checked as
 *   untrusted; its queue is the parent's unless given, its retries 5 unless given (zc.async retries
 *   callbacks harder than jobs). It is called `fn(result, PARENT)` or `fn(failure, PARENT)`.
 * Steps:
 *   1. the run marker: a folder made in tmp/ holding the callback job (job.json) and `put` (the parent's
 *      id), renamed as callbacks/CBID. rename(2) of a folder onto a non-empty folder fails (EEXIST or
 *      ENOTEMPTY): an earlier finish of the same record made the marker; ours is removed. The marker never
 *      becomes empty (`put` stays), so it can never be replaced, and its job.json never made again;
 *   2. publish: ONE rename of callbacks/CBID/job.json into pending/QUEUE/CBID.json. ENOENT: published
 *      already (by an earlier run of this hook, or a concurrent one), whatever became of it since — it may
 *      have run and been pruned — so no look-up of the callback's id decides anything.
 * Crash after 1: the marker holds job.json; the finish that runs again (recovery) completes step 2. After
 *   2: the marker is empty of job.json; a re-run finds nothing to publish. The marker itself says whether
 *   the callback was published: a re-run never puts a second one, even when the first was pruned meanwhile.
 * Fence: none needed: the marker's rename and the publication's rename each have one winner.
 * A parent run again by `zcq retry` ends anew: its markers are removed by the retry (client:
 *   forgetCallbacks) so that the new end puts its callback again; so does the pruning of the parent.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { errnoOf } from '../../errors.js';
import { newJob, serializeJob, type Job } from '../../job/format.js';
import { fsyncDirSync, isRealDir, renameStrictSync, unlinkQuietly, writeReplaceSync } from '../fsops.js';
import { queueDir, type Layout } from '../layout.js';
import { makeDir } from '../modes.js';
import { callbackId, jobName } from '../names.js';

export { callbackId };
import { step } from './steps.js';

/** Callback jobs retry this often unless their spec says otherwise. */
export const CALLBACK_RETRIES = 5;

/** Steps 1–2 for a parent that ended in `state`. Returns the callback's id, or null when it has none. */
export function putCallback(l: Layout, parent: Job, state: 'done' | 'failed', durable: boolean): string | null {
  const kind = state === 'done' ? 'then' : 'catch';
  const spec = parent[kind];
  if (!spec) return null;
  const id = callbackId(parent.id, kind);
  const queue = spec.queue ?? parent.queue;
  const job = newJob({ id, fn: spec.fn, args: [state === 'done' ? (parent.result ?? null) : (parent.failure ?? null), parent.id], queue, retries: spec.retries ?? CALLBACK_RETRIES });
  job.parent = parent.id;
  makeDir(l.modes, l.callbacks);
  const marker = join(l.callbacks, id);
  // 1. the marker, made whole in tmp/ and renamed in: it exists with its job, or not at all
  if (!isRealDir(marker)) {
    const stage = join(l.tmp, `.cb-${id}-${randomBytes(6).toString('hex')}`);
    makeDir(l.modes, stage);
    try {
      const opts = { tmpDir: l.tmp, durable, mode: l.modes.fileMode };
      writeReplaceSync(join(stage, 'job.json'), serializeJob(job), opts);
      writeReplaceSync(join(stage, 'put'), `${parent.id}\n`, opts);
      fs.renameSync(stage, marker);
      if (durable) fsyncDirSync(l.callbacks);
    } catch (err) {
      const code = errnoOf(err);
      if (code !== 'EEXIST' && code !== 'ENOTEMPTY') { dropStage(stage); throw err; }
    }
    dropStage(stage);
  }
  step('callback', 1, id);
  // 2. publish: the marker's job.json moves out once; gone means published before
  if (isRealDir(marker)) {
    const dir = queueDir(l, 'pending', queue);
    const made = makeDir(l.modes, dir);
    if (renameStrictSync(join(marker, 'job.json'), join(dir, jobName(id))) && durable) {
      fsyncDirSync(dir);
      if (made) fsyncDirSync(l.pending);
    }
  }
  step('callback', 2, id);
  return id;
}

/** Before a parent runs again (`zcq retry`), or once it is pruned: its next end puts its callbacks anew. */
export function forgetCallbacks(l: Layout, parent: string): void {
  for (const kind of ['then', 'catch'] as const) {
    const marker = join(l.callbacks, callbackId(parent, kind));
    if (isRealDir(marker)) fs.rmSync(marker, { recursive: true, force: true });
    else unlinkQuietly(marker);
  }
}

function dropStage(stage: string): void {
  try { fs.rmSync(stage, { recursive: true, force: true }); } catch { /* tmp/ is swept */ }
}
