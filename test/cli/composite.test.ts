// Composite jobs through the real binary (issue 12): zcq parallel and serial (items on stdin as for put -),
// put --after / --after-any-outcome / --then / --catch, zcq show's relations, zcq ls waiting, cancel of a
// composite and retry of a failed member, with real worker processes. The job functions note what they
// ran in a ledger (fixtures/composite.mjs), so "once" and "in order" are checked on what really ran.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BIN, cleanupTemp, idsIn, tempDir, until, zcq } from '../helpers.js';
import { OPS } from './util.js';

afterAll(cleanupTemp);
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) { c.kill('SIGTERM'); await new Promise((r) => c.once('exit', r)); }
  }
});

const F = './composite.mjs';
interface Line { ev: string; id: string; attempt: number; name?: string; entries?: Array<{ id: string; state: string; result?: unknown; failure?: { message: string; reason: string } }>; result?: unknown; failure?: { message: string }; of?: string }

function setup() {
  const dir = tempDir();
  const spool = join(dir, 'spool');
  const ledger = join(dir, 'ledger');
  const run = (args: string[], input?: string) => zcq(spool, args, { cwd: OPS, input });
  const ok = (args: string[], input?: string) => {
    const r = run(args, input);
    expect(r.code, `zcq ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  ok(['init']);
  const lines = (): Line[] => (existsSync(ledger) ? readFileSync(ledger, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line) : []);
  const startWorker = (args: string[] = []) => {
    const child = spawn(process.execPath, [BIN, '--spool', spool, 'worker', '--root', OPS, '--poll', '100ms', '--concurrency', '4', ...args], {
      cwd: OPS, env: { ...process.env, ZCQ_TEST_LEDGER: ledger }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => { out += d; });
    child.stderr!.on('data', (d) => { out += d; });
    children.push(child);
    return Object.assign(child, { output: () => out });
  };
  const wait = (id: string) => {
    const r = run(['wait', id, '--timeout', '60s']);
    return { code: r.code, value: r.code === 0 ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
  };
  const show = (id: string) => JSON.parse(ok(['--json', 'show', id]));
  return { spool, ledger, run, ok, lines, startWorker, wait, show };
}

const ndjson = (items: Array<{ fn: string; args?: unknown[]; [k: string]: unknown }>) => items.map((i) => JSON.stringify(i)).join('\n') + '\n';

describe('zcq parallel', () => {
  it('runs every item, then the postprocess once, with every entry in input order; prints the id zcq wait waits on', async () => {
    const t = setup();
    // Items that end in the reverse of their input order.
    const items = ['a', 'b', 'c', 'd', 'e'].map((name, i) => ({ fn: `${F}#step`, args: [name, (4 - i) * 150] }));
    const post = t.ok(['parallel', '--postprocess', `${F}#collect`], ndjson(items)).trim();
    expect(post).toMatch(/^[A-Za-z0-9][A-Za-z0-9._@-]*$/);
    // Before any worker: the postprocess waits, listed by ls waiting; the members are pending.
    const waiting = t.ok(['ls', 'waiting']).trim().split('\n').map((l) => l.split('\t'));
    expect(waiting.map((r) => [r[0], r[1]])).toEqual([[post, 'waiting']]);
    expect(idsIn(t.spool, 'pending')).toHaveLength(5);
    t.startWorker();
    const w = t.wait(post);
    expect(w.code, w.stderr).toBe(0);
    expect(w.value.n).toBe(5);
    expect(w.value.states).toEqual(Array(5).fill('done'));
    expect(w.value.names).toEqual(['a', 'b', 'c', 'd', 'e']);
    const lines = t.lines();
    // The members really ended out of another order (the shortest first); the postprocess ran once, after the last of them.
    const ends = lines.filter((l) => l.ev === 'end').map((l) => l.name);
    expect([...ends].sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(ends.indexOf('e')).toBeLessThan(ends.indexOf('a'));
    const posts = lines.filter((l) => l.ev === 'post');
    expect(posts).toHaveLength(1);
    expect(lines.at(-1)!.ev).toBe('post');
    expect(posts[0]!.entries!.map((e) => e.id)).toEqual(w.value.ids);
    expect(posts[0]!.entries!.map((e) => e.result)).toEqual(['a', 'b', 'c', 'd', 'e'].map((name) => ({ name })));
  }, 60_000);

  it('without --postprocess the built-in one returns the entries; a failed member gives its failure; --json names the group and its members', async () => {
    const t = setup();
    const items = [{ fn: `${F}#step`, args: ['a'] }, { fn: `${F}#fails`, args: ['b'] }, { fn: `${F}#step`, args: ['c'] }];
    const out = JSON.parse(t.ok(['--json', 'parallel', '--queue', 'jobs'], ndjson(items)));
    expect(out.members).toHaveLength(3);
    t.startWorker();
    const w = t.wait(out.id);
    expect(w.code, w.stderr).toBe(0);
    expect(w.value.map((e: { id: string }) => e.id)).toEqual(out.members);
    expect(w.value.map((e: { state: string }) => e.state)).toEqual(['done', 'failed', 'done']);
    expect(w.value[0].result).toEqual({ name: 'a' });
    expect(w.value[1].failure.message).toBe('b failed on purpose');
    // --queue: the members and the postprocess are in queue jobs.
    expect(idsIn(t.spool, 'done', 'jobs').sort()).toEqual([out.id, out.members[0], out.members[2]].sort());
    expect(idsIn(t.spool, 'failed', 'jobs')).toEqual([out.members[1]]);
  }, 60_000);

  it('--wait prints the postprocess result; a bad line enqueues nothing (exit 2, its line number); empty input is a usage error', () => {
    const t = setup();
    const bad = t.run(['parallel'], `${JSON.stringify({ fn: `${F}#step`, args: ['a'] })}\n{"fn": 7}\n`);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/line 2/);
    const unknown = t.run(['serial'], `${JSON.stringify({ fn: `${F}#step`, nope: 1 })}\n`);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/line 1: unknown field "nope"/);
    const empty = t.run(['parallel'], '\n\n');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/no job/);
    for (const s of ['pending', 'waiting', 'done', 'failed'] as const) expect(idsIn(t.spool, s as never), s).toEqual([]);
  });
});

describe('zcq serial', () => {
  it('each item starts only after the previous one is done; --wait prints the postprocess result', async () => {
    const t = setup();
    t.startWorker();
    // With 4 slots, items that would end in reverse order if they ran together.
    const items = ['a', 'b', 'c', 'd'].map((name, i) => ({ fn: `${F}#step`, args: [name, (3 - i) * 100] }));
    const r = t.run(['serial', '--postprocess', `${F}#collect`, '--wait'], ndjson(items));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).names).toEqual(['a', 'b', 'c', 'd']);
    const seq = t.lines().filter((l) => l.ev !== 'post').map((l) => `${l.ev} ${l.name}`);
    expect(seq).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c', 'start d', 'end d']);
    expect(t.lines().filter((l) => l.ev === 'post')).toHaveLength(1);
  }, 60_000);

  it('a failure stops the chain: the items after it end cancelled, and the postprocess still runs once with every entry', async () => {
    const t = setup();
    t.startWorker();
    const items = [{ fn: `${F}#step`, args: ['a'] }, { fn: `${F}#fails`, args: ['b'] }, { fn: `${F}#step`, args: ['c'] }, { fn: `${F}#step`, args: ['d'] }];
    const out = JSON.parse(t.ok(['--json', 'serial', '--postprocess', `${F}#collect`], ndjson(items)));
    const w = t.wait(out.id);
    expect(w.code, w.stderr).toBe(0);
    expect(w.value.states).toEqual(['done', 'failed', 'failed', 'failed']);
    expect(t.lines().filter((l) => l.ev === 'start').map((l) => l.name)).toEqual(['a', 'b']);
    const post = t.lines().find((l) => l.ev === 'post')!;
    expect(post.entries!.slice(2).map((e) => e.failure!.reason)).toEqual(['cancelled', 'cancelled']);
    for (const id of out.members.slice(2)) expect(t.show(id).job.failure.reason).toBe('cancelled');
  }, 60_000);
});

