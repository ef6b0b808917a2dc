// Composite jobs (issue 12) through the library, with a real worker in this process (jobs in threads):
// parallel and serial groups and their postprocess, dependencies, callbacks, a job returning a composite,
// cancel and retry of a composite.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createTestSpool, type TestSpool } from '../../dist/testing/index.js';
import { cleanupTemp, FIXTURES, tempDir } from '../helpers.js';

const made: TestSpool[] = [];
async function testSpool(): Promise<{ t: TestSpool; ledger: string }> {
  const t = await createTestSpool();
  made.push(t);
  const ledger = join(tempDir(), 'ledger');
  process.env.ZCQ_TEST_LEDGER = ledger;
  return { t, ledger };
}
afterEach(async () => { for (const t of made.splice(0)) await t.cleanup(); });
afterAll(cleanupTemp);

const roots = [FIXTURES];
const F = './composite.mjs';
const lines = (ledger: string) => (existsSync(ledger) ? readFileSync(ledger, 'utf8').trim().split('\n') : []);
const items = (ledger: string, tags: string[], fn = 'item') => tags.map((tag) => ({ fn: `${F}#${fn}`, args: [ledger, tag] }));

describe('parallel', () => {
  it('every member runs, then the postprocess once with the entries in input order', async () => {
    const { t, ledger } = await testSpool();
    const h = await t.spool.parallel(items(ledger, ['a', 'b', 'c', 'd', 'e']), { postprocess: `${F}#join` });
    expect(h).toMatchObject({ zcq: 'composite', kind: 'parallel', members: expect.any(Array) });
    expect((await t.spool.get(h.id)).state).toBe('waiting');
    expect(await t.idsIn('pending')).toEqual([...h.members].sort());
    await t.runUntilIdle({ roots });
    const rec = await t.result(h.id);
    expect(rec.state).toBe('done');
    expect(rec.job.result).toBe('done:a,done:b,done:c,done:d,done:e');
    expect(lines(ledger).filter((l) => l.startsWith('join'))).toEqual(['join done:a,done:b,done:c,done:d,done:e']);
  });

  it('a failed member is an entry with its failure; without a postprocess the entries are the result', async () => {
    const { t, ledger } = await testSpool();
    const h = await t.spool.parallel([...items(ledger, ['a']), ...items(ledger, ['x'], 'bad'), ...items(ledger, ['c'])]);
    await t.runUntilIdle({ roots });
    const rec = await t.result(h.id);
    expect(rec.state).toBe('done');
    const entries = rec.job.result as { id: string; state: string; result?: unknown; failure?: { message: string } }[];
    expect(entries.map((e) => e.id)).toEqual(h.members);
    expect(entries.map((e) => e.state)).toEqual(['done', 'failed', 'done']);
    expect(entries[0]!.result).toBe('a');
    expect(entries[1]!.failure!.message).toBe('bad x');
  });

  it('a group of none runs its postprocess at once with no entries', async () => {
    const { t } = await testSpool();
    const h = await t.spool.parallel([]);
    await t.runUntilIdle({ roots });
    expect((await t.result(h.id)).job.result).toEqual([]);
  });

  it('a group of 100 fans in through markers of at most log2 depth, the postprocess once', async () => {
    const { t, ledger } = await testSpool();
    const tags = Array.from({ length: 100 }, (_, i) => `m${i}`);
    const h = await t.spool.parallel(items(ledger, tags), { postprocess: `${F}#join` });
    await t.runUntilIdle({ roots, concurrency: 8 });
    expect(lines(ledger).filter((l) => l.startsWith('join'))).toHaveLength(1);
    expect((await t.result(h.id)).job.result).toBe(tags.map((x) => `done:${x}`).join(','));
    const markers = readdirSync(join(t.spool.dir, 'groups', h.group)).filter((n) => /^\d+\.\d+$/.test(n));
    expect(Math.max(...markers.map((n) => Number(n.split('.')[0])))).toBe(7); // ceil(log2 100)
  });
});

