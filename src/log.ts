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

export function makeLogger(opts: { json?: boolean; quiet?: boolean; stream?: NodeJS.WritableStream } = {}): Logger {
  const out = opts.stream ?? process.stderr;
  if (opts.quiet) return () => undefined;
  return (event, fields = {}) => {
    const time = new Date().toISOString();
    if (opts.json) {
      // A field named time or event must not replace the line's own (undefined would drop the key).
      const { time: _t, event: _e, ...rest } = fields;
      out.write(jsonLine({ time, event, ...rest }) + '\n');
      return;
    }
    let line = `${time} ${printable(event)}`;
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      line += ` ${printable(k)}=${textValue(v)}`;
    }
    out.write(line + '\n');
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
