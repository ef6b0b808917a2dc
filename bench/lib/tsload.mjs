// Import a TypeScript test helper (e.g. test/multihost/rig.ts) from a plain-node bench script, so that the
// bench drives the same rig as the tests instead of a copy of it. Node 20 cannot run .ts files, so the file
// and the relative .ts files it imports are transpiled (TypeScript's transpileModule: types stripped, nothing
// checked) into a temp folder, and their package imports (e.g. 'vitest') rewritten to absolute URLs resolved
// from the file's own folder, since the temp copy is outside the project.
import { mkdtempSync, mkdirSync, rmSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const IMPORT_RE = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])([^'"]+)\2/g;

/** Transpile `file` (absolute .ts path) and its relative imports into a temp folder; import the result. */
export async function importTs(file) {
  const require = createRequire(import.meta.url);
  const ts = require('typescript');
  const out = mkdtempSync(join(tmpdir(), 'zcq-bench-ts-'));
  const root = dirname(file);
  const done = new Set();
  const emit = (src) => {
    if (done.has(src)) return;
    done.add(src);
    const text = readFileSync(src, 'utf8');
    const js = ts.transpileModule(text, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
      fileName: src,
    }).outputText;
    const rewritten = js.replace(IMPORT_RE, (all, kw, q, spec) => {
      if (spec.startsWith('node:')) return all;
      if (spec.startsWith('.')) {
        const ts2 = resolve(dirname(src), spec.replace(/\.js$/, '.ts'));
        if (existsSync(ts2)) {
          emit(ts2);
          return `${kw}${q}${spec.replace(/\.(js|ts)$/, '.mjs')}${q}`;
        }
        return `${kw}${q}${pathToFileURL(resolve(dirname(src), spec)).href}${q}`;
      }
      // A package (the project's own node_modules serve the bench and the tests alike).
      if (isBuiltin(spec)) return all;
      return `${kw}${q}${import.meta.resolve(spec)}${q}`;
    });
    const dest = join(out, relative(root, src)).replace(/\.ts$/, '.mjs');
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, rewritten);
  };
  emit(file);
  try {
    return await import(pathToFileURL(join(out, relative(root, file)).replace(/\.ts$/, '.mjs')).href);
  } finally {
    rmSync(out, { recursive: true, force: true }); // loaded: the copy is no longer needed
  }
}
