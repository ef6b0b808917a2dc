// Running workers as a service: the systemd template docs/zcq-worker@.service is checked by
// systemd-analyze verify (or, where systemd is not installed, by a syntax check of its own), its stop
// timeout is checked against the worker's defaults, and SIGHUP — which a service manager or a closed
// terminal sends — drains a real worker running a real job: it finishes (or goes back to pending
// uncounted after the grace), and the worker exits 0.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, cleanupTemp, names, readJob, tempDir, until, zcq } from '../helpers.js';
import { OPS, worker } from './util.js';
import { WORKER_DEFAULTS } from '../../dist/defaults.js';

afterAll(cleanupTemp);
const procs: ReturnType<typeof worker>[] = [];
afterEach(() => { for (const p of procs.splice(0)) p.kill('SIGKILL'); });

const UNIT = join(ROOT, 'docs', 'zcq-worker@.service');

/** The unit as sections of key=value lines (continuation lines joined); throws on a line systemd would not parse. */
function parseUnit(text: string): Record<string, [string, string][]> {
  const out: Record<string, [string, string][]> = {};
  let section: string | null = null;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  lines.forEach((raw, i) => {
    const l = raw.trim();
    if (l === '' || l.startsWith('#') || l.startsWith(';')) return;
    const s = /^\[([A-Za-z]+)\]$/.exec(l);
    if (s) { section = s[1]!; out[section] ??= []; return; }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(l);
    if (!kv || section === null) throw new Error(`line ${i + 1}: not a section or key=value: ${raw}`);
    out[section]!.push([kv[1]!, kv[2]!]);
  });
  return out;
}
const get = (u: Record<string, [string, string][]>, sec: string, key: string) => u[sec]?.filter(([k]) => k === key).map(([, v]) => v) ?? [];

/** systemd time span ("30s", "1min 30s", "90") in ms. */
function spanMs(v: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of v.trim().matchAll(/(\d+)\s*([a-z]*)/g)) total += Number(m[1]) * (units[m[2] || 's'] ?? NaN);
  return total;
}

describe('docs/zcq-worker@.service', () => {
  const text = readFileSync(UNIT, 'utf8');
  const unit = parseUnit(text);

  it('passes systemd-analyze verify as an instance (or, without systemd, a syntax check of every line)', () => {
    const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).stdout.trim();
    if (analyze) {
      // The unit's Documentation=man:zcq(1) must resolve: give man the page from this checkout.
      const dir = tempDir();
      mkdirSync(join(dir, 'man', 'man1'), { recursive: true });
      copyFileSync(join(ROOT, 'man', 'zcq.1'), join(dir, 'man', 'man1', 'zcq.1'));
      copyFileSync(UNIT, join(dir, 'zcq-worker@.service'));
      const r = spawnSync(analyze, ['verify', join(dir, 'zcq-worker@reports.service')], { encoding: 'utf8', cwd: dir, env: { ...process.env, MANPATH: join(dir, 'man'), SYSTEMD_LOG_LEVEL: 'notice' } });
      expect(r.stderr + r.stdout).toBe('');
      expect(r.status).toBe(0);
    }
    // Always: the sections systemd knows, nothing but key=value inside them.
    expect(Object.keys(unit).sort()).toEqual(['Install', 'Service', 'Unit']);
  });

  it('stops with SIGTERM to the worker only, waits longer than grace + kill-grace, restarts on failure', () => {
    expect(get(unit, 'Service', 'KillSignal')).toEqual(['SIGTERM']);
    expect(get(unit, 'Service', 'KillMode')).toEqual(['mixed']);
    expect(get(unit, 'Service', 'Restart')).toEqual(['on-failure']);
    const stop = spanMs(get(unit, 'Service', 'TimeoutStopSec')[0]!);
    // Records are written after the grace and the kill grace: keep a margin of 10 s at least.
    expect(stop).toBeGreaterThanOrEqual(WORKER_DEFAULTS.graceMs + WORKER_DEFAULTS.killGraceMs + 10_000);
    expect(get(unit, 'Service', 'Environment')).toContain('ZCQ_SPOOL=/srv/zcq/spool');
    // The instance name is the queue unless /etc/zcq/NAME.env says otherwise.
    expect(get(unit, 'Service', 'Environment')).toContain('"ZCQ_WORKER_ARGS=--queue %i --root /srv/zcq/jobs"');
    expect(get(unit, 'Service', 'EnvironmentFile')).toEqual(['-/etc/zcq/%i.env']);
    const exec = get(unit, 'Service', 'ExecStart');
    expect(exec).toHaveLength(1);
    expect(exec[0]).toMatch(/^\/\S+ .*\bzcq worker \$ZCQ_WORKER_ARGS$/);
    expect(get(unit, 'Install', 'WantedBy')).toEqual(['multi-user.target']);
  });

  it('the options it passes are ones `zcq worker` takes', () => {
    // --queue and --root from the default ZCQ_WORKER_ARGS: a typo would make every instance exit 2.
    const r = zcq(null, ['worker', '--help']);
    for (const f of ['--queue <name>', '--root <dir>', '--grace <duration>', '--kill-grace <duration>']) expect(r.stdout).toContain(f);
  });
});

describe('SIGHUP drains a worker like SIGTERM', () => {
  function setup() {
    const spool = join(tempDir(), 'spool');
    expect(zcq(spool, ['init']).code).toBe(0);
    return spool;
  }
  const put = (spool: string, ...args: string[]) => { const r = zcq(spool, ['put', ...args], { cwd: OPS }); expect(r.code, r.stderr).toBe(0); return r.stdout.trim(); };

  it('a running job finishes, no new job starts, exit 0', async () => {
    const spool = setup();
    const gate = join(tempDir(), 'gate');
    const id = put(spool, './ops.mjs#until', gate);
    const w = worker(spool, ['--lease', '3s', '--grace', '30s']);
    procs.push(w);
    await until(() => names(join(spool, 'pending', 'default')).length === 0, 30_000, 50);
    await until(() => w.output().includes('job.start') || existsSync(join(spool, 'claimed')) && names(join(spool, 'claimed')).some((l) => names(join(spool, 'claimed', l)).length > 0), 30_000, 50);
    w.kill('SIGHUP');
    await until(() => w.output().includes('worker.stopping'), 10_000, 50);
    const later = put(spool, './ops.mjs#steps', '1', '1');
    await new Promise((r) => setTimeout(r, 1000)); // a few polls: a worker still claiming would take it
    writeFileSync(gate, '');
    expect(await w.exited).toBe(0);
    const rec = readJob(join(spool, 'done', 'default', `${id}.json`));
    expect(rec.result).toBe('released');
    expect(rec.attempts).toBe(1);
    // Put after the signal: left for another worker.
    expect(names(join(spool, 'pending', 'default'))).toEqual([`${later}.json`]);
  });

  it('a job still running after the grace goes back to pending with its attempt not counted, exit 0', async () => {
    const spool = setup();
    const gate = join(tempDir(), 'gate-never');
    const id = put(spool, './ops.mjs#until', gate);
    const w = worker(spool, ['--lease', '3s', '--grace', '1s', '--kill-grace', '1s']);
    procs.push(w);
    await until(() => names(join(spool, 'pending', 'default')).length === 0, 30_000, 50);
    w.kill('SIGHUP');
    expect(await w.exited).toBe(0);
    expect(names(join(spool, 'pending', 'default'))).toEqual([`${id}.json`]);
    const rec = readJob(join(spool, 'pending', 'default', `${id}.json`));
    expect(rec.attempts).toBe(0);
    expect(rec.finished ?? null).toBeNull();
  });
});
