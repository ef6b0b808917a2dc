/**
 * Composite jobs (issue 12): the types of the library API, the building of a parallel or serial group,
 * and `currentJob()` with the methods that link what a running job creates to it.
 *
 * A group is a folder groups/GID/ (group.json: kind, members, postprocess) and its jobs: the postprocess
 * in waiting/ until every member arrived (transitions/arrive.ts), the members in pending/ (parallel; the
 * first of a serial chain) or in waiting/ after the previous member (serial). What the postprocess
 * receives is read by the worker from the members' entries in the group when it runs.
 */
import { currentJob as contextOf, type JobContext } from '../job/context.js';
import { BUILTIN_POSTPROCESS, type CompositeHandle } from '../job/composite.js';
import { MAX_GROUP_SIZE, serializeJob } from '../job/format.js';
import { PutItemError, UsageError } from '../errors.js';
import { queueDir, type Layout } from '../spool/layout.js';
import { jobName } from '../spool/names.js';
import { prepareJob, withCommon, type Prepared, type PutItem, type PutOptions } from './prepare.js';

export type { CallbackSpec } from '../job/format.js';

/** Further attempts a callback job gets when its spec sets none (zc.async retries callbacks harder than jobs). */
export { CALLBACK_RETRIES } from '../spool/transitions/callback.js';

export { BUILTIN_POSTPROCESS, isCompositeHandle, type CompositeHandle } from '../job/composite.js';

/** What a postprocess receives, one per member in input order. */
export type CompositeEntry =
  | { id: string; state: 'done'; result: unknown }
  | { id: string; state: 'failed'; failure: { name: string; message: string; reason: string; stack?: string; code?: string } };

/**
 * Options of `parallel` / `serial`. `postprocess` is the function called with the entries (default: one
 * that returns them). `queue` is the queue of the postprocess and of every item that names none; the
 * other options (retries, timeout, then, catch, ...) apply to the postprocess job.
 */
export interface CompositeOptions extends Omit<PutOptions, 'after' | 'afterAnyOutcome' | 'at' | 'in'> {
  postprocess?: string;
}

export interface BuiltComposite {
  handle: CompositeHandle;
  /** The postprocess first, then the members in order. */
  prepared: Prepared[];
  /** groups/GID/group.json's text. */
  groupText: string;
}

/** Validate and build every job of a group; nothing is written. */
export async function buildComposite(layout: Layout, kind: 'parallel' | 'serial', items: readonly PutItem[], opts: CompositeOptions, now: () => Promise<number>, parent?: string): Promise<BuiltComposite> {
  if (!Array.isArray(items)) throw new UsageError(`${kind}: items must be an array of {fn, args?, ...options}`);
  if (items.length > MAX_GROUP_SIZE) throw new UsageError(`${kind}: at most ${MAX_GROUP_SIZE} items`);
  const o = (opts ?? {}) as CompositeOptions & Record<string, unknown>;
  for (const k of ['after', 'afterAnyOutcome', 'at', 'in']) if (o[k] !== undefined) throw new UsageError(`${kind}: '${k}' is not an option of a composite (give it to its items)`);
  const { postprocess, ...postOpts } = o;
  const post = await prepareJob(layout, postprocess ?? BUILTIN_POSTPROCESS, [], postOpts, now);
  // The group is named after its postprocess, the composite's id: pruning that record removes the group.
  const gid = post.id;
  const postQueue = post.job.queue;
  post.job.postprocessOf = { gid, size: items.length };
  if (parent) post.job.parent = parent;
  const common: PutOptions = opts.queue !== undefined ? { queue: opts.queue } : {};
  const members: Prepared[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    let p: Prepared;
    try {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new UsageError('must be an object {fn, args?, ...options}');
      const own = withCommon(item, common);
      if (kind === 'serial' && i > 0) {
        if (own.at !== undefined || own.in !== undefined) throw new UsageError('a serial item after the first cannot have at/in: it starts when the previous one is done');
        own.after = [...toList(own.after), members[i - 1]!.id];
      }
      p = await prepareJob(layout, item.fn, item.args ?? [], own, now);
    } catch (err) {
      if (err instanceof UsageError) throw new PutItemError(i, err.message, err.code);
      throw err;
    }
    p.job.group = { gid, kind, index: i, size: items.length, post: post.id, postQueue };
    if (parent) p.job.parent = parent;
    members.push(p);
  }
  const handle: CompositeHandle = { zcq: 'composite', kind, id: post.id, group: gid, members: members.map((m) => m.id) };
  for (const p of [post, ...members]) p.text = serializeJob(p.job);
  // The postprocess waits for the group, whatever prepareJob chose (a group of none is released at once).
  post.dir = queueDir(layout, 'waiting', postQueue); post.name = jobName(post.id); post.parents = [layout.waiting];
  const groupText = JSON.stringify({ gid, kind, size: items.length, post: post.id, postQueue, parent: parent ?? null, created: new Date().toISOString(), members: handle.members }) + '\n';
  return { handle, prepared: [post, ...members], groupText };
}

function toList(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/**
 * The running job's context, with the composite methods: `put`, `parallel` and `serial` put into the
 * job's spool and record the running job as the `parent` of what they create. A job that returns the
 * handle of a composite it made ends its run and waits (in waiting/) for that composite, whose outcome
 * becomes its own.
 */
export interface CompositeJobContext extends JobContext {
  put(fn: string, args?: unknown[], opts?: PutOptions): Promise<{ id: string }>;
  parallel(items: readonly PutItem[], opts?: CompositeOptions): Promise<CompositeHandle>;
  serial(items: readonly PutItem[], opts?: CompositeOptions): Promise<CompositeHandle>;
}

/** What a job's composite methods call: set by client/spool.ts (which knows how to open a spool). */
export interface CompositeOps {
  put(spool: string, parent: string, fn: string, args: unknown[], opts: PutOptions): Promise<{ id: string }>;
  composite(spool: string, parent: string, kind: 'parallel' | 'serial', items: readonly PutItem[], opts: CompositeOptions): Promise<CompositeHandle>;
}

let ops: CompositeOps | undefined;
export function setCompositeOps(o: CompositeOps): void { ops = o; }

const extended = new WeakMap<JobContext, CompositeJobContext>();

/** The job this code runs for (see job/context.ts), with put/parallel/serial linked to it. Throws outside a job. */
export function currentJob(): CompositeJobContext {
  const ctx = contextOf();
  let x = extended.get(ctx);
  if (!x) {
    const need = () => { if (!ops) throw new Error('zcq: composite operations are not loaded (import from the zcq package)'); return ops; };
    x = Object.assign(Object.create(ctx) as JobContext, {
      put: (fn: string, args: unknown[] = [], opts: PutOptions = {}) => need().put(ctx.spool, ctx.id, fn, args, opts),
      parallel: (items: readonly PutItem[], opts: CompositeOptions = {}) => need().composite(ctx.spool, ctx.id, 'parallel', items, opts),
      serial: (items: readonly PutItem[], opts: CompositeOptions = {}) => need().composite(ctx.spool, ctx.id, 'serial', items, opts),
    }) as CompositeJobContext;
    extended.set(ctx, x);
  }
  return x;
}
