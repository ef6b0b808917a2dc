// Batched enqueue: Spool.putMany and `zcq put -` (jobs from stdin, one JSON object a line), on real spool
// folders; a full disk on a small tmpfs (as root) for what is and is not enqueued when a batch stops part-way.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Spool, PartialPutError, PutItemError, SpoolWriteError, UsageError, type PutItem } from '../dist/index.js';
import { cleanupTemp, deferredFiles, idsIn, names, newSpool, pendingPath, readJob, tempDir, zcq } from './helpers.js';

const mounts: string[] = [];
afterAll(() => { for (const m of mounts) spawnSync('umount', ['-l', m]); cleanupTemp(); });

describe('Spool.putMany', () => {
  it('publishes every item into pending/ with the content it returns, unique ids, in order', async () => {
    const spool = await Spool.init(join(tempDir(), 'spool'));
    const items: PutItem[] = Array.from({ length: 250 }, (_, i) => ({ fn: './jobs.mjs#add', args: [i, 1] }));
    items[7] = { ...items[7]!, queue: 'seven', retries: 0 };
    const jobs = await spool.putMany(items, { queue: 'bulk', retries: 3, timeout: '30s' });
    expect(jobs).toHaveLength(250);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(250);
    expect(jobs.map((j) => j.args)).toEqual(items.map((it) => it.args));
    // Each in its queue's folder: pending/QUEUE/ID.json.
    expect(names(join(spool.dir, 'pending')).sort()).toEqual(['bulk', 'seven']);
    expect(idsIn(spool.dir, 'pending', 'bulk')).toEqual(jobs.filter((_, i) => i !== 7).map((j) => j.id).sort());
    expect(idsIn(spool.dir, 'pending', 'seven')).toEqual([jobs[7]!.id]);
    for (const j of jobs) expect(readJob(pendingPath(spool.dir, j.id, j.queue))).toEqual(JSON.parse(JSON.stringify(j)));
    expect(jobs[0]).toMatchObject({ queue: 'bulk', retries: 3, timeoutMs: 30_000, attempts: 0 });
    expect(jobs[7]).toMatchObject({ queue: 'seven', retries: 0, timeoutMs: 30_000 });
    expect(names(join(spool.dir, 'tmp'))).toEqual([]);
    expect(await spool.putMany([])).toEqual([]);
  });

  it('puts --at/--in items in their deferred/ bucket; an item\'s own time replaces the common one', async () => {
    const spool = await Spool.init(join(tempDir(), 'spool'));
    const [later, past, common] = await spool.putMany([
      { fn: './jobs.mjs#add', args: [1, 1], in: '2h' },
      { fn: './jobs.mjs#add', args: [2, 2], at: new Date(Date.now() - 3600_000) },
      { fn: './jobs.mjs#add', args: [3, 3] },
    ], { in: '10m' });
    expect(idsIn(spool.dir, 'pending')).toEqual([past!.id]);
    expect(names(join(spool.dir, 'pending', 'default'))).toEqual([`${past!.id}.json`]);
    const deferred = deferredFiles(spool.dir);
    expect(deferred).toHaveLength(2);
    for (const j of [later!, common!]) {
      const due = Date.parse(j.notBefore!);
      // deferred/QUEUE/BUCKET/DUEMS15.ID.json, BUCKET = the due time's UTC minute
      const bucket = new Date(due).toISOString().replace(/[-:]/g, '').slice(0, 13);
      expect(deferred).toContain(`default/${bucket}/${String(due).padStart(15, '0')}.${j.id}.json`);
    }
    expect(Date.parse(later!.notBefore!) - Date.parse(common!.notBefore!)).toBeGreaterThan(100 * 60_000);
    expect((await spool.get(later!.id)).state).toBe('deferred');
  });

  it('validates every item before writing any: a bad one is named by index and nothing is enqueued', async () => {
    const spool = await Spool.init(join(tempDir(), 'spool'));
    const good = { fn: './jobs.mjs#add', args: [1, 2] };
    const cases: [unknown[], number, string, RegExp][] = [
      [[good, good, { fn: 'no-hash' }], 2, 'ZCQ_BAD_FN', /item 2: function 'no-hash'/],
      [[good, { ...good, timeout: 'soon' }], 1, 'ZCQ_BAD_DURATION', /item 1: --timeout 'soon'/],
      [[{ ...good, args: [10n] }], 0, 'ZCQ_USAGE', /not JSON-serialisable/],
      [[good, null], 1, 'ZCQ_USAGE', /item 1: must be an object/],
      [[{ ...good, backoff: { kind: 'linear', baseMs: 1, maxMs: 1 } }], 0, 'ZCQ_USAGE', /"backoff.kind"/],
      [[{ ...good, in: '1h', at: Date.now() }], 0, 'ZCQ_USAGE', /--at and --in/],
    ];
    for (const [items, index, code, re] of cases) {
      const err = await spool.putMany(items as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PutItemError);
      expect(err).toBeInstanceOf(UsageError);
      expect(err).toMatchObject({ index, code, exitCode: 2 });
      expect((err as Error).message).toMatch(re);
    }
    expect(idsIn(spool.dir, 'pending')).toEqual([]);
    expect(deferredFiles(spool.dir)).toEqual([]);
    expect(names(join(spool.dir, 'tmp'))).toEqual([]);
  });
});

