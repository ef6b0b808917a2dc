/**
 * Text that reaches a terminal. Job ids, queues, failure messages, module paths, file names and quarantine
 * reasons come from files anyone with write access to the spool can make, so every human-readable line zcq
 * prints passes its untrusted parts through `printable`: a raw ESC or CSI could otherwise rewrite the
 * screen, retitle the terminal or hide a line from the person reading `zcq ls`.
 */

/**
 * Characters that are never printed raw: C0 controls (TAB and newline included: they split fields and
 * lines), DEL, C1 controls, the Unicode line and paragraph separators (line breaks in some terminals and
 * editors), the bidirectional embeddings, overrides and isolates (they reorder what is displayed), and
 * lone surrogates (not text; terminals show them unpredictably). The regex works on UTF-16 code units
 * (no `u` flag) so that a lone surrogate can be matched.
 */
const UNPRINTABLE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function hex(code: number, width: number): string {
  return code.toString(16).padStart(width, '0');
}

/**
 * `s` with every unprintable character written as an escape: `\xNN` below U+0100, `\uNNNN` above
 * (ESC is `\x1b`, TAB `\x09`, a lone surrogate `\ud800`). Backslashes are left as they are so that paths
 * and messages stay readable; the escapes are for a person, not for parsing back — use --json for that.
 */
export function printable(s: string): string {
  UNPRINTABLE.lastIndex = 0;
  if (!UNPRINTABLE.test(s)) return s;
  return s.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${hex(code, 2)}` : `\\u${hex(code, 4)}`;
  });
}

/** Any value as one printable field: strings as they are (escaped), anything else as JSON. */
export function printableValue(v: unknown): string {
  if (typeof v === 'string') return printable(v);
  let s: string | undefined;
  try { s = JSON.stringify(v); } catch { s = undefined; }
  return printable(s ?? String(v));
}

/**
 * Characters JSON.stringify leaves raw although a terminal acts on them (C0 controls and lone surrogates
 * it already escapes). In JSON text they can only occur inside strings, where `\uNNNN` means the same
 * character: the escaped text parses to the same value.
 */
const JSON_RAW = /[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `JSON.stringify(v)` on one line, with the characters a terminal would act on escaped as `\uNNNN`. */
export function jsonLine(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return 'null';
  JSON_RAW.lastIndex = 0;
  if (!JSON_RAW.test(s)) return s;
  return s.replace(JSON_RAW, (c) => `\\u${hex(c.charCodeAt(0), 4)}`);
}

/**
 * A duration as people type it for zcq (`parseDuration` reads it back): the largest units first, `0ms`
 * for zero — 30000 → `30s`, 5400000 → `1h30m`, 86400000 → `1d`, 100 → `100ms`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return String(ms);
  if (ms === 0) return '0ms';
  const units: [string, number][] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]];
  let left = Math.round(ms);
  let out = '';
  for (const [unit, size] of units) {
    const n = Math.floor(left / size);
    if (n > 0) { out += `${n}${unit}`; left -= n * size; }
  }
  return out;
}
