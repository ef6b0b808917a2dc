// zcq migrate: format-1 spools (written file by file, as format 1 wrote them) converted to format 2 in place;
// strays quarantined with a reason and nothing hangs; a dry run changes nothing; a live lease refuses; and a
// run SIGKILLed after any rename, then rerun, ends with exactly the tree of an uninterrupted run.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, utimesSync, writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { migrate, MigrateError, type MigrateReport } from '../../dist/spool/migrate.js';
import { BIN, cleanupTemp, tempDir, zcq } from '../helpers.js';

afterAll(cleanupTemp);

const HOUR_AGO = new Date(Date.now() - 3_600_000);
const FORMAT1_DIRS = ['tmp', 'pending', 'deferred', 'claimed', 'done', 'failed', 'quarantine', 'workers', 'cancel', 'progress', 'cron', 'config'];

/** An empty format-1 spool, as `zcq init` made it. */
function spool1(): string {
  const s = join(tempDir('zcq-migrate-'), 'spool');
  for (const d of FORMAT1_DIRS) mkdirSync(join(s, d), { recursive: true });
  writeFileSync(join(s, 'zcq-spool.json'), JSON.stringify({ format: 1, created: '2026-01-02T03:04:05.000Z' }) + '\n');
  return s;
}

/** A format-1 job file's content (the shape of newJob/serializeJob); `queue` undefined leaves the field out. */
function job(id: string, queue: string | undefined, extra: Record<string, unknown> = {}): string {
  const j: Record<string, unknown> = {
    zcq: 1, id, fn: './jobs.mjs#add', args: [1, 2], queue, created: '2026-01-02T03:04:05.000Z',
    createdBy: { host: 'h', pid: 1 }, attempts: 0, retries: 0, backoff: { kind: 'exponential', baseMs: 1000, maxMs: 3600000 },
    timeoutMs: null, deadline: null, notBefore: null, onInterrupt: 'retry', maxInterrupts: 9, interrupts: 0, history: [], ...extra,
  };
  if (queue === undefined) delete j.queue;
  return JSON.stringify(j, null, 2) + '\n';
}

function put(s: string, rel: string, text: string): void {
  mkdirSync(join(s, rel, '..'), { recursive: true });
  writeFileSync(join(s, rel), text);
}

/** A dead format-1 lease: heartbeat and folder an hour old (by this machine's clock, which is the file server here). */
function deadLease(s: string, lease: string): void {
  mkdirSync(join(s, 'claimed', lease), { recursive: true });
  writeFileSync(join(s, 'workers', `${lease}.json`), JSON.stringify({ id: lease, kind: 'worker', host: 'old', pid: 42, leaseMs: 30000 }) + '\n');
  utimesSync(join(s, 'workers', `${lease}.json`), HOUR_AGO, HOUR_AGO);
}

function finishedBy(worker: string, failure?: boolean): Record<string, unknown> {
  return {
    attempts: 1, finished: '2026-01-02T03:05:00.000Z', history: [{ attempt: 1, worker, host: 'old', pid: 42, start: '2026-01-02T03:04:06.000Z', end: '2026-01-02T03:05:00.000Z', outcome: failure ? 'failed' : 'done' }],
    ...(failure ? { failure: { name: 'Error', message: 'boom', reason: 'error' } } : { result: 3 }),
  };
}
const running = (worker: string) => ({ attempts: 1, history: [{ attempt: 1, worker, host: 'old', pid: 42, start: '2026-01-02T03:04:06.000Z' }] });

const DUE = Date.UTC(2027, 0, 1, 12, 30, 15, 123); // bucket 20270101T1230
const DUE2 = Date.UTC(2027, 0, 1, 12, 31, 0, 0); // bucket 20270101T1231
const L = 'oldhost.42.abc123';

