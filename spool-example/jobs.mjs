// Example job functions for zcq. Each is an exported function of an ES module; a job names it as
// `./jobs.mjs#render`. Arguments come from the job file; the return value is stored as the job's result.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
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
