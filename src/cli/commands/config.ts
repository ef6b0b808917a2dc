/**
 * `zcq config`: live worker configuration, stored in the spool (config/workers/; see spool/config.ts) and
 * applied by running workers within a poll interval, without a restart.
 *   zcq config set TARGET KEY=VALUE...   concurrency=N queues=a,b fn=GLOB,... paused=true|false
 *   zcq config get TARGET                the keys TARGET's entry sets
 *   zcq config ls                        every entry
 *   zcq config rm TARGET [KEY...]        remove keys (or the whole entry): the next level applies again
 * TARGET is a worker name (`zcq worker --name`, by default the host name), host:HOST, or '*' (every
 * worker). A bad key or value exits 2 with one line naming it and what it takes; nothing is written.
 */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { CONFIG_KEYS, checkKey, formatSetting, parseSetting, parseTarget, type WorkerSettings } from '../../spool/config.js';
import { globals, openSpool, printJson, row, warn } from '../common.js';

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
      parseTarget(target);
      for (const k of keys) checkKey(k);
      const spool = await openSpool(cmd);
      const gone = await spool.config.rm(target, keys);
      if (globals(cmd).json) printJson({ target, removed: gone });
      else row(target, gone.length > 0 ? `removed ${gone.join(',')}` : 'had no such settings');
    });
}