/** A format-1 spool with a job in every state and place format 1 had. */
function fullSpool(): string {
  const s = spool1();
  put(s, 'pending/p1.json', job('p1', 'default'));
  put(s, 'pending/p2.json', job('p2', 'mail'));
  put(s, 'pending/p3.json', job('p3', undefined)); // no queue field: default
  put(s, `deferred/20270101T1230/${String(DUE).padStart(13, '0')}.d1.json`, job('d1', 'mail', { notBefore: new Date(DUE).toISOString() }));
  put(s, `deferred/20270101T1231/${String(DUE2).padStart(13, '0')}.d2.json`, job('d2', undefined, { notBefore: new Date(DUE2).toISOString() }));
  put(s, 'done/ok1.json', job('ok1', 'mail', finishedBy('w.1.a')));
  put(s, 'failed/bad1.json', job('bad1', 'default', finishedBy('w.1.a', true)));
  deadLease(s, L);
  put(s, `claimed/${L}/c-run.json`, job('c-run', 'mail', running(L))); // interrupted: 0.ID.json
  put(s, `claimed/${L}/c-done.json`, job('c-done', 'mail', finishedBy(L))); // final record written: done/
  put(s, `claimed/${L}/c-fail.json`, job('c-fail', undefined, finishedBy(L, true))); // failed/
  put(s, `claimed/${L}/c-retried.json`, job('c-retried', 'default', { ...finishedBy('w.1.a', true), attempts: 0 })); // finished by someone else earlier: a retry, interrupted
  put(s, `claimed/${L}/0.odd.json`, job('0.odd', 'default', running(L))); // a format-1 id that looks like a format-2 SEQ.ID
  // A recoverer (L) that died while settling OTHER's lease: nested, flattened into claimed/L/.
  put(s, `claimed/${L}/dead.9.zzz.dead/n-done.json`, job('n-done', 'default', finishedBy('dead.9.zzz')));
  put(s, `claimed/${L}/dead.9.zzz.dead/n-run.json`, job('n-run', 'mail', running('dead.9.zzz')));
  utimesSync(join(s, 'claimed', L), HOUR_AGO, HOUR_AGO);
  return s;
}

const FULL_EXPECTED = [
  `claimed/${L}/0.0.odd.json`, `claimed/${L}/0.c-retried.json`, `claimed/${L}/0.c-run.json`, `claimed/${L}/0.n-run.json`,
  'deferred/default/20270101T1231/001798806660000.d2.json', 'deferred/mail/20270101T1230/001798806615123.d1.json',
  'done/default/n-done.json', 'done/mail/c-done.json', 'done/mail/ok1.json',
  'failed/default/bad1.json', 'failed/default/c-fail.json',
  'pending/default/p1.json', 'pending/default/p3.json', 'pending/mail/p2.json',
].sort();

/** Every job file under the state folders, relative, sorted. */
function jobFiles(s: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (lstatSync(p).isDirectory()) walk(p); else out.push(relative(s, p));
    }
  };
  for (const st of ['pending', 'deferred', 'claimed', 'done', 'failed', 'hold']) if (existsSync(join(s, st))) walk(join(s, st));
  return out.sort();
}

/**
 * The whole tree: every path with its type, mode and content hash (symlink target). `reasonText` false
 * leaves out the content of quarantine/*.reason (it carries the time of the quarantine).
 */
function tree(s: string, opts: { reasonText?: boolean; mtimes?: boolean } = {}): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = lstatSync(p);
      const rel = relative(s, p);
      // tmp/'s own mtime is left out: judging leases writes (and removes) one clock probe there, the one
      // write a dry run or a refused run makes (the file server's clock cannot be read otherwise).
      const t = opts.mtimes && rel !== 'tmp' ? ` ${st.mtimeMs}` : '';
      if (st.isDirectory()) { out.push(`d ${rel} ${(st.mode & 0o7777).toString(8)}${t}`); walk(p); }
      else if (st.isSymbolicLink()) out.push(`l ${rel} -> ${readlinkSync(p)}`);
      else if (st.isFile()) {
        const body = rel.endsWith('.reason') && !opts.reasonText ? 'reason' : createHash('sha1').update(readFileSync(p)).digest('hex');
        out.push(`f ${rel} ${(st.mode & 0o7777).toString(8)} ${body}${t}`);
      } else out.push(`o ${rel} ${st.mode.toString(8)}${t}`);
    }
  };
  walk(s);
  return out;
}

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path]);
  if (r.status !== 0) throw new Error(`mkfifo: ${r.stderr}`);
}

