// Job functions used by the benchmark, for zcq and BullMQ workers alike.
import { appendFileSync } from 'node:fs';

/** Does nothing: the job's cost is the queue's own cost. */
export function noop() {
  return null;
}

/**
 * Appends "<tag> <process.hrtime ns>\n" to `file` at the moment the job starts.
 * process.hrtime is CLOCK_MONOTONIC, shared by every process on the machine, so
 * the producer can subtract its own hrtime taken just before put.
 * Accepts stamp(file, tag), stamp([file, tag]) or stamp({ file, tag }).
 */
export function stamp(a, b) {
  const now = process.hrtime.bigint();
  let file = a;
  let tag = b;
  if (Array.isArray(a)) [file, tag] = a;
  else if (a && typeof a === 'object') {
    file = a.file ?? a.args?.[0];
    tag = a.tag ?? a.args?.[1];
  }
  appendFileSync(file, `${tag} ${now}\n`);
  return null;
}
