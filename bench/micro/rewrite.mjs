// Rewriting a small file in place, two ways, on DIR (default os.tmpdir()): truncate to 0 then write, as a
// spare was written before, against write from offset 0 then cut to length. On ext4 (auto_da_alloc) the
// first starts writeback when the file is closed, and close() waits for it.
// Usage: node bench/micro/rewrite.mjs [DIR] [N=5000]
import fs from 'node:fs';
import { tmpdir } from 'node:os';
const base = process.argv[2] ?? tmpdir();
const N = Number(process.argv[3] ?? 5000);
const d = fs.mkdtempSync(`${base}/zcq-rewrite.`);
const data = Buffer.from('x'.repeat(300));
for (let i = 0; i < 50; i++) fs.writeFileSync(`${d}/${i}`, data);
function run(name, f) {
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) f(`${d}/${i % 50}`);
  const u = process.cpuUsage(u0);
  console.log(`${name.padEnd(32)} ${((performance.now() - t0) * 1000 / N).toFixed(0).padStart(5)} us wall ${(u.system / N).toFixed(0).padStart(4)} us kernel ${(u.user / N).toFixed(0).padStart(4)} us user`);
}
try {
  for (let r = 0; r < 2; r++) {
    run('truncate to 0, write, close', (p) => { const fd = fs.openSync(p, fs.constants.O_RDWR); fs.ftruncateSync(fd, 0); fs.writeSync(fd, data); fs.closeSync(fd); });
    run('write at 0, cut to length, close', (p) => { const fd = fs.openSync(p, fs.constants.O_RDWR); fs.writeSync(fd, data, 0, data.length, 0); fs.ftruncateSync(fd, data.length); fs.closeSync(fd); });
  }
} finally {
  fs.rmSync(d, { recursive: true, force: true });
}
