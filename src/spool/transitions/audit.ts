/**
 * audit: a live worker gives back what sits in its own lease folder without being held by it.
 *
 *   claimed/ME/DEAD.dead/                 ->  settled again as recovery does (recover.ts), then removed
 *   claimed/ME/SEQ.ID.json, held by no run of ME on two audits in a row (a stray):
 *       a record of this claim (run = ME/SEQ)  ->  where the record says (the move that was missed)
 *       any other job                          ->  deferred/QUEUE/ at its notBefore, else pending/QUEUE/, uncounted
 *       not a job (corrupt, a symlink, a FIFO) ->  quarantine/
 *
 * Why: recovery takes only dead leases, so a job in a live lease that its holder does not run would wait
 *   there for ever. Ways in: a claim rename the file server did but answered with an error (EIO, ESTALE,
 *   a timeout), so the claimer took it for a lost race; a dead lease recovery renamed in, then listed as
 *   empty (a distributed volume's listing right after the rename) and could not remove; a person's `mv`.
 * Before: the auditor's lease is fresh enough to judge (lease.ts freshToJudge), and the audit runs in the
 *   worker's periodic pass, never at once with that worker's own recovery (which puts DEAD.dead folders
 *   here). The worker keeps the registry `isHeld` of its claim paths: a path enters it in the same turn of
 *   the event loop as the claim rename (claim.ts step 1) and leaves it once the job has left the folder
 *   (finish, unclaim, quarantine) or has been given up.
 * Steps:
 *   1. list our folder; each DEAD.dead folder in it is settled again (recover.ts settleNestedLease: each
 *      job by DEAD's policy, then the folder and DEAD's heartbeat removed);
 *   2. every other entry (dot names aside: .nfs* silly renames) not in the registry is remembered; one
 *      already remembered at the previous audit of this lease and still not held is a stray: read it
 *      (O_NOFOLLOW|O_NONBLOCK, regular file, bounded: a FIFO is never read, a symlink never followed) and
 *      finish it under our lease with the token ME/SEQ (transitions/finish.ts) as recovery settles a
 *      client's claim — attempts and interrupts unchanged (job/policy.ts recordUntouched), a retry reset as
 *      claim resets it; not a job: quarantine/. One line is logged: `lease.stray` with the id and why.
 * Two audits, not one: the registry is exact, so one look would do for the worker's own claims; the second
 *   look leaves room for the unexpected (a claim path registered a little late) at the cost of one interval.
 * Crash after 1: the remaining DEAD.dead folders (and the jobs of a half-settled one) sit in our lease,
 *   which recovery takes when it dies and settles like any nested folder. During 2 (after finish step 4 for
 *   a stray): the file in our folder is the record with run = ME/SEQ; the recoverer of our dead lease (or
 *   our next audit) moves it where it says, uncounted. A stray not yet given back when we die is settled
 *   by the recoverer as a job we were running (its interrupt policy): it cannot tell.
 * Fence: every rename's source is inside our lease folder: once a recoverer has taken it, they fail with
 *   ENOENT and the audit stops (finish.ts checks our folder with lstat before its rename).
 */
import { join } from 'node:path';
import type { Layout } from '../layout.js';
import { listNames } from '../fsops.js';
import { deadLeaseOf, type Lease } from '../lease.js';
import { parseClaimedName } from '../names.js';
import { settleClaimedFile, settleNestedLease, type RecoveryEvent } from './recover.js';
import { step } from './steps.js';

/** One line per stray: a job (`id`) given back or quarantined, or a nested dead lease (`lease`) settled again. */
export interface AuditEvent { event: 'lease.stray'; worker: string; id?: string; lease?: string; to: string; why: string }

/** The state one worker keeps between its audits: what was seen not held, in which lease. */
export class LeaseAudit {
  private lease = '';
  private unheld = new Set<string>();

  /**
   * One audit of `me`'s folder (steps 1 and 2). `isHeld(path)` is the worker's registry of its claims.
   * Returns the jobs moved out (nested dead leases' and strays).
   */
  async run(layout: Layout, me: Lease, isHeld: (path: string) => boolean, log: (e: RecoveryEvent | AuditEvent) => void): Promise<number> {
    if (me.id !== this.lease) { this.lease = me.id; this.unheld.clear(); }
    if (me.isLost || !me.freshToJudge()) return 0;
    let n = 0;
    const seen = new Set<string>();
    const endIso = new Date().toISOString();
    for (const name of await listNames(me.dir)) {
      if (me.isLost) return n;
      const path = join(me.dir, name);
      const inner = deadLeaseOf(name);
      if (inner !== null) {
        // 1. a dead lease our recovery took and did not finish: nobody else will look inside a live lease.
        const k = await settleNestedLease(layout, me, path, inner, me.info.leaseMs, log);
        n += k;
        step('audit', 1, inner);
        log({ event: 'lease.stray', worker: me.id, lease: inner, to: 'recovered', why: `a dead lease our recovery took was still in our lease folder; ${k} job(s) settled now` });
        continue;
      }
      if (name.startsWith('.') || isHeld(path)) continue;
      seen.add(name);
      if (!this.unheld.has(name)) continue; // first look: the next audit decides
      // 2. a stray.
      const id = parseClaimedName(name)?.id ?? name;
      const holder = { worker: me.id, host: me.info.host, pid: me.info.pid, leaseMs: me.info.leaseMs, kind: me.info.kind };
      const why = 'in our lease folder but claimed by no run of ours, at two audits in a row';
      const r = await settleClaimedFile(layout, me, path, name, holder, true, endIso, `found in the lease of live worker ${me.id}, ${why}`);
      if (r.kind === 'lost') return n;
      if (r.kind === 'moved') {
        n++;
        step('audit', 2, r.id);
        log({ event: 'lease.stray', worker: me.id, id: r.id, to: r.to, why });
      } else if (r.kind === 'quarantined') {
        log({ event: 'lease.stray', worker: me.id, id: r.id ?? id, to: 'quarantine', why: `${why}; not a job: ${r.reason}` });
      }
    }
    this.unheld = seen;
    return n;
  }
}
