/**
 * `zcq config`: live worker configuration, stored in the spool (config/workers/; see spool/config.ts) and
 * applied by running workers within a poll interval, without a restart.
 *   zcq config set TARGET KEY=VALUE...   concurrency=N queues=a,b fn=GLOB,... paused=true|false
 *   zcq config get TARGET                the keys TARGET's entry sets
 *   zcq config ls                        every entry
 *   zcq config rm TARGET [KEY...]        remove keys (or the whole entry): the next level applies again
 * TARGET is a worker name (`zcq worker --name`, by default the host name), host:HOST, or '*' (every
 * worker). A bad key or value exits 2 with one line naming it and what it takes; nothing is written.
 * TARGET queue:QUEUE sets a queue's keys instead (queueConfig below): quotas=a,b (quotas every job of
 * the queue holds) and rate=COUNT/WINDOW (the same as `zcq rate set queue:QUEUE`).
 */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { CONFIG_KEYS, checkKey, formatSetting, parseSetting, parseTarget, type WorkerSettings } from '../../spool/config.js';
import { globals, openSpool, printJson, row, warn } from '../common.js';
import { QUEUE_NAME } from '../../job/format.js';
import { checkQuotaName } from '../../spool/quota.js';
import { parseRate } from '../../client/rate.js';
import { formatDuration } from '../../text.js';

function fields(s: WorkerSettings): string[] {
  return CONFIG_KEYS.filter((k) => s[k] !== undefined).map((k) => `${k}=${formatSetting(k, s[k])}`);
}

export function register(program: Command): void {
  const c = program.command('config')
    .description('live worker configuration (concurrency, queues, fn, paused) for a worker name, host:HOST or *; workers apply it within a poll');

  c.command('set <target> <settings...>')
    .usage('TARGET KEY=VALUE...')
    .description(`set keys for a worker name, host:HOST, or '*': ${CONFIG_KEYS.map((k) => `${k}=`).join(' ')} (see zcq(1) CONFIGURATION)`)
    .action(async (target: string, args: string[], _o, cmd: Command) => {
      if (target.startsWith('queue:')) return queueSet(cmd, target, args);
      parseTarget(target);
      const patch: Record<string, string> = {};
      for (const a of args) {
        const eq = a.indexOf('=');
        if (eq <= 0) throw new UsageError(`config set: '${a.slice(0, 80)}': use KEY=VALUE with KEY one of ${CONFIG_KEYS.join(', ')}`);
        const key = checkKey(a.slice(0, eq));
        parseSetting(key, a.slice(eq + 1));
        patch[key] = a.slice(eq + 1);
      }
      const spool = await openSpool(cmd);
      const stored = await spool.config.set(target, patch);
      if (globals(cmd).json) printJson({ target, settings: stored });
      else row(target, ...fields(stored));
    });

  c.command('get <target>')
    .description('the keys the entry for TARGET sets (a worker name, host:HOST, or *)')
    .action(async (target: string, _o, cmd: Command) => {
      if (target.startsWith('queue:')) return queueGet(cmd, target);
      parseTarget(target);
      const spool = await openSpool(cmd);
      const e = spool.config.get(target);
      for (const p of e.problems) warn(`${p} (workers apply the next level in its place)`);
      if (globals(cmd).json) printJson(e);
      else row(e.target, ...(e.stored ? fields(e.settings) : ['(no settings)']));
    });

  c.command('ls')
    .description('every entry: * first, then hosts, then worker names')
    .action(async (_o, cmd: Command) => {
      const spool = await openSpool(cmd);
      const all = spool.config.ls();
      for (const e of all) for (const p of e.problems) warn(`${p} (workers apply the next level in its place)`);
      if (globals(cmd).json) { printJson(all); return; }
      for (const e of all) row(e.target, ...fields(e.settings));
    });

  c.command('rm <target> [keys...]')
    .description('remove keys of an entry, or the whole entry: the next level (host, *, default) applies again')
    .action(async (target: string, keys: string[], _o, cmd: Command) => {
      if (target.startsWith('queue:')) return queueRm(cmd, target, keys);
      parseTarget(target);
      for (const k of keys) checkKey(k);
      const spool = await openSpool(cmd);
      const gone = await spool.config.rm(target, keys);
      if (globals(cmd).json) printJson({ target, removed: gone });
      else row(target, gone.length > 0 ? `removed ${gone.join(',')}` : 'had no such settings');
    });
}

/* queue:QUEUE targets: a queue's default quotas (spool/quota.ts, config/queues/QUEUE.json) and its rate (spool/rate.ts). */
const QUEUE_KEYS = ['quotas', 'rate'];

function queueOf(target: string): string {
  const q = target.slice(6);
  if (!QUEUE_NAME.test(q)) throw new UsageError(`target '${target.slice(0, 80)}': queue:QUEUE takes a queue name ([A-Za-z0-9._-], at most 64)`);
  return q;
}

async function queueSet(cmd: Command, target: string, args: string[]): Promise<void> {
  const queue = queueOf(target);
  let quotas: string[] | null | undefined;
  let rate: string | undefined;
  for (const a of args) {
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : '';
    const v = a.slice(eq + 1);
    if (key === 'quotas') {
      quotas = v === '' || v === '-' ? null : v.split(',');
      for (const q of quotas ?? []) checkQuotaName(q, 'quotas');
    } else if (key === 'rate') { parseRate(v); rate = v; }
    else throw new UsageError(`config set ${target}: '${a.slice(0, 80)}': a queue takes ${QUEUE_KEYS.map((k) => `${k}=`).join(' ')} (quotas=a,b; rate=COUNT/WINDOW)`);
  }
  const spool = await openSpool(cmd);
  if (quotas !== undefined) await spool.quota.setQueueDefault(queue, quotas);
  if (rate !== undefined) await spool.rate.set(target, rate);
  queueShow(cmd, spool, target, queue);
}

async function queueGet(cmd: Command, target: string): Promise<void> {
  const queue = queueOf(target);
  queueShow(cmd, await openSpool(cmd), target, queue);
}

async function queueRm(cmd: Command, target: string, keys: string[]): Promise<void> {
  const queue = queueOf(target);
  for (const k of keys) if (!QUEUE_KEYS.includes(k)) throw new UsageError(`config rm ${target}: '${k.slice(0, 80)}': a queue has the keys ${QUEUE_KEYS.join(', ')}`);
  const spool = await openSpool(cmd);
  const all = keys.length === 0;
  if (all || keys.includes('quotas')) await spool.quota.setQueueDefault(queue, null);
  if (all || keys.includes('rate')) spool.rate.rm(target);
  queueShow(cmd, spool, target, queue);
}

function queueShow(cmd: Command, spool: Awaited<ReturnType<typeof openSpool>>, target: string, queue: string): void {
  const quotas = spool.quota.queueDefaults()[queue] ?? [];
  const rate = spool.rate.get(target).rate;
  if (globals(cmd).json) { printJson({ target, settings: { quotas, rate } }); return; }
  const fieldsOut = [...(quotas.length > 0 ? [`quotas=${quotas.join(',')}`] : []), ...(rate ? [`rate=${rate.count}/${formatDuration(rate.windowMs)}`] : [])];
  row(target, ...(fieldsOut.length > 0 ? fieldsOut : ['(no settings)']));
}
