/**
 * `zcq dashboard`: one page over a spool, with live updates and Prometheus metrics, served by Node's http.
 * It holds no logic about the spool: what it shows comes from the read model (client/overview.ts) and the
 * metrics (client/metrics.ts), what it does from the library facade (client/spool.ts). The page is plain
 * HTML, CSS and JS from assets/ (no build step, nothing fetched from elsewhere: it works with no internet).
 *
 * Snapshots: while a page is open (its event stream connected), a refresh loop makes one every refreshMs
 * (slower when a snapshot takes long: at most a third of the time is spent listing), pushes it to the open
 * pages (server-sent events: live updates with no reload), and every answer comes from the latest one. With
 * no page open nothing runs: a request (a /metrics scrape) finding the snapshot older than refreshMs has one
 * made, waiting for it at most FRESH_WAIT_MS (then the previous one answers). So what the dashboard costs
 * the machine follows how often it is looked at, not how long it has been running.
 *
 * Security (job files are untrusted: anyone who can write the spool writes their fields):
 * - it binds 127.0.0.1 by default, and there it answers only requests whose Host is a loopback name (a
 *   web page elsewhere cannot reach it through DNS rebinding); binding another address needs a token;
 * - with a token (--token-file), every request carries it: `Authorization: Bearer T` (Prometheus'
 *   bearer_token_file), or the HttpOnly SameSite=Strict cookie that opening /?token=T sets;
 * - actions (retry, cancel, hold, release, pause, resume) exist only with --actions. Each is a POST with a
 *   JSON body, the per-process CSRF token in a header (readable only by a page of this origin), and an
 *   Origin, when the browser sends one, equal to this server's. A read-only dashboard refuses every POST;
 * - the page builds its DOM with textContent only (never HTML from data), under a Content-Security-Policy
 *   that allows no inline script: a job message such as `<script>` is shown as text.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { DASHBOARD_DEFAULTS } from '../defaults.js';
import { UsageError, ZcqError } from '../errors.js';
import type { Logger } from '../log.js';
import { QUEUE_NAME, STATES, type JobState } from '../spool/layout.js';
import { SpoolMetrics } from '../client/metrics.js';
import { JOB_ID, Overview, type Snapshot } from '../client/overview.js';
import type { Spool } from '../client/spool.js';

/** How long a request with no page open waits for a fresh snapshot before the previous one answers. */
export const FRESH_WAIT_MS = 1_000;
export const DEFAULT_REFRESH_MS = DASHBOARD_DEFAULTS.refreshMs;
const MAX_BODY = 64 * 1024;
const MAX_IDS = 1_000;

export interface DashboardOptions {
  spool: Spool;
  host?: string;
  port?: number;
  /** Offer and accept actions (retry, cancel, hold, release, pause, resume). */
  actions?: boolean;
  /** Required with every request when set. */
  token?: string | null;
  refreshMs?: number;
  log?: Logger;
}

export interface Dashboard { url: string; port: number; host: string; close(): Promise<void>; overview: Overview }

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