describe('serial', () => {
  it('members run in order, each after the previous one is done', async () => {
    const { t, ledger } = await testSpool();
    const h = await t.spool.serial(items(ledger, ['1', '2', '3', '4']), { postprocess: `${F}#join` });
    expect(await t.idsIn('pending')).toEqual([h.members[0]]);
    await t.runUntilIdle({ roots, concurrency: 4 });
    expect(lines(ledger)).toEqual(['item 1', 'item 2', 'item 3', 'item 4', 'join done:1,done:2,done:3,done:4']);
  });

  it('a failure stops the chain: the rest end as cancelled and the postprocess still runs once', async () => {
    const { t, ledger } = await testSpool();
    const h = await t.spool.serial([...items(ledger, ['1']), ...items(ledger, ['2'], 'bad'), ...items(ledger, ['3', '4'])], { postprocess: `${F}#join` });
    await t.runUntilIdle({ roots });
    expect(lines(ledger)).toEqual(['item 1', 'bad 2', 'join done:1,failed:error,failed:cancelled,failed:cancelled']);
    const third = await t.result(h.members[2]!);
    expect(third.state).toBe('failed');
    expect(third.job.failure).toMatchObject({ reason: 'cancelled' });
    expect(third.job.failure!.message).toContain(h.members[1]!);
  });
});

describe('after', () => {
  it('a job after 3 jobs of which one fails fails with "dependency failed" naming it; with afterAnyOutcome it runs', async () => {
    const { t, ledger } = await testSpool();
    const a = await t.spool.put(`${F}#item`, [ledger, 'a']);
    const b = await t.spool.put(`${F}#bad`, [ledger, 'b']);
    const c = await t.spool.put(`${F}#item`, [ledger, 'c']);
    const strict = await t.spool.put(`${F}#item`, [ledger, 'strict'], { after: [a.id, b.id, c.id] });
    const any = await t.spool.put(`${F}#item`, [ledger, 'any'], { after: [a.id, b.id, c.id], afterAnyOutcome: true });
    expect((await t.spool.get(strict.id)).state).toBe('waiting');
    await t.runUntilIdle({ roots });
    const s = await t.result(strict.id);
    expect(s.state).toBe('failed');
    expect(s.job.failure).toMatchObject({ reason: 'dependency failed' });
    expect(s.job.failure!.message).toContain(b.id);
    expect((await t.result(any.id)).state).toBe('done');
    expect(lines(ledger)).not.toContain('item strict');
    expect(lines(ledger)).toContain('item any');
  });

  it('a job after a job that already ended is released at put', async () => {
    const { t, ledger } = await testSpool();
    const a = await t.spool.put(`${F}#item`, [ledger, 'a']);
    await t.runUntilIdle({ roots });
    const b = await t.spool.put(`${F}#item`, [ledger, 'b'], { after: a.id });
    expect((await t.spool.get(b.id)).state).toBe('pending');
  });

  it('a waiting job moved to pending/ by hand before its dependency ended goes back to waiting, uncounted, and runs after it', async () => {
    const { t, ledger } = await testSpool();
    const a = await t.spool.put(`${F}#item`, [ledger, 'a']);
    await t.spool.hold([a.id]);
    const b = await t.spool.put(`${F}#item`, [ledger, 'b'], { after: a.id });
    const { renameSync, mkdirSync } = await import('node:fs');
    mkdirSync(join(t.spool.dir, 'pending', 'default'), { recursive: true });
    renameSync(join(t.spool.dir, 'waiting', 'default', `${b.id}.json`), join(t.spool.dir, 'pending', 'default', `${b.id}.json`));
    await t.runUntilIdle({ roots });
    const back = await t.spool.get(b.id);
    expect(back.state).toBe('waiting');
    expect(back.job!.attempts).toBe(0);
    expect(lines(ledger)).toEqual([]);
    await t.spool.release([a.id]);
    await t.runUntilIdle({ roots });
    expect(lines(ledger)).toEqual(['item a', 'item b']);
  });

  it('an unknown dependency is a usage error, nothing written', async () => {
    const { t } = await testSpool();
    await expect(t.spool.put(`${F}#item`, [], { after: 'nosuchjob' })).rejects.toThrow(/--after nosuchjob: no such job/);
    expect(await t.idsIn('waiting')).toEqual([]);
  });
});

