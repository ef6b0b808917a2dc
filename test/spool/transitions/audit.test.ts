// audit (src/spool/transitions/audit.ts): a live worker gives back what sits in its own lease folder
// without being held by it. A stray claim goes back uncounted after two audits (not one), a held claim is
// never touched, a nested DEAD.dead is settled again, a FIFO or symlink is quarantined without being
// opened or followed; crash after each step, then the actor the header names completes.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { LeaseAudit, type AuditEvent } from '../../../dist/spool/transitions/audit.js';
import { claimJob } from '../../../dist/spool/transitions/claim.js';
import type { Lease } from '../../../dist/spool/lease.js';
import type { RecoveryEvent } from '../../../dist/spool/transitions/recover.js';
import { cleanupTemp } from '../../helpers.js';
import { Rig, crashAfter, onStep } from './util.js';

afterAll(cleanupTemp);

describe('audit', () => {
  let rig: Rig;
  let events: Array<RecoveryEvent | AuditEvent>;
  beforeEach(async () => { rig = await Rig.make(); events = []; });
  afterEach(async () => { onStep(); await rig.dispose(); });

  const nobody = () => false;
  function audit(a: LeaseAudit, me: Lease, isHeld: (p: string) => boolean = nobody): Promise<number> {
    return a.run(rig.l, me, isHeld, (e) => events.push(e));
  }
  /** Move pending/q/ID.json into `me`'s folder by hand, as SEQ.ID.json. */
  function plant(me: Lease, id: string, seq = 999999): string {
    const to = join(me.dir, `${seq}.${id}.json`);
    fs.renameSync(join(rig.l.pending, 'q', `${id}.json`), to);
    return to;
  }

  it('a stray claim goes back to pending/ uncounted on the second audit, not the first; one lease.stray line', async () => {
    await rig.put('j1', { queue: 'q' });
    await rig.put('j2', { queue: 'q' });
    const me = await rig.lease();
    // j1: a claim rename that happened but was reported as lost; j2: a hand `mv`.
    expect(claimJob(me, 'q', 'j1.json')).not.toBeNull();
    plant(me, 'j2');
    const before = rig.read(`claimed/${me.id}/1.j1.json`);
    const a = new LeaseAudit();
    expect(await audit(a, me)).toBe(0);
    expect(rig.where('j1')).toEqual([`claimed/${me.id}/1.j1.json`]);
    expect(rig.where('j2')).toEqual([`claimed/${me.id}/999999.j2.json`]);
    expect(events).toEqual([]);
    expect(await audit(a, me)).toBe(2);
    for (const id of ['j1', 'j2']) {
      expect(rig.where(id)).toEqual([`pending/q/${id}.json`]);
      expect(rig.read(`pending/q/${id}.json`)).toMatchObject({ attempts: before.attempts, interrupts: 0, history: [] });
    }
    expect(events.map((e) => [e.event, e.id, (e as AuditEvent).to])).toEqual(expect.arrayContaining([['lease.stray', 'j1', 'pending'], ['lease.stray', 'j2', 'pending']]));
    expect(events).toHaveLength(2);
    expect(fs.existsSync(me.dir)).toBe(true); // our lease stays ours
  });

  it('a job held by this worker is never touched, however many audits; a stray seen once, then held, is forgotten', async () => {
    await rig.put('j1', { queue: 'q' });
    await rig.put('j2', { queue: 'q' });
    const me = await rig.lease();
    const c1 = claimJob(me, 'q', 'j1.json')!;
    const c2 = claimJob(me, 'q', 'j2.json')!;
    const held = new Set([c1.path]);
    const a = new LeaseAudit();
    await audit(a, me, (p) => held.has(p)); // j2 seen unheld once
    held.add(c2.path); // ... then registered (a late registration)
    for (let i = 0; i < 3; i++) expect(await audit(a, me, (p) => held.has(p))).toBe(0);
    held.delete(c2.path);
    expect(await audit(a, me, (p) => held.has(p))).toBe(0); // unheld again: one look only so far
    expect(rig.where('j1')).toEqual([`claimed/${me.id}/1.j1.json`]);
    expect(rig.where('j2')).toEqual([`claimed/${me.id}/2.j2.json`]);
    expect(events).toEqual([]);
  });

  it('a stray with a due time goes back to deferred/, not run early; a finished record moved in by hand starts over as a retry', async () => {
    // j1: taken out of deferred/ (a client's claim for a cancel) and left here; j2: a done record moved in by hand.
    const due = await rig.put('j1', { queue: 'q' });
    due.notBefore = new Date(Date.now() + 3_600_000).toISOString();
    const me = await rig.lease();
    rig.write(join(me.dir, '7.j1.json'), due);
    const done = await rig.put('j2', { queue: 'q' });
    done.finished = new Date().toISOString();
    done.attempts = 1;
    rig.write(join(me.dir, '8.j2.json'), done);
    for (const id of ['j1', 'j2']) fs.rmSync(join(rig.l.pending, 'q', `${id}.json`));
    const a = new LeaseAudit();
    await audit(a, me);
    await audit(a, me);
    expect(rig.only('j1')).toMatch(/^deferred\/q\/.*\.j1\.json$/);
    expect(rig.only('j2')).toBe('pending/q/j2.json');
    expect(rig.read('pending/q/j2.json')).toMatchObject({ attempts: 0, interrupts: 0 });
  });

  it('a nested DEAD.dead folder left in our lease is settled on the first audit, by the dead holder\'s policy, and removed with its heartbeat', async () => {
    await rig.put('j1', { queue: 'q' });
    const dead = await rig.lease();
    expect(claimJob(dead, 'q', 'j1.json')).not.toBeNull();
    rig.kill(dead);
    const me = await rig.lease();
    // What recovery leaves when its listing missed the job and the folder would not go.
    fs.renameSync(dead.dir, join(me.dir, `${dead.id}.dead`));
    expect(await audit(new LeaseAudit(), me)).toBe(1);
    expect(rig.where('j1')).toEqual(['pending/q/j1.json']);
    expect(rig.read('pending/q/j1.json')).toMatchObject({ interrupts: 1 }); // a worker's run that was interrupted
    expect(fs.readdirSync(me.dir)).toEqual([]);
    expect(fs.existsSync(dead.heartbeatFile)).toBe(false);
    expect(events.map((e) => [e.event, e.id ?? (e as AuditEvent).lease])).toEqual([['job.recovered', 'j1'], ['lease.stray', dead.id]]);
  });

  it('a FIFO and a symlink planted in our folder go to quarantine/ on the second audit, never opened nor followed', async () => {
    const me = await rig.lease();
    const fifo = join(me.dir, '5.fifo.json');
    execFileSync('mkfifo', [fifo]);
    const outside = join(rig.l.root, '..', 'secret.txt');
    fs.writeFileSync(outside, 'keep');
    fs.symlinkSync(outside, join(me.dir, '6.link.json'));
    fs.mkdirSync(join(me.dir, 'junk'));
    const a = new LeaseAudit();
    await audit(a, me);
    expect(fs.readdirSync(me.dir).sort()).toEqual(['5.fifo.json', '6.link.json', 'junk']);
    await audit(a, me); // a blocking open of the FIFO would hang here
    expect(fs.readdirSync(me.dir)).toEqual([]);
    expect(fs.lstatSync(join(rig.l.quarantine, 'fifo.json')).isFIFO()).toBe(true);
    expect(fs.lstatSync(join(rig.l.quarantine, 'link.json')).isSymbolicLink()).toBe(true);
    expect(fs.lstatSync(join(rig.l.quarantine, 'junk')).isDirectory()).toBe(true);
    expect(fs.readFileSync(outside, 'utf8')).toBe('keep');
    expect(fs.readFileSync(join(rig.l.quarantine, 'link.json.reason'), 'utf8')).toMatch(new RegExp(`live worker ${me.id}`));
    expect(events.filter((e) => e.event === 'lease.stray').map((e) => [e.id, (e as AuditEvent).to]).sort()).toEqual([['fifo', 'quarantine'], ['junk', 'quarantine'], ['link', 'quarantine']]);
  });

  it('crash after 1 (one of two nested dead leases settled): the next audit settles the other', async () => {
    const me = await rig.lease();
    const deads: Lease[] = [];
    for (const id of ['j1', 'j2']) {
      await rig.put(id, { queue: 'q' });
      const d = await rig.lease();
      claimJob(d, 'q', `${id}.json`);
      rig.kill(d);
      fs.renameSync(d.dir, join(me.dir, `${d.id}.dead`));
      deads.push(d);
    }
    const crash = crashAfter('audit', 1);
    await expect(audit(new LeaseAudit(), me)).rejects.toThrow(/simulated crash after audit step 1/);
    expect(crash.fired).toBe(true);
    expect(['j1', 'j2'].filter((id) => rig.where(id)[0] === `pending/q/${id}.json`)).toHaveLength(1);
    expect(await audit(new LeaseAudit(), me)).toBe(1);
    for (const id of ['j1', 'j2']) expect(rig.read(rig.only(id))).toMatchObject({ interrupts: 1 });
    expect(fs.readdirSync(me.dir)).toEqual([]);
  });

  it('crash after 2 (one of two strays given back) and the worker dies: the recoverer settles the other by its interrupt policy', async () => {
    await rig.put('j1', { queue: 'q' });
    await rig.put('j2', { queue: 'q' });
    const me = await rig.lease();
    plant(me, 'j1', 11);
    plant(me, 'j2', 12);
    const a = new LeaseAudit();
    await audit(a, me);
    crashAfter('audit', 2);
    await expect(audit(a, me)).rejects.toThrow(/simulated crash after audit step 2/);
    const back = ['j1', 'j2'].filter((id) => rig.where(id)[0] === `pending/q/${id}.json`);
    expect(back).toHaveLength(1);
    expect(rig.read(`pending/q/${back[0]}.json`)).toMatchObject({ interrupts: 0, attempts: 0 });
    rig.kill(me);
    await rig.recover();
    const other = back[0] === 'j1' ? 'j2' : 'j1';
    expect(rig.only(other)).toBe(`pending/q/${other}.json`);
    expect(rig.read(`pending/q/${other}.json`)).toMatchObject({ interrupts: 1 }); // recovery cannot tell a stray from a run
  });

  it('crash during 2, after finish wrote the record in place (run = ME/SEQ): the recoverer of our dead lease, or our next audit, moves it uncounted', async () => {
    for (const how of ['recoverer', 'next audit'] as const) {
      const id = how === 'recoverer' ? 'j1' : 'j2';
      await rig.put(id, { queue: 'q' });
      const me = await rig.lease();
      plant(me, id, 21);
      const a = new LeaseAudit();
      await audit(a, me);
      crashAfter('finish', 4);
      await expect(audit(a, me)).rejects.toThrow(/simulated crash after finish step 4/);
      onStep();
      expect(rig.read(`claimed/${me.id}/21.${id}.json`)).toMatchObject({ run: `${me.id}/21`, interrupts: 0 });
      if (how === 'recoverer') { rig.kill(me); await rig.recover(); } else await audit(a, me);
      expect(rig.only(id)).toBe(`pending/q/${id}.json`);
      expect(rig.read(`pending/q/${id}.json`)).toMatchObject({ interrupts: 0, attempts: 0 });
    }
  });

  it('fence: a lease that is lost, or no longer fresh enough to judge, audits nothing', async () => {
    await rig.put('j1', { queue: 'q' });
    const me = await rig.lease();
    plant(me, 'j1');
    const a = new LeaseAudit();
    await audit(a, me);
    me.lastRenewed = -Infinity; // a stalled heartbeat: siblings may be taking our folder
    expect(await audit(a, me)).toBe(0);
    me.markLost();
    expect(await audit(a, me)).toBe(0);
    expect(rig.where('j1')).toEqual([`claimed/${me.id}/999999.j1.json`]);
  });
});
