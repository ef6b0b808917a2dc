#!/usr/bin/env node
// `npm test`'s runner: the vitest projects (scripts/test-projects.mjs: `rig`, `local`) side by side, one vitest
// process each, every line of output prefixed with its project's name. Each project runs its files one at a
// time; the two together keep a 2-core machine busy where one alone leaves it waiting on sleeps, leases and
// process start-ups (the suite ran 1,480 s one file at a time). Exits 0 only if every project passed;
// arguments are passed to each vitest (`npm test -- test/quota`); a filter that matches files of one project
// only is fine, one that matches no file at all fails. A signal is passed on to both. Output piped to a reader
// that stops early (`npm test | head`) is dropped from then on; the tests still run to the end and the exit
// code still says whether they passed.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TEST_PROJECTS } from './test-projects.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));
const extra = process.argv.slice(2);
const t0 = Date.now();

// EPIPE once the reader has gone: stop writing there, keep draining the lanes.
const open = new Map([[process.stdout, true], [process.stderr, true]]);
for (const out of open.keys()) out.on('error', (err) => { if (err.code === 'EPIPE') open.set(out, false); else throw err; });
const write = (out, text) => { if (open.get(out)) out.write(text); };

const lanes = TEST_PROJECTS.map(({ name }) => {
  const child = spawn(process.execPath, [vitest, 'run', '--project', name, '--passWithNoTests', ...extra], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let found = true;
  for (const [from, to] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
    createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => {
      if (line.startsWith('No test files found')) found = false;
      write(to, `[${name}] ${line}\n`);
    });
  }
  const done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ name, code, signal, found, s: (Date.now() - t0) / 1000 })));
  return { child, done };
});

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { for (const l of lanes) l.child.kill(sig); });
}

const results = await Promise.all(lanes.map((l) => l.done));
for (const r of results) {
  const how = r.code !== 0 ? (r.signal ? `killed by ${r.signal}` : `failed (exit ${r.code})`) : r.found ? 'passed' : 'found no test file';
  write(process.stdout, `test-lanes: ${r.name} ${how} after ${r.s.toFixed(0)} s\n`);
}
const none = results.every((r) => r.code === 0 && !r.found);
if (none) write(process.stderr, `test-lanes: no test file matches ${extra.join(' ')} — name files under test/ (npm test -- test/spool)\n`);
process.exitCode = !none && results.every((r) => r.code === 0) ? 0 : 1;
