// The hostile-co-user rig: two real Unix users (zcqa, zcqb) in one group (zcqsec), a spool made with
// `zcq init --group zcqsec` owned by zcqa, the built package copied where those users can read it, and
// victim files outside the spool whose content, mode, owner and names are compared before and after.
//
// Why a copy of the package: the checkout may live under a folder those users cannot enter (/root on a
// fresh CI machine). beforeAll copies dist/, bin/, package.json and the runtime dependencies (the closure of
// package.json's "dependencies", not the dev tools) into a fresh 0755 folder under /tmp; when the users
// cannot run process.execPath either, node itself is copied there.
//
// Why setpriv rather than runuser: runuser forks and, on SIGTERM, kills its child after 2 s on its own;
// setpriv execs, so the pid we hold is the zcq process itself and a signal reaches it unchanged.
// `--init-groups` gives the user its supplementary groups (zcqsec, and team-a for zcqa).
//
// Everything is removed in teardown(), which also runs after a failed setup (afterAll always runs).
import { createHash } from 'node:crypto';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const GROUP = 'zcqsec';
export const TEAM = 'zcqteama';
export const USERS = ['zcqa', 'zcqb'] as const;
export type Who = 'zcqa' | 'zcqb' | 'root';

/** Every command must exit within this (the "nothing hangs" bound). */
export const BOUND_MS = 10_000;

export interface Rig {
  base: string;
  pkg: string;
  bin: string;
  node: string;
  /** Folder of the job modules (the workers' --root), readable by everyone. */
  jobs: string;
  /** A module outside the roots (in zcqb's home): no worker may import it. */
  evilModule: string;
  /** One line per execution: `ID UID PID` (O_APPEND, mode 0666). */
  ledger: string;
  spool: string;
  /** Files and folders outside the spool that no zcq command may change. */
  victimRoots: string[];
  uid: Record<Who, number>;
  gid: number;
  teamGid: number;
}

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
function quiet(cmd: string, args: string[]): void {
  spawnSync(cmd, args, { stdio: 'ignore' });
}

function idOf(flag: '-u' | '-g', name: string): number {
  return Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
}
function gidOfGroup(name: string): number {
  return Number(execFileSync('getent', ['group', name], { encoding: 'utf8' }).split(':')[2]);
}

export const canRun = process.platform === 'linux' && process.getuid?.() === 0 && spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).status === 0;

function removeAccounts(): void {
  for (const u of USERS) quiet('userdel', ['-r', '-f', u]); // -f: even if a process of an interrupted run is left
  quiet('groupdel', [TEAM]);
  quiet('groupdel', [GROUP]);
}

/** The runtime dependencies of the package: package.json's "dependencies", transitively (no dev tools). */
function copyRuntimeDeps(dstModules: string): void {
  const src = fs.realpathSync(join(REPO, 'node_modules'));
  const seen = new Set<string>();
  const queue: string[] = Object.keys(JSON.parse(fs.readFileSync(join(REPO, 'package.json'), 'utf8')).dependencies ?? {});
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const from = join(src, name);
    if (!fs.existsSync(from)) continue; // an optional dependency not installed, or nested in its parent (copied with it)
    fs.cpSync(from, join(dstModules, name), { recursive: true, dereference: true });
    const pj = JSON.parse(fs.readFileSync(join(from, 'package.json'), 'utf8'));
    for (const d of Object.keys({ ...(pj.dependencies ?? {}), ...(pj.optionalDependencies ?? {}) })) {
      if (!fs.existsSync(join(from, 'node_modules', d))) queue.push(d);
    }
  }
}

const JOBS_MJS = (distIndex: string) => `
import { appendFileSync } from 'node:fs';
import { currentJob } from ${JSON.stringify(distIndex)};
const line = (ledger, extra = '') => appendFileSync(ledger, \`\${currentJob().id} \${process.getuid()} \${process.pid}\${extra}\\n\`);
export function record(ledger) { line(ledger); return 'ok'; }
export async function sleepRecord(ledger, ms) { line(ledger); await new Promise((r) => setTimeout(r, Number(ms))); return 'slept'; }
export function deep() { let a = []; for (let i = 0; i < 100000; i++) a = [a]; return a; }
`;