describe('callbacks', () => {
  it('then runs once with the result and the parent id, catch once with the failure', async () => {
    const { t, ledger } = await testSpool();
    const ok = await t.spool.put(`${F}#item`, [ledger, 'ok'], { then: `${F}#onThen`, catch: `${F}#onCatch` });
    const ko = await t.spool.put(`${F}#bad`, [ledger, 'ko'], { then: `${F}#onThen`, catch: `${F}#onCatch` });
    await t.runUntilIdle({ roots });
    const l = lines(ledger);
    expect(l.filter((x) => x.startsWith('then'))).toEqual([`then "ok" ${ok.id}`]);
    expect(l.filter((x) => x.startsWith('catch'))).toEqual([`catch bad ko ${ko.id}`]);
    const cb = await t.result(`${ok.id}.then`);
    expect(cb.job).toMatchObject({ retries: 5, queue: 'default', parent: ok.id });
  });
});

describe('a job returning a composite', () => {
  it('frees its slot while waiting (concurrency 1 runs the members) and takes the postprocess result', async () => {
    const { t, ledger } = await testSpool();
    const job = await t.spool.put(`${F}#split`, [ledger, 3]);
    await t.runUntilIdle({ roots, concurrency: 1 });
    const rec = await t.result(job.id);
    expect(rec.state).toBe('done');
    expect(rec.job.result).toBe('done:p0,done:p1,done:p2');
    expect(lines(ledger).filter((l) => l.startsWith('split'))).toHaveLength(1);
    const links = await t.spool.links(job.id);
    expect(links.awaits).toEqual(expect.any(String));
    expect((await t.spool.links(links.awaits!)).parent).toBe(job.id);
  });

  it('the same with each job in its own process (--runtime processes)', async () => {
    const { t, ledger } = await testSpool();
    const job = await t.spool.put(`${F}#split`, [ledger, 2]);
    await t.runUntilIdle({ roots, concurrency: 1, runtime: 'processes' });
    expect((await t.result(job.id)).job.result).toBe('done:p0,done:p1');
  });

  it('currentJob().put records the running job as parent; the parent lists its children', async () => {
    const { t, ledger } = await testSpool();
    const job = await t.spool.put(`${F}#parent`, [ledger]);
    await t.runUntilIdle({ roots });
    const childId = (await t.result(job.id)).job.result as string;
    expect((await t.result(childId)).job.parent).toBe(job.id);
    expect((await t.spool.links(job.id)).children).toEqual([childId]);
  });

  it('a composite whose postprocess fails fails the job that returned it, with that failure', async () => {
    const { t, ledger } = await testSpool();
    const job = await t.spool.put(`${F}#splitFails`, [ledger]);
    await t.runUntilIdle({ roots });
    const rec = await t.result(job.id);
    expect(rec.state).toBe('failed');
    expect(rec.job.failure).toMatchObject({ message: 'cannot join 1' });
  });
});

