// Quota slot hand-over across machines (issue 13), on the multi-machine test rig (test/multihost/rig.ts).
// Quota `one` has a limit of 1. A worker on host-a serves queue qa, one on host-b queue qb (concurrency 1,
// poll P each). Each round: a job of qa takes the slot and holds it HOLD ms; meanwhile a job of qb is put,
// claimed by host-b, refused a slot and put back (its worker waits for the quota); once the qa job ends, the
// qb job should start. Hand-over = the qb job's start − the qa job's end, both stamped by the jobs with
// Date.now() (claimcost-handover-job.mjs: the rig's machines share one kernel and no clock offset is set).
// A round counts only if host-b had refused its job before the slot was freed (its job.skipped line).
//   node bench/sections/claimcost-handover.mjs [rounds=8] [pollMs=250] [fs=sshfs] [holdMs=3000]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { importTs } from '../lib/tsload.mjs';
import { BIN, DIST, ROOT } from '../zcq.mjs';

const rounds = Number(process.argv[2] ?? 8);
const pollMs = Number(process.argv[3] ?? 250);
const fsKind = process.argv[4] ?? 'sshfs';
const holdMs = Number(process.argv[5] ?? 3000);
const JOB_ROOT = join(ROOT, 'bench', 'sections');
const FN = './claimcost-handover-job.mjs#stamp';
const RELIST_MS = 1000; // QUOTA_RELIST_MS (src/defaults.ts)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function worker(rig, i, queue) {
  const c = rig.spawn(i, process.execPath, [BIN, '--json', '--spool', rig.path(i, 'spool'), 'worker', '--root', JOB_ROOT, '--verbose', '--queue', queue,
    '--concurrency', '1', '--poll', `${pollMs}ms`, '--lease', '8s', '--no-scheduler', '--runtime', 'inline'], { cwd: JOB_ROOT });
  c.log = '';
  c.stdout.setEncoding('utf8').on('data', (d) => { c.log += d; });
  c.stderr.setEncoding('utf8').on('data', (d) => { c.log += d; });
  c.exited = new Promise((res) => c.once('close', res));
  return c;
}

/** `<tag> <event> <ms>` lines. */
function ledgerOf(path) {
  let text = '';
  try { text = readFileSync(path, 'utf8'); } catch { return []; }
  return text.split('\n').filter(Boolean).map((l) => { const [id, event, at] = l.split(' '); return { id, event, at: Number(at) }; });
}

const rigMod = await importTs(join(ROOT, 'test', 'multihost', 'rig.ts'));
rigMod.checkRigPrerequisites({ needFaketime: false, fileSystems: [fsKind] });
rigMod.sweepStaleRigs();
const local = mkdtempSync(join(tmpdir(), 'zcq-handover-'));
const ledger = join(local, 'ledger');
const rig = await rigMod.startRig({ machines: 2, fs: fsKind });
const ws = [];
try {
  const { Spool } = await import(pathToFileURL(DIST).href);
  const spool = await Spool.init(join(rig.exportDir, 'spool'), { durable: false });
  await spool.quota.set('one', 1);
  ws.push(worker(rig, 0, 'qa'), worker(rig, 1, 'qb'));
  await until(() => ws.every((w) => w.log.includes('"worker.start"')), 30_000, 'both workers');
  const handovers = [];
  for (let r = 1; r <= rounds; r++) {
    await spool.putMany([{ fn: FN, args: [ledger, `a${r}`, holdMs] }], { quota: 'one', queue: 'qa' });
    await until(() => ledgerOf(ledger).some((l) => l.id === `a${r}` && l.event === 'start'), 30_000, `round ${r}: qa job start`);
    const [b] = await spool.putMany([{ fn: FN, args: [ledger, `b${r}`, 0] }], { quota: 'one', queue: 'qb' });
    await until(() => ledgerOf(ledger).some((l) => l.id === `b${r}` && l.event === 'end'), 60_000, `round ${r}: qb job done`);
    const lines = ledgerOf(ledger);
    const aEnd = lines.find((l) => l.id === `a${r}` && l.event === 'end');
    const bStart = lines.find((l) => l.id === `b${r}` && l.event === 'start');
    const refused = ws[1].log.split('\n').some((l) => l.includes('"job.skipped"') && l.includes(b.id));
    const ms = bStart.at - aEnd.at;
    console.log(`round ${r}: hand-over ${ms} ms${refused ? '' : ' (not counted: host-b had not waited for the slot)'}`);
    if (refused) handovers.push(ms);
    if (process.env.HANDOVER_DEBUG && ms > 1000) console.log(`  a ended ${new Date(aEnd.at).toISOString()}\n` + ws[1].log.split('\n').filter((l) => l.includes(b.id)).join('\n'));
  }
  const sorted = [...handovers].sort((x, y) => x - y);
  const med = sorted[Math.floor(sorted.length / 2)];
  console.log(`slot hand-over host-a → host-b on ${fsKind}, poll ${pollMs} ms: median ${med} ms, max ${sorted[sorted.length - 1]} ms over ${sorted.length} rounds (per round: ${handovers.join(', ')}); bound poll + relist = ${pollMs + RELIST_MS} ms; mount caches ${JSON.stringify(rig.cache)}`);
} finally {
  for (const w of ws) if (w.exitCode === null) w.kill('SIGTERM');
  await Promise.race([Promise.all(ws.map((w) => w.exited)), sleep(20_000)]);
  await rig.stop();
  rmSync(local, { recursive: true, force: true });
}
