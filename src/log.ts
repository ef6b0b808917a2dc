/**
 * Event logs: one line per event, `<time> <event> key=value …` for people or one JSON object per line
 * with `--json`. Values are quoted when they contain spaces so that lines stay greppable. Values come from
 * job files (ids, queues, failure messages, paths) that anyone who can write the spool can make: in text
 * lines every control character is escaped (text.ts), so a value can neither split a line nor send a
 * terminal an escape sequence; JSON lines escape them as JSON does.
 */
import { jsonLine, printable } from './text.js';

export type LogFields = Record<string, unknown>;
export type Logger = (event: string, fields?: LogFields) => void;

/**
 * `batch`: the lines of one turn of the event loop go out in one write, at its end (or at 16 KB, or when
 * the process exits). A busy worker logs a line a job, and jobs end several to a turn; a write each is a
 * system call each, and a wake-up each for whoever reads the pipe. A line waits for nothing but the rest
 * of the turn: no timer, no I/O.
 */
export function makeLogger(opts: { json?: boolean; quiet?: boolean; stream?: NodeJS.WritableStream; batch?: boolean } = {}): Logger {
  const out = opts.stream ?? process.stderr;
  if (opts.quiet) return () => undefined;
  const emit = opts.batch ? batchedWriter(out) : (line: string) => { out.write(line); };
  return (event, fields = {}) => {
    const time = new Date().toISOString();
    if (opts.json) {
      // A field named time or event must not replace the line's own (undefined would drop the key).
      const { time: _t, event: _e, ...rest } = fields;
      emit(jsonLine({ time, event, ...rest }) + '\n');
      return;
    }
    let line = `${time} ${printable(event)}`;
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      line += ` ${printable(k)}=${textValue(v)}`;
    }
    emit(line + '\n');
  };
}

const BATCH_MAX = 16 * 1024;

function batchedWriter(out: NodeJS.WritableStream): (line: string) => void {
  let held = '';
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (held === '') return;
    const text = held;
    held = '';
    out.write(text);
  };
  // process.exit() ends the process before the turn does: what is held goes out first (pipes, files and
  // terminals are written synchronously on Linux, so it is not lost with the process).
  process.once('exit', flush);
  return (line) => {
    held += line;
    if (held.length >= BATCH_MAX) flush();
    else if (!scheduled) { scheduled = true; setImmediate(flush); }
  };
}

/** A value as it appears after `key=`: bare when it is one plain word, else quoted as a JSON string. */
function textValue(v: unknown): string {
  let s: string;
  try { s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v); } catch { s = String(v); }
  // JSON.stringify escapes C0 controls and lone surrogates; printable then escapes the rest (C1, DEL, bidi).
  return printable(/[\s"\\\x00-\x1f\x7f-\x9f]/.test(s) ? JSON.stringify(s) : s);
}

export const silentLogger: Logger = () => undefined;
