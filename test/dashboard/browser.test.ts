// The dashboard in a real browser (Debian's chromium, driven by playwright-core): a real spool, a real
// worker process and a real `zcq dashboard` process. What the page shows is checked against the files on
// disk; what it does (retry) is checked on disk too. Screenshots go to test-artifacts/.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { cleanupTemp, donePath, failedPath, holdPath, killAll, newSpool, pendingPath, startWorker, until, zcq } from '../helpers.js';
import { CHROMIUM, artifact, startDashboard, type DashboardProcess } from './util.js';

/** A failure message that is markup: the page must show it as text and run none of it. */
const HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><b>bold</b>';

let browser: Browser;
const running: DashboardProcess[] = [];

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});
afterAll(async () => { await browser?.close(); });
afterEach(async () => {
  for (const d of running.splice(0)) await d.stop();
  killAll();
  cleanupTemp();
});

async function open(spool: string, args: string[] = []): Promise<{ d: DashboardProcess; page: Page }> {
  const d = await startDashboard(spool, args);
  running.push(d);
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(d.url);
  await page.waitForSelector('#live.on');
  return { d, page };
}

function put(spool: string, args: string[]): string {
  const r = zcq(spool, ['put', ...args]);
  expect(r.stderr).toBe('');
  return r.stdout.trim();
}

describe('zcq dashboard in a browser', () => {
  it('shows a job fail live with its message as text; retry (with --actions) moves its file to pending/, hold to hold/, pause makes the marker', async () => {
    const spool = newSpool();
    const { page } = await open(spool, ['--actions']);
    await page.click('#state-tabs button[data-state="failed"]');
    const id = put(spool, ['./jobs.mjs#boom', HOSTILE]); // not JSON: passed as the string it is
    const w = startWorker(spool, ['--exit-when-idle', '--poll', '100ms']);
    expect(await w.exited).toBe(0);
    expect(existsSync(failedPath(spool, id))).toBe(true);

    // It appears in the failed list without a reload, with its message shown literally.
    const row = page.locator(`#jobs tr[data-id="${id}"]`);
    await row.waitFor();
    expect(await row.locator('td.msg').textContent()).toBe(HOSTILE);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator('#jobs b').count()).toBe(0);
    // Its detail carries the stack, as zcq show prints it.
    await row.locator('a.job').click();
    await expect.poll(() => page.locator('#detail-stack').textContent()).toContain('Error: <script>');
    await page.screenshot({ path: artifact('dashboard-failed.png'), fullPage: true });

    await row.locator('button[data-action="retry"]').click();
    await until(() => existsSync(pendingPath(spool, id)), 10_000);
    expect(existsSync(failedPath(spool, id))).toBe(false);
    await expect.poll(() => page.locator(`#jobs tr[data-id="${id}"]`).count()).toBe(0);
    await expect.poll(() => page.locator('#footer').textContent()).toBe('retry: done');

    // The other actions are the same path: hold the job from the pending list, pause its queue.
    await page.click('#state-tabs button[data-state="pending"]');
    await page.locator(`#jobs tr[data-id="${id}"] button[data-action="hold"]`).click();
    await until(() => existsSync(holdPath(spool, id)), 10_000);
    await page.locator('#queues tr[data-queue="default"] button[data-action="pause"]').click();
    await until(() => existsSync(join(spool, 'paused', 'default')), 10_000);
    await page.locator('#queues tr[data-queue="default"] .paused').waitFor();
  });

  it('a read-only dashboard offers no action and refuses the POST; with --actions, a POST without the CSRF token or from another origin is refused', async () => {
    const spool = newSpool();
    const id = put(spool, ['./jobs.mjs#boom', '"ro"']);
    expect(await startWorker(spool, ['--exit-when-idle', '--poll', '100ms']).exited).toBe(0);
    zcq(spool, ['pause', 'default']);

    const { page } = await open(spool);
    await page.click('#state-tabs button[data-state="failed"]');
    await page.locator(`#jobs tr[data-id="${id}"]`).waitFor();
    await page.locator(`#jobs tr[data-id="${id}"] a.job`).click();
    await page.locator('#detail-section:not([hidden])').waitFor();
    expect(await page.locator('#mode').textContent()).toBe('read-only');
    expect(await page.locator('button.action').count()).toBe(0);
    expect(await page.locator('#queues tr[data-queue="default"] .paused').textContent()).toBe('paused');
    // The page's own origin, with the CSRF token it was given: still refused.
    const res = await page.evaluate(async (jobId) => {
      const s = await (await fetch('/api/session')).json();
      const r = await fetch('/api/action', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf }, body: JSON.stringify({ action: 'retry', ids: [jobId] }) });
      return { status: r.status, body: await r.json() };
    }, id);
    expect(res.status).toBe(403);
    expect(res.body.error).toMatch(/read-only/);
    expect(existsSync(failedPath(spool, id))).toBe(true);
    await page.screenshot({ path: artifact('dashboard-read-only.png'), fullPage: true });

    const { d: rw } = await open(spool, ['--actions']);
    const post = (headers: Record<string, string>) => fetch(new URL('/api/action', rw.url), { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify({ action: 'retry', ids: [id] }) });
    expect((await post({})).status).toBe(403);
    const csrf = ((await (await fetch(new URL('/api/session', rw.url))).json()) as { csrf: string }).csrf;
    expect((await post({ 'X-CSRF-Token': 'wrong' })).status).toBe(403);
    expect((await post({ 'X-CSRF-Token': csrf, Origin: 'http://evil.example' })).status).toBe(403);
    expect((await post({ 'X-CSRF-Token': csrf, 'Sec-Fetch-Site': 'cross-site' })).status).toBe(403);
    // A page of another origin cannot even read the token: no CORS header is sent.
    expect((await fetch(new URL('/api/session', rw.url), { headers: { Origin: 'http://evil.example' } })).headers.get('access-control-allow-origin')).toBeNull();
    expect(existsSync(failedPath(spool, id))).toBe(true);
    // The same request from the page itself works (so the refusals above were for the reasons tested).
    expect((await post({ 'X-CSRF-Token': csrf })).status).toBe(200);
    expect(existsSync(pendingPath(spool, id))).toBe(true);
  });

  it('updates live when a running job finishes (no reload)', async () => {
    const spool = newSpool();
    const { page } = await open(spool);
    await page.evaluate(() => { (window as unknown as { __same?: number }).__same = 1; });
    const id = put(spool, ['./jobs.mjs#sleep', '1500']);
    startWorker(spool, ['--poll', '100ms']);
    const runningRow = page.locator(`#running tr[data-id="${id}"]`);
    await runningRow.waitFor({ timeout: 15_000 });
    await page.screenshot({ path: artifact('dashboard-running.png'), fullPage: true });
    await until(() => existsSync(donePath(spool, id)), 15_000);
    await runningRow.waitFor({ state: 'detached', timeout: 10_000 });
    await expect.poll(() => page.locator('#queues tr[data-queue="default"] td').nth(4).textContent()).toBe('1');
    expect(await page.evaluate(() => (window as unknown as { __same?: number }).__same)).toBe(1);
  });
});
