// Summarise a .cpuprofile (node --cpu-prof, or bench/micro/drain.mjs's fifth argument): total sampled time,
// then the functions with the most self time and the source files with the most self time.
// Usage: node bench/micro/profile-top.mjs FILE.cpuprofile [N=25]
import { readFileSync } from 'node:fs';
const [file, topS = '25'] = process.argv.slice(2);
const top = Number(topS);
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
p.samples.forEach((s, i) => self.set(s, (self.get(s) ?? 0) + (p.timeDeltas[i] ?? 0)));
const byFn = new Map();
const byFile = new Map();
let total = 0;
for (const [id, us] of self) {
  const { functionName, url, lineNumber } = byId.get(id).callFrame;
  const where = url.replace(/^.*\/(dist|node_modules)\//, '$1/') || '(native)';
  total += us;
  byFn.set(`${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`, (byFn.get(`${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`) ?? 0) + us);
  byFile.set(where, (byFile.get(where) ?? 0) + us);
}
const show = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, us]) => `${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`).join('\n');
console.log(`${(total / 1000).toFixed(0)} ms sampled\n-- self time by function\n${show(byFn)}\n-- self time by file\n${show(byFile)}`);
