// writeSpare (src/spool/transitions/finish.ts): a record written into a spare inode is exactly the record,
// whatever the spare held before — it is written over and cut to length, not truncated first.
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { writeSpare } from '../../../dist/spool/transitions/finish.js';
import { cleanupTemp, tempDir } from '../../helpers.js';

afterAll(cleanupTemp);

describe('writeSpare', () => {
  for (const durable of [false, true]) {
    it(`leaves exactly the new text in a longer, a shorter and an equal spare (durable: ${durable})`, async () => {
      const dir = tempDir();
      const spare = join(dir, '.spare-x-1');
      const record = JSON.stringify({ zcq: 1, id: 'j1', result: 'r'.repeat(100) });
      for (const before of ['x'.repeat(5000), 'y', 'z'.repeat(Buffer.byteLength(record))]) {
        fs.writeFileSync(spare, before);
        const ino = fs.statSync(spare).ino;
        expect(await writeSpare(spare, record, durable)).toBe(true);
        expect(fs.readFileSync(spare, 'utf8')).toBe(record);
        expect(fs.statSync(spare).ino).toBe(ino); // the same inode, rewritten: no file was created
      }
      // Multi-byte text: the length cut is in bytes.
      const accented = JSON.stringify({ zcq: 1, id: 'j2', result: 'é'.repeat(50) });
      fs.writeFileSync(spare, 'w'.repeat(1000));
      expect(await writeSpare(spare, accented, durable)).toBe(true);
      expect(fs.readFileSync(spare, 'utf8')).toBe(accented);
    });
  }

  it('refuses a spare with a second name, and removes it', async () => {
    const dir = tempDir();
    const spare = join(dir, '.spare-x-2');
    fs.writeFileSync(spare, 'old');
    fs.linkSync(spare, join(dir, 'other'));
    expect(await writeSpare(spare, 'new', false)).toBe(false);
    expect(fs.existsSync(spare)).toBe(false);
    expect(fs.readFileSync(join(dir, 'other'), 'utf8')).toBe('old');
  });
});
