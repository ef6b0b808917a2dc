// The job of bench/sections/claimcost-handover.mjs: stamps its start and end in a ledger with this machine's
// clock. The rig's "machines" share one kernel and run without a clock offset there, so stamps taken on
// different machines compare to the millisecond (the file server's mtimes over sshfs have whole seconds only).
import { appendFileSync } from 'node:fs';

/** `<tag> start <ms>`, then after `ms`, `<tag> end <ms>`. */
export async function stamp(ledger, tag, ms = 0) {
  appendFileSync(ledger, `${tag} start ${Date.now()}\n`);
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  appendFileSync(ledger, `${tag} end ${Date.now()}\n`);
}
