// The bundled CLI (scripts/bundle-cli.mjs, run by `npm run build`): `zcq put` runs from dist/cli/bundle/
// and loads none of the separate compiled modules nor any package file, so that its start stays cheap;
// `zcq worker` runs the compiled modules themselves (its pool and its jobs' `import 'zcq'` need them).
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BIN, FIXTURES, ROOT, cleanupTemp, idsIn, newSpool, tempDir } from '../helpers.js';

afterAll(cleanupTemp);

const HOOK = join(ROOT, 'test', 'cli', 'fixtures', 'record-loads.mjs');
const DIST = pathToFileURL(join(ROOT, 'dist')).href + '/';
const MODULES = pathToFileURL(join(ROOT, 'node_modules')).href + '/';

/** Run `node --import HOOK bin/zcq ARGS`; the file: URLs of the modules it resolved, relative to dist/ or node_modules/. */
function loads(args: string[]): { code: number | null; stdout: string; stderr: string; dist: string[]; packages: string[] } {
  const record = join(tempDir('zcq-loads-'), 'loads.txt');
  const r = spawnSync(process.execPath, ['--import', HOOK, BIN, ...args], { cwd: FIXTURES, encoding: 'utf8', env: { ...process.env, ZCQ_RECORD_LOADS: record }, timeout: 30_000 });
  const urls = readFileSync(record, 'utf8').split('\n').filter(Boolean);
  return {
    code: r.status, stdout: r.stdout, stderr: r.stderr,
    dist: [...new Set(urls.filter((u) => u.startsWith(DIST)).map((u) => u.slice(DIST.length)))],
    packages: [...new Set(urls.filter((u) => u.startsWith(MODULES)).map((u) => u.slice(MODULES.length)))],
  };
}

describe('bundled CLI', () => {
  it('zcq put loads only the bundle (no compiled module apart, no package file) and puts the job', () => {
    const spool = newSpool();
    const r = loads(['--spool', spool, '--relaxed', 'put', 'jobs.mjs#add', '1', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(idsIn(spool, 'pending')).toEqual([r.stdout.trim()]);
    expect(r.dist.length).toBeGreaterThan(0);
    expect(r.dist.filter((f) => !f.startsWith('cli/bundle/'))).toEqual([]);
    expect(r.packages).toEqual([]);
  });

  it('zcq worker runs the compiled modules, not the bundle', () => {
    const r = loads(['worker', '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.dist).toContain('cli/main.js');
    expect(r.dist.filter((f) => f.startsWith('cli/bundle/'))).toEqual([]);
  });
});
