// What each file operation costs on this machine, kernel time per call (process.cpuUsage), in a fresh
// folder under DIR (default os.tmpdir()): the numbers behind "creating a file costs far more than
// rewriting one" (Lease spares). Usage: node bench/micro/fs-costs.mjs [DIR] [N=5000]
import fs from 'node:fs';
import { tmpdir } from 'node:os';
const base = process.argv[2] ?? tmpdir();
const N = Number(process.argv[3] ?? 5000);
const d = fs.mkdtempSync(`${base}/zcq-fs-costs.`);
for (const s of ['a', 'b', 'c']) fs.mkdirSync(`${d}/${s}`);
const data = 'x'.repeat(300);
function time(name, f) {
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) f(i);
  const u = process.cpuUsage(u0);
  console.log(`${name.padEnd(30)} ${((performance.now() - t0) * 1000 / N).toFixed(0).padStart(6)} us wall ${(u.system / N).toFixed(0).padStart(6)} us kernel`);
}
try {
  time('create empty file', (i) => fs.closeSync(fs.openSync(`${d}/a/e${i}`, 'wx')));
  time('create + write 300 B + close', (i) => { const w = fs.openSync(`${d}/a/${i}`, 'wx'); fs.writeSync(w, data); fs.closeSync(w); });
  time('hard link', (i) => fs.linkSync(`${d}/a/${i}`, `${d}/b/l${i}`));
  time('open + read + close', (i) => { const fd = fs.openSync(`${d}/a/${i}`, 'r'); fs.readSync(fd, Buffer.alloc(400), 0, 400, 0); fs.closeSync(fd); });
  time('rename across folders', (i) => fs.renameSync(`${d}/a/${i}`, `${d}/c/${i}`));
  time('rewrite existing (trunc+write)', (i) => { const w = fs.openSync(`${d}/c/${i}`, 'r+'); fs.ftruncateSync(w, 0); fs.writeSync(w, data); fs.closeSync(w); });
  time('unlink', (i) => fs.unlinkSync(`${d}/c/${i}`));
} finally {
  fs.rmSync(d, { recursive: true, force: true });
}