describe('zcq put - (JSON lines on stdin)', () => {
  it('enqueues every line, prints the ids in input order; the command-line options are defaults; a worker runs them', () => {
    const spool = newSpool();
    const input = [
      '{"fn":"./jobs.mjs#add","args":[1,2]}',
      '',
      '{"fn":"./jobs.mjs#add","args":[3,4],"queue":"mail","retries":null}\r',
      '{"fn":"./jobs.mjs#echo","args":[{"id":7}],"retries":1}',
      '{"fn":"./jobs.mjs#add","args":[5,5],"in":"1h"}',
    ].join('\n') + '\n';
    const r = zcq(spool, ['put', '-', '--retries', '2', '--queue', 'batch'], { input });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const ids = r.stdout.trim().split('\n');
    expect(ids).toHaveLength(4);
    expect(new Set(ids).size).toBe(4);
    const [a, b, c, d] = ids as [string, string, string, string];
    expect(readJob(pendingPath(spool, a, 'batch'))).toMatchObject({ id: a, fn: './jobs.mjs#add', args: [1, 2], queue: 'batch', retries: 2 });
    expect(readJob(pendingPath(spool, b, 'mail'))).toMatchObject({ args: [3, 4], queue: 'mail', retries: 2 });
    expect(readJob(pendingPath(spool, c, 'batch'))).toMatchObject({ fn: './jobs.mjs#echo', args: [{ id: 7 }], retries: 1 });
    expect(deferredFiles(spool)).toEqual([expect.stringMatching(new RegExp(`^batch/\\d{8}T\\d{4}/\\d{15}\\.${d}\\.json$`))]);
    const w = zcq(spool, ['worker', '--root', '.', '--exit-when-idle', '--poll', '100ms', '--concurrency', '2']);
    expect(w.code, w.stderr).toBe(0);
    expect([[a, 'batch'], [b, 'mail'], [c, 'batch']].map(([id, q]) => readJob(join(spool, 'done', q!, `${id}.json`)).result)).toEqual([3, 7, [{ id: 7 }]]);
  });

  it('--json prints one array of {id, notBefore}; empty input enqueues nothing', () => {
    const spool = newSpool();
    const r = zcq(spool, ['--json', 'put', '-'], { input: '{"fn":"./jobs.mjs#add"}\n{"fn":"./jobs.mjs#add","in":"5m"}\n' });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toHaveLength(2);
    expect(out[0]).toEqual({ id: expect.any(String), notBefore: null });
    expect(Date.parse(out[1].notBefore)).toBeGreaterThan(Date.now());
    const empty = zcq(spool, ['put', '-'], { input: '\n\n' });
    expect(empty).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(idsIn(spool, 'pending')).toEqual([out[0].id]);
    expect(idsIn(spool, 'deferred')).toEqual([out[1].id]);
  });

  it('a bad line: one line on stderr naming it, exit 2, and nothing from the input enqueued', () => {
    const spool = join(tempDir(), 'spool');
    expect(zcq(spool, ['init']).code).toBe(0);
    const ok = '{"fn":"./jobs.mjs#add","args":[1,2]}';
    const cases: [string, RegExp][] = [
      [`${ok}\n${ok}\n{"fn":"./jobs.mjs#add",\n`, /line 3: not valid JSON/],
      [`${ok}\n\n\n{"fn":"no-hash"}\n`, /line 4: function 'no-hash': must be 'module#export'/],
      [`${ok}\n{"fn":"./jobs.mjs#add","retires":3}\n`, /line 2: unknown field "retires"/],
      [`${ok}\n{"fn":"./jobs.mjs#add","timeout":"soon"}\n`, /line 2: --timeout 'soon'/],
      [`${ok}\n{"fn":"./jobs.mjs#add","in":"1h","at":"2030-01-01T00:00:00Z"}\n`, /line 2: --at and --in/],
      [`${ok}\n["./jobs.mjs#add"]\n`, /line 2: must be a JSON object/],
      [`${ok}\n{"args":[1]}\n`, /line 2: "fn" is missing/],
      [`${ok}\n{"fn":"./jobs.mjs#add","args":"1,2"}\n`, /line 2: args: must be an array/],
    ];
    for (const [input, re] of cases) {
      const r = zcq(spool, ['put', '-'], { input });
      expect(r.code, input).toBe(2);
      expect(r.stdout, input).toBe('');
      const lines = r.stderr.trim().split('\n');
      expect(lines, input).toHaveLength(1);
      expect(lines[0], input).toMatch(/^zcq: standard input, line \d+: /);
      expect(lines[0], input).toMatch(re);
      expect(lines[0], input).toMatch(/nothing was enqueued — fix that line and run again$/);
    }
    const misuse: [string[], RegExp][] = [
      [['put', '-', '1', '2'], /each line carries its own "args"/],
      [['put', '-', '--args-json', '[1]'], /each line carries its own "args"/],
      [['put', '-', '--wait'], /zcq wait -/],
    ];
    for (const [args, re] of misuse) {
      const r = zcq(spool, args, { input: `${ok}\n` });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
    }
    expect(idsIn(spool, 'pending')).toEqual([]);
    expect(deferredFiles(spool)).toEqual([]);
    expect(names(join(spool, 'tmp'))).toEqual([]);
  });

  it('on a missing spool: exit 2, one line, and nothing created', () => {
    const spool = join(tempDir(), 'nospool');
    const r = zcq(spool, ['put', '-'], { input: '{"fn":"./jobs.mjs#add","args":[1,2]}\n' });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([`zcq: no spool at ${spool} (run zcq init ${spool})`]);
    expect(names(join(spool, '..'))).toEqual([]);
  });
});

