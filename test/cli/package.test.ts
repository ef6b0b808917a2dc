// The published package as a consumer gets it: `npm pack` (of the current build), installed into an
// empty folder, its types compiled by tsc with skipLibCheck false. The types use Node's (NodeJS,
// node:fs), which is why @types/node is an optional peer dependency: with it the consumer compiles;
// without it the only errors are about Node's types — nothing else is missing.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, cleanupTemp, tempDir } from '../helpers.js';

afterAll(cleanupTemp);

const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');

describe('npm pack → a TypeScript consumer', () => {
  const dir = tempDir('zcq-consumer-');
  // --ignore-scripts: no prepack build here (tests run on the build `npm run build` made).
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' });

  it('ships LICENSE, no source maps, no sourceMappingURL comments', () => {
    expect(pack.status, pack.stderr).toBe(0);
    const files: string[] = JSON.parse(pack.stdout)[0].files.map((f: { path: string }) => f.path);
    expect(files).toContain('LICENSE');
    expect(files).toContain('dist/index.d.ts');
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('src/'))).toEqual([]);
    expect(readFileSync(join(ROOT, 'dist', 'index.js'), 'utf8')).not.toContain('sourceMappingURL');
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} zcq authors\n/);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.peerDependenciesMeta['@types/node']).toEqual({ optional: true });
  });

  it('its types compile in a consumer (skipLibCheck false) with @types/node, and need nothing else', () => {
    const tarball = join(dir, JSON.parse(pack.stdout)[0].filename);
    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }));
    const inst = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: app, encoding: 'utf8', timeout: 180_000 });
    expect(inst.status, inst.stderr).toBe(0);
    writeFileSync(join(app, 'main.ts'), [
      "import { Spool, currentJob, JobNotFoundError, type Job } from 'zcq';",
      "import * as testing from 'zcq/testing';",
      "const spool: Spool = await Spool.open('/tmp/none');",
      "const job: Job = await spool.put('./jobs.mjs#run', [1], { queue: 'mail' });",
      'const s = await spool.status();',
      'console.log(job.id, s.counts.pending, typeof currentJob, JobNotFoundError.name, Object.keys(testing));',
      '',
    ].join('\n'));
    const tsconfig = (types: string[]) => JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types }, include: ['main.ts'] });

    // Without @types/node: only Node's own types are missing.
    writeFileSync(join(app, 'tsconfig.json'), tsconfig([]));
    const bare = spawnSync(TSC, ['-p', app], { encoding: 'utf8' });
    expect(bare.status).not.toBe(0);
    const errors = bare.stdout.split('\n').filter((l) => /error TS/.test(l));
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e).toMatch(/Cannot find namespace 'NodeJS'|Cannot find module 'node:[a-z/_]+'|Cannot find name '(process|Buffer|NodeJS)'/);

    // With it (the optional peer), everything compiles.
    mkdirSync(join(app, 'node_modules', '@types'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', '@types', 'node'), join(app, 'node_modules', '@types', 'node'));
    writeFileSync(join(app, 'tsconfig.json'), tsconfig(['node']));
    const withNode = spawnSync(TSC, ['-p', app], { encoding: 'utf8' });
    expect(withNode.stdout + withNode.stderr).toBe('');
    expect(withNode.status).toBe(0);
  }, 240_000);
});
