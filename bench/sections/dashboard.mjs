// The dashboard's bench (issue 15): how long the page and /metrics take to answer with 1,000 and with
// 1,000,000 jobs in the spool, and what a running dashboard (a page open, /metrics scraped every second)
// costs a worker draining jobs.
//
// A "page" is what a browser fetches to show it, one request after another on one connection: /, app.js,
// style.css, /api/session, /api/overview and the first page of failed jobs. The spool holds N pending jobs
// in one queue (written straight into pending/, as the backlog section does) and 20 failed ones. Answers
// are timed once the dashboard has its snapshot (the first listing of 1,000,000 names takes seconds: its
// time is reported too, as "cold snapshot").
import { spawnTracked, stopChild, makeTmp, rmrf, sleep, log } from '../lib/proc.mjs';
import { BIN, JOBS, initSpool, writePending } from '../zcq.mjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PAGE = ['/', '/app.js', '/style.css', '/api/session', '/api/overview', '/api/jobs?state=failed'];

/** Start `zcq dashboard --port 0` on spool; resolves with its address. */
async function startDashboard(spool, extra = []) {
  const child = spawnTracked(process.execPath, [BIN, '--spool', spool, 'dashboard', '--port', '0', ...extra]);
  let out = '';
  const url = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { out += d; const m = /^(http:\/\/\S+)\n/.exec(out); if (m) resolve(m[1]); });
    child.on('exit', (code) => reject(new Error(`zcq dashboard exited ${code}: ${child.stderrText.slice(-400)}`)));
  });
  return { child, url };
}

async function get(url) {
  const r = await fetch(url);
  await r.arrayBuffer();
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
}

function failedJobs(spool, n) {
  const dir = join(spool, 'failed', 'default');
  mkdirSync(dir, { recursive: true });
  const now = new Date().toISOString();
  for (let i = 0; i < n; i++) {
    const id = `${Date.now().toString(36).padStart(9, '0')}-benchf-${i}`;
    writeFileSync(join(dir, `${id}.json`), JSON.stringify({ zcq: 1, id, fn: 'noop.mjs#noop', args: [], queue: 'default', created: now, attempts: 1, retries: 0, history: [], finished: now, failure: { name: 'Error', message: 'bench', stack: 'Error: bench', reason: 'error' } }));
  }
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : null; };

/**
 * Page, pending-list and /metrics answer times (median and max of `requests` each) with `pending` jobs.
 * `spool` may be given to reuse a filled spool (the 1,000,000 one takes ~40 s to write).
 */
export async function responseTimes({ pending, requests = 20, spool = null }) {
  const dir = spool ?? makeTmp('zcq-dash');
  if (!spool) { initSpool(dir); writePending(dir, pending, { progress: 'dashboard spool' }); failedJobs(dir, 20); }
  const d = await startDashboard(dir);
  try {
    const t0 = performance.now();
    await get(new URL('/api/overview', d.url));
    const coldMs = performance.now() - t0;
    // Steady state: the snapshot made from cached listings (a folder is listed twice, then trusted).
    const deadline = Date.now() + 60_000;
    for (;;) {
      const s = await (await fetch(new URL('/api/overview', d.url))).json();
      if (s.totals.pending !== pending) throw new Error(`dashboard counts ${s.totals.pending} pending, expected ${pending}`);
      if (s.tookMs < 100 || Date.now() > deadline) break;
      await sleep(500);
    }
    const page = [], list = [], metrics = [];
    for (let i = 0; i < requests; i++) {
      let t = performance.now();
      for (const p of PAGE) await get(new URL(p, d.url));
      page.push(performance.now() - t);
      t = performance.now();
      await get(new URL('/api/jobs?state=pending', d.url));
      list.push(performance.now() - t);
      t = performance.now();
      await get(new URL('/metrics', d.url));
      metrics.push(performance.now() - t);
    }
    return { coldMs, pageMs: median(page), pageMax: Math.max(...page), listMs: median(list), listMax: Math.max(...list), metricsMs: median(metrics), metricsMax: Math.max(...metrics), dir };
  } finally {
    await stopChild(d.child, 5000);
    if (!spool) rmrf(dir);
  }
}

