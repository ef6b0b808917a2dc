// The zcq dashboard page. Every value shown comes from job files, which anyone who can write the spool
// writes: the DOM is built with textContent only, never from HTML strings.
'use strict';

const PAGE = 50;
const view = { session: null, snap: null, state: 'failed', queue: '', offset: 0, detail: null, loading: false, again: false };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'onclick') e.addEventListener('click', v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const $ = (id) => document.getElementById(id);
function fill(tbody, rows) { tbody.replaceChildren(...rows); }
function td(v, cls) { return el('td', { class: cls }, v === null || v === undefined ? '' : v); }

function ago(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}
function when(iso) {
  if (!iso) return '';
  const t = Date.parse(iso);
  return Number.isFinite(t) ? new Date(t).toLocaleString() : String(iso);
}
function zoned(iso, tz) {
  if (!iso) return '—';
  try { return new Intl.DateTimeFormat(undefined, { timeZone: tz, dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso)); } catch { return when(iso); }
}
function short(v, n = 120) {
  if (v === null || v === undefined) return '';
  let s = typeof v === 'string' ? v : JSON.stringify(v);
  if (s === undefined) s = String(v);
  return s.length > n ? s.slice(0, n) + '…' : s;
}

async function getJson(url) {
  const r = await fetch(url, { credentials: 'same-origin' });
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

async function act(action, payload) {
  const r = await fetch('/api/action', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': view.session.csrf },
    body: JSON.stringify({ action, ...payload }),
  });
  const body = await r.json().catch(() => ({}));
  const failed = !r.ok ? [body.error || `HTTP ${r.status}`] : (Array.isArray(body.result) ? body.result.filter((x) => x.ok === false || x.result === 'not found' || x.result === 'lost').map((x) => x.why || `${x.id}: not done`) : []);
  $('footer').textContent = failed.length ? `${action}: ${failed.join('; ')}` : `${action}: done`;
  await loadJobs();
  if (view.detail) await openJob(view.detail);
}

function actionButtons(state, id) {
  if (!view.session || !view.session.actions) return [];
  const b = (name, label) => el('button', { type: 'button', class: 'action', 'data-action': name, onclick: () => act(name, { ids: [id] }) }, label || name);
  if (state === 'failed' || state === 'done') return [b('retry')];
  if (state === 'pending' || state === 'deferred') return [b('hold'), b('cancel')];
  if (state === 'hold') return [b('release'), b('cancel')];
  if (state === 'claimed') return [b('cancel')];
  return [];
}

function jobLink(id) {
  return el('a', { class: 'job', href: '#', 'data-id': id, onclick: (ev) => { ev.preventDefault(); openJob(id); } }, id);
}

function renderQueues(s) {
  const states = s.states;
  const thead = $('queues').tHead;
  thead.replaceChildren(el('tr', {}, el('th', {}, 'queue'), ...states.map((st) => el('th', { class: 'num' }, st)),
    el('th', { class: 'num' }, 'done/min'), el('th', { class: 'num' }, 'failed/min'), el('th', { class: 'num' }, 'oldest pending'), el('th', {})));
  const rows = s.queues.map((q) => {
    const pause = view.session.actions
      ? el('button', { type: 'button', class: 'action', 'data-action': q.paused ? 'resume' : 'pause', onclick: () => act(q.paused ? 'resume' : 'pause', { queue: q.name }) }, q.paused ? 'resume' : 'pause')
      : null;
    return el('tr', { 'data-queue': q.name },
      el('td', {}, q.name, q.paused ? el('span', { class: 'paused' }, 'paused') : null),
      ...states.map((st) => td(q.counts[st] ?? 0, 'num')),
      td(q.donePerMin, 'num'), td(q.failedPerMin, 'num'), td(ago(q.oldestPendingMs), 'num'), el('td', {}, pause));
  });
  rows.push(el('tr', { class: 'total' }, el('th', {}, 'total'), ...states.map((st) => el('th', { class: 'num' }, s.totals[st] ?? 0)), el('th'), el('th'), el('th'), el('th')));
  fill($('queues').tBodies[0], rows);
  const alive = s.workers.filter((w) => w.alive).length;
  $('summary').textContent = `${alive} worker${alive === 1 ? '' : 's'} alive · snapshot ${when(s.at)} (took ${s.tookMs} ms)${s.localClock ? " · ages by this machine's clock" : ''}`;
  const sel = $('queue-filter');
  const want = ['', ...s.queues.map((q) => q.name)];
  if ([...sel.options].map((o) => o.value).join('\n') !== want.join('\n')) {
    sel.replaceChildren(...want.map((q) => el('option', { value: q }, q || 'all')));
    sel.value = view.queue;
  }
}

function renderRunning(s) {
  $('running-count').textContent = `(${s.totals.claimed ?? s.running.length})`;
  fill($('running').tBodies[0], s.running.map((r) => el('tr', { 'data-id': r.id },
    el('td', {}, jobLink(r.id)), td(r.queue), td(short(r.fn, 60)), td(r.workerName ? `${r.workerName} (${r.worker})` : r.worker),
    td(r.attempt, 'num'), td(ago(r.elapsedMs), 'num'), td(short(r.progress)), el('td', {}, ...actionButtons('claimed', r.id)))));
}

function renderWorkers(s) {
  fill($('workers').tBodies[0], s.workers.map((w) => {
    const set = w.settings;
    return el('tr', {},
      td(w.id), td(w.name ?? ''), td(w.host), td(w.alive ? 'alive' : 'silent', w.alive ? '' : 'msg'),
      td(set ? (set.queues ? set.queues.join(', ') : 'all') : (w.queues && w.queues.length ? w.queues.join(', ') : 'all')),
      td(set ? `${set.concurrency}${w.sources ? ` (${w.sources.concurrency})` : ''}${set.paused ? ', paused' : ''}` : (w.concurrency ?? '?')),
      td(w.running ?? '?', 'num'), el('td', {}, ...w.jobs.slice(0, 10).flatMap((id) => [jobLink(id), ' '])), td(ago(w.ageMs), 'num'));
  }));
}

function renderSchedules(s) {
  fill($('schedules').tBodies[0], s.schedules.map((c) => el('tr', {},
    td(c.name), td(c.expr), td(c.tz), td(c.paused ? 'paused' : zoned(c.nextRun, c.tz)), td(c.lastRun ? zoned(c.lastRun, c.tz) : '—'), td(short(c.fn, 60)), td(c.queue))));
}

function renderQuarantine(s) {
  $('quarantine-count').textContent = `(${s.quarantine.count})`;
  fill($('quarantine').tBodies[0], s.quarantine.recent.map((q) => el('tr', {}, td(q.name), td(q.reason ?? '(no reason file)', 'msg'))));
}

function renderQuotas(s) {
  fill($('quotas').tBodies[0], (s.quotas ?? []).map((q) => el('tr', {}, td(q.name), td(q.used, 'num'), td(q.limit === null ? 'none set' : q.limit, 'num'))));
}

function renderTabs(s) {
  $('state-tabs').replaceChildren(...s.states.map((st) => el('button', {
    type: 'button', class: st === view.state ? 'active' : '', 'data-state': st,
    onclick: () => { view.state = st; view.offset = 0; renderTabs(view.snap); loadJobs(); },
  }, `${st} (${s.totals[st] ?? 0})`)));
}

function render(s) {
  view.snap = s;
  $('spool').textContent = s.spool;
  renderQueues(s); renderRunning(s); renderWorkers(s); renderSchedules(s); renderQuotas(s); renderQuarantine(s); renderTabs(s);
}

async function loadJobs() {
  if (view.loading) { view.again = true; return; }
  view.loading = true;
  try {
    const q = new URLSearchParams({ state: view.state, offset: String(view.offset), limit: String(PAGE) });
    if (view.queue) q.set('queue', view.queue);
    const page = await getJson(`/api/jobs?${q}`);
    const st = page.state;
    const cols = ['job', 'queue', 'fn', 'attempts', st === 'deferred' ? 'due' : st === 'done' || st === 'failed' ? 'finished' : 'created'];
    if (st === 'failed') cols.push('message');
    if (st === 'claimed') cols.push('worker');
    if (st === 'waiting') cols.push('waits for');
    cols.push('');
    $('jobs').tHead.replaceChildren(el('tr', {}, ...cols.map((c) => el('th', {}, c))));
    fill($('jobs').tBodies[0], page.items.map((j) => el('tr', { 'data-id': j.id, 'data-state': j.state },
      el('td', {}, jobLink(j.id)), td(j.queue), td(short(j.fn, 60)), td(j.attempts, 'num'),
      td(when(st === 'deferred' ? j.due : st === 'done' || st === 'failed' ? j.finished : j.created)),
      st === 'failed' ? td(j.message ?? j.corrupt ?? '', 'msg') : null,
      st === 'claimed' ? td(j.worker) : null,
      st === 'waiting' ? td(j.waitsFor ?? '', 'msg') : null,
      el('td', {}, ...actionButtons(j.state, j.id)))));
    const end = page.offset + page.items.length;
    $('page-info').textContent = page.total === 0 ? 'none' : `${page.offset + 1}–${end} of ${page.total}${page.partial ? ` ; a large folder: these come from the first 20,000 names it lists, zcq ls lists all` : ''}`;
    $('prev').disabled = page.offset === 0;
    $('next').disabled = end >= page.total;
  } catch (err) {
    $('footer').textContent = `jobs: ${err.message}`;
  } finally {
    view.loading = false;
    if (view.again) { view.again = false; loadJobs(); }
  }
}

async function openJob(id) {
  view.detail = id;
  let d;
  try { d = await getJson(`/api/job/${encodeURIComponent(id)}`); } catch (err) { $('footer').textContent = `job ${id}: ${err.message}`; return; }
  const r = d.record;
  const j = r.job || {};
  $('detail-section').hidden = false;
  $('detail-id').textContent = r.id;
  $('detail-actions').replaceChildren(...actionButtons(r.state, r.id));
  const rows = [['state', r.state], ['file', r.path], ['worker', r.worker], ['due', r.dueMs ? new Date(r.dueMs).toISOString() : null], ['corrupt', r.corrupt],
    ['fn', j.fn], ['args', j.args !== undefined ? JSON.stringify(j.args) : null], ['queue', j.queue], ['created', j.created],
    ['attempts', j.attempts !== undefined ? `${j.attempts} (retries allowed: ${j.retries}; interruptions ${j.interrupts}/${j.maxInterrupts}, on interrupt: ${j.onInterrupt})` : null],
    ['timeout', j.timeoutMs ? `${j.timeoutMs} ms` : null], ['deadline', j.deadline], ['not before', j.notBefore], ['finished', j.finished],
    ['progress', d.progress ? JSON.stringify(d.progress.value ?? d.progress) : null],
    ['result', j.result !== undefined ? JSON.stringify(j.result) : null],
    ['failure', j.failure ? `${j.failure.name}: ${j.failure.message} (reason: ${j.failure.reason}${j.failure.code ? `, code ${j.failure.code}` : ''})` : null],
    ...(j.history || []).map((h) => ['attempt', `#${h.attempt} ${h.outcome ?? 'running'} on ${h.host} pid ${h.pid} (${h.worker}) ${h.start} → ${h.end ?? '…'}${h.error ? ` — ${h.error}` : ''}`])];
  $('detail').replaceChildren(...rows.filter(([, v]) => v !== null && v !== undefined && v !== '').flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
  $('detail-stack').textContent = j.failure && typeof j.failure.stack === 'string' ? j.failure.stack : '—';
  $('detail-output').textContent = d.output ? `${d.output.truncated ? `… (last ${d.output.tail.length} of ${d.output.bytes} bytes)\n` : ''}${d.output.tail}` : 'none';
  $('detail-json').textContent = JSON.stringify(r.job ?? null, null, 2);
}

function connect() {
  const es = new EventSource('/api/events');
  es.addEventListener('open', () => { $('live').textContent = 'live'; $('live').className = 'badge on'; });
  es.addEventListener('error', () => { $('live').textContent = 'reconnecting…'; $('live').className = 'badge off'; });
  es.addEventListener('overview', (ev) => {
    render(JSON.parse(ev.data));
    loadJobs();
    if (view.detail && !$('detail-section').hidden) openJob(view.detail);
  });
}

async function start() {
  view.session = await getJson('/api/session');
  $('mode').textContent = view.session.actions ? 'actions on' : 'read-only';
  $('prev').addEventListener('click', () => { view.offset = Math.max(0, view.offset - PAGE); loadJobs(); });
  $('next').addEventListener('click', () => { view.offset += PAGE; loadJobs(); });
  $('queue-filter').addEventListener('change', (ev) => { view.queue = ev.target.value; view.offset = 0; loadJobs(); });
  $('detail-close').addEventListener('click', () => { view.detail = null; $('detail-section').hidden = true; });
  render(await getJson('/api/overview'));
  await loadJobs();
  connect();
}

start().catch((err) => { $('footer').textContent = `dashboard: ${err.message}`; });
