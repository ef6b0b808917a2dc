// The folders of src/ form layers (the dashboard, a server, sits below the command line that starts it): a folder imports only from folders below it (and from the files at
// src/'s top, errors.ts, log.ts, text.ts, defaults.ts). The on-disk spool knows nothing of the scheduler,
// the worker, the client facade or the command line; no import cycle between folders.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

const LAYERS = ['job', 'spool', 'schedule', 'worker', 'client', 'testing', 'dashboard', 'cli'];
const SRC = join(ROOT, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('src/ layering', () => {
  it('every folder imports only from lower folders', () => {
    const wrong: string[] = [];
    for (const file of files(SRC)) {
      const rel = relative(SRC, file);
      const own = rel.split('/')[0]!;
      if (!LAYERS.includes(own)) continue;
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from|import\()\s*'(\.[^']+)'/g)) {
        const target = relative(SRC, join(file, '..', m[1]!));
        const folder = target.includes('/') ? target.split('/')[0]! : null;
        if (folder === null || folder === own) continue;
        if (!LAYERS.includes(folder)) { wrong.push(`${rel} imports ${m[1]} (outside src/?)`); continue; }
        if (LAYERS.indexOf(folder) > LAYERS.indexOf(own)) wrong.push(`${rel} (${own}) imports ${m[1]} (${folder}, a higher layer)`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
