// Small statistics and formatting helpers for the benchmark harness.

/** Median of an array of numbers (null/NaN entries ignored); null when empty. */
export function median(values) {
  const xs = (values ?? []).filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = xs.length >> 1;
  return xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

/** Percentile p in [0,100] by the nearest-rank method (p99 of 200 samples = 198th smallest). */
export function percentile(values, p) {
  const xs = (values ?? []).filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const rank = Math.min(xs.length, Math.max(1, Math.ceil((p / 100) * xs.length)));
  return xs[rank - 1];
}

export const p50 = (values) => percentile(values, 50);
export const p99 = (values) => percentile(values, 99);

/** Number with ~3 significant digits, thousands separators for big ones. */
export function fmtNum(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return '0';
  return v.toPrecision(2);
}

export function fmtRatio(a, b) {
  if (a === null || b === null || a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) {
    return 'n/a';
  }
  const r = a / b;
  return (r >= 10 ? r.toFixed(1) : r >= 1 ? r.toFixed(2) : r.toPrecision(2)) + '×';
}

export function fmtBytes(kb) {
  if (kb === null || kb === undefined || !Number.isFinite(kb)) return 'n/a';
  return (kb / 1024).toFixed(1) + ' MiB';
}

/** Render rows (array of arrays of strings) as a GitHub-flavoured Markdown table. */
export function markdownTable(header, rows) {
  const all = [header, ...rows].map((r) => r.map((c) => String(c ?? '')));
  const widths = header.map((_, i) => Math.max(3, ...all.map((r) => r[i].length)));
  const line = (r) => '| ' + r.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  const sep = '| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |';
  return [line(all[0]), sep, ...all.slice(1).map(line)].join('\n');
}
