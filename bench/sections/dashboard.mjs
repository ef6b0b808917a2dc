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
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/** CPU time (user + system) a live process has used, ms (/proc/PID/stat fields 14 and 15, in ticks of 10 ms). */
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
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
 * jobs/s of one worker (concurrency 8, durable) draining `n` pending jobs: alone (`watch` null), with a
 * dashboard whose /metrics is scraped every second ('metrics': 15 times Prometheus' default rate), or with a
 * page open as well ('page': an event stream, which keeps the dashboard refreshing every second).
 */
export async function drainWith({ n, watch }) {
  const dashboard = watch !== null;
  const dir = makeTmp('zcq-dash-drain');
  let d = null, scraper = null, events = null;
  try {
    initSpool(dir);
    writePending(dir, n, { progress: null });
    if (dashboard) {
      d = await startDashboard(dir);
      await get(new URL('/api/overview', d.url));
      const ac = new AbortController();
      if (watch === 'page') events = { ac, done: fetch(new URL('/api/events', d.url), { signal: ac.signal }).then(async (r) => { for await (const _ of r.body) { /* drain */ } }).catch(() => {}) };
      let stop = false;
      scraper = { stop: () => { stop = true; }, done: (async () => { while (!stop) { await get(new URL('/metrics', d.url)).catch(() => {}); await sleep(1000); } })() };
    }
    // CPU shares are steadier than rates on a machine others load too: the worker's CPU comes from the
    // shell's `times` (its children's user and system time), the dashboard's from /proc.
    const dashCpu0 = d ? cpuMs(d.child.pid) : 0;
    const t0 = performance.now();
    const w = spawnTracked('bash', ['-c', '"$@" 2>/dev/null; rc=$?; times >&2; exit $rc', 'bash', BIN, '--spool', dir, 'worker', '--root', JOBS, '--concurrency', '8', '--exit-when-idle']);
    const code = await new Promise((res) => w.on('close', (c) => res(c)));
    const ms = performance.now() - t0;
    const dashCpu = d ? cpuMs(d.child.pid) - dashCpu0 : 0;
    if (code !== 0) throw new Error(`worker exited ${code} (its log: run it by hand)`);
    const t = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(w.stderrText);
    const workerCpu = t ? (Number(t[1]) * 60 + Number(t[2]) + Number(t[3]) * 60 + Number(t[4])) * 1000 : null;
    return { jobsPerSec: (n * 1000) / ms, workerCpuMs: workerCpu, dashboardCpuMs: dashCpu };
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
  // Interleaved, so that the machine's other load falls on all three alike.
  for (let r = 1; r <= runs; r++) {
    for (const watch of [null, 'metrics', 'page']) {
      const x = await drainWith({ n: drainN, watch });
      const share = x.workerCpuMs ? (100 * x.dashboardCpuMs) / x.workerCpuMs : null;
      log(`dashboard: drain ${drainN.toLocaleString('en-US')} ${watch === null ? 'alone' : watch === 'metrics' ? 'with /metrics scraped every 1 s' : 'with a page open and /metrics scraped'}: ${x.jobsPerSec.toFixed(0)} jobs/s; worker CPU ${x.workerCpuMs} ms${watch ? `, dashboard CPU ${x.dashboardCpuMs} ms (${share?.toFixed(1)}% of the worker's)` : ''}`);
      rec(`dash.drain.${watch ?? 'alone'}`, x.jobsPerSec);
      if (watch) rec(`dash.cpu.${watch}`, share);
    }
  }
}