/** Fill a spool with `pending` jobs (and 20 failed) for responseTimes({ spool }). */
export function filledSpool(pending) {
  const dir = makeTmp('zcq-dash-big');
  initSpool(dir);
  writePending(dir, pending, { progress: 'dashboard spool' });
  failedJobs(dir, 20);
  return dir;
}

/**
 * jobs/s of one worker (concurrency 8, durable) draining `n` pending jobs, alone or with a dashboard
 * watching the spool: an event stream open (as a page is) and /metrics scraped every second.
 */
export async function drainWith({ n, dashboard }) {
  const dir = makeTmp('zcq-dash-drain');
  let d = null, scraper = null, events = null;
  try {
    initSpool(dir);
    writePending(dir, n, { progress: null });
    if (dashboard) {
      d = await startDashboard(dir);
      await get(new URL('/api/overview', d.url));
      const ac = new AbortController();
      events = { ac, done: fetch(new URL('/api/events', d.url), { signal: ac.signal }).then(async (r) => { for await (const _ of r.body) { /* drain */ } }).catch(() => {}) };
      let stop = false;
      scraper = { stop: () => { stop = true; }, done: (async () => { while (!stop) { await get(new URL('/metrics', d.url)).catch(() => {}); await sleep(1000); } })() };
    }
    const t0 = performance.now();
    const w = spawnTracked(BIN, ['--spool', dir, 'worker', '--root', JOBS, '--concurrency', '8', '--exit-when-idle']);
    const code = await new Promise((res) => w.on('exit', (c) => res(c)));
    const ms = performance.now() - t0;
    if (code !== 0) throw new Error(`worker exited ${code}: ${w.stderrText.slice(-400)}`);
    return { jobsPerSec: (n * 1000) / ms };
  } finally {
    scraper?.stop();
    await scraper?.done;
    events?.ac.abort();
    await events?.done;
    if (d) await stopChild(d.child, 5000);
    rmrf(dir);
  }
}

/** All of the section's figures, for bench/run.mjs. */
export async function dashboardBench({ sizes, runs, drainN, rec }) {
  for (const size of sizes) {
    const big = size >= 100_000 ? filledSpool(size) : null;
    try {
      for (let r = 1; r <= runs; r++) {
        log(`dashboard: answers with ${size.toLocaleString('en-US')} pending, run ${r}/${runs}`);
        const t = await responseTimes({ pending: size, spool: big });
        log(`  page ${t.pageMs.toFixed(1)} ms (max ${t.pageMax.toFixed(1)}), pending list ${t.listMs.toFixed(1)} ms, /metrics ${t.metricsMs.toFixed(1)} ms (max ${t.metricsMax.toFixed(1)}), cold snapshot ${t.coldMs.toFixed(0)} ms`);
        rec(`dash.page.${size}`, t.pageMs); rec(`dash.list.${size}`, t.listMs); rec(`dash.metrics.${size}`, t.metricsMs); rec(`dash.cold.${size}`, t.coldMs);
        rec(`dash.pagemax.${size}`, t.pageMax); rec(`dash.metricsmax.${size}`, t.metricsMax);
      }
    } finally {
      if (big) rmrf(big);
    }
  }
  for (let r = 1; r <= runs; r++) {
    for (const dashboard of [false, true]) {
      const x = await drainWith({ n: drainN, dashboard });
      log(`dashboard: drain ${drainN.toLocaleString('en-US')} ${dashboard ? 'with a dashboard watching' : 'alone'}: ${x.jobsPerSec.toFixed(0)} jobs/s`);
      rec(`dash.drain.${dashboard ? 'watched' : 'alone'}`, x.jobsPerSec);
    }
  }
}
