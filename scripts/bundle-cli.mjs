// Bundles the compiled CLI (dist/cli/main.js, after tsc) into dist/cli/bundle/: an entry holding what
// `zcq put` runs (commander and 61 compiled modules) and a chunk per command for the rest, so that a short
// command loads 2–6 files instead of ~60 ES modules and ~10 commander files, each resolved, read and
// compiled apart (Node 20 has no module compile cache): bench/PROFILE.md, "zcq put start-up".
//
// bin/zcq runs the bundle for every command except `worker` and `dashboard`, which run dist/cli/main.js:
// they locate files beside their own module (the pool's runner, the page's assets) and a worker runs job
// modules that import 'zcq' (dist/index.js), which must be the same module instances as the worker's. A
// long-running process has no start-up to save. Run by `npm run build`. The bundle is the same compiled
// modules, concatenated; the one line of its own is the lazy require of three of Node's modules (below).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'cli', 'bundle');

// The modules `zcq put` loads, found from the compiled files: put.js and what it imports, statically or by
// import() (the spool facade is loaded that way), but not the worker's and the dashboard's modules (their
// commands run unbundled) nor a module that imports a package other than commander, statically or
// through its own imports (cron-parser, prom-client: only the commands that use them should load them).
const STATIC_RE = /^(?:import|export)\s[^;]*?\sfrom\s+'([^']+)'/gm;
const DYNAMIC_RE = /\bimport\(\s*'(\.{1,2}\/[^']+)'\s*\)/g;
const specs = (file, re) => [...readFileSync(file, 'utf8').matchAll(re)].map((m) => m[1]);
const pulls = new Map();
/** Whether `file` or a module it imports statically imports a package other than commander. */
function pullsPackage(file, path = new Set()) {
  if (pulls.has(file)) return pulls.get(file);
  if (path.has(file)) return false;
  path.add(file);
  const r = specs(file, STATIC_RE).some((s) => (s.startsWith('.') ? pullsPackage(resolve(dirname(file), s), path) : !s.startsWith('node:') && s !== 'commander'));
  pulls.set(file, r);
  return r;
}
function putModules() {
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const s of specs(file, STATIC_RE)) if (s.startsWith('.')) visit(resolve(dirname(file), s));
    for (const s of specs(file, DYNAMIC_RE)) {
      const f = resolve(dirname(file), s);
      if (!/[\\/]dist[\\/](worker|dashboard)[\\/]/.test(f) && !pullsPackage(f)) visit(f);
    }
  };
  const main = join(root, 'dist', 'cli', 'main.js');
  // main.js itself, without following its import()s: they are every command.
  seen.add(main);
  for (const s of specs(main, STATIC_RE)) if (s.startsWith('.')) visit(resolve(dirname(main), s));
  visit(join(root, 'dist', 'cli', 'commands', 'put.js'));
  return seen;
}
const core = putModules();
rmSync(out, { recursive: true, force: true });
await build({
  input: join(root, 'dist', 'cli', 'main.js'),
  platform: 'node',
  // Node's own modules stay imports; every package (commander, cron-parser, prom-client...) is bundled.
  external: [/^node:/],
  logLevel: 'warn',
  // A module both imported statically and by import() (the spool facade) just stays where it is: expected.
  onLog(level, log, handler) {
    if (log.code !== 'INEFFECTIVE_DYNAMIC_IMPORT') handler(level, log);
  },
  preserveEntrySignatures: 'allow-extension',
  output: {
    dir: out,
    // CommonJS, so that bin/zcq (a CommonJS file: bin/package.json) loads it with require() and a short
    // command never starts Node's ES module loader: ~20 ms of CPU per call (bench/PROFILE.md).
    format: 'cjs',
    entryFileNames: 'main.cjs',
    chunkFileNames: '[name]-[hash].cjs',
    sourcemap: false,
    codeSplitting: {
      groups: [
        // What `zcq put` loads, in the entry's file instead of the ~20 shared chunks the automatic split
        // makes of it. Only those: every module of a chunk runs when the chunk loads, so the worker, the
        // dashboard, the metrics (prom-client) and the scheduler (cron-parser, luxon) stay in chunks loaded
        // by the commands that use them.
        { name: 'core', test: (id) => core.has(id) || /node_modules[\\/]commander[\\/]/.test(id), includeDependenciesRecursively: false },
      ],
    },
  },
});

