/** `zcq init [DIR]`: make a folder a spool (idempotent). */
import type { Command } from 'commander';
import { globals } from '../common.js';

export function register(program: Command): void {
  program.command('init [dir]')
    .description('create the spool layout in DIR (default --spool, $ZCQ_SPOOL or ./spool)')
    .action(async (dir: string | undefined, _o, cmd: Command) => {
      const { Spool } = await import('../../spool/spool.js');
      const { defaultSpoolDir } = await import('../../spool/layout.js');
      const spool = await Spool.open(dir ?? globals(cmd).spool ?? defaultSpoolDir(), { create: true });
      if (globals(cmd).json) process.stdout.write(JSON.stringify({ spool: spool.dir }) + '\n');
      else process.stdout.write(`${spool.dir}\n`);
    });
}
