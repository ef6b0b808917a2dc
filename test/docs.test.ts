// zcq-spool(5)'s STATE CHANGES is the transition modules' headers, word for word and in order.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

describe('man pages', () => {
  it('zcq-spool(5) STATE CHANGES matches the headers of src/spool/transitions/*.ts', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/man-transitions.mjs'), '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