function tryTmpfs(kb: number): string | null {
  if (process.getuid?.() !== 0) return null;
  const dir = tempDir('zcq-tmpfs-');
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kb}k`, 'tmpfs', dir]).status !== 0) return null;
  mounts.push(dir);
  return dir;
}
const canMount = (() => tryTmpfs(64) !== null)();

// A tmpfs of 1,200 pages: each small job file takes one, so the first group of 1,000 fits and the second does not.
describe.skipIf(!canMount)('a disk that fills up part-way through a batch (tmpfs; needs root)', () => {
  const items = Array.from({ length: 1500 }, (_, i) => ({ fn: './jobs.mjs#add', args: [i, 0] }));

  it('putMany reports the enqueued prefix (PartialPutError) and leaves no temporary file', async () => {
    const root = tryTmpfs(4800)!;
    const spool = await Spool.init(join(root, 'spool'));
    const err = await spool.putMany(items).catch((e: unknown) => e) as PartialPutError;
    expect(err).toBeInstanceOf(PartialPutError);
    expect(err).toMatchObject({ code: 'ZCQ_PARTIAL_PUT', exitCode: 1, total: 1500 });
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect(err.message).toMatch(/cannot write \(ENOSPC\); 1000 of 1500 jobs were enqueued/);
    expect(err.enqueued).toHaveLength(1000);
    expect(idsIn(spool.dir, 'pending', 'default')).toEqual([...err.enqueued].sort());
    // The enqueued ones are the first items, in order.
    expect(err.enqueued.map((id) => readJob(pendingPath(spool.dir, id)).args[0])).toEqual(items.slice(0, 1000).map((it) => it.args[0]));
    expect(readdirSync(join(spool.dir, 'tmp'))).toEqual([]);
    // Nothing published at all: the plain SpoolWriteError of put.
    const none = await spool.putMany(items.slice(0, 300)).catch((e: unknown) => e);
    expect(none).toBeInstanceOf(SpoolWriteError);
    expect((none as Error).message).toMatch(/cannot write \(ENOSPC\); nothing was published/);
    expect(idsIn(spool.dir, 'pending')).toHaveLength(1000);
    expect(readdirSync(join(spool.dir, 'tmp'))).toEqual([]);
  });

  it('zcq put - prints the ids that were enqueued, names the first line that was not, exits 1', () => {
    const root = tryTmpfs(4800)!;
    const spool = join(root, 'spool');
    expect(zcq(spool, ['init']).code).toBe(0);
    const input = items.map((it) => JSON.stringify(it)).join('\n') + '\n';
    const r = zcq(spool, ['put', '-'], { input });
    expect(r.code).toBe(1);
    const ids = r.stdout.trim().split('\n');
    expect(ids).toHaveLength(1000);
    expect(idsIn(spool, 'pending', 'default')).toEqual([...ids].sort());
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^zcq: .*cannot write \(ENOSPC\); the first 1000 jobs \(the lines before line 1001\) were enqueued .* from line 1001 on were not .*tail -n \+1001/);
    expect(readdirSync(join(spool, 'tmp'))).toEqual([]);
    // Space back (600 jobs run and removed): the lines from 1001 on go in.
    for (const id of ids.slice(0, 600)) rmSync(pendingPath(spool, id));
    const again = zcq(spool, ['put', '-'], { input: input.split('\n').slice(1000).join('\n') });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim().split('\n')).toHaveLength(500);
    expect(idsIn(spool, 'pending')).toHaveLength(900);
  });
});
