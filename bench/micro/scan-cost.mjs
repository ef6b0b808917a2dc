#!/usr/bin/env node
// CPU of one claimer scan (src/worker/claimer.ts) of a folder of N pending jobs, alone and beside another
// worker's lease (claim shares: fewer candidates a scan, so more scans a claim). In-process, real folders.
//
//   node bench/micro/scan-cost.mjs [N=10000] [SCANS=200] [DIR=os.tmpdir()]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [n = '10000', scans = '200', parent = tmpdir()] = process.argv.slice(2);
const dist = new URL('../../dist/', import.meta.url);
const { Spool } = await import(new URL('client/spool.js', dist));
const { Claimer } = await import(new URL('worker/claimer.js', dist));
const { Lease } = await import(new URL('spool/lease.js', dist));
const dir = mkdtempSync(join(parent, 'zcq-scan-'));
try {
  const spool = await Spool.init(join(dir, 'spool'), { durable: false });
  for (let i = 0; i < Number(n); i += 500) await spool.putMany(Array.from({ length: Math.min(500, Number(n) - i) }, () => ({ fn: 'noop.mjs#noop', args: [] })));
  const lease = await Lease.acquire(spool.layout, { kind: 'worker', leaseMs: 60_000 }, false);
  for (const label of ['alone', 'beside one other worker lease']) {
    if (label !== 'alone') await Lease.acquire(spool.layout, { kind: 'worker', leaseMs: 60_000 }, false);
    const c = new Claimer(spool.layout, null, 8, false, () => {});
    c.refreshQueues();
    const t0 = process.cpuUsage();
    for (let i = 0; i < Number(scans); i++) { c.candidates = []; c.scan(lease.id); }
    const cpu = process.cpuUsage(t0);
    console.log(`${label}: ${Math.round((cpu.user + cpu.system) / Number(scans))} µs CPU a scan, ${c.candidates.length} candidates`);
    c.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