export function setup(tag: string): Rig {
  if (!canRun) throw new Error('the security tests need root on Linux with setpriv (util-linux)');
  removeAccounts(); // leftovers of an interrupted run
  sh('groupadd', [GROUP]);
  sh('groupadd', [TEAM]);
  sh('useradd', ['-m', '-s', '/bin/sh', '-G', `${GROUP},${TEAM}`, 'zcqa']);
  sh('useradd', ['-m', '-s', '/bin/sh', '-G', GROUP, 'zcqb']);
  const base = fs.mkdtempSync(`/tmp/zcqsec-${tag}-`);
  bases.push(base);
  fs.chmodSync(base, 0o755);
  const pkg = join(base, 'pkg');
  fs.mkdirSync(pkg);
  for (const d of ['dist', 'bin']) fs.cpSync(join(REPO, d), join(pkg, d), { recursive: true, dereference: true });
  fs.copyFileSync(join(REPO, 'package.json'), join(pkg, 'package.json'));
  copyRuntimeDeps(join(pkg, 'node_modules'));
  const jobs = join(base, 'jobs');
  fs.mkdirSync(jobs);
  fs.writeFileSync(join(jobs, 'jobs.mjs'), JOBS_MJS(join(pkg, 'dist', 'index.js')));
  sh('chmod', ['-R', 'a+rX', base]);
  // node itself: the users may not be able to run process.execPath (an nvm install under /root).
  let node = process.execPath;
  if (spawnSync('setpriv', ['--reuid=zcqb', '--regid=zcqb', '--init-groups', node, '-e', '0'], { stdio: 'ignore', timeout: BOUND_MS }).status !== 0) {
    node = join(base, 'node');
    fs.copyFileSync(process.execPath, node);
    fs.chmodSync(node, 0o755);
  }
  const ledger = join(base, 'ledger.txt');
  fs.writeFileSync(ledger, '');
  fs.chmodSync(ledger, 0o666);
  // The spool: an empty folder of zcqa's, made a spool by zcqa.
  const spool = join(base, 'spool');
  fs.mkdirSync(spool);
  const uid = { zcqa: idOf('-u', 'zcqa'), zcqb: idOf('-u', 'zcqb'), root: 0 };
  const gid = gidOfGroup(GROUP);
  fs.chownSync(spool, uid.zcqa, idOf('-g', 'zcqa'));
  const r: Rig = {
    base, pkg, bin: join(pkg, 'bin', 'zcq'), node, jobs, ledger, spool,
    evilModule: '/home/zcqb/evil.mjs',
    victimRoots: ['/home/zcqa', '/home/zcqb', join(base, 'rootvictim')],
    uid, gid, teamGid: gidOfGroup(TEAM),
  };
  // Victims: a 0600 secret and a docs folder in each home (owned by its user), and root's own secret.
  for (const u of USERS) {
    const home = `/home/${u}`;
    fs.writeFileSync(join(home, 'secret.txt'), `${u}'s secret\n`, { mode: 0o600 });
    fs.mkdirSync(join(home, 'docs'));
    fs.writeFileSync(join(home, 'docs', 'a.json'), '{"fn":"./jobs.mjs#record","args":[]}\n');
    fs.writeFileSync(join(home, 'docs', 'notes.txt'), 'notes\n');
    sh('chown', ['-R', `${u}:${u}`, home]);
    fs.chmodSync(join(home, 'secret.txt'), 0o600);
    fs.chmodSync(home, 0o700);
  }
  fs.writeFileSync(r.evilModule, `import { appendFileSync } from 'node:fs'; export function x() { appendFileSync(${JSON.stringify(ledger)}, 'EVIL\\n'); return 'pwned'; }\n`);
  fs.chmodSync('/home/zcqb', 0o755); // so that a worker *could* read it: only the roots rule keeps it out
  sh('chown', ['zcqb:zcqb', r.evilModule]);
  fs.mkdirSync(join(base, 'rootvictim'), { mode: 0o700 });
  fs.writeFileSync(join(base, 'rootvictim', 'secret.txt'), 'root secret\n', { mode: 0o600 });
  const init = zcq(r, 'zcqa', ['init', spool, '--group', GROUP]);
  if (init.code !== 0) throw new Error(`zcq init failed: ${init.stderr}`);
  return r;
}