describe('zcq put --after, --then, --catch', () => {
  it('--after three jobs of which one fails: the job fails with "dependency failed" naming it; with --after-any-outcome it runs', async () => {
    const t = setup();
    const a = t.ok(['put', `${F}#step`, 'a']).trim();
    const b = t.ok(['put', `${F}#fails`, 'b']).trim();
    const c = t.ok(['put', `${F}#step`, 'c', '100']).trim();
    const strict = t.ok(['put', `${F}#step`, 'strict', '--after', a, '--after', b, '--after', c]).trim();
    // A unique prefix is as good as the id.
    const any = t.ok(['put', `${F}#step`, 'any', '--after', a, '--after', b.slice(0, 12), '--after', c, '--after-any-outcome']).trim();
    // put -: a line may carry its own after.
    const viaStdin = t.ok(['put', '-'], ndjson([{ fn: `${F}#step`, args: ['stdin'], after: [a, c] }])).trim();
    expect(idsIn(t.spool, 'waiting').sort()).toEqual([any, strict, viaStdin].sort());
    t.startWorker();
    expect(t.wait(viaStdin).value).toEqual({ name: 'stdin' });
    const s = t.wait(strict);
    expect(s.code).toBe(1);
    const rec = t.show(strict);
    expect(rec.state).toBe('failed');
    expect(rec.job.failure.reason).toBe('dependency failed');
    expect(rec.job.failure.message).toContain(b);
    const y = t.wait(any);
    expect(y.code, y.stderr).toBe(0);
    expect(y.value).toEqual({ name: 'any' });
    const starts = t.lines().filter((l) => l.ev === 'start').map((l) => l.name);
    expect(starts).not.toContain('strict');
    // 'any' started only after all three had ended.
    const lines = t.lines();
    const anyAt = lines.findIndex((l) => l.ev === 'start' && l.name === 'any');
    for (const n of ['a', 'c']) expect(lines.findIndex((l) => l.ev === 'end' && l.name === n)).toBeLessThan(anyAt);
    expect(lines.findIndex((l) => l.ev === 'start' && l.name === 'b')).toBeLessThan(anyAt);
  }, 60_000);

  it('--then runs once with (result, id) when the job is done; --catch once with (failure, id) when it failed for good', async () => {
    const t = setup();
    t.startWorker();
    const good = t.ok(['put', `${F}#step`, 'good', '--then', `${F}#onThen`, '--catch', `${F}#onCatch`]).trim();
    const bad = t.ok(['put', `${F}#fails`, 'bad', '--retries', '1', '--backoff', '0', '--then', `${F}#onThen`, '--catch', `${F}#onCatch`]).trim();
    // Callbacks with their own queue and retries (--then-queue, --then-retries, --catch-queue, --catch-retries).
    const own = t.ok(['put', `${F}#step`, 'own', '--then', `${F}#onThen`, '--then-queue', 'cbq', '--then-retries', '2', '--catch', `${F}#onCatch`, '--catch-retries', '0']).trim();
    const ownBad = t.ok(['put', `${F}#fails`, 'ownBad', '--catch', `${F}#onCatch`, '--catch-queue', 'cbq2', '--catch-retries', '7']).trim();
    expect(t.wait(good).code).toBe(0);
    expect(t.wait(bad).code).toBe(1);
    expect(t.wait(own).code).toBe(0);
    expect(t.wait(ownBad).code).toBe(1);
    await until(() => t.lines().filter((l) => l.ev === 'then' || l.ev === 'catch').length >= 4, 20_000);
    await new Promise((r) => setTimeout(r, 500)); // a second callback, were there one, would show by now
    const all = t.lines().filter((l) => l.ev === 'then' || l.ev === 'catch');
    expect(all.map((l) => [l.ev, l.of])).toEqual(expect.arrayContaining([['then', good], ['catch', bad], ['then', own], ['catch', ownBad]]));
    expect(all).toHaveLength(4);
    const ownThen = t.show(all.find((l) => l.ev === 'then' && l.of === own)!.id).job;
    expect([ownThen.queue, ownThen.retries]).toEqual(['cbq', 2]);
    const ownCatch = t.show(all.find((l) => l.ev === 'catch' && l.of === ownBad)!.id).job;
    expect([ownCatch.queue, ownCatch.retries]).toEqual(['cbq2', 7]);
    // The catch spec of a job that succeeded is kept on it, with the flags' values.
    expect(t.show(own).job.catch).toEqual({ fn: `${F}#onCatch`, retries: 0 });
    const cbs = all.filter((l) => l.of === good || l.of === bad);
    expect(cbs.find((l) => l.ev === 'then')!.result).toEqual({ name: 'good' });
    expect(cbs.find((l) => l.ev === 'catch')!.failure!.message).toBe('bad failed on purpose');
    // The failed job ran twice (one retry) and its catch once, after the last attempt.
    expect(t.lines().filter((l) => l.ev === 'start' && l.name === 'bad')).toHaveLength(2);
    // The callback jobs are ordinary jobs of the parent's queue, retried 5 times.
    const thenJob = t.show(cbs.find((l) => l.ev === 'then')!.id).job;
    expect(thenJob.queue).toBe('default');
    expect(thenJob.retries).toBe(5);
  }, 60_000);

  it('usage errors: exit 2, nothing written', () => {
    const t = setup();
    const a = t.run(['put', `${F}#step`, 'x', '--after-any-outcome']);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--after-any-outcome.*--after/);
    const b = t.run(['put', `${F}#step`, 'x', '--after', 'bad id!']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/bad id!/);
    const c = t.run(['put', `${F}#step`, 'x', '--then', 'no-hash']);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/--then|then/);
    // A callback's own queue or retries without the callback, or out of range: the flag is named.
    for (const [args, flag] of [
      [['--then-queue', 'q'], '--then-queue'],
      [['--then', `${F}#onThen`, '--then-retries', '10001'], '--then-retries'],
      [['--catch', `${F}#onCatch`, '--catch-queue', 'bad queue!'], '--catch-queue'],
    ] as Array<[string[], string]>) {
      const r = t.run(['put', `${F}#step`, 'x', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain(flag);
    }
    for (const s of ['pending', 'waiting'] as const) expect(idsIn(t.spool, s as never), s).toEqual([]);
  });
});

