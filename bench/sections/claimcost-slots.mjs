// The slot work a quota adds to each job, alone: one quota take (transitions/quota-take.ts) and one
// release (quota-release.ts) per run token, eight slots held at a time as a worker of concurrency 8 holds
// them, in-process on the built library (no worker, no job files), so that what the claimcost section
// measures through a whole worker can be split into the slot part and the rest.
//   node bench/sections/claimcost-slots.mjs [n] [rounds] [dir]   → µs per take + release (wall and CPU), median of rounds
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST } from '../zcq.mjs';

const n = Number(process.argv[2] ?? 5000);
const rounds = Number(process.argv[3] ?? 5);
const base = mkdtempSync(join(process.argv[4] ?? tmpdir(), 'zcq-ccs-'));
const distDir = DIST.replace(/index\.js$/, '');
const { Spool } = await import(DIST);
const { takeSlots } = await import(join(distDir, 'spool/transitions/quota-take.js'));
const { releaseSlots } = await import(join(distDir, 'spool/transitions/quota-release.js'));
try {
  const spool = await Spool.init(join(base, 'spool'), { durable: false });
  await spool.quota.set('cc', 10_000);
  const lease = 'bench.1.aaaaaa';
  mkdirSync(join(spool.layout.claimed, lease), { recursive: true });
  const wall = [], cpu = [];
  for (let r = 0; r < rounds; r++) {
    const held = [];
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const token = `${lease}/${r * n + i}`;
      const t = takeSlots(spool.layout, ['cc'], token, () => 10_000);
      if (!('slots' in t)) throw new Error(`no slot: ${JSON.stringify(t)}`);
      held.push([t.slots, token]);
      if (held.length >= 8) { const [s, tok] = held.shift(); releaseSlots(s, tok, () => true); }
    }
    for (const [s, tok] of held) releaseSlots(s, tok, () => true);
    const c = process.cpuUsage(c0);
    wall.push(((performance.now() - t0) * 1000) / n);
    cpu.push((c.user + c.system) / n);
  }
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(`quota take + release: ${med(wall).toFixed(1)} µs wall, ${med(cpu).toFixed(1)} µs CPU per job (median of ${rounds} rounds of ${n}; wall per round ${wall.map((x) => x.toFixed(0)).join(', ')})`);
} finally {
  rmSync(base, { recursive: true, force: true });
}