const mounts: string[] = [];
const bases: string[] = [];
/** Record a mount point for teardown (unmounted lazily, newest first). */
export function tookMount(path: string): void { mounts.push(path); }

/** Kill our workers, unmount, remove the users and groups (and their homes) and the temporary folders. */
export function teardown(): void {
  killAll();
  for (const m of mounts.splice(0).reverse()) quiet('umount', ['-l', m]);
  removeAccounts();
  for (const b of bases.splice(0)) fs.rmSync(b, { recursive: true, force: true });
}

/* ---------------------------------------------------------------------------------------------------- */

export interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number; timedOut: boolean }

function asArgv(r: Rig, who: Who, argv: string[], umask?: number): [string, string[]] {
  const inner = umask === undefined ? argv : ['/bin/sh', '-c', `umask ${umask.toString(8).padStart(3, '0')}; exec "$@"`, 'sh', ...argv];
  if (who === 'root') return [inner[0]!, inner.slice(1)];
  return ['setpriv', [`--reuid=${who}`, `--regid=${who}`, '--init-groups', '--reset-env', ...inner]];
}

/** Run a command as `who`, bounded by BOUND_MS (a hang is a failure the caller asserts on, not a stuck test). */
export function runAs(r: Rig, who: Who, argv: string[], opts: { umask?: number; input?: string; timeoutMs?: number; cwd?: string } = {}): Run {
  const [cmd, args] = asArgv(r, who, argv, opts.umask);
  const t0 = Date.now();
  const p = spawnSync(cmd, args, { cwd: opts.cwd ?? r.jobs, input: opts.input ?? '', encoding: 'utf8', timeout: opts.timeoutMs ?? BOUND_MS, killSignal: 'SIGKILL' });
  const ms = Date.now() - t0;
  const timedOut = (p.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  return { code: p.status, signal: p.signal, stdout: p.stdout ?? '', stderr: p.stderr ?? '', ms, timedOut };
}

/** `zcq --spool SPOOL ARGS` as `who` (init takes its folder as an argument: no --spool there). */
export function zcq(r: Rig, who: Who, args: string[], opts: { umask?: number; input?: string; timeoutMs?: number; spool?: string } = {}): Run {
  const full = args[0] === 'init' ? args : ['--spool', opts.spool ?? r.spool, ...args];
  return runAs(r, who, [r.node, r.bin, ...full], opts);
}

/** A put that must work: returns the new job's id. */
export function put(r: Rig, who: Who, fnArgs: string[], opts: { queue?: string; extra?: string[]; umask?: number } = {}): string {
  const res = zcq(r, who, ['put', ...(opts.queue ? ['-q', opts.queue] : []), ...(opts.extra ?? []), ...fnArgs], { umask: opts.umask });
  if (res.code !== 0) throw new Error(`put as ${who} failed (${res.code}): ${res.stderr}`);
  return res.stdout.trim();
}

export function putRecord(r: Rig, who: Who, opts: { queue?: string; extra?: string[]; umask?: number } = {}): string {
  return put(r, who, ['./jobs.mjs#record', r.ledger], opts);
}

export type WorkerProc = ChildProcess & { output: () => string; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; who: Who };
const children = new Set<WorkerProc>();

/** Start `zcq worker` as `who` with quick polls and short leases (so that recovery happens within a test). */
export function startWorker(r: Rig, who: Who, extra: string[] = [], opts: { umask?: number; spool?: string } = {}): WorkerProc {
  const argv = [r.node, r.bin, '--spool', opts.spool ?? r.spool, 'worker', '--root', r.jobs, '--poll', '200ms', '--lease', '3s', '--grace', '2s', '--concurrency', '2', '--runtime', 'inline', ...extra];
  const [cmd, args] = asArgv(r, who, argv, opts.umask);
  const child = spawn(cmd, args, { cwd: r.jobs, stdio: ['ignore', 'pipe', 'pipe'] }) as WorkerProc;
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  child.output = () => out;
  child.who = who;
  child.exited = new Promise((res) => child.on('exit', (code, signal) => { children.delete(child); res({ code, signal }); }));
  children.add(child);
  return child;
}

/** SIGTERM, and the worker must be gone within BOUND_MS (else SIGKILL and the caller's assertion fails). */
export async function stopWorker(w: WorkerProc): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const t0 = Date.now();
  if (w.exitCode !== null || w.signalCode !== null) return { code: w.exitCode, signal: w.signalCode, ms: 0 };
  w.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const res = await Promise.race([w.exited, new Promise<null>((r) => { timer = setTimeout(() => r(null), BOUND_MS); })]);
  clearTimeout(timer);
  if (res === null) { w.kill('SIGKILL'); await w.exited; return { code: null, signal: 'SIGKILL', ms: Date.now() - t0 }; }
  return { ...res, ms: Date.now() - t0 };
}

