// A member of the spool's group (zcqb) plants symbolic links where another member's worker (zcqa's, or
// root's) will write, move or list. Nothing outside the spool may change, no command may hang, and every
// job runs exactly once.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BOUND_MS, canRun, ledgerCounts, plantFile, plantLink, putRecord, runAs, setup, snapshot, startWorker, stopWorker,
  teardown, until, whereIs, zcq, type Rig, type Who,
} from './rig.js';

let r: Rig;
beforeAll(() => { r = setup('links'); });
afterAll(() => teardown());

const victimOf = (who: Who) => (who === 'root' ? join(r.base, 'rootvictim', 'secret.txt') : `/home/${who}/secret.txt`);

/** Every command of the test exits within the bound, and every put job ran exactly once. */
function expectRanOnce(ids: string[]): void {
  const counts = ledgerCounts(r);
  for (const id of ids) expect(counts.get(id), `job ${id} runs`).toBe(1);
  for (const id of ids) expect(whereIs(r, id)).toEqual([expect.stringMatching(/^done\/default\//)]);
}

async function runUntilIdle(who: Who): Promise<string> {
  const w = startWorker(r, who, ['--exit-when-idle']);
  const t0 = Date.now();
  const res = await Promise.race([w.exited, new Promise<null>((ok) => setTimeout(() => ok(null), BOUND_MS))]);
  if (res === null) { await stopWorker(w); throw new Error(`worker as ${who} did not finish within ${BOUND_MS} ms:\n${w.output()}`); }
  expect(res.code, w.output()).toBe(0);
  expect(Date.now() - t0).toBeLessThan(BOUND_MS);
  return w.output();
}

describe.runIf(canRun)('symlink attacks by a co-member', () => {
  it.each(['zcqa', 'root'] as const)('a link at quarantine/NAME.reason (and at NAME) is replaced, never written through (victim worker: %s)', async (victim) => {
    const good = [putRecord(r, 'zcqb'), putRecord(r, 'zcqa')];
    const before = snapshot(r);
    const target = victimOf(victim);
    const pend = join(r.spool, 'pending', 'default');
    // Two files the victim's worker will quarantine, with links waiting at their quarantine names.
    plantFile(r, 'zcqb', join(pend, `bad1${victim}.json`), '{"fn": "./jobs.mjs#record", oops');
    plantFile(r, 'zcqb', join(pend, `bad2${victim}.json`), 'not json at all');
    plantLink(r, 'zcqb', target, join(r.spool, 'quarantine', `bad1${victim}.json.reason`));
    plantLink(r, 'zcqb', target, join(r.spool, 'quarantine', `bad2${victim}.json`));
    plantLink(r, 'zcqb', target, join(r.spool, 'quarantine', `bad2${victim}.json.reason`));
    await runUntilIdle(victim);
    expect(snapshot(r)).toEqual(before);
    const q = join(r.spool, 'quarantine');
    // bad1 took its own name; its reason replaced the link (rename over it) and says why.
    expect(fs.lstatSync(join(q, `bad1${victim}.json`)).isFile()).toBe(true);
    const reason1 = fs.lstatSync(join(q, `bad1${victim}.json.reason`));
    expect(reason1.isFile()).toBe(true);
    expect(fs.readFileSync(join(q, `bad1${victim}.json.reason`), 'utf8')).toMatch(/JSON|json/);
    // bad2's name was taken by the link: it went to bad2.json.RANDOM; the planted links are left as they were.
    expect(fs.lstatSync(join(q, `bad2${victim}.json`)).isSymbolicLink()).toBe(true);
    const moved = fs.readdirSync(q).filter((n) => n.startsWith(`bad2${victim}.json.`) && !n.endsWith('.reason'));
    expect(moved.length).toBe(1);
    expect(fs.lstatSync(join(q, moved[0]!)).isFile()).toBe(true);
    expect(fs.readFileSync(join(q, moved[0]!), 'utf8')).toBe('not json at all');
    expectRanOnce(good);
  });

  it.each(['zcqa', 'root'] as const)('links at every temporary name, old and current (tmp/.hb-*, tmp/.spare-*, tmp/ID*.json, the heartbeat itself) are never followed (victim worker: %s)', async (victim) => {
    const target = victimOf(victim);
    expect(zcq(r, 'zcqb', ['pause', 'default']).code).toBe(0);
    const ids = Array.from({ length: 6 }, (_, i) => putRecord(r, i % 2 ? 'zcqa' : 'zcqb'));
    // A job file a member put by hand with mode 0644 (cp keeps the umask's mode): the victim's worker may
    // read it but not link it (protected_hardlinks), so it gets no spare inode from it.
    expect(zcq(r, 'zcqb', ['pause', 'staging']).code).toBe(0);
    const byHand = putRecord(r, 'zcqb', { queue: 'staging' });
    const staged = join(r.spool, 'pending', 'staging', `${byHand}.json`);
    expect(runAs(r, 'zcqb', ['/bin/sh', '-c', 'cp "$1" "$2" && rm "$1"', 'sh', staged, join(r.spool, 'pending', 'default', `${byHand}.json`)]).code).toBe(0);
    expect(fs.statSync(join(r.spool, 'pending', 'default', `${byHand}.json`)).mode & 0o777).toBe(0o644);
    ids.push(byHand);
    const before = snapshot(r);
    const workers = join(r.spool, 'workers');
    const old = new Set(fs.readdirSync(workers));
    const w = startWorker(r, victim);
    await until(() => fs.readdirSync(workers).some((n) => n.endsWith('.json') && !old.has(n)), BOUND_MS, 'a heartbeat');
    const hb = fs.readdirSync(workers).find((n) => n.endsWith('.json') && !old.has(n))!;
    const lease = hb.slice(0, -'.json'.length);
    const tmp = join(r.spool, 'tmp');
    // The names earlier versions used, and the ones still predictable today.
    const names = [
      `.hb-${lease}`, `.hb-${lease}.tmp`, `.hb-${lease}-`,
      ...Array.from({ length: 40 }, (_, i) => `.spare-${lease}-${i + 1}`),
      'zcq-spool.json.1', `zcq-spool.json.${w.pid}`,
      ...ids.flatMap((id) => [`${id}.json`, `${id}.${lease}.json`, `.fin-${id}-`, `.once-${id}-`]),
    ];
    for (const n of names) plantLink(r, 'zcqb', target, join(tmp, n));
    // The heartbeat itself, swapped for a link (its folder is group-writable: zcqb may replace the entry).
    plantLink(r, 'zcqb', target, join(workers, hb));
    expect(zcq(r, 'zcqb', ['resume', 'default']).code).toBe(0);
    await until(() => ids.every((id) => ledgerCounts(r).get(id) === 1 && whereIs(r, id)[0]?.startsWith('done/')), BOUND_MS, 'all jobs done', () => w.output() + JSON.stringify(ids.map((id) => whereIs(r, id))));
    // A few heartbeats later the heartbeat is a regular file again (renamed over the link) and the lease held.
    await until(() => fs.lstatSync(join(workers, hb)).isFile(), BOUND_MS, 'the heartbeat replaced');
    const stopped = await stopWorker(w);
    expect(stopped.signal, w.output()).toBe(null);
    expect(stopped.ms).toBeLessThan(BOUND_MS);
    expect(w.output()).not.toMatch(/lease\.lost/);
    expect(snapshot(r)).toEqual(before);
    expectRanOnce(ids);
    // The planted links are still links (nothing wrote through them or "fixed" them into files).
    for (const n of names) { const st = fs.lstatSync(join(tmp, n), { throwIfNoEntry: false }); if (st) expect(st.isSymbolicLink()).toBe(true); }
  });

  it.each(['zcqa', 'root'] as const)('a lease folder that is a link into the victim home is quarantined as the link: never listed, never moved (victim worker: %s)', async (victim) => {
    const docs = victim === 'root' ? join(r.base, 'rootvictim') : `/home/${victim}/docs`;
    const good = [putRecord(r, 'zcqb')];
    // A readdir of docs/ would update its atime (relatime: atime set before mtime): a listing detector.
    const before = snapshot(r);
    const old = new Date('2001-01-01T00:00:00Z');
    fs.utimesSync(docs, old, fs.statSync(docs).mtime);
    const c = join(r.spool, 'claimed');
    const lease1 = `evil.1.aaaa${victim}`;
    plantLink(r, 'zcqb', docs, join(c, lease1));
    // ... with a heartbeat that expired long ago,
    plantFile(r, 'zcqb', join(r.spool, 'workers', `${lease1}.json`), JSON.stringify({ id: lease1, kind: 'worker', host: 'evil', pid: 1, leaseMs: 1000 }));
    expect(runAs(r, 'zcqb', ['touch', '-h', '-d', '1 hour ago', join(r.spool, 'workers', `${lease1}.json`)]).code).toBe(0);
    // ... and a real lease folder holding a link to a victim file and a link posing as a dead recoverer's folder.
    const lease2 = `evil.2.bbbb${victim}`;
    // (group-writable, as zcq makes lease folders: renaming a folder into another needs write access to it)
    expect(runAs(r, 'zcqb', ['mkdir', '-m', '2775', join(c, lease2)]).code).toBe(0);
    plantLink(r, 'zcqb', victimOf(victim), join(c, lease2, '1.stolen.json'));
    plantLink(r, 'zcqb', docs, join(c, lease2, `evil.3.cccc${victim}.dead`));
    expect(runAs(r, 'zcqb', ['touch', '-h', '-d', '1 hour ago', join(c, lease2)]).code).toBe(0);
    // The readers meet the links first: they finish, and list nothing through them.
    for (const args of [['status'], ['ls'], ['ls', 'claimed'], ['doctor'], ['show', good[0]!], ['recover']]) {
      const res = zcq(r, victim, args);
      expect(res.timedOut, args.join(' ')).toBe(false);
      // The victim's file names, as names (a job id may end in 'a', so 'a.json' alone is not enough).
      expect(`${res.stdout}${res.stderr}`).not.toMatch(/(^|[\s/])a\.json|notes\.txt|secret/m);
    }
    const w = startWorker(r, victim);
    await until(() => !fs.existsSync(join(c, lease1)) && !fs.existsSync(join(c, lease2)), BOUND_MS, 'the evil leases settled', () => w.output());
    await until(() => good.every((id) => ledgerCounts(r).get(id) === 1), BOUND_MS, 'the good job run');
    expect((await stopWorker(w)).signal).toBe(null);
    expect(fs.statSync(docs).atime.getTime(), 'docs/ was never listed').toBe(old.getTime());
    expect(snapshot(r)).toEqual(before);
    const q = join(r.spool, 'quarantine');
    const qn = fs.readdirSync(q);
    const link1 = qn.find((n) => n.startsWith(lease1) && !n.endsWith('.reason'));
    expect(link1 && fs.lstatSync(join(q, link1)).isSymbolicLink()).toBe(true);
    expect(qn.filter((n) => n.startsWith('stolen.json') || n.startsWith('1.stolen.json')).some((n) => fs.lstatSync(join(q, n)).isSymbolicLink())).toBe(true);
    expect(qn.some((n) => n.startsWith(`evil.2.bbbb${victim}`) || n.startsWith(`evil.3.cccc${victim}`))).toBe(true);
    expectRanOnce(good);
    // The detector works: a real listing does move the atime.
    fs.readdirSync(docs);
    expect(fs.statSync(docs).atime.getTime()).not.toBe(old.getTime());
  });

  it('cron/state/NAME.json (and NAME.json.lock, runs/NAME) replaced by links: the scheduler replaces or refuses them and goes on', async () => {
    const target = victimOf('zcqa');
    const add = (name: string) => expect(zcq(r, 'zcqb', ['cron', 'add', name, '*/1 * * * * *', './jobs.mjs#record', r.ledger]).code).toBe(0);
    add('tick');
    add('locked');
    add('runs');
    const before = snapshot(r);
    const cron = join(r.spool, 'cron');
    plantLink(r, 'zcqb', target, join(cron, 'state', 'tick.json'));
    plantLink(r, 'zcqb', '/home/zcqa/docs', join(cron, 'state', 'locked.json.lock'));
    expect(runAs(r, 'zcqb', ['touch', '-h', '-d', '1 hour ago', join(cron, 'state', 'locked.json.lock')]).code).toBe(0);
    expect(runAs(r, 'zcqb', ['mkdir', '-p', join(cron, 'runs')]).code).toBe(0);
    plantLink(r, 'zcqb', '/home/zcqa/docs', join(cron, 'runs', 'runs'));
    const ran0 = ledgerCounts(r).size;
    const w = startWorker(r, 'zcqa');
    await until(() => ledgerCounts(r).size >= ran0 + 3, BOUND_MS, 'three cron runs');
    await until(() => fs.lstatSync(join(cron, 'state', 'tick.json')).isFile(), BOUND_MS, 'the state replaced');
    expect((await stopWorker(w)).signal).toBe(null);
    expect(snapshot(r)).toEqual(before);
    // Each tick ran once.
    for (const [id, n] of ledgerCounts(r)) expect(n, id).toBe(1);
    expect(zcq(r, 'zcqb', ['cron', 'rm', 'tick']).code).toBe(0);
    expect(zcq(r, 'zcqb', ['cron', 'rm', 'locked']).code).toBe(0);
    expect(zcq(r, 'zcqb', ['cron', 'rm', 'runs']).code).toBe(0);
  });

  it('the folder cron/state itself swapped for a link into the victim home: the scheduler writes nothing there', async () => {
    expect(zcq(r, 'zcqb', ['cron', 'add', 'swap', '*/1 * * * * *', './jobs.mjs#record', r.ledger]).code).toBe(0);
    const before = snapshot(r);
    const cron = join(r.spool, 'cron');
    // cron/ is group-writable: a member may rename the folder away and put a link in its place.
    expect(runAs(r, 'zcqb', ['mv', join(cron, 'state'), join(cron, 'state.moved')]).code).toBe(0);
    plantLink(r, 'zcqb', '/home/zcqa', join(cron, 'state'));
    const w = startWorker(r, 'zcqa');
    await new Promise((ok) => setTimeout(ok, 3000));
    expect((await stopWorker(w)).signal).toBe(null);
    expect(snapshot(r)).toEqual(before);
    expect(w.output()).toMatch(/cron|symbolic link|not a folder/);
    for (const [id, n] of ledgerCounts(r)) expect(n, id).toBe(1);
    fs.unlinkSync(join(cron, 'state'));
    fs.renameSync(join(cron, 'state.moved'), join(cron, 'state'));
    expect(zcq(r, 'zcqb', ['cron', 'rm', 'swap']).code).toBe(0);
  });

  it('a job naming a module outside the worker roots is refused (failed, permanent), never imported', async () => {
    const ids = [
      zcq(r, 'zcqb', ['put', `${r.evilModule}#x`]).stdout.trim(),
      zcq(r, 'zcqb', ['put', '../../home/zcqb/evil.mjs#x']).stdout.trim(),
      zcq(r, 'zcqb', ['put', 'file:///home/zcqb/evil.mjs#x']).stdout.trim(),
    ];
    await runUntilIdle('zcqa');
    expect(fs.readFileSync(r.ledger, 'utf8')).not.toMatch(/EVIL/);
    for (const id of ids.filter(Boolean)) expect(whereIs(r, id)).toEqual([expect.stringMatching(/^failed\/default\//)]);
  });
});