/** A format-1 spool full of things that are not jobs, beside two good ones. */
function straySpool(): string {
  const s = spool1();
  put(s, 'pending/good.json', job('good', 'q1'));
  put(s, 'pending/badq.json', job('badq', 'no/slashes'));
  put(s, 'pending/torn.json', '{"id":"torn","fn":"./jobs.mjs#a');
  put(s, 'pending/arr.json', '[1,2]');
  put(s, 'pending/other.json', job('someone-else', 'q1'));
  put(s, 'pending/notes.txt', 'hello');
  symlinkSync('/etc/passwd', join(s, 'pending', 'link.json'));
  mkfifo(join(s, 'pending', 'fifo.json'));
  mkdirSync(join(s, 'pending', 'folder.json'));
  writeFileSync(join(s, 'pending', 'big.json'), `{"id":"big","pad":"${'x'.repeat((1 << 20) + 10)}"}`);
  put(s, `deferred/20270101T1230/${String(DUE).padStart(13, '0')}.dgood.json`, job('dgood', 'q2'));
  mkfifo(join(s, 'deferred', '20270101T1230', `${String(DUE).padStart(13, '0')}.dfifo.json`));
  put(s, 'deferred/20270101T1230/123.short.json', job('short', 'q2'));
  put(s, 'deferred/junk', 'x');
  put(s, 'done/x.json', '');
  deadLease(s, L);
  mkfifo(join(s, 'claimed', L, 'cfifo.json'));
  put(s, `claimed/${L}/ctorn.json`, '{');
  put(s, 'claimed/stray.json', job('stray', 'q1'));
  utimesSync(join(s, 'claimed', L), HOUR_AGO, HOUR_AGO);
  return s;
}

