// Example job functions for zcq. Each is an exported function of an ES module; a job names it as
// `./jobs.mjs#render`. Arguments come from the job file; the return value is stored as the job's result.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { currentJob } from 'zcq';

const here = dirname(fileURLToPath(import.meta.url));

/** Render a small HTML page for a record into out/<id>.html; returns the path and size. */
export async function render(record) {
  if (!record || typeof record.id !== 'number') throw new TypeError('render: expected {"id": <number>, "title"?: <string>}');
  const title = String(record.title ?? `Record ${record.id}`).replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c]);
  const html = `<!doctype html>\n<title>${title}</title>\n<h1>${title}</h1>\n<p>Rendered by job ${currentJob().id}, attempt ${currentJob().attempt}.</p>\n`;
  const out = join(here, 'out', `${record.id}.html`);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, html);
  return { path: out, bytes: Buffer.byteLength(html) };
}

/** A slow job that reports progress and stops early when cancelled or timed out. */
export async function slow(steps = 5, stepMs = 200) {
  const job = currentJob();
  for (let i = 1; i <= steps; i++) {
    if (job.signal.aborted) throw job.signal.reason;
    await new Promise((res) => setTimeout(res, stepMs));
    await job.progress({ step: i, of: steps });
  }
  return { steps };
}

/** Fails on its first attempts (like a flaky network call), succeeds on attempt `succeedOn`. */
export function flaky(succeedOn = 2) {
  const { attempt } = currentJob();
  if (attempt < succeedOn) throw new Error(`flaky: attempt ${attempt} failed (succeeds on attempt ${succeedOn})`);
  return { attempt };
}

/** Always fails: shows a failure record with its stack in failed/. */
export function broken(reason = 'no such customer') {
  throw new Error(`broken: ${reason}`);
}

// Parallel work, joined: `zcq parallel --postprocess ./jobs.mjs#mergeCounts` with one countWords job per file
// (run.sh). Each member may run on any worker, on any machine; the postprocess runs once, after the last.

/** The words of one text file and how often each occurs: { file, words, counts }. */
export async function countWords(file) {
  if (typeof file !== 'string' || file === '') throw new TypeError('countWords: expected a file path');
  const text = await readFile(resolve(here, file), 'utf8');
  // A Map, not an object: "constructor" is a word too.
  const counts = new Map();
  let words = 0;
  // Words of two letters or more, apostrophes inside a word kept ("don't"); case folded.
  for (const [w] of text.toLowerCase().matchAll(/\p{L}[\p{L}']*\p{L}/gu)) {
    counts.set(w, (counts.get(w) ?? 0) + 1);
    words++;
  }
  return { file, words, counts: Object.fromEntries(counts) };
}

/**
 * The postprocess: receives one entry per countWords job, in input order ({ id, state, result } or
 * { id, state, failure }), and merges their counts. A file that could not be read is named, not fatal.
 */
export function mergeCounts(entries, top = 10) {
  const total = new Map();
  let words = 0;
  const failed = [];
  for (const e of entries) {
    if (e.state !== 'done') { failed.push(e.failure?.message ?? e.id); continue; }
    words += e.result.words;
    for (const [w, n] of Object.entries(e.result.counts)) total.set(w, (total.get(w) ?? 0) + n);
  }
  const ranked = [...total].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return { files: entries.length - failed.length, failed, words, distinct: ranked.length, top: ranked.slice(0, top) };
}