describe('zcq show, ls waiting, cancel and retry of composites', () => {
  it('show tells what a job waits on and what waits on it', async () => {
    const t = setup();
    const dep = t.ok(['put', `${F}#step`, 'dep']).trim();
    const after = t.ok(['put', `${F}#step`, 'after', '--after', dep, '--then', `${F}#onThen`]).trim();
    const g = JSON.parse(t.ok(['--json', 'parallel', '--postprocess', `${F}#collect`], ndjson([{ fn: `${F}#step`, args: ['m0'] }, { fn: `${F}#step`, args: ['m1'] }])));
    const depShown = t.ok(['show', dep]);
    expect(depShown).toMatch(new RegExp(`waited by\\s+${after} \\(waiting\\)`));
    const afterShown = t.ok(['show', after]);
    expect(afterShown).toMatch(new RegExp(`after\\s+${dep} \\(pending\\)`));
    expect(afterShown).toMatch(/then\s+.*composite\.mjs#onThen/);
    const member = t.ok(['show', g.members[1]]);
    expect(member).toMatch(new RegExp(`group\\s+\\S+ parallel, member 2 of 2; postprocess ${g.id} \\(waiting\\)`));
    const post = t.ok(['show', g.id]);
    expect(post).toMatch(/members\s+0 of 2 ended/);
    const j = t.show(g.id);
    expect(j.relations.members.ended).toBe(0);
    expect(j.relations.members.size).toBe(2);
    const ls = t.ok(['ls', 'waiting']).trim().split('\n').map((l) => l.split('\t'));
    expect(ls.map((r) => r[0]).sort()).toEqual([after, g.id].sort());
    expect(ls.find((r) => r[0] === after)![6]).toBe(`after=${dep}`);
    t.startWorker();
    expect(t.wait(g.id).code).toBe(0);
    expect(t.ok(['show', g.id])).toMatch(/members\s+2 of 2 ended/);
  }, 60_000);

  it('a job that returned a composite: show gives the composite it awaits and the jobs it created; wait gives the composite\'s result', async () => {
    const t = setup();
    t.startWorker(['--concurrency', '1']);
    const id = t.ok(['put', `${F}#split`, '2']).trim();
    const w = t.wait(id);
    expect(w.code, w.stderr).toBe(0);
    expect(w.value.names).toEqual(['part0', 'part1']);
    const shown = t.ok(['show', id]);
    const post = t.show(id).relations.awaits.id as string;
    expect(shown).toMatch(new RegExp(`awaits\\s+${post} \\(done\\)`));
    const children = t.show(id).relations.children as Array<{ id: string; state: string }>;
    expect(children).toHaveLength(3); // the postprocess and its 2 members
    expect(children.every((c) => c.state === 'done')).toBe(true);
    expect(shown).toMatch(/children\s+\S+ \(done\), \S+ \(done\), \S+ \(done\)/);
    expect(t.ok(['show', children[0]!.id])).toMatch(new RegExp(`parent\\s+${id} \\(done\\)`));
  }, 60_000);

  it('cancel of a composite (its postprocess id) cancels it and its members that have not started', async () => {
    const t = setup();
    const g = JSON.parse(t.ok(['--json', 'parallel', '--postprocess', `${F}#collect`], ndjson([0, 1, 2].map((i) => ({ fn: `${F}#step`, args: [`m${i}`] })))));
    // A prefix of the postprocess id names the composite, as any id prefix does. All but its last character:
    // ids put in the same millisecond share their first 14 or more (a shorter prefix was ambiguous in CI).
    const r = t.run(['cancel', g.id.slice(0, -1)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').map((l) => l.split('\t'))).toEqual([g.id, ...g.members].map((id) => [id, 'cancelled']));
    t.startWorker();
    const w = t.wait(g.id);
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/cancelled/);
    for (const id of g.members) expect(t.show(id).job.failure.reason).toBe('cancelled');
    await new Promise((res) => setTimeout(res, 500)); // nothing left to run: a run would show by now
    expect(t.lines()).toEqual([]);
  }, 60_000);

  it('retry of a failed member re-opens its group: the postprocess runs again once it ends', async () => {
    const t = setup();
    const flag = join(t.spool, '..', 'flag');
    t.startWorker();
    const g = JSON.parse(t.ok(['--json', 'parallel', '--postprocess', `${F}#collect`], ndjson([{ fn: `${F}#step`, args: ['m0'] }, { fn: `${F}#failsUntil`, args: ['m1', flag] }])));
    expect(t.wait(g.id).value.states).toEqual(['done', 'failed']);
    writeFileSync(flag, '');
    const r = t.run(['retry', g.members[1]]);
    expect(r.code, r.stderr).toBe(0);
    await until(() => t.lines().filter((l) => l.ev === 'post').length === 2, 30_000);
    const w = t.wait(g.id);
    expect(w.code, w.stderr).toBe(0);
    expect(w.value.states).toEqual(['done', 'done']);
    await new Promise((res) => setTimeout(res, 500));
    expect(t.lines().filter((l) => l.ev === 'post')).toHaveLength(2);
  }, 60_000);
});
