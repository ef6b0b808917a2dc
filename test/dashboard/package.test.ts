// The page's assets are plain files the build copies into dist/dashboard/assets/: the published package
// must carry them, or an installed `zcq dashboard` would fail to start.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.js';

describe('zcq dashboard in the package', () => {
  it('npm pack ships the page (index.html, app.js, style.css) where the server reads it', () => {
    const pack = spawnSync('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], { cwd: ROOT, encoding: 'utf8' });
    expect(pack.status, pack.stderr).toBe(0);
    const files: string[] = JSON.parse(pack.stdout)[0].files.map((f: { path: string }) => f.path);
    expect(files.filter((f) => f.startsWith('dist/dashboard/assets/')).sort()).toEqual(['dist/dashboard/assets/app.js', 'dist/dashboard/assets/index.html', 'dist/dashboard/assets/style.css']);
    expect(files).toContain('dist/dashboard/server.js');
  });
});