describe('prune', () => {
  it('pruning the postprocess removes its group; pruning a parent removes its callback markers and children index', async () => {
    const { t, ledger } = await testSpool();
    const h = await t.spool.parallel(items(ledger, ['a', 'b']));
    const p = await t.spool.put(`${F}#parent`, [ledger], { then: `${F}#onThen` });
    await t.runUntilIdle({ roots });
    expect(h.group).toBe(h.id);
    const dir = (d: string) => existsSync(join(t.spool.dir, d));
    expect([dir(`groups/${h.id}`), dir(`callbacks/${p.id}.then`), dir(`children/${p.id}`)]).toEqual([true, true, true]);
    await t.spool.prune({ state: 'done', olderThanMs: 0 });
    expect([dir(`groups/${h.id}`), dir(`callbacks/${p.id}.then`), dir(`children/${p.id}`)]).toEqual([false, false, false]);
  });
});

describe('cancel and retry of a composite', () => {
  it('cancel of a composite cancels its members not started', async () => {
    const { t, ledger } = await testSpool();
    const h = await t.spool.serial(items(ledger, ['1', '2', '3']), { postprocess: `${F}#join` });
    const r = await t.spool.cancel([h.id]);
    expect(r.map((x) => x.result)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
    await t.runUntilIdle({ roots });
    expect(lines(ledger)).toEqual([]);
    expect((await t.spool.get(h.id)).job!.failure).toMatchObject({ reason: 'cancelled' });
  });

  it('cancel of a job waiting for the composite it returned cancels that composite too', async () => {
    const { t, ledger } = await testSpool();
    const job = await t.spool.put(`${F}#split`, [ledger, 2]);
    await t.runUntilIdle({ roots, fn: [`${F}#split`] }); // runs only the parent: the members stay pending
    const awaited = (await t.spool.links(job.id)).awaits!;
    const r = await t.spool.cancel([job.id]);
    expect(r.map((x) => x.result)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
    expect(r.map((x) => x.id).slice(0, 2)).toEqual([job.id, awaited]);
    await t.runUntilIdle({ roots });
    expect(lines(ledger).filter((l) => l.startsWith('item'))).toEqual([]);
  });

  it('retry of a failed member re-opens the group: the postprocess runs again with its new entry', async () => {
    const { t, ledger } = await testSpool();
    const h = await t.spool.parallel([...items(ledger, ['a']), ...items(ledger, ['b'], 'bad')], { postprocess: `${F}#join` });
    await t.runUntilIdle({ roots });
    expect((await t.result(h.id)).job.result).toBe('done:a,failed:error');
    // The member now succeeds: edit its function as a person would, then retry it.
    const member = (await t.spool.get(h.members[1]!));
    const { writeFileSync } = await import('node:fs');
    writeFileSync(member.path, JSON.stringify({ ...member.job, fn: `${F}#item` }));
    expect((await t.spool.retry([h.members[1]!]))[0]!.ok).toBe(true);
    expect((await t.spool.get(h.id)).state).toBe('waiting');
    await t.runUntilIdle({ roots });
    expect((await t.result(h.id)).job.result).toBe('done:a,done:b');
    expect(lines(ledger).filter((l) => l.startsWith('join'))).toEqual(['join done:a,failed:error', 'join done:a,done:b']);
  });

  it('retry of a failed member of a composite a job returned: the postprocess runs again and that job takes its new result, without running again', async () => {
    const { t, ledger } = await testSpool();
    const job = await t.spool.put(`${F}#splitOneBad`, [ledger]);
    await t.runUntilIdle({ roots });
    expect((await t.result(job.id)).job.result).toBe('done:p0,failed:error');
    const post = (await t.spool.links(job.id)).awaits!;
    const bad = (await t.spool.links(post)).postprocessOf!.members[1]!;
    const member = await t.spool.get(bad);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(member.path, JSON.stringify({ ...member.job, fn: `${F}#item` }));
    const r = await t.spool.retry([bad]);
    expect(r.map((x) => [x.id, x.ok])).toEqual([[bad, true], [job.id, true]]);
    await t.runUntilIdle({ roots });
    expect((await t.result(job.id)).job.result).toBe('done:p0,done:p1');
    expect(lines(ledger).filter((l) => l.startsWith('split'))).toHaveLength(1);
  });
});
