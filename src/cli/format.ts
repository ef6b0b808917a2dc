/**
 * Text layout for people at a terminal: aligned tables cut to the terminal's width, and relative times
 * ("in 14m", "3m ago"). Scripts get tab-separated records instead (common.ts `row`) or --json: nothing
 * here is meant to be parsed.
 *
 * Every cell passes through `printable` (text.ts) before it is measured: an escape sequence from a job
 * file is shown as `\x1b...`, and its printed length is the length the table aligns on. Width is counted
 * in code points; a double-width character (CJK, emoji) makes its row one column wider than the others.
 */
import { printable } from '../text.js';

/** A span as one or two units, largest first: 45s, 14m, 3h05m, 2d04h. */
export function span(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h}h${String(m % 60).padStart(2, '0')}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d${String(h % 24).padStart(2, '0')}h` : `${d}d`;
}

/** A past time as "3m ago" ("now" under a second); `ms` is how long ago. null/NaN: "-". */
export function ago(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  return ms < 1000 ? 'now' : `${span(ms)} ago`;
}

/** A time `ms` from now: "in 14m" ahead, "3m ago" when it has passed ("now" within a second). */
export function until(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (Math.abs(ms) < 1000) return 'now';
  return ms > 0 ? `in ${span(ms)}` : `${span(-ms)} ago`;
}

/**
 * An instant as the wall clock of `tz` reads it, with the zone's abbreviation:
 * "2026-12-02 03:00:00 CET". An unknown zone gives the UTC reading ("... UTC").
 */
export function zoned(ms: number, tz: string): string {
  let f: Intl.DateTimeFormat;
  try {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' });
  } catch {
    return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  }
  const p = Object.fromEntries(f.formatToParts(ms).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

export interface Column {
  header: string;
  /** Numbers read best right-aligned. */
  align?: 'left' | 'right';
  /**
   * May be narrowed (cells cut with '…') when the table is wider than the terminal, never below `min`
   * (default 8): columns with the lowest number give up their width first.
   */
  shrink?: number;
  min?: number;
}

function chars(s: string): string[] {
  return Array.from(s);
}

/** `s` at most `width` code points long, cut with '…'. */
export function cut(s: string, width: number): string {
  const c = chars(s);
  if (c.length <= width) return s;
  if (width <= 0) return '';
  return c.slice(0, width - 1).join('') + '…';
}

function pad(s: string, width: number, align: 'left' | 'right'): string {
  const n = width - chars(s).length;
  if (n <= 0) return s;
  return align === 'right' ? ' '.repeat(n) + s : s + ' '.repeat(n);
}

/**
 * Lines of an aligned table: a header, then one line a row, columns two spaces apart. With `width`
 * (the terminal's columns), shrinkable columns are narrowed, in their order, until the table fits, and any
 * line still longer is cut at the width. The last column is not padded (no trailing blanks).
 */
export function table(columns: Column[], rows: unknown[][], width?: number): string[] {
  const cells = rows.map((r) => columns.map((_, i) => cell(r[i])));
  const widths = columns.map((c, i) => cells.reduce((w, r) => Math.max(w, chars(r[i]!).length), chars(c.header).length));
  const GAP = 2;
  if (width !== undefined && width > 0) {
    let over = widths.reduce((a, b) => a + b, 0) + GAP * (columns.length - 1) - width;
    // Columns that may shrink, first to give up width first (then by position, last first).
    const order = columns.map((c, i) => ({ c, i })).filter(({ c }) => c.shrink !== undefined)
      .sort((a, b) => a.c.shrink! - b.c.shrink! || b.i - a.i);
    for (const { c, i } of order) {
      if (over <= 0) break;
      const floor = Math.max(c.min ?? 8, chars(c.header).length);
      const take = Math.min(over, Math.max(0, widths[i]! - floor));
      widths[i] = widths[i]! - take;
      over -= take;
    }
  }
  const out: string[] = [];
  const render = (r: string[]) => {
    const parts = r.map((v, i) => {
      const text = cut(v, widths[i]!);
      return i === r.length - 1 ? (columns[i]!.align === 'right' ? pad(text, widths[i]!, 'right') : text) : pad(text, widths[i]!, columns[i]!.align ?? 'left');
    });
    const line = parts.join(' '.repeat(GAP)).trimEnd();
    return width !== undefined && width > 0 ? cut(line, width) : line;
  };
  out.push(render(columns.map((c) => c.header)));
  for (const r of cells) out.push(render(r));
  return out;
}

/** A cell's text: absent (null, undefined) as '-', strings escaped, anything else as JSON (escaped). */
function cell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (typeof v === 'string') return printable(v);
  if (typeof v === 'number') return String(v);
  let s: string | undefined;
  try { s = JSON.stringify(v); } catch { s = undefined; }
  return printable(s ?? String(v));
}

/** The terminal's width for stdout, or undefined when stdout is not a terminal (or does not say). */
export function terminalWidth(): number | undefined {
  return process.stdout.isTTY && process.stdout.columns > 0 ? process.stdout.columns : undefined;
}

/** Whether stdout is a terminal (a person reads it): tables then, tab-separated records otherwise. */
export function toTerminal(): boolean {
  return process.stdout.isTTY === true;
}