// bin/zcq compiles the entry with vm.Script, which has no ES module loader behind it in Node 20: an import()
// left in the entry (of one of Node's modules, say, which the bundler keeps as it is) would fail at run time.
// Chunks load through require() and may keep theirs (the worker's import() of job modules).
const leftImports = readFileSync(join(out, 'main.cjs'), 'utf8').split('\n')
  .map((line, i) => ({ line, n: i + 1 }))
  .filter(({ line }) => /\bimport\(/.test(line) && !/^\s*(\*|\/\/)/.test(line));
if (leftImports.length > 0) {
  throw new Error(`bundle-cli: dist/cli/bundle/main.cjs keeps import() at line ${leftImports.map((l) => l.n).join(', ')}; import Node's modules statically in the CLI's modules`);
}

// Node's modules that `zcq put` does not use, loaded on first use instead of when the entry starts: commander
// requires child_process at its top (for subcommands run as programs, which zcq has none of), and with it
// net, dgram and the stream modules; fs/promises brings readline; the group look-up (getent), the async file
// calls of other commands and perf_hooks are for other paths. Together ~36 of Node's internal modules
// compiled at each start (bench/PROFILE.md section 18). A module is replaced by an object whose property reads
// require it then: the bundle reads their functions at the call (`node_fs_promises.lstat(...)`), never at load.
// Each pattern must match, so that a change in the bundler's output fails the build here, not a command later.
const LAZY_BUILTINS = ['node:child_process', 'node:fs/promises', 'node:perf_hooks'];
{
  const entry = join(out, 'main.cjs');
  let text = readFileSync(entry, 'utf8');
  const lazy = (id) => `__zcqLazyBuiltin(${JSON.stringify(id)})`;
  for (const id of LAZY_BUILTINS) {
    const req = `require(${JSON.stringify(id)})`;
    const top = new RegExp(`^let (node_\\w+) = ${req.replace(/[()./]/g, '\\$&')};$`, 'm');
    const m = top.exec(text);
    if (!m) throw new Error(`bundle-cli: dist/cli/bundle/main.cjs has no top-level \`let node_... = ${req};\` to make lazy`);
    if (text.includes(`${m[1]} = require_rolldown_runtime.__toESM(${m[1]}`)) throw new Error(`bundle-cli: ${id} is default-imported in the entry (interop copies its properties): import names from it, or drop it from LAZY_BUILTINS`);
    text = text.replace(m[0], `let ${m[1]} = ${lazy(id)};`);
  }
  const commander = 'const childProcess = require("node:child_process");';
  if (!text.includes(commander)) throw new Error(`bundle-cli: commander's \`${commander}\` not found in the entry`);
  text = text.replace(commander, `const childProcess = ${lazy('node:child_process')};`);
  const first = text.indexOf('\n') + 1;
  text = `${text.slice(0, first)}const __zcqLazyBuiltin = (id) => { let m; return new Proxy({}, { get: (_, k) => (m ??= require(id))[k] }); };\n${text.slice(first)}`;
  writeFileSync(entry, text);
}

// V8's code cache for the entry, read by bin/zcq's loadBundle: made by a real `zcq put` (into a throwaway
// spool), so that it holds the functions a put compiles, not only the top level. It fits only the node that
// made it (V8 checks version and flags and falls back to compiling), which is the node that runs the build.
const scratch = mkdtempSync(join(tmpdir(), 'zcq-code-cache-'));
try {
  const zcq = join(root, 'bin', 'zcq');
  const run = (args, env = {}) => {
    const r = spawnSync(process.execPath, [zcq, ...args], { cwd: scratch, encoding: 'utf8', env: { ...process.env, ...env } });
    if (r.status !== 0) throw new Error(`bundle-cli: zcq ${args.join(' ')} failed: ${r.stderr.trim()}`);
  };
  const spool = join(scratch, 'spool');
  run(['init', spool]);
  run(['--spool', spool, '--relaxed', 'put', './jobs.mjs#warm', '{"n":1}'], { ZCQ_WRITE_CODE_CACHE: join(out, 'main.cjs.cache') });
} catch (err) {
  // Without the cache the CLI compiles from the source (slower to start, same behaviour):
  // test/cli/bundle.test.ts fails on a build that made none.
  process.stderr.write(`${err.message}\nbundle-cli: no code cache made\n`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
