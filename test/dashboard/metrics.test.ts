// /metrics of a real `zcq dashboard` read with the Prometheus project's own parsers (python3-prometheus-client:
// OpenMetrics, strict, and text 0.0.4), its counters checked against a ledger the jobs themselves wrote;
// `zcq metrics --textfile`; and the server's refusals (bind, token, Host).
import { spawnSync } from 'node:child_process';
import { get } from 'node:http';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupTemp, idsIn, killAll, ledgerLines, newSpool, startWorker, tempDir, until, zcq } from '../helpers.js';
import { startDashboard, type DashboardProcess } from './util.js';

interface Family { name: string; type: string; samples: { name: string; labels: Record<string, string>; value: number }[] }
// Debian's python (where python3-prometheus-client is), not whichever python3 comes first in PATH.
const PARSER = join(dirname(fileURLToPath(import.meta.url)), 'parse-metrics.py');
function parse(text: string, format: 'openmetrics' | 'prometheus' = 'prometheus'): Map<string, Family> {
  const r = spawnSync('/usr/bin/python3', [PARSER, format], { input: text, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the ${format} parser refused the text: ${r.stderr}`);
  return new Map((JSON.parse(r.stdout) as Family[]).map((f) => [f.name, f]));
}
/** The value of sample `sample` (default: the family's name) whose labels include `labels`. */
function value(fams: Map<string, Family>, family: string, labels: Record<string, string> = {}, sample = family): number | undefined {
  return fams.get(family)?.samples.find((x) => x.name === sample && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
}

const running: DashboardProcess[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) await d.stop();
  killAll();
  cleanupTemp();
});

async function dashboard(spool: string, args: string[] = []): Promise<DashboardProcess> {
  const d = await startDashboard(spool, args);
  running.push(d);
  return d;
}

function put(spool: string, args: string[]): string {
  const r = zcq(spool, ['put', ...args]);
  expect(r.stderr).toBe('');
  return r.stdout.trim();
}

/** GET with a chosen Host header (fetch would not send one of ours). */
function rawGet(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => get(url, { headers }, (res) => { res.resume(); resolve(res.statusCode!); }).on('error', reject));
}

describe('metrics', () => {
  it("/metrics counts the jobs finished per queue and outcome as the jobs' own ledger does, with a run time for each", async () => {
    const spool = newSpool();
    const ledger = join(tempDir(), 'ledger');
    const d = await dashboard(spool);
    // The dashboard's first look is the baseline: wait for it before any job finishes.
    await fetch(new URL('/metrics', d.url));
    for (let i = 0; i < 6; i++) put(spool, ['./jobs.mjs#record', ledger, 'default']);
    for (let i = 0; i < 3; i++) put(spool, ['./jobs.mjs#record', ledger, 'mail', '-q', 'mail']);
    for (let i = 0; i < 4; i++) put(spool, ['./jobs.mjs#boom', 'no', '-q', 'mail']);
    expect(await startWorker(spool, ['--exit-when-idle', '--poll', '100ms']).exited).toBe(0);
    const ran = ledgerLines(ledger).map((l) => l.split(' ')[1]);
    const want = { default: { done: ran.filter((q) => q === 'default').length, failed: 0 }, mail: { done: ran.filter((q) => q === 'mail').length, failed: idsIn(spool, 'failed', 'mail').length } };
    expect(want).toEqual({ default: { done: 6, failed: 0 }, mail: { done: 3, failed: 4 } });

    // Scraped as Prometheus does (asking for OpenMetrics), read by the strict OpenMetrics parser, in which a
    // counter family is named without _total and its sample with it.
    let fams = new Map<string, Family>();
    let contentType = '';
    await until(async () => {
      const res = await fetch(new URL('/metrics', d.url), { headers: { Accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' } });
      contentType = res.headers.get('content-type') ?? '';
      fams = parse(await res.text(), 'openmetrics');
      return value(fams, 'zcq_jobs_finished', { queue: 'mail', outcome: 'failed' }, 'zcq_jobs_finished_total') === 4
        && value(fams, 'zcq_jobs_finished', { queue: 'default', outcome: 'done' }, 'zcq_jobs_finished_total') === 6;
    }, 15_000, 200);
    expect(contentType).toMatch(/^application\/openmetrics-text/);
    for (const q of ['default', 'mail'] as const) {
      expect(value(fams, 'zcq_jobs_finished', { queue: q, outcome: 'done' }, 'zcq_jobs_finished_total')).toBe(want[q].done);
      expect(value(fams, 'zcq_jobs_finished', { queue: q, outcome: 'failed' }, 'zcq_jobs_finished_total')).toBe(want[q].failed);
      // Every finish was timed.
      expect(value(fams, 'zcq_job_run_seconds', { queue: q }, 'zcq_job_run_seconds_count')).toBe(want[q].done + want[q].failed);
      expect(value(fams, 'zcq_job_run_seconds', { queue: q, le: '+Inf' }, 'zcq_job_run_seconds_bucket')).toBe(want[q].done + want[q].failed);
      expect(value(fams, 'zcq_jobs', { queue: q, state: 'done' })).toBe(idsIn(spool, 'done', q).length);
      expect(value(fams, 'zcq_jobs', { queue: q, state: 'pending' })).toBe(0);
    }
    expect(fams.get('zcq_jobs_finished')!.type).toBe('counter');
    expect(fams.get('zcq_job_run_seconds')!.type).toBe('histogram');
    expect(value(fams, 'zcq_lease_takeovers', {}, 'zcq_lease_takeovers_total')).toBe(0);
    // The text format 0.0.4, as any other scraper gets it, says the same.
    const plain = parse(await (await fetch(new URL('/metrics', d.url))).text());
    expect(value(plain, 'zcq_jobs_finished', { queue: 'mail', outcome: 'failed' }, 'zcq_jobs_finished_total')).toBe(4);
    expect(value(fams, 'zcq_quarantine_files')).toBe(0);
  });

  it('zcq metrics --textfile DIR writes DIR/zcq.prom atomically: gauges of the spool, no temporary left', async () => {
    const spool = newSpool();
    for (let i = 0; i < 3; i++) put(spool, ['./jobs.mjs#add', '1', '2', '-q', 'reports']);
    put(spool, ['./jobs.mjs#add', '1', '2', '--in', '1h']);
    const dir = join(tempDir(), 'textfile');
    mkdirSync(dir);
    const r = zcq(spool, ['metrics', '--textfile', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readdirSync(dir)).toEqual(['zcq.prom']);
    const fams = parse(readFileSync(join(dir, 'zcq.prom'), 'utf8'));
    expect(value(fams, 'zcq_jobs', { queue: 'reports', state: 'pending' })).toBe(3);
    expect(value(fams, 'zcq_jobs', { queue: 'default', state: 'deferred' })).toBe(1);
    expect(value(fams, 'zcq_oldest_pending_seconds', { queue: 'reports' })).toBeGreaterThanOrEqual(0);
    expect(fams.has('zcq_jobs_finished')).toBe(false);
    // On stdout without --textfile; a missing folder is a usage error.
    expect(parse(zcq(spool, ['metrics']).stdout).has('zcq_jobs')).toBe(true);
    const bad = zcq(spool, ['metrics', '--textfile', join(dir, 'nope')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('binding another host without a token is refused with one line; a token guards every request; a loopback dashboard answers only loopback Host names', async () => {
    const spool = newSpool();
    const r = zcq(spool, ['dashboard', '--host', '0.0.0.0', '--port', '0'], { timeout: 10_000 });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^zcq: --host 0\.0\.0\.0: .*--token-file/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);

    const tokenFile = join(tempDir(), 'token');
    writeFileSync(tokenFile, 'short\n');
    expect(zcq(spool, ['dashboard', '--port', '0', '--token-file', tokenFile], { timeout: 10_000 }).code).toBe(2);
    const token = 'k3y-0123456789abcdefghij';
    writeFileSync(tokenFile, `${token}\n`);
    const d = await dashboard(spool, ['--token-file', tokenFile]);
    expect((await fetch(new URL('/metrics', d.url))).status).toBe(401);
    expect((await fetch(new URL('/api/overview', d.url))).status).toBe(401);
    expect((await fetch(new URL('/metrics', d.url), { headers: { Authorization: `Bearer ${token}x` } })).status).toBe(401);
    expect((await fetch(new URL('/metrics', d.url), { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    const login = await fetch(new URL(`/?token=${token}`, d.url), { redirect: 'manual' });
    expect(login.status).toBe(303);
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect((await fetch(new URL('/api/overview', d.url), { headers: { Cookie: cookie.split(';')[0]! } })).status).toBe(200);

    const port = new URL(d.url).port;
    expect(await rawGet(new URL('/metrics', d.url).href, { Host: `evil.example:${port}`, Authorization: `Bearer ${token}` })).toBe(421);
    expect(await rawGet(new URL('/metrics', d.url).href, { Host: `localhost:${port}`, Authorization: `Bearer ${token}` })).toBe(200);
  });
});
