// The file-system calls a real `zcq worker` makes a job that are not a guarantee's (bench/PROFILE.md): on a
// network mount each is a round trip to the server. Counted with strace (-y: each descriptor's path).
// - the claimed file is read with one pread when that read is short and parses (the read that would only
//   confirm its end is not made: fsops.ts readJustClaimedSync); a job file cut short is still read to its end
//   and quarantined;
// - done/QUEUE is looked at once a second where only the worker's user may write done/ (a private spool), and
//   before every move where others may (a shared spool's 2775: layout.ts makeQueueFoldersKept).
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../../dist/index.js';
import { BIN, FIXTURES, cleanupTemp, idsIn, tempDir } from '../helpers.js';

afterAll(cleanupTemp);

const N = 120;

/** A worker draining the spool under strace: its trace lines, and the spool's done/ ids. */
function drainTraced(spool: string): string[] {
  // -ff: one file a thread, so that no call is split into "<unfinished ...>" and "resumed" lines by another
  // thread's call in between (the last assertion below reads a call's result on its line).
  const trace = join(spool, '..', 'worker.strace');
  const r = spawnSync('strace', ['-ff', '-y', '-o', trace, '-e', 'trace=pread64,read,statx,lstat,newfstatat', process.execPath, BIN, '--spool', spool, 'worker',
    '--root', FIXTURES, '--exit-when-idle', '--relaxed', '-c', '8', '--poll', '50ms'], { cwd: FIXTURES, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  const dir = join(spool, '..');
  return readdirSync(dir).filter((f) => f.startsWith('worker.strace.')).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'));
}

async function spoolWith(n: number): Promise<{ spool: string; ids: string[] }> {
  const spool = join(tempDir('zcq-calls-'), 'spool');
  const s = await Spool.init(spool);
  const jobs = await s.putMany(Array.from({ length: n }, (_, i) => ({ fn: './jobs.mjs#add', args: [i, 1] })));
  await s.close();
  return { spool, ids: jobs.map((j) => j.id) };
}

const looksAt = (lines: string[], path: string) => lines.filter((l) => /\b(statx|lstat|newfstatat)\(/.test(l) && l.includes(`"${path}"`)).length;

describe('a worker\'s calls a job', () => {
  it('one read of each claimed job file; done/default looked at about once a second in a private spool', async () => {
    const { spool, ids } = await spoolWith(N);
    const lines = drainTraced(spool);
    expect(idsIn(spool, 'done').sort()).toEqual([...ids].sort());
    const claimedReads = lines.filter((l) => /\b(pread64|read)\(\d+<[^>]*\/claimed\/[^>]*\.json>/.test(l));
    expect(claimedReads.length).toBeGreaterThanOrEqual(N);
    expect(claimedReads.length).toBeLessThan(N * 1.1);
    // Every finish of the previous build looked (N); now the first two and one a second.
    expect(looksAt(lines, join(spool, 'done', 'default'))).toBeLessThan(N / 4);
  });

  it('done/ writable by the group (a shared spool\'s mode): done/default looked at before every move', async () => {
    const { spool, ids } = await spoolWith(N);
    chmodSync(join(spool, 'done'), 0o2775);
    const lines = drainTraced(spool);
    expect(idsIn(spool, 'done').sort()).toEqual([...ids].sort());
    expect(looksAt(lines, join(spool, 'done', 'default'))).toBeGreaterThanOrEqual(N);
    // Whether done/ is only ours is itself looked at once a second, not once a job (a shared spool's answer
    // is "no" each time: one lstat a job more than before the kept look, until this was mended).
    expect(looksAt(lines, join(spool, 'done'))).toBeLessThan(N / 4);
  });

  it('a job file cut short is read to its end (a second read) and quarantined with its reason; the others run', async () => {
    const { spool, ids } = await spoolWith(3);
    const name = readdirSync(join(spool, 'pending', 'default'))[0]!;
    const path = join(spool, 'pending', 'default', name);
    const text = readFileSync(path, 'utf8');
    writeFileSync(path, text.slice(0, Math.floor(text.length / 2)));
    const lines = drainTraced(spool);
    const cut = name.replace(/\.json$/, '');
    expect(idsIn(spool, 'done').sort()).toEqual(ids.filter((id) => id !== cut).sort());
    const quarantined = readdirSync(join(spool, 'quarantine'));
    expect(quarantined.some((f) => f.startsWith(cut))).toBe(true);
    const reads = lines.filter((l) => /\b(pread64|read)\(\d+<[^>]*\/claimed\/[^>]*\.json>/.test(l) && l.includes(cut));
    expect(reads).toHaveLength(2);
    expect(reads[1]).toMatch(/= 0$/);
  });
});
