/** `zcq init [DIR]`: make a folder a spool (idempotent). */
import type { Command } from 'commander';
import { globals } from '../common.js';

export function register(program: Command): void {
  program.command('init [dir]')
    .description('create the spool layout in DIR (default --spool, $ZCQ_SPOOL or ./spool)')
    .option('--group <name>', 'share the spool with this Unix group: setgid, group-writable folders')
    .action(async (dir: string | undefined, o: { group?: string }, cmd: Command) => {
      const { Spool } = await import('../../client/spool.js');
      const { defaultSpoolDir } = await import('../../spool/layout.js');
      const spool = await Spool.init(dir ?? globals(cmd).spool ?? defaultSpoolDir(), { group: o.group ?? null });
      if (globals(cmd).json) process.stdout.write(JSON.stringify({ spool: spool.dir }) + '\n');
      else process.stdout.write(`${spool.dir}\n`);
    });
}
