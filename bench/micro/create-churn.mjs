// What creating a file costs by what the file system did just before, kernel time per create (per 1,000):
// creates that accumulate in one folder, against a create + unlink of the previous file (the freed inode is
// reused at once). Run after `sync; sleep 10` and right after a large delete to see the spread.
// Usage: node bench/micro/create-churn.mjs [DIR] [N=6000]
import fs from 'node:fs';
import { tmpdir } from 'node:os';
const base = process.argv[2] ?? tmpdir();
const N = Number(process.argv[3] ?? 6000);
const data = 'x'.repeat(300);
for (const mode of ['accumulate', 'create+unlink', 'accumulate']) {
  const d = fs.mkdtempSync(`${base}/zcq-churn.`);
  const per = [];
  let u0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const fd = fs.openSync(`${d}/${i}`, 'wx');
    fs.writeSync(fd, data);
    fs.closeSync(fd);
    if (mode === 'create+unlink' && i > 0) fs.unlinkSync(`${d}/${i - 1}`);
    if ((i + 1) % 1000 === 0) {
      per.push((process.cpuUsage(u0).system / 1000).toFixed(0));
      u0 = process.cpuUsage();
    }
  }
  console.log(`${mode.padEnd(14)} kernel us per job, each 1,000: ${per.join(' ')}`);
  fs.rmSync(d, { recursive: true, force: true });
}
