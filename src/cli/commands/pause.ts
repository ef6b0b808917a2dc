/** `zcq pause <queue...>` / `zcq resume <queue...>`: stop and restart every worker's taking of a queue's jobs. */
import type { Command } from 'commander';
import { globals, openSpool, printJson } from '../common.js';

export function register(program: Command): void {
  program.command('pause <queues...>')
    .description('pause queues: every worker stops taking their jobs within one poll (running jobs finish); shown by status')
    .action(async (queues: string[], _o, cmd: Command) => {
      const spool = await openSpool(cmd);
      for (const q of queues) await spool.pause(q);
      if (globals(cmd).json) printJson({ paused: spool.paused() });
      else for (const q of queues) process.stdout.write(`${q}\tpaused\n`);
    });
  program.command('resume <queues...>')
    .description('resume paused queues')
    .action(async (queues: string[], _o, cmd: Command) => {
      const spool = await openSpool(cmd);
      for (const q of queues) await spool.resume(q);
      if (globals(cmd).json) printJson({ paused: spool.paused() });
      else for (const q of queues) process.stdout.write(`${q}\tresumed\n`);
    });
}
