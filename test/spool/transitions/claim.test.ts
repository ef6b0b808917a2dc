// claim (src/spool/transitions/claim.ts): pending/QUEUE/ID.json -> claimed/LEASE/SEQ.ID.json.
// Crash after each marked step, then the actor the header names completes it; and the fence for real.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { claimJob, readClaimed } from '../../../dist/spool/transitions/claim.js';
import { newJob, serializeJob } from '../../../dist/job/format.js';
import { FOLDER_KEEP_MS } from '../../../dist/spool/layout.js';
import { ROOT, cleanupTemp } from '../../helpers.js';
import { FN, Rig, SimulatedCrash, crashAfter, onStep } from './util.js';

afterAll(cleanupTemp);

describe('claim', () => {
  let rig: Rig;
  beforeEach(async () => { rig = await Rig.make(); });
  afterEach(async () => { onStep(); await rig.dispose(); });

  it('crash after 1: the job sits in the dead lease; recovery returns it to pending/QUEUE by its interrupt policy, counted', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    const crash = crashAfter('claim', 1);
    expect(() => claimJob(a, 'q', 'j1.json')).toThrow(SimulatedCrash);
    expect(crash.fired).toBe(true);
    expect(rig.where('j1')).toEqual([`claimed/${a.id}/1.j1.json`]);

    rig.kill(a);
    const { n } = await rig.recover();
    expect(n).toBe(1);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    const job = rig.read('pending/q/j1.json');
    expect(job.interrupts).toBe(1);
    expect(job.attempts).toBe(1);
    expect(job.history).toHaveLength(1);
    expect(job.history[0]).toMatchObject({ worker: a.id, outcome: 'interrupted' });
    expect(job.finished).toBeUndefined();
    expect(fs.existsSync(a.dir)).toBe(false);
    expect(fs.existsSync(a.heartbeatFile)).toBe(false);
  });

  it('crash after 1 with onInterrupt "fail": recovery ends it in failed/QUEUE ("worker lost") carrying the dead claim\'s token', async () => {
    await rig.put('j1', { queue: 'q', onInterrupt: 'fail' });
    const a = await rig.lease();
    crashAfter('claim', 1);
    expect(() => claimJob(a, 'q', 'j1.json')).toThrow(SimulatedCrash);
    rig.kill(a);
    await rig.recover();
    expect(rig.where('j1')).toEqual(['failed/q/j1.json']);
    const job = rig.read('failed/q/j1.json');
    expect(job.failure?.reason).toBe('worker lost');
    expect(job.run).toBe(`${a.id}/1`);
  });

  it('crash after 1 on a finished record moved back by hand: recovery resets it as a retry first (as step 3 would have)', async () => {
    // A done record, with the run token of an older lease, moved back into pending/ by a person.
    const old = newJob({ id: 'j1', fn: FN, queue: 'q' });
    Object.assign(old, { attempts: 2, interrupts: 1, result: 3, finished: new Date().toISOString(), run: 'old.1.abc/7', deadline: new Date(Date.now() - 1000).toISOString() });
    rig.write(join(rig.l.pending, 'q', 'j1.json'), old);
    const a = await rig.lease();
    crashAfter('claim', 1);
    expect(() => claimJob(a, 'q', 'j1.json')).toThrow(SimulatedCrash);
    rig.kill(a);
    await rig.recover();
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    const job = rig.read('pending/q/j1.json');
    expect(job.finished).toBeUndefined();
    expect(job.result).toBeUndefined();
    expect(job.run).toBe(`${a.id}/1`); // the record recovery wrote for the dead claim, not the old run
    expect(job.deadline).toBeNull();
    // Reset to 0 and then one interrupted attempt: not the old 2 + 1.
    expect(job.attempts).toBe(1);
    expect(job.interrupts).toBe(1);
  });

  it('a final record of THIS lease moved back and claimed again is a retry: its token names an older claim', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    // Claim 1 ends in done with run = A/1 (as finish writes it) ...
    const { c, job } = await rig.claim(a, 'j1', 'q');
    Object.assign(job, { result: 3, finished: new Date().toISOString(), run: c.token, attempts: 1 });
    fs.writeFileSync(c.path, serializeJob(job));
    fs.mkdirSync(join(rig.l.done, 'q'), { recursive: true });
    fs.renameSync(c.path, join(rig.l.done, 'q', 'j1.json'));
    // ... a person moves it back; the same lease claims it as SEQ 2 and dies.
    fs.renameSync(join(rig.l.done, 'q', 'j1.json'), join(rig.l.pending, 'q', 'j1.json'));
    crashAfter('claim', 1);
    expect(() => claimJob(a, 'q', 'j1.json')).toThrow(SimulatedCrash);
    expect(rig.where('j1')).toEqual([`claimed/${a.id}/2.j1.json`]);
    rig.kill(a);
    await rig.recover();
    // Not moved to done as a final record (its run A/1 is not the claim A/2 it sits under): run again.
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    const back = rig.read('pending/q/j1.json');
    expect(back.finished).toBeUndefined();
    expect(back.result).toBeUndefined();
  });

  it('crash after 2 (quarantined): the file is in quarantine/ with its reason; recovery has nothing to complete', async () => {
    fs.mkdirSync(join(rig.l.pending, 'q'), { recursive: true });
    fs.writeFileSync(join(rig.l.pending, 'q', 'bad.json'), '{"not": "a job"');
    const a = await rig.lease();
    const c = claimJob(a, 'q', 'bad.json');
    expect(c).not.toBeNull();
    crashAfter('claim', 2);
    await expect(readClaimed(c!)).rejects.toThrow(SimulatedCrash);
    expect(rig.where('bad')).toEqual(['quarantine/bad.json']);
    expect(fs.readFileSync(join(rig.l.quarantine, 'bad.json.reason'), 'utf8')).toMatch(/claimed from pending\/q\//);
    expect(fs.readdirSync(a.dir)).toEqual([]);
    rig.kill(a);
    const { n } = await rig.recover();
    expect(n).toBe(0);
    expect(rig.where('bad')).toEqual(['quarantine/bad.json']);
  });

  it('step 3: the folder\'s queue wins over the file\'s (a person moved it between queues); a finished record is a retry', async () => {
    const rec = newJob({ id: 'j1', fn: FN, queue: 'q' });
    Object.assign(rec, { attempts: 1, failure: { name: 'Error', message: 'x', reason: 'error' }, finished: new Date().toISOString(), run: 'x.1.a/1' });
    rig.write(join(rig.l.pending, 'other', 'j1.json'), rec);
    const a = await rig.lease();
    const { job, retried } = await rig.claim(a, 'j1', 'other');
    expect(retried).toBe(true);
    expect(job.queue).toBe('other');
    expect(job.attempts).toBe(0);
    expect(job.failure).toBeUndefined();
    expect(job.run).toBeUndefined();
  });

  it('fence: a claimer whose lease folder a recoverer took gets ENOENT — a lost claim, never a second copy', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    rig.kill(a);
    await rig.recover(); // takes a's (empty) folder
    expect(fs.existsSync(a.dir)).toBe(false);
    expect(a.isLost).toBe(false); // a does not know yet
    expect(claimJob(a, 'q', 'j1.json')).toBeNull();
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(fs.existsSync(a.dir)).toBe(false); // never re-created
    // A live claimer takes it normally.
    const b = await rig.lease();
    expect(claimJob(b, 'q', 'j1.json')?.path).toBe(join(b.dir, '1.j1.json'));
    expect(rig.where('j1')).toEqual([`claimed/${b.id}/1.j1.json`]);
  });

  it('fence: of two claimers exactly one wins; the other gets null and takes nothing', async () => {
    await rig.put('j1', { queue: 'q' });
    const a = await rig.lease();
    const b = await rig.lease();
    const got = [claimJob(a, 'q', 'j1.json'), claimJob(b, 'q', 'j1.json')];
    expect(got.filter(Boolean)).toHaveLength(1);
    expect(rig.where('j1')).toEqual([`claimed/${a.id}/1.j1.json`]);
    expect(fs.readdirSync(b.dir)).toEqual([]);
  });

  it('shared claimed/ (2775): the folder check is one lstat per synchronous run of claims; a recoverer taking the folder within the run is still fenced by the rename', async () => {
    fs.chmodSync(rig.l.claimed, 0o2775);
    for (const id of ['j1', 'j2', 'j3']) await rig.put(id, { queue: 'q' });
    const a = await rig.lease();
    expect(claimJob(a, 'q', 'j1.json')).not.toBeNull();
    // Same synchronous run: the folder goes away (as a recoverer takes it); the next claim's rename fails.
    const moved = `${a.dir}.taken`;
    fs.renameSync(a.dir, moved);
    expect(claimJob(a, 'q', 'j2.json')).toBeNull();
    expect(rig.where('j2')).toEqual(['pending/q/j2.json']);
    expect(fs.readdirSync(moved)).toEqual(['1.j1.json']);
    // A co-user's symlink in its place is refused from the next turn on (the lstat runs again): nothing moves through it.
    fs.symlinkSync(moved, a.dir);
    await new Promise((r) => setImmediate(r));
    expect(claimJob(a, 'q', 'j3.json')).toBeNull();
    expect(a.isLost).toBe(true);
    expect(rig.where('j3')).toEqual(['pending/q/j3.json']);
    expect(fs.readdirSync(moved)).toEqual(['1.j1.json']);
    fs.unlinkSync(a.dir);
  });

  it('private claimed/ (0755): a yes is kept for FOLDER_KEEP_MS across turns — a taken folder still fences each claim by its rename — then looked at again', async () => {
    for (const id of ['j1', 'j2', 'j3']) await rig.put(id, { queue: 'q' });
    const a = await rig.lease();
    const looked = performance.now();
    expect(claimJob(a, 'q', 'j1.json')).not.toBeNull();
    const moved = `${a.dir}.taken`;
    fs.renameSync(a.dir, moved);
    // A later turn, within the kept time: no look, and the rename into the missing folder fails.
    await new Promise((r) => setImmediate(r));
    const within = performance.now() - looked < FOLDER_KEEP_MS;
    expect(claimJob(a, 'q', 'j2.json')).toBeNull();
    // (A machine that stalled this test past the kept time looked again, and found the lease lost.)
    if (within) expect(a.isLost).toBe(false);
    expect(rig.where('j2')).toEqual(['pending/q/j2.json']);
    expect(fs.readdirSync(moved)).toEqual(['1.j1.json']);
    // Past it: the look finds the folder gone, and the lease is lost.
    await new Promise((r) => setTimeout(r, FOLDER_KEEP_MS + 50));
    expect(claimJob(a, 'q', 'j3.json')).toBeNull();
    expect(a.isLost).toBe(true);
    expect(rig.where('j3')).toEqual(['pending/q/j3.json']);
    expect(fs.readdirSync(moved)).toEqual(['1.j1.json']);
  });

  describe('step 2, the read of the claimed file', () => {
    it('a FIFO put in the claimed file\'s place is set aside with its reason, without blocking; so is a folder', async () => {
      await rig.put('f1', { queue: 'q' });
      await rig.put('d1', { queue: 'q' });
      const a = await rig.lease();
      const f = claimJob(a, 'q', 'f1.json')!;
      fs.unlinkSync(f.path);
      expect(spawnSync('mkfifo', [f.path]).status).toBe(0);
      const rf = await readClaimed(f);
      expect(rf).toMatchObject({ reason: expect.stringMatching(/FIFO.*not a regular file/) });
      const d = claimJob(a, 'q', 'd1.json')!;
      fs.unlinkSync(d.path);
      fs.mkdirSync(d.path);
      const rd = await readClaimed(d);
      expect(rd).toMatchObject({ reason: expect.stringMatching(/folder, not a regular file/) });
      // Both set aside (quarantine/), neither left in the lease nor deleted.
      expect(fs.readdirSync(a.dir)).toEqual([]);
      expect(fs.readdirSync(rig.l.quarantine).filter((n) => !n.startsWith('.')).length).toBeGreaterThanOrEqual(2);
    });

    it('a job file past the 64 KB scratch buffer is read whole; one past the 1 MB limit is refused by its size', async () => {
      const big = 'x'.repeat(300_000);
      await rig.put('b1', { queue: 'q', args: [big] });
      const a = await rig.lease();
      const { job } = await rig.claim(a, 'b1', 'q');
      expect(job.args).toEqual([big]);
      await rig.put('h1', { queue: 'q' });
      const h = claimJob(a, 'q', 'h1.json')!;
      fs.writeFileSync(h.path, JSON.stringify({ zcq: 1, id: 'h1', fn: FN, args: ['y'.repeat(1_100_000)] }));
      expect(await readClaimed(h)).toMatchObject({ reason: expect.stringMatching(/larger than the 1048576-byte limit/) });
    });

    it('makes no fstat: open, reads, close (the fstat was a round trip a job on a networked file system)', async () => {
      await rig.put('s1', { queue: 'q' });
      const script = `
        const { openLayout } = await import(${JSON.stringify(join(ROOT, 'dist/spool/layout.js'))});
        const { Lease } = await import(${JSON.stringify(join(ROOT, 'dist/spool/lease.js'))});
        const { claimJob, readClaimed } = await import(${JSON.stringify(join(ROOT, 'dist/spool/transitions/claim.js'))});
        const l = openLayout(${JSON.stringify(rig.l.root)});
        const lease = await Lease.acquire(l, { kind: 'worker', leaseMs: 30000 }, true);
        const c = claimJob(lease, 'q', 's1.json');
        process.stderr.write('READ ' + c.path + '\\n');
        const r = await readClaimed(c);
        if (!('job' in r)) throw new Error(JSON.stringify(r));
        process.stderr.write('DONE\\n');`;
      const trace = join(rig.l.root, '..', `claim-${process.pid}.strace`);
      const r = spawnSync('strace', ['-f', '-y', '-o', trace, '-e', 'trace=openat,read,pread64,fstat,newfstatat,statx,close,write', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const lines = fs.readFileSync(trace, 'utf8').split('\n');
      const from = lines.findIndex((l) => l.includes('READ '));
      const to = lines.findIndex((l) => l.includes('DONE'));
      const calls = lines.slice(from + 1, to).filter((l) => l.includes('s1.json'));
      expect(calls.some((l) => /openat\(/.test(l))).toBe(true);
      expect(calls.some((l) => /pread64\(/.test(l))).toBe(true);
      expect(calls.filter((l) => /statx\(|fstat\(|newfstatat\(/.test(l))).toEqual([]);
      fs.unlinkSync(trace);
    });
  });
});