/** Whether `host` is a loopback address or name (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/** Refuse, before anything starts, to serve a spool to other hosts without a token. */
export function checkBind(host: string, token: string | null | undefined): void {
  if (!isLoopback(host) && !token) throw new UsageError(`--host ${host}: another host could read (and with --actions change) the spool; give --token-file FILE, or bind 127.0.0.1`);
}

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const host = o.host ?? '127.0.0.1';
  checkBind(host, o.token);
  const log: Logger = o.log ?? (() => undefined);
  const refreshMs = o.refreshMs ?? DEFAULT_REFRESH_MS;
  const assets = new Map(Object.entries(ASSETS).map(([path, a]) => [path, { body: readFileSync(new URL(`./assets/${a.file}`, import.meta.url)), type: a.type }]));
  const overview = new Overview(o.spool);
  const metrics = new SpoolMetrics(overview);
  const csrf = randomBytes(24).toString('base64url');
  const token = o.token ? Buffer.from(o.token) : null;
  const streams = new Set<ServerResponse>();
  let refreshedAt = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let port = 0;

  const snapshot = async (): Promise<Snapshot> => {
    const last = overview.latest();
    if (!last) return refresh();
    if (streams.size > 0 || performance.now() - refreshedAt < refreshMs) return last;
    const fresh = refresh();
    fresh.catch(() => undefined);
    let waited: NodeJS.Timeout | undefined;
    const s = await Promise.race([fresh, new Promise<null>((r) => { waited = setTimeout(() => r(null), FRESH_WAIT_MS); })]);
    clearTimeout(waited);
    return s ?? overview.latest()!;
  };
  const refresh = async (): Promise<Snapshot> => {
    const s = await overview.refresh();
    refreshedAt = performance.now();
    metrics.update(s);
    const data = `event: overview\ndata: ${JSON.stringify(s)}\n\n`;
    for (const r of streams) r.write(data);
    return s;
  };
  let looping = false;
  const loop = async () => {
    timer = undefined;
    if (closed || streams.size === 0) { looping = false; return; }
    looping = true;
    let took = 0;
    try { took = (await refresh()).tookMs; } catch (err) { log('dashboard.error', { error: (err as Error).message }); }
    if (!closed && streams.size > 0) timer = setTimeout(loop, Math.max(refreshMs, took * 3));
    else looping = false;
  };
  /** After an action: a refresh now (a page open), or at the next request. */
  const kick = () => { refreshedAt = -Infinity; if (timer) { clearTimeout(timer); timer = setTimeout(loop, 0); } };

  const allowedHost = (h: string | undefined): boolean => {
    if (!isLoopback(host)) return true; // a token guards it
    if (!h) return false;
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(h);
    return !!m && isLoopback(m[1]!) && (m[2] === undefined ? false : Number(m[2]) === port);
  };
  const authorized = (req: IncomingMessage): boolean => {
    if (!token) return true;
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const cookie = /(?:^|;\s*)zcq_token=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    return [bearer, cookie ? decodeURIComponent(cookie) : undefined].some((t) => t !== undefined && same(Buffer.from(t), token));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (!allowedHost(req.headers.host)) return send(res, 421, { error: 'this dashboard answers only to a loopback host name (127.0.0.1, localhost)' });
    if (token && req.method === 'GET' && url.pathname === '/' && url.searchParams.has('token')) {
      if (!same(Buffer.from(url.searchParams.get('token')!), token)) return send(res, 401, { error: 'wrong token' });
      res.writeHead(303, { ...SECURITY_HEADERS, Location: '/', 'Set-Cookie': `zcq_token=${encodeURIComponent(o.token!)}; HttpOnly; SameSite=Strict; Path=/` });
      return void res.end();
    }
    if (!authorized(req)) return send(res, 401, { error: 'this dashboard needs its token: open /?token=TOKEN, or send Authorization: Bearer TOKEN' });
    if (req.method === 'POST') return action(req, res, url);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'GET or POST only' });
    const asset = assets.get(url.pathname);
    if (asset) { res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': asset.type }); return void res.end(asset.body); }
    switch (url.pathname) {
      case '/api/session': return send(res, 200, { csrf, actions: !!o.actions, states: STATES, spool: o.spool.dir });
      case '/api/overview': return send(res, 200, await snapshot());
      case '/api/jobs': {
        const state = url.searchParams.get('state') ?? 'failed';
        const queue = url.searchParams.get('queue') || undefined;
        if (!(STATES as readonly string[]).includes(state)) return send(res, 400, { error: `state: one of ${STATES.join(', ')}` });
        if (queue !== undefined && !QUEUE_NAME.test(queue)) return send(res, 400, { error: 'queue: letters, digits, . _ -' });
        await snapshot();
        return send(res, 200, await overview.jobs({ state: state as JobState, queue, offset: int(url.searchParams.get('offset'), 0), limit: int(url.searchParams.get('limit'), 50) }));
      }
      case '/api/events': {
        res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
        const s = overview.latest();
        res.write(s ? `event: overview\ndata: ${JSON.stringify(s)}\n\n` : ': waiting for the first snapshot\n\n');
        streams.add(res);
        req.on('close', () => streams.delete(res));
        if (!looping && !closed) { looping = true; timer = setTimeout(loop, 0); }
        return;
      }
      case '/metrics': {
        await snapshot();
        const m = await metrics.text(/application\/openmetrics-text/.test(req.headers.accept ?? ''));
        res.writeHead(200, { 'Content-Type': m.contentType, 'Cache-Control': 'no-store' });
        return void res.end(m.body);
      }
      case '/favicon.ico': res.writeHead(204); return void res.end();
    }
    const jm = /^\/api\/job\/([^/]+)$/.exec(url.pathname);
    if (jm) {
      const id = decodeURIComponent(jm[1]!);
      if (!JOB_ID.test(id)) return send(res, 400, { error: 'job id: [A-Za-z0-9._@-]' });
      return send(res, 200, await overview.job(id));
    }
    return send(res, 404, { error: 'no such page' });
  };

  const action = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    if (url.pathname !== '/api/action') return send(res, 404, { error: 'no such action' });
    if (!o.actions) return send(res, 403, { error: 'read-only dashboard: start it with --actions to retry, cancel, hold, release, pause or resume' });
    // http, or https through a TLS proxy in front that passes the Host on.
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}` && origin !== `https://${req.headers.host}`) return send(res, 403, { error: 'cross-origin request refused' });
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return send(res, 403, { error: 'cross-site request refused' });
    const given = req.headers['x-csrf-token'];
    if (typeof given !== 'string' || !same(Buffer.from(given), Buffer.from(csrf))) return send(res, 403, { error: 'missing or wrong X-CSRF-Token (reload the page)' });
    if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) return send(res, 415, { error: 'send JSON (Content-Type: application/json)' });
    let body: { action?: unknown; ids?: unknown; queue?: unknown };
    try { body = JSON.parse(await readBody(req)) as typeof body; } catch (err) { return send(res, 400, { error: `body: ${(err as Error).message}` }); }
    const a = body.action;
    let result: unknown;
    if (a === 'pause' || a === 'resume') {
      if (typeof body.queue !== 'string' || !QUEUE_NAME.test(body.queue)) return send(res, 400, { error: 'queue: letters, digits, . _ -' });
      await (a === 'pause' ? o.spool.pause(body.queue) : o.spool.resume(body.queue));
      result = { queue: body.queue, paused: a === 'pause' };
      log('dashboard.action', { action: a, queue: body.queue });
    } else if (a === 'retry' || a === 'cancel' || a === 'hold' || a === 'release') {
      const ids = body.ids;
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_IDS || !ids.every((i) => typeof i === 'string' && JOB_ID.test(i))) return send(res, 400, { error: `ids: 1 to ${MAX_IDS} job ids` });
      result = await o.spool[a](ids as string[]);
      log('dashboard.action', { action: a, ids: (ids as string[]).join(' ') });
    } else return send(res, 400, { error: 'action: retry, cancel, hold, release, pause or resume' });
    kick();
    return send(res, 200, { ok: true, result });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof ZcqError ? (err.exitCode === 2 ? 400 : 404) : 500;
      if (status === 500) log('dashboard.error', { error: (err as Error).message });
      if (!res.headersSent) send(res, status, { error: (err as Error).message });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8080, host, () => { server.off('error', reject); resolve(); });
  });
  port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`, port, host, overview,
    close: async () => {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const r of streams) r.end();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function same(a: Buffer, b: Buffer): boolean { return a.length === b.length && timingSafeEqual(a, b); }

function int(v: string | null, dflt: number): number {
  const n = v === null ? dflt : Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : dflt;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => { size += c.length; if (size > MAX_BODY) { reject(new Error('larger than 64 KiB')); req.destroy(); } else chunks.push(c); });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
