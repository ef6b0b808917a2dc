#!/usr/bin/env node
// zcq-spool(5)'s STATE CHANGES section is made from the headers of src/spool/transitions/*.ts, so that the
// page and the code say the same thing in the same words and order. `node scripts/man-transitions.mjs`
// rewrites the section in man/zcq-spool.5; `--check` exits 1 (naming the first difference) when the page is
// out of date (a test runs it).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ORDER = ['put', 'promote', 'claim', 'unclaim', 'quota-take', 'rate-take', 'quota-release', 'renew', 'finish', 'ended', 'arrive', 'release', 'callback', 'recover', 'audit', 'retry', 'cancel', 'hold', 'quarantine', 'prune'];
const BEGIN = '.\\" BEGIN STATE CHANGES (made by scripts/man-transitions.mjs from src/spool/transitions/*.ts)';
const END = '.\\" END STATE CHANGES';

function header(name) {
  const text = readFileSync(join(root, 'src/spool/transitions', `${name}.ts`), 'utf8');
  const m = /^\/\*\*\n([\s\S]*?)\n \*\//.exec(text);
  if (!m) throw new Error(`src/spool/transitions/${name}.ts: no header comment at the top`);
  return m[1].split('\n').map((l) => l.replace(/^ \* ?/, '').replace(/^ \*$/, ''));
}

function esc(line) {
  return line.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1');
}

export function section() {
  const out = [BEGIN, '.SH STATE CHANGES',
    'Every change of a job\'s state is one of these transitions, each one module of the source',
    '(\\fBsrc/spool/transitions/\\fINAME\\fB.ts\\fR) that every caller uses: worker, recovery, commands, library, doctor.',
    'For each: from \\(-> to, what must hold before, the steps in order, what a crash after each step leaves and who completes it,',
    'and what fences a stale actor.'];
  for (const name of ORDER) {
    out.push(`.SS ${name}`, '.nf', ...header(name).map(esc), '.fi');
  }
  out.push(END);
  return out.join('\n');
}

const page = join(root, 'man/zcq-spool.5');
const current = readFileSync(page, 'utf8');
const a = current.indexOf(BEGIN);
const b = current.indexOf(END);
if (a < 0 || b < 0) { console.error(`${page}: no "${BEGIN}" ... "${END}" markers`); process.exit(1); }
const next = current.slice(0, a) + section() + current.slice(b + END.length);
if (process.argv.includes('--check')) {
  if (next !== current) {
    const x = next.split('\n'), y = current.split('\n');
    let i = 0; while (i < x.length && x[i] === y[i]) i++;
    console.error(`man/zcq-spool.5 line ${i + 1} differs from the transition headers: run node scripts/man-transitions.mjs`);
    process.exit(1);
  }
} else {
  writeFileSync(page, next);
}
