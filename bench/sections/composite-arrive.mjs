// Per-member cost of a group arrival, by hand: puts a parallel group of N, writes each member's final record
// into tmp/, then arrives every member in this process (arriveInGroup, as finish does between its steps 4 and
// 5, with the durable folder fsync handed to the caller as finish's step 6 does). Count its system calls:
//
//   strace -f -o /tmp/arr.txt node bench/sections/composite-arrive.mjs 1000 1
//   awk '/MARK-START/{on=1;next} /MARK-END/{on=0} on' /tmp/arr.txt | grep -oE '^[0-9]+ +[a-z0-9_]+' | awk '{print $2}' | sort | uniq -c
//
// Arguments: N (default 1000), durable 1|0 (default 1). Not part of bench/run.mjs: a count, not a timing.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const N = Number(process.argv[2] ?? 1000);
const durable = (process.argv[3] ?? '1') === '1';
const imp = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);
const { Spool } = await imp('index.js');
const { arriveInGroup } = await imp('spool/transitions/arrive.js');
const dir = fs.mkdtempSync('/tmp/zcq-arrive-');
try {
  const spool = await Spool.init(join(dir, 'spool'), { durable });
  const h = await spool.parallel(Array.from({ length: N }, (_, i) => ({ fn: './x.mjs#f', args: [i] })), {});
  const l = spool.layout;
  const jobs = h.members.map((id) => JSON.parse(fs.readFileSync(join(l.root, 'pending', 'default', `${id}.json`), 'utf8')));
  const records = jobs.map((j, i) => { const p = join(l.tmp, `rec-${i}`); fs.writeFileSync(p, JSON.stringify({ ...j, result: i, finished: new Date().toISOString() })); return p; });
  const later = [];
  fs.statSync('/MARK-START', { throwIfNoEntry: false }); // a marker line in strace's output
  const t0 = performance.now();
  for (let i = 0; i < N; i++) arriveInGroup(l, jobs[i], 'done', records[i], durable, (d) => later.push(d));
  const ms = performance.now() - t0;
  fs.statSync('/MARK-END', { throwIfNoEntry: false });
  const released = fs.existsSync(join(l.root, 'pending', 'default', `${h.id}.json`));
  console.log(`${N} arrivals in ${ms.toFixed(0)} ms (${(ms / N).toFixed(3)} ms each), ${later.length} folder fsyncs left to finish's step 6, postprocess ${released ? 'released' : 'NOT released'}`);
  await spool.close?.();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