describe('zcq migrate', () => {
  it('converts every state: queues split, deferred names 15 digits, dead leases settled by format 1\'s rule', async () => {
    const s = fullSpool();
    const events: string[] = [];
    const r = await migrate(s, { log: (e) => events.push(e) });
    expect(jobFiles(s)).toEqual(FULL_EXPECTED);
    expect(r.counts).toMatchObject({ moved: 14, quarantined: 0, byState: { pending: 3, deferred: 2, done: 1, failed: 1, claimed: 7 } });
    expect(r.moves.find((m) => m.from === `claimed/${L}/c-done.json`)).toMatchObject({ to: 'done/mail/c-done.json', why: expect.stringMatching(/final record/) });
    expect(r.created.sort()).toEqual(['deferred/default', 'deferred/default/20270101T1231', 'deferred/mail', 'deferred/mail/20270101T1230',
      'done/default', 'done/mail', 'failed/default', 'hold', 'paused', 'pending/default', 'pending/mail']);
    expect(r.removed.sort()).toEqual([`claimed/${L}/dead.9.zzz.dead`, 'deferred/20270101T1230', 'deferred/20270101T1231']);
    for (const d of ['hold', 'paused', 'pending/mail', 'deferred/mail/20270101T1230']) {
      expect(statSync(join(s, d)).isDirectory()).toBe(true);
      expect(statSync(join(s, d)).mode & 0o777).toBe(0o775);
    }
    expect(JSON.parse(readFileSync(join(s, 'zcq-spool.json'), 'utf8'))).toEqual({ format: 2, created: '2026-01-02T03:04:05.000Z', group: null, dirMode: '0775', fileMode: '0664' });
    expect(readdirSync(join(s, 'tmp'))).toEqual([]);
    expect(events).toContain('migrate.done');
    // The content is moved, never rewritten.
    expect(readFileSync(join(s, 'done/mail/c-done.json'), 'utf8')).toBe(job('c-done', 'mail', finishedBy(L)));

    const before = tree(s, { reasonText: true, mtimes: true });
    const again = await migrate(s, {});
    expect(again.alreadyFormat2).toBe(true);
    expect(again.moves).toEqual([]);
    expect(tree(s, { reasonText: true, mtimes: true })).toEqual(before);
  });

  it('quarantines what is not a job (bad queue, invalid JSON, symlink, FIFO, folder, bad name, too big) with a reason, and never blocks', async () => {
    const s = straySpool();
    const r = await migrate(s, {});
    const q = Object.fromEntries(r.quarantined.map((x) => [x.from, x.reason]));
    expect(q).toEqual({
      'pending/badq.json': expect.stringMatching(/"queue" "no\/slashes" is not a queue name/),
      'pending/torn.json': expect.stringMatching(/not valid JSON/),
      'pending/arr.json': 'not a JSON object',
      'pending/other.json': expect.stringMatching(/"id" is "someone-else" but the file is named for "other"/),
      'pending/notes.txt': expect.stringMatching(/not a job file name/),
      'pending/link.json': 'is a symbolic link',
      'pending/fifo.json': expect.stringMatching(/not a regular file \(a FIFO\)/),
      'pending/folder.json': expect.stringMatching(/a folder in pending\//),
      'pending/big.json': expect.stringMatching(/larger than the 1048576-byte limit/),
      [`deferred/20270101T1230/${String(DUE).padStart(13, '0')}.dfifo.json`]: expect.stringMatching(/FIFO/),
      'deferred/20270101T1230/123.short.json': expect.stringMatching(/13-digit/),
      'deferred/junk': expect.stringMatching(/not a deferred bucket/),
      'done/x.json': expect.stringMatching(/not valid JSON/),
      [`claimed/${L}/cfifo.json`]: expect.stringMatching(/FIFO/),
      [`claimed/${L}/ctorn.json`]: expect.stringMatching(new RegExp(`not valid JSON .*dead worker ${L.replace(/\./g, '\\.')}`)),
      'claimed/stray.json': expect.stringMatching(/directly in claimed/),
    });
    expect(jobFiles(s)).toEqual(['deferred/q2/20270101T1230/001798806615123.dgood.json', 'pending/q1/good.json']);
    const qn = readdirSync(join(s, 'quarantine'));
    for (const x of r.quarantined) {
      const name = x.to.slice('quarantine/'.length);
      expect(qn).toContain(name);
      const reason = readFileSync(join(s, 'quarantine', `${name}.reason`), 'utf8');
      expect(reason.split('\n')).toHaveLength(2); // one line
      expect(reason).toContain(`(was ${x.from})`);
    }
    expect(lstatSync(join(s, 'quarantine', 'link.json')).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(s, 'quarantine', 'fifo.json')).isFIFO()).toBe(true);
    expect(lstatSync(join(s, 'quarantine', 'folder.json')).isDirectory()).toBe(true);
    expect(JSON.parse(readFileSync(join(s, 'zcq-spool.json'), 'utf8')).format).toBe(2);
  });

  it('--dry-run writes nothing and plans exactly the moves a real run makes', async () => {
    for (const make of [fullSpool, straySpool]) {
      const s = make();
      const copy = make(); // the same spool again, for a real run
      const before = tree(s, { reasonText: true, mtimes: true });
      const dry = await migrate(s, { dryRun: true });
      expect(tree(s, { reasonText: true, mtimes: true })).toEqual(before);
      expect(dry.dryRun).toBe(true);
      const real = await migrate(copy, {});
      const strip = (r: MigrateReport) => ({ moves: r.moves, quarantined: r.quarantined, created: [...r.created].sort(), removed: [...r.removed].sort(), counts: r.counts });
      expect(strip(dry)).toEqual(strip(real));
    }
    // The CLI's dry run: one line per move, a summary, exit 0, nothing written.
    const s = fullSpool();
    const before = tree(s, { reasonText: true, mtimes: true });
    const out = zcq(null, ['migrate', '--dry-run', s]);
    expect(out.code, out.stderr).toBe(0);
    const lines = out.stdout.trim().split('\n');
    expect(lines).toContain('would move pending/p2.json -> pending/mail/p2.json');
    expect(lines.at(-1)).toMatch(/dry run, nothing written: would move 14 job\(s\) \(pending 3, deferred 2, done 1, failed 1, claimed 7\), quarantine 0/);
    expect(tree(s, { reasonText: true, mtimes: true })).toEqual(before);
  });

  it('refuses a live format-1 lease (by the file server\'s clock) unless --force, and a spool of another format', async () => {
    const s = fullSpool();
    const live = 'livehost.7.xyz789';
    mkdirSync(join(s, 'claimed', live));
    put(s, `claimed/${live}/held.json`, job('held', 'default', running(live)));
    writeFileSync(join(s, 'workers', `${live}.json`), JSON.stringify({ id: live, kind: 'worker', leaseMs: 30000 }) + '\n');
    const before = tree(s, { reasonText: true, mtimes: true });
    const err = await migrate(s, {}).catch((e) => e);
    expect(err).toBeInstanceOf(MigrateError);
    expect(err.code).toBe('ZCQ_MIGRATE_LIVE_LEASE');
    expect(err.message).toMatch(new RegExp(`lease ${live.replace(/\./g, '\\.')} is live`));
    expect((await migrate(s, { dryRun: true }).catch((e) => e)).code).toBe('ZCQ_MIGRATE_LIVE_LEASE');
    const cli = zcq(s, ['migrate']);
    expect(cli.code).toBe(2);
    expect(cli.stderr.trim().split('\n')).toHaveLength(1);
    expect(cli.stderr).toMatch(/^zcq: .* is live .*--force/);
    expect(tree(s, { reasonText: true, mtimes: true })).toEqual(before);

    // A heartbeat older than its own (short) lease is dead even when younger than the default 30 s.
    const s2 = spool1();
    mkdirSync(join(s2, 'claimed', live));
    writeFileSync(join(s2, 'workers', `${live}.json`), JSON.stringify({ leaseMs: 1000 }));
    const fiveAgo = new Date(Date.now() - 5000);
    utimesSync(join(s2, 'workers', `${live}.json`), fiveAgo, fiveAgo);
    expect((await migrate(s2, {})).leases).toEqual([{ lease: live, ageMs: expect.any(Number), leaseMs: 1000, live: false }]);

    const forced = zcq(s, ['migrate', '--force', '--json']);
    expect(forced.code, forced.stderr).toBe(0);
    const report = JSON.parse(forced.stdout) as MigrateReport;
    expect(report.leases.find((l) => l.lease === live)).toMatchObject({ live: true });
    expect(jobFiles(s)).toContain(`claimed/${live}/0.held.json`);

    const s3 = spool1();
    writeFileSync(join(s3, 'zcq-spool.json'), '{"format":3}');
    const f3 = zcq(s3, ['migrate']);
    expect(f3.code).toBe(2);
    expect(f3.stderr).toMatch(/^zcq: .*format 3; zcq migrate converts format 1 to format 2\n$/);
    // A file where a format-2 folder must be: refused before anything is written.
    const s4 = fullSpool();
    writeFileSync(join(s4, 'hold'), 'not a folder');
    const before4 = tree(s4, { reasonText: true, mtimes: true });
    expect((await migrate(s4, {}).catch((e) => e)).code).toBe('ZCQ_MIGRATE_LAYOUT');
    expect(tree(s4, { reasonText: true, mtimes: true })).toEqual(before4);
    const none = zcq(join(tempDir(), 'nothing'), ['migrate']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/not a zcq spool \(no zcq-spool.json\)/);
  });

  it('a format-1 and a format-2 copy of one job (a retried move): keeps the format-2 one, quarantines the other', async () => {
    const s = spool1();
    writeFileSync(join(s, 'zcq-spool.json'), JSON.stringify({ format: 2, migrating: true, created: '2026-01-02T03:04:05.000Z', group: null, dirMode: '0775', fileMode: '0664' }));
    put(s, 'pending/default/twice.json', job('twice', 'default'));
    put(s, 'pending/twice.json', job('twice', 'default', { retries: 3 }));
    put(s, 'pending/once.json', job('once', 'default'));
    const r = await migrate(s, {});
    expect(r.resumed).toBe(true);
    expect(jobFiles(s)).toEqual(['pending/default/once.json', 'pending/default/twice.json']);
    expect(readFileSync(join(s, 'pending/default/twice.json'), 'utf8')).toBe(job('twice', 'default'));
    expect(r.quarantined).toEqual([{ from: 'pending/twice.json', to: 'quarantine/twice.json', reason: expect.stringMatching(/pending\/default\/twice.json already exists/) }]);
    expect(JSON.parse(readFileSync(join(s, 'zcq-spool.json'), 'utf8'))).not.toHaveProperty('migrating');
  });

  it('crash-safe: SIGKILLed after the Nth rename, for every N, a rerun ends with the tree of an uninterrupted run', async () => {
    const make = () => {
      const s = fullSpool();
      // Strays too, so that quarantine (a reason, then the file) is interrupted as well.
      put(s, 'pending/torn.json', '{');
      put(s, 'pending/notes.txt', 'x');
      mkfifo(join(s, 'done', 'fifo.json'));
      put(s, `claimed/${L}/dead.9.zzz.dead/ntorn.json`, 'nope');
      return s;
    };
    const reference = make();
    const ref = await migrate(reference, {});
    const expected = tree(reference);
    const renames = ref.counts.moved + 2 * ref.counts.quarantined + 2; // + the two markers
    expect(renames).toBe(14 + 2 * 4 + 2);
    const ids = (s: string) => jobFiles(s).map((p) => p.replace(/^.*\//, '').replace(/^(0|\d{15})\./, ''));
    expect(new Set(ids(reference)).size).toBe(ids(reference).length);

    const killedRun = (s: string, n: number) => spawnSync(process.execPath, [BIN, 'migrate', s], {
      env: { ...process.env, ZCQ_MIGRATE_KILL_AFTER: String(n) }, encoding: 'utf8', timeout: 30_000,
    });
    for (let n = 1; n <= renames; n++) {
      const s = make();
      const k = killedRun(s, n);
      expect(k.signal, `N=${n}: ${k.stderr}`).toBe('SIGKILL');
      if (n % 5 === 0) {
        // Killed twice: the second run resumes and is killed again a few renames later.
        const k2 = killedRun(s, 2);
        expect(['SIGKILL', null]).toContain(k2.signal);
      }
      const r = await migrate(s, {});
      expect(r.alreadyFormat2, `N=${n}`).toBe(n === renames);
      expect(tree(s), `N=${n}`).toEqual(expected);
    }
    // Killed after the last rename (the final marker): nothing is left to do, and the tree is the same.
  });
});
