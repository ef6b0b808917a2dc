// Job modules are untrusted code paths named by untrusted files: a module exporting `then` must not hang
// its job, and a module missing at one moment must be found once it is deployed.
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runJob, type RunTask } from '../../dist/worker/runner.js';
import { createRefResolver, realRoots } from '../../dist/job/resolve.js';
import { ModuleRefError } from '../../dist/errors.js';
import { cleanupTemp, readJob, tempDir, zcq } from '../helpers.js';

afterAll(cleanupTemp);

const THENABLE_ESM = `export function then() { /* never calls back */ }\nexport function run(x) { return { ran: x }; }\n`;
const THENABLE_CJS = `exports.then = function () { /* never calls back */ };\nexports.run = function (x) { return { cjs: x }; };\n`;

function task(file: string, exportName: string, args: unknown[] = []): RunTask {
  return { url: pathToFileURL(file).href, exportName, args, ctx: { id: 'j1', fn: `./x#${exportName}`, queue: 'default', attempt: 1, spool: tempDir() } };
}

/** runJob, or 'hung' if it has not settled within `ms`. */
async function settle(t: RunTask, ms = 3000) {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((res) => { timer = setTimeout(() => res('hung'), ms); });
  try { return await Promise.race([runJob(t, new AbortController()), hung]); } finally { clearTimeout(timer); }
}

describe('a job module that exports then', () => {
  it('runs its named export (ES module and CommonJS), the never-resolving then untouched', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'thenable.mjs'), THENABLE_ESM);
    writeFileSync(join(root, 'thenable.cjs'), THENABLE_CJS);
    expect(await settle(task(join(root, 'thenable.mjs'), 'run', [7]))).toEqual({ ok: true, json: '{"ran":7}' });
    expect(await settle(task(join(root, 'thenable.cjs'), 'run', [8]))).toEqual({ ok: true, json: '{"cjs":8}' });
    // Again: a loaded module's box is kept (runner.ts), and the kept box must not be assimilated either.
    expect(await settle(task(join(root, 'thenable.mjs'), 'run', [9]))).toEqual({ ok: true, json: '{"ran":9}' });
    expect(await settle(task(join(root, 'thenable.cjs'), 'run', [10]))).toEqual({ ok: true, json: '{"cjs":10}' });
  });

  it('loads file names that need escaping in a URL, and reports a missing import without internals', async () => {
    const root = tempDir();
    const odd = join(root, `we ird'"#%.mjs`);
    writeFileSync(odd, 'export const run = () => "odd";\n');
    expect(await settle(task(odd, 'run'))).toEqual({ ok: true, json: '"odd"' });
    writeFileSync(join(root, 'broken.mjs'), 'import "./gone.mjs";\nexport const run = () => 1;\n');
    const out = await settle(task(join(root, 'broken.mjs'), 'run'));
    expect(out).toMatchObject({ ok: false, error: { name: 'ModuleLoadError', permanent: true } });
    const message = (out as { error: { message: string } }).error.message;
    expect(message).toMatch(/cannot load file:.*broken\.mjs: .*gone\.mjs/);
    expect(message).not.toContain('data:');
  });

  it('a result nested deeper than a job file may hold fails the job instead of writing an unreadable file', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'deep.mjs'), 'export function run(n) { let v = 0; for (let i = 0; i < n; i++) v = [v]; return v; }\n');
    expect(await settle(task(join(root, 'deep.mjs'), 'run', [63]))).toMatchObject({ ok: true });
    expect(await settle(task(join(root, 'deep.mjs'), 'run', [64]))).toMatchObject({ ok: false, error: { name: 'ResultNotSerializable', message: expect.stringMatching(/nested deeper than 63 levels/) } });
  });

  it('through the real worker: the job finishes in done/ with its result', () => {
    const root = tempDir();
    writeFileSync(join(root, 'thenable.mjs'), THENABLE_ESM);
    const spool = join(tempDir(), 'spool');
    expect(zcq(null, ['init', spool]).code).toBe(0);
    const put = zcq(spool, ['put', './thenable.mjs#run', '--args-json', '[5]'], { cwd: root });
    expect(put.code, put.stderr).toBe(0);
    const id = put.stdout.trim();
    const w = zcq(spool, ['worker', '--root', root, '--exit-when-idle', '--poll', '100ms'], { cwd: root, timeout: 30_000 });
    expect(w.code, w.stderr).toBe(0);
    const done = findJobFile(spool, 'done', id);
    expect(done, `job ${id} should be in done/`).toBeDefined();
    expect(readJob(done!).result).toEqual({ ran: 5 });
  });
});

