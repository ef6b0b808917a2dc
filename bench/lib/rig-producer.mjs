// The producer of the rig section's put→start figure (bench/sections/rig.mjs), run "on" one machine of the
// rig: puts n jobs one at a time through that machine's mount, each a stamp job (bench/jobs/noop.mjs#stamp)
// that appends `TAG NS` to a ledger on the test host's local disk when it starts. Before each put it prints
// `TAG NS` of its own: NS is process.hrtime (CLOCK_MONOTONIC). Every machine of the rig is a namespace of
// one kernel (UTS only: no time namespace), so both stamps come from one monotonic clock and their
// difference is put→start, whichever machine each ran on; no machine's wall clock is compared with another.
// It waits for each job's start stamp before the next put (so that no job queues behind another), then a
// random pause of 20 ms to 20 + JITTER_MS: a worker that hears of other machines' puts only by its poll
// would otherwise be met at the same phase of its poll every time (put right after a start, itself right
// after a poll: every put→start would be one full poll interval).
//
//   node rig-producer.mjs DIST_URL SPOOL N JITTER_MS LEDGER durable|relaxed
import { readFileSync, watch } from 'node:fs';

const [distUrl, spoolDir, n, jitterMs, ledger, mode] = process.argv.slice(2);
const { Spool } = await import(distUrl);
const spool = await Spool.open(spoolDir, { create: false, durable: mode === 'durable' });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const started = (tag) => `\n${readFileSync(ledger, 'utf8')}`.includes(`\n${tag} `);
// The ledger is a local file: inotify tells when it grows (the 50 ms poll is a safety net only).
let wake = () => {};
const watcher = watch(ledger, () => wake());
const nextChange = () => new Promise((r) => { wake = r; setTimeout(r, 50); });
for (let i = 0; i < Number(n); i++) {
  const tag = `j${i}`;
  const t0 = process.hrtime.bigint();
  await spool.put('noop.mjs#stamp', [ledger, tag]);
  process.stdout.write(`${tag} ${t0}\n`);
  const deadline = Date.now() + 60_000;
  while (!started(tag)) {
    if (Date.now() > deadline) {
      process.stderr.write(`rig-producer: job ${tag} did not start within 60 s\n`);
      process.exit(1);
    }
    await nextChange();
  }
  await sleep(20 + Math.random() * Number(jitterMs));
}
watcher.close();
await spool.close?.();
