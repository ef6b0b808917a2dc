// Per-operation wall time of bare drain loops, one synchronous loop, N jobs in a fresh folder under /tmp:
// fsloop's finish (a new file in tmp/, renamed over the claimed file), a plain loop (outcome created in
// claimed/, renamed to done/, job file unlinked), and two mixes. Usage: node bench/micro/fsloop-ops.mjs VARIANT [N]
// VARIANT: fsloop | plain | overclaimed | tmpnoover
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const [variant, N = 5000] = [process.argv[2], Number(process.argv[3] ?? 5000)];
const root = fs.mkdtempSync(join(tmpdir(), 'zcq-fsloop-ops-'));
for (const d of ['tmp', 'pending', 'done', 'claimed/w0']) fs.mkdirSync(`${root}/${d}`, { recursive: true });
const body = (id, extra={}) => JSON.stringify({ zcq: 1, id, fn: 'noop.mjs#noop', args: [], queue: 'default', created: new Date().toISOString(), attempts: 0, retries: 0, history: [], ...extra });
for (let i = 0; i < N; i++) fs.writeFileSync(`${root}/pending/j${i}.json`, body(`j${i}`));
const acc = {};
const T = (name, f) => { const t = process.hrtime.bigint(); const r = f(); acc[name] = (acc[name] ?? 0n) + (process.hrtime.bigint() - t); return r; };
const u0 = process.cpuUsage(); const t0 = performance.now();
for (let i = 0; i < N; i++) {
  const name = `j${i}.json`; const c = `${root}/claimed/w0/${name}`;
  T('claim rename', () => fs.renameSync(`${root}/pending/${name}`, c));
  if (variant === 'fsloop') {
    const r = `${root}/tmp/j${i}.w0.json`;
    T('create tmp', () => { const fd = fs.openSync(r, 'wx'); fs.writeSync(fd, body(`j${i}`, { result: null })); fs.closeSync(fd); });
    T('rename over claimed', () => fs.renameSync(r, c));
    T('rename to done', () => fs.renameSync(c, `${root}/done/${name}`));
  } else if (variant === 'plain') {
    T('read', () => fs.readFileSync(c));
    const o = `${root}/claimed/w0/j${i}.out`;
    T('create outcome in claimed', () => { const fd = fs.openSync(o, 'wx'); fs.writeSync(fd, body(`j${i}`, { result: null })); fs.closeSync(fd); });
    T('rename to done', () => fs.renameSync(o, `${root}/done/${name}`));
    T('unlink', () => fs.unlinkSync(c));
  } else if (variant === 'overclaimed') { // create in claimed dir, rename over (same dir)
    const r = `${root}/claimed/w0/j${i}.tmp`;
    T('create in claimed', () => { const fd = fs.openSync(r, 'wx'); fs.writeSync(fd, body(`j${i}`, { result: null })); fs.closeSync(fd); });
    T('rename over (same dir)', () => fs.renameSync(r, c));
    T('rename to done', () => fs.renameSync(c, `${root}/done/${name}`));
  } else if (variant === 'tmpnoover') { // create in tmp, rename to done, unlink claimed
    const r = `${root}/tmp/j${i}.w0.json`;
    T('create tmp', () => { const fd = fs.openSync(r, 'wx'); fs.writeSync(fd, body(`j${i}`, { result: null })); fs.closeSync(fd); });
    T('rename tmp to done', () => fs.renameSync(r, `${root}/done/${name}`));
    T('unlink', () => fs.unlinkSync(c));
  }
}
const ms = performance.now() - t0; const u = process.cpuUsage(u0);
console.log(`${variant} N=${N}: ${(N/ms*1000).toFixed(0)} jobs/s, cpu ${((u.user+u.system)/N).toFixed(0)} us/job (sys ${(u.system/N).toFixed(0)}); ` + Object.entries(acc).map(([k,v]) => `${k} ${(Number(v)/1000/N).toFixed(0)}us`).join(', '));
fs.rmSync(root, { recursive: true, force: true });