describe('createRefResolver', () => {
  it('does not remember a missing module: one deployed after the failure is found by the next look-up', async () => {
    const root = tempDir();
    const resolver = createRefResolver(await realRoots([root]));
    await expect(resolver.resolve('./later.mjs#run')).rejects.toThrow(ModuleRefError);
    await expect(resolver.resolve('./later.mjs#run')).rejects.toThrow(/not found under the worker roots/);
    expect(resolver.size).toBe(0);
    writeFileSync(join(root, 'later.mjs'), 'export const run = () => 1;\n');
    const found = await resolver.resolve('./later.mjs#run');
    expect(found.exportName).toBe('run');
    expect(found.url).toBe(pathToFileURL(join(await realRoots([root]).then((r) => r[0]!), 'later.mjs')).href);
  });

  it('remembers successes, at most max of them, forgetting the least recently used', async () => {
    const root = tempDir();
    for (const n of ['a', 'b', 'c']) writeFileSync(join(root, `${n}.mjs`), 'export const run = () => 1;\n');
    const resolver = createRefResolver(await realRoots([root]), { max: 2 });
    await resolver.resolve('./a.mjs#run');
    await resolver.resolve('./b.mjs#run');
    await resolver.resolve('./a.mjs#run'); // a is now the most recently used: c pushes b out
    await resolver.resolve('./c.mjs#run');
    expect(resolver.size).toBe(2);
    // Remembered: still resolves after its file is gone. Forgotten: looked up again, and missing.
    unlinkSync(join(root, 'a.mjs'));
    unlinkSync(join(root, 'b.mjs'));
    await expect(resolver.resolve('./a.mjs#run')).resolves.toMatchObject({ exportName: 'run' });
    await expect(resolver.resolve('./b.mjs#run')).rejects.toThrow(ModuleRefError);
    resolver.clear();
    expect(resolver.size).toBe(0);
    await expect(resolver.resolve('./a.mjs#run')).rejects.toThrow(ModuleRefError);
  });

  it('cached: a remembered reference without a look-up, counted as a use; undefined for one not remembered, which it does not look up', async () => {
    const root = tempDir();
    for (const n of ['a', 'b', 'c']) writeFileSync(join(root, `${n}.mjs`), 'export const run = () => 1;\n');
    const resolver = createRefResolver(await realRoots([root]), { max: 2 });
    expect(resolver.cached('./a.mjs#run')).toBeUndefined();
    expect(resolver.size).toBe(0);
    const a = await resolver.resolve('./a.mjs#run');
    await resolver.resolve('./b.mjs#run');
    expect(resolver.cached('./a.mjs#run')).toBe(a); // a is now the most recently used: c pushes b out
    await resolver.resolve('./c.mjs#run');
    expect(resolver.cached('./a.mjs#run')).toBe(a);
    expect(resolver.cached('./b.mjs#run')).toBeUndefined();
  });

  it('still refuses what resolveRef refuses (a symlink out of the roots), and judges it again when fixed', async () => {
    const root = tempDir();
    const outside = tempDir();
    writeFileSync(join(outside, 'evil.mjs'), 'export const run = () => 1;\n');
    const { symlinkSync } = await import('node:fs');
    symlinkSync(join(outside, 'evil.mjs'), join(root, 'mod.mjs'));
    const resolver = createRefResolver(await realRoots([root]));
    await expect(resolver.resolve('./mod.mjs#run')).rejects.toThrow(/outside the worker roots/);
    unlinkSync(join(root, 'mod.mjs'));
    writeFileSync(join(root, 'mod.mjs'), 'export const run = () => 2;\n');
    await expect(resolver.resolve('./mod.mjs#run')).resolves.toMatchObject({ exportName: 'run' });
  });
});

/** Where a finished job's file is: format 1 keeps done/ID.json, format 2 done/QUEUE/ID.json. */
function findJobFile(spool: string, state: string, id: string): string | undefined {
  const flat = join(spool, state, `${id}.json`);
  if (existsSync(flat)) return flat;
  const dir = join(spool, state);
  if (!existsSync(dir)) return undefined;
  for (const q of readdirSync(dir)) {
    const p = join(dir, q, `${id}.json`);
    if (existsSync(p)) return p;
  }
  return undefined;
}