export function killAll(): void {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  children.clear();
}

export async function until(cond: () => boolean, timeoutMs = 15_000, what = 'condition', diag?: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met within ${timeoutMs} ms${diag ? `\n${diag()}` : ''}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/* ---------------------------------------------------------------------------------------------------- */

export interface Snapshot { [path: string]: string }

/** Every entry under the victim roots: kind, mode, owner, group, size, target or sha256 (never followed). */
export function snapshot(r: Rig): Snapshot {
  const out: Snapshot = {};
  const walk = (p: string): void => {
    let st: fs.Stats;
    try { st = fs.lstatSync(p); } catch { out[p] = 'missing'; return; }
    const head = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out[p] = `link ${head} -> ${fs.readlinkSync(p)}`;
    else if (st.isFile()) out[p] = `file ${head} ${st.size} ${st.mtimeMs} ${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
    else if (st.isDirectory()) {
      out[p] = `dir ${head}`; // entries are listed below; no mtime (the atime detector sets times)
      for (const n of fs.readdirSync(p).sort()) walk(join(p, n));
    } else out[p] = `other ${head}`;
  };
  for (const v of r.victimRoots) walk(v);
  return out;
}

/** The ids run, with how often each ran. */
export function ledgerCounts(r: Rig): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of fs.readFileSync(r.ledger, 'utf8').split('\n')) {
    if (!line) continue;
    const id = line.split(' ')[0]!;
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

/** Where job `id` is now: the state folders holding a file named after it (claimed and deferred included). */
export function whereIs(r: Rig, id: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, rel: string): void => {
    let ents: fs.Dirent[];
    try { ents = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of ents) {
      if (e.isDirectory()) walk(join(dir, e.name), `${rel}/${e.name}`);
      else if (e.name === `${id}.json` || e.name.endsWith(`.${id}.json`)) found.push(`${rel}/${e.name}`);
    }
  };
  for (const s of ['pending', 'deferred', 'claimed', 'done', 'failed', 'hold', 'quarantine']) walk(join(r.spool, s), s);
  return found;
}

/** Paths of the spool (relative) whose entry is a symbolic link, a FIFO or a socket. */
export function oddEntries(r: Rig, sub = ''): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const rp = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(dir, e.name), rp);
      else if (!e.isFile()) out.push(rp);
    }
  };
  walk(join(r.spool, sub), sub);
  return out;
}

/** A symlink made by `who` (so that it belongs to the attacker, as a real one would). */
export function plantLink(r: Rig, who: Who, target: string, at: string): void {
  const res = runAs(r, who, ['ln', '-sfn', target, at]);
  if (res.code !== 0) throw new Error(`ln -s ${target} ${at} as ${who}: ${res.stderr}`);
}

export function plantFifo(r: Rig, who: Who, at: string): void {
  const res = runAs(r, who, ['mkfifo', at]);
  if (res.code !== 0) throw new Error(`mkfifo ${at} as ${who}: ${res.stderr}`);
}

/** Write a file as `who` (its own file, created with the user's umask, like a person's editor would). */
export function plantFile(r: Rig, who: Who, at: string, text: string): void {
  const res = runAs(r, who, ['/bin/sh', '-c', 'cat > "$1"', 'sh', at], { input: text });
  if (res.code !== 0) throw new Error(`write ${at} as ${who}: ${res.stderr}`);
}

/** One-line, no stack trace: what every refusal must look like. */
export function isCleanError(stderr: string): boolean {
  const lines = stderr.trim().split('\n').filter(Boolean);
  return lines.length >= 1 && lines.length <= 2 && !/\n\s+at /.test(stderr) && !/^\s+at /m.test(stderr);
}

export function sha(text: string): string { return createHash('sha256').update(text).digest('hex'); }
