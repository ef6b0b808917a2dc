/** `zcq init [DIR] [--group NAME]`: make a folder a spool (idempotent); the only command that creates one. */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { globals, line, printJson, spoolDir } from '../common.js';

/** A POSIX group name (as useradd accepts it) or a numeric gid. */
const GROUP = /^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|\d{1,10})$/;

export function register(program: Command): void {
  program.command('init [dir]')
    .description('create the spool layout in DIR (default: --spool, $ZCQ_SPOOL or ./spool)')
    .option('--group <name>', 'group that owns the spool, for several users sharing it (folders setgid, group-writable)')
    .action(async (dir: string | undefined, o: { group?: string }, cmd: Command) => {
      const group = o.group;
      if (group !== undefined && !GROUP.test(group)) throw new UsageError(`--group '${group}': not a group name; give a group from /etc/group (getent group NAME) or a numeric gid`);
      const target = dir ?? await spoolDir(cmd);
      const { Spool } = await import('../../client/spool.js');
      const spool = await Spool.init(target, { group: group ?? null });
      if (globals(cmd).json) printJson({ spool: spool.dir });
      else line(spool.dir);
    });
}
