// quarantine: the entry moves as itself under a name reserved exclusively; its reason is one escaped line
// written without ever following a planted symlink.
import { afterAll, describe, expect, it } from 'vitest';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { quarantine as viaOldPath } from '../../dist/spool/quarantine.js';
import { quarantine, escapeLine, safeQuarantineName } from '../../dist/spool/transitions/quarantine.js';
import { layoutOf } from '../../dist/spool/layout.js';
import { cleanupTemp, tempDir } from '../helpers.js';
import { distUrl, mkfifo, mksock, runNode, sha256, victim } from './util.js';

afterAll(cleanupTemp);

function spool() {
  const base = tempDir('zcq-quar-');
  const layout = layoutOf(join(base, 'spool'));
  for (const d of ['tmp', 'quarantine', 'pending', 'claimed']) mkdirSync(join(layout.root, d), { recursive: true });
  return { base, layout, v: victim(base) };
}

describe('quarantine', () => {
  it('moves a file with its reason beside it; the old module path re-exports the same function', async () => {
    const { layout } = spool();
    expect(viaOldPath).toBe(quarantine);
    const p = join(layout.pending, 'bad.json');
    writeFileSync(p, 'not json');
    const to = await quarantine(layout, p, 'bad.json', 'not valid JSON');
    expect(to).toBe(join(layout.quarantine, 'bad.json'));
    expect(readFileSync(to!, 'utf8')).toBe('not json');
    const reason = readFileSync(`${to}.reason`, 'utf8');
    expect(reason).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z not valid JSON \(was .*\/pending\/bad\.json\)\n$/);
    expect(readdirSync(layout.tmp)).toEqual([]);
  });

  it('never replaces an existing quarantined entry: the second gets a fresh name', async () => {
    const { layout } = spool();
    writeFileSync(join(layout.quarantine, 'x.json'), 'first');
    writeFileSync(join(layout.pending, 'x.json'), 'second');
    const to = await quarantine(layout, join(layout.pending, 'x.json'), 'x.json', 'dup');
    expect(to).toMatch(/\/quarantine\/x\.json\.[0-9a-f]{12}$/);
    expect(readFileSync(join(layout.quarantine, 'x.json'), 'utf8')).toBe('first');
    expect(readFileSync(to!, 'utf8')).toBe('second');
  });

  it('writes the reason over a planted symlink without following it', async () => {
    const { layout, v } = spool();
    symlinkSync(v.path, join(layout.quarantine, 'j.json.reason'));
    writeFileSync(join(layout.pending, 'j.json'), '{');
    const to = await quarantine(layout, join(layout.pending, 'j.json'), 'j.json', 'torn');
    expect(to).toBe(join(layout.quarantine, 'j.json'));
    expect(lstatSync(`${to}.reason`).isFile()).toBe(true);
    expect(readFileSync(`${to}.reason`, 'utf8')).toMatch(/ torn \(was /);
    expect(sha256(v.path)).toBe(v.hash);
  });

  it('keeps the reason on one line: control characters and newlines escaped, at most 200 bytes of the reason', async () => {
    const { layout } = spool();
    const evil = 'a\nFAKE 2026-01-01T00:00:00Z job.done\r\x1b[31m\\.json';
    const p = join(layout.pending, evil);
    writeFileSync(p, 'x');
    const long = `Unexpected token in JSON: ${'Z'.repeat(5_000)}`;
    const to = await quarantine(layout, p, evil, `${long}\nsecond line`);
    expect(to).toBe(join(layout.quarantine, 'a_FAKE_2026-01-01T00_00_00Z_job.done___31m_.json'));
    const reason = readFileSync(`${to}.reason`, 'utf8');
    expect(reason.split('\n')).toHaveLength(2); // one line and the final newline
    expect(reason).toContain('(was ' + layout.pending + '/a\\x0aFAKE 2026-01-01T00:00:00Z job.done\\x0d\\x1b[31m\\x5c.json)');
    expect((reason.match(/Z/g) ?? []).length).toBeLessThan(210);
    const quoted = reason.slice(reason.indexOf('Unexpected'), reason.indexOf(' (was '));
    expect(Buffer.byteLength(quoted.replace('…', ''))).toBeLessThanOrEqual(200);
    expect(escapeLine('a\u2028b\x85')).toBe('a\\u2028b\\x85');
    expect(safeQuarantineName('../..')).toBe('unnamed');
    expect(safeQuarantineName('x.reason')).toBe('x.reason_');
  });

  it('moves a lease "folder" that is a symlink as the link itself, never its target', async () => {
    const { base, layout, v } = spool();
    const home = join(base, 'home');
    mkdirSync(home);
    writeFileSync(join(home, 'id_rsa'), 'secret');
    const lease = join(layout.claimed, 'host.1.abc');
    symlinkSync(home, lease);
    const to = await quarantine(layout, lease, 'host.1.abc', 'lease folder is a symbolic link');
    expect(lstatSync(to!).isSymbolicLink()).toBe(true);
    expect(readlinkSync(to!)).toBe(home);
    expect(readdirSync(home)).toEqual(['id_rsa']);
    expect(readFileSync(join(home, 'id_rsa'), 'utf8')).toBe('secret');
    expect(sha256(v.path)).toBe(v.hash);
  });

  it('moves a real folder, a FIFO and a socket as themselves, without blocking', async () => {
    const { layout } = spool();
    mkdirSync(join(layout.claimed, 'lease'));
    writeFileSync(join(layout.claimed, 'lease', '1.j.json'), '{}');
    const fifo = join(layout.pending, 'fifo.json');
    mkfifo(fifo);
    mksock(join(layout.pending, 'sock.json'));
    // Existing entries with those names: the reservations go to fresh names.
    mkdirSync(join(layout.quarantine, 'lease'));
    writeFileSync(join(layout.quarantine, 'lease', 'keep'), 'k');
    const r = runNode(`
      const { quarantine } = await import(${JSON.stringify(distUrl('spool/transitions/quarantine.js'))});
      const { layoutOf } = await import(${JSON.stringify(distUrl('spool/layout.js'))});
      const l = layoutOf(${JSON.stringify(layout.root)});
      out({
        dir: await quarantine(l, l.claimed + '/lease', 'lease', 'dead lease'),
        fifo: await quarantine(l, l.pending + '/fifo.json', 'fifo.json', 'is a FIFO, not a regular file'),
        sock: await quarantine(l, l.pending + '/sock.json', 'sock.json', 'is a socket, not a regular file'),
        gone: await quarantine(l, l.pending + '/gone.json', 'gone.json', 'x'),
      });`);
    expect(r.timedOut).toBe(false);
    expect(r.ok, r.stderr).toBe(true);
    expect(r.value.dir).toMatch(/\/quarantine\/lease\.[0-9a-f]{12}$/);
    expect(readdirSync(r.value.dir)).toEqual(['1.j.json']);
    expect(readdirSync(join(layout.quarantine, 'lease'))).toEqual(['keep']);
    expect(lstatSync(r.value.fifo).isFIFO()).toBe(true);
    expect(lstatSync(r.value.sock).isSocket()).toBe(true);
    expect(r.value.gone).toBeNull();
    expect(readFileSync(`${r.value.fifo}.reason`, 'utf8')).toMatch(/is a FIFO, not a regular file/);
    // No placeholder left behind by the call that found nothing to move.
    expect(readdirSync(layout.quarantine).filter((n) => n.startsWith('gone'))).toEqual([]);
    expect(readdirSync(layout.pending)).toEqual([]);
  });
});
