// The bundled CLI (scripts/bundle-cli.mjs, run by `npm run build`): `zcq put` runs from dist/cli/bundle/
// and loads none of the separate compiled modules nor any package file, so that its start stays cheap;
// `zcq worker` runs the compiled modules themselves (its pool and its jobs' `import 'zcq'` need them).
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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

  it('zcq put does not load the Node modules it does not use (child_process, fs/promises, perf_hooks); a command that needs one loads it then', () => {
    const builtins = (args: string[]) => {
      const record = join(tempDir('zcq-builtins-'), 'builtins.txt');
      const r = spawnSync(process.execPath, ['-r', join(ROOT, 'test', 'cli', 'fixtures', 'record-builtins.cjs'), BIN, ...args], { cwd: FIXTURES, encoding: 'utf8', env: { ...process.env, ZCQ_RECORD_BUILTINS: record }, timeout: 30_000 });
      return { ...r, names: readFileSync(record, 'utf8').split('\n').filter(Boolean) };
    };
    const spool = newSpool();
    const put = builtins(['--spool', spool, '--relaxed', 'put', 'jobs.mjs#add', '1', '2']);
    expect(put.status, put.stderr).toBe(0);
    expect(idsIn(spool, 'pending')).toEqual([put.stdout.trim()]);
    expect(put.names).toContain('crypto'); // the check sees what a put does load
    // (net is loaded all the same when stdout is a pipe, as here: process.stdout is then a socket)
    for (const m of ['child_process', 'fs/promises', 'readline', 'perf_hooks']) expect(put.names, m).not.toContain(m);
    // A group that is not in /etc/group is asked of getent (child_process, loaded at that call): refused as unknown.
    const init = builtins(['init', join(tempDir('zcq-builtins-'), 's'), '--group', 'zcqnosuchgroup']);
    expect(init.status).toBe(2);
    expect(init.stderr).toMatch(/zcqnosuchgroup/);
    expect(init.names).toContain('child_process');
    // A group known only to NSS (a getent on PATH answers for it, as LDAP would): init finds its gid through the
    // lazily loaded child_process. A proxy that answered nothing would leave it unknown, as above.
    const bin = tempDir('zcq-getent-');
    const gid = process.getgid!();
    writeFileSync(join(bin, 'getent'), `#!/bin/sh\n[ "$1" = group ] && [ "$2" = zcqnssgroup ] && echo "zcqnssgroup:x:${gid}:" && exit 0\nexit 2\n`, { mode: 0o755 });
    const dir = join(tempDir('zcq-builtins-'), 's');
    const r = spawnSync(process.execPath, [BIN, 'init', dir, '--group', 'zcqnssgroup'], { cwd: FIXTURES, encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'zcq-spool.json'), 'utf8')).group).toBe('zcqnssgroup');
    expect(statSync(dir).gid).toBe(gid);
  });

  it('zcq worker runs the compiled modules, not the bundle', () => {
    const r = loads(['worker', '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.dist).toContain('cli/main.js');
    expect(r.dist.filter((f) => f.startsWith('cli/bundle/'))).toEqual([]);
  });

  it('a code cache that does not fit (another build, another node) is ignored: the bundle compiles from source', () => {
    // A copy of the launcher and the bundle, laid out as in the package, with the cache replaced.
    const copy = tempDir('zcq-bundle-copy-');
    mkdirSync(join(copy, 'bin'));
    cpSync(BIN, join(copy, 'bin', 'zcq'));
    cpSync(join(ROOT, 'bin', 'package.json'), join(copy, 'bin', 'package.json'));
    cpSync(join(ROOT, 'dist', 'cli', 'bundle'), join(copy, 'dist', 'cli', 'bundle'), { recursive: true });
    const cache = join(copy, 'dist', 'cli', 'bundle', 'main.cjs.cache');
    expect(readFileSync(cache).length, 'npm run build makes the cache').toBeGreaterThan(1000);
    writeFileSync(cache, Buffer.alloc(4096, 7));
    const spool = newSpool();
    const r = spawnSync(process.execPath, [join(copy, 'bin', 'zcq'), '--spool', spool, '--relaxed', 'put', 'jobs.mjs#add', '1', '2'], { cwd: FIXTURES, encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(idsIn(spool, 'pending')).toEqual([r.stdout.trim()]);
  });
});

