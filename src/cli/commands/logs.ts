/**
 * `zcq logs <id> [-f]`: print a job's output (output/ID.log: what its attempts wrote to stdout and stderr,
 * each under a `--- attempt N on HOST pid PID at ISO ---` line). With -f, keep printing what is appended
 * until the job is finished (done or failed), as `tail -f` would. Control characters in the output are
 * escaped (tabs and newlines kept) unless --raw: the output is written by job code, and a terminal acts on
 * escape sequences.
 */
import * as fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import type { Command } from 'commander';
import type { Spool } from '../../client/spool.js';
import { JobNotFoundError, ZcqError, isGone } from '../../errors.js';
import { openRegularSync } from '../../spool/fsops.js';
import { printable } from '../../text.js';
import { globals, openSpool, printJson } from '../common.js';

const POLL_MS = 200;
const READ_CHUNK = 64 * 1024;

export function register(program: Command): void {
  program.command('logs <id>')
    .description('print a job\'s output (stdout and stderr of each attempt); -f follows it until the job is finished')
    .option('-f, --follow', 'keep printing new output until the job is done or failed')
    .option('--raw', 'print the output as it is (control characters not escaped)')
    .action(async (ref: string, o: { follow?: boolean; raw?: boolean }, cmd: Command) => {
      const spool = await openSpool(cmd);
      const json = Boolean(globals(cmd).json);
      let id: string;
      let state: string | null;
      try {
        const loc = await spool.locate(ref);
        id = loc.id; state = loc.state;
      } catch (err) {
        // A record pruned or moved away by hand may have left its output: a full id still finds it.
        if (!(err instanceof JobNotFoundError) || spool.output(ref) === null) throw err;
        id = ref; state = null;
      }
      const out = new Follower(spool, id, o.raw === true, json);
      if (!o.follow) {
        const text = out.readNew();
        if (json) printJson({ id, state, ...(spool.output(id) ?? { path: null, bytes: 0 }), output: text });
        else process.stdout.write(out.shown(text));
        return;
      }
      for (;;) {
        const finished = state === null || state === 'done' || state === 'failed';
        out.emit(out.readNew());
        if (finished) break;
        await new Promise((r) => setTimeout(r, POLL_MS));
        try { state = (await spool.locate(id)).state; } catch (err) { if (err instanceof JobNotFoundError) state = null; else throw err; }
      }
      out.emit(out.flush());
      if (json) printJson({ id, state, finished: true });
    });
}

/** Reads output/ID.log from where it last stopped; starts over when the file was replaced or cut. */
class Follower {
  private offset = 0;
  private ino: number | null = null;
  private decoder = new StringDecoder('utf8');

  constructor(private readonly spool: Spool, private readonly id: string, private readonly raw: boolean, private readonly json: boolean) {}

  readNew(): string {
    const where = this.spool.output(this.id);
    if (where === null) return '';
    let fd: number;
    let st: fs.Stats;
    try {
      ({ fd, st } = openRegularSync(where.path));
    } catch (err) {
      if (isGone(err)) return '';
      throw new ZcqError('ZCQ_UNSAFE_FILE', (err as Error).message, 1);
    }
    try {
      if (this.ino !== st.ino || st.size < this.offset) { this.offset = 0; this.ino = st.ino; this.decoder = new StringDecoder('utf8'); }
      let text = '';
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, this.offset);
        if (n === 0) break;
        this.offset += n;
        text += this.decoder.write(buf.subarray(0, n));
      }
      return text;
    } finally {
      fs.closeSync(fd);
    }
  }

  flush(): string { return this.decoder.end(); }

  shown(text: string): string {
    if (this.raw) return text;
    return text.split('\n').map((l) => l.split('\t').map(printable).join('\t')).join('\n');
  }

  emit(text: string): void {
    if (text === '') return;
    if (this.json) printJson({ id: this.id, text });
    else process.stdout.write(this.shown(text));
  }
}
