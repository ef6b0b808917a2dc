// Parse the summary table written by `strace -c -o FILE`.
//
// % time     seconds  usecs/call     calls    errors syscall
// ------ ----------- ----------- --------- --------- ----------------
//  41.07    0.002300          11       200        12 openat
// ------ ----------- ----------- --------- --------- ----------------
// 100.00    0.005600                   900        20 total
//
// Values are right-aligned under their header, so each column is cut at the
// right edge of its header word (robust to empty usecs/errors cells).

/** { total, byName: {name: calls}, top: "name n, name n, …" (8 most frequent) } */
export function parseStrace(text) {
  const lines = text.split('\n');
  const hi = lines.findIndex((l) => /calls/.test(l) && /syscall/.test(l));
  if (hi < 0) throw new Error('no strace -c summary found');
  const header = lines[hi];
  const callsEnd = header.indexOf('calls') + 'calls'.length;
  const usecsEnd = header.indexOf('usecs/call') + 'usecs/call'.length;
  const errorsEnd = header.indexOf('errors') + 'errors'.length;
  const byName = {};
  let total = null;
  for (const line of lines.slice(hi + 1)) {
    if (!line.trim() || /^-+/.test(line.trim())) continue;
    const calls = Number(line.slice(usecsEnd, callsEnd).trim());
    const name = line.slice(errorsEnd).trim();
    if (!Number.isFinite(calls) || !name) continue;
    if (name === 'total') total = calls;
    else byName[name] = (byName[name] ?? 0) + calls;
  }
  total ??= Object.values(byName).reduce((a, b) => a + b, 0);
  const top = Object.entries(byName)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return { total, byName, top };
}

/** Per-job figures from a full run and an empty (baseline) run. */
export function perJob(full, base, n) {
  const names = new Set([...Object.keys(full.byName), ...Object.keys(base.byName)]);
  const diff = {};
  for (const k of names) diff[k] = ((full.byName[k] ?? 0) - (base.byName[k] ?? 0)) / n;
  const top = Object.entries(diff)
    .filter(([, v]) => v >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ');
  return { perJob: (full.total - base.total) / n, top };
}
