/**
 * Event logs: one line per event, `<time> <event> key=value …` for people or one JSON object per line
 * with `--json`. Values are quoted when they contain spaces so that lines stay greppable.
 */
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
      out.write(JSON.stringify({ time, event, ...rest }) + '\n');
      return;
    }
    let line = `${time} ${event}`;
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      const s = typeof v === 'string' ? v : JSON.stringify(v);
      line += ` ${k}=${/[\s"]/.test(s) ? JSON.stringify(s) : s}`;
    }
    out.write(line + '\n');
  };
}

export const silentLogger: Logger = () => undefined;
