/**
 * The file server's clock, the only clock every machine on a shared mount agrees on (NFS rule 6). The
 * server stamps a file's mtime when it performs a write, so writing a probe file and reading its mtime back
 * (open+fstat, rule 7) tells "server now"; between probes we add local *monotonic* time, which no wall-clock
 * jump or skew can move. Lease ages and due times are judged with this clock only; a machine's own
 * `Date.now()` is never compared with a time another machine wrote.
 */
import { open, unlink } from 'node:fs/promises';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isGone } from '../errors.js';

export class ServerClock {
  private serverMs = 0;
  private monoAt = -Infinity;
  private readonly probe: string;
  /** True when the probe could not be written (a read-only spool) and this machine's clock stands in. */
  local = false;

  constructor(tmpDir: string, owner: string, private readonly maxAgeMs = 2_000) {
    this.probe = join(tmpDir, `.probe-${owner}`);
  }

  /** Write the probe and read back the server's time of that write. */
  async sample(): Promise<number> {
    const fh = await open(this.probe, 'w', 0o644);
    try {
      const before = performance.now();
      await fh.write(`${process.pid} ${before}\n`, 0);
      const st = await fh.stat();
      this.serverMs = st.mtimeMs;
      this.monoAt = performance.now();
    } finally {
      await fh.close();
    }
    return this.serverMs;
  }

  /** Server time now (estimate: last sample + monotonic time since). Resamples when the sample is old. */
  async now(): Promise<number> {
    if (performance.now() - this.monoAt > this.maxAgeMs) await this.sample();
    return this.serverMs + (performance.now() - this.monoAt);
  }

  /** Estimate without I/O; valid once `sample()` ran. */
  nowCached(): number {
    return this.serverMs + (performance.now() - this.monoAt);
  }

  /** Age by the server's clock of the file at `path` (fresh mtime via open+fstat); null when it is gone. */
  async ageOf(path: string): Promise<number | null> {
    return (await this.inspect(path, false))?.ageMs ?? null;
  }

  /** Age and content of a small file (a heartbeat) with one open; null when it is gone. */
  async readAged(path: string): Promise<{ ageMs: number; text: string } | null> {
    const r = await this.inspect(path, true);
    return r ? { ageMs: r.ageMs, text: r.text ?? '' } : null;
  }

  private async inspect(path: string, withText: boolean): Promise<{ ageMs: number; text?: string } | null> {
    // ENOENT/ESTALE from open or from fstat of the handle (another machine replaced or removed the file
    // meanwhile): look the name up again (NFS rule 9); null only when the name is really gone.
    for (let attempt = 1; ; attempt++) {
      let fh;
      try {
        fh = await open(path, 'r');
      } catch (err) {
        if (isGone(err)) { if (attempt < 3) continue; return null; }
        throw err;
      }
      try {
        const st = await fh.stat();
        const text = withText && st.isFile() ? await fh.readFile('utf8') : undefined;
        return { ageMs: (await this.now()) - st.mtimeMs, text };
      } catch (err) {
        if (isGone(err)) { if (attempt < 3) continue; return null; }
        throw err;
      } finally {
        await fh.close().catch(() => undefined);
      }
    }
  }

  disposeSync(): void {
    try { unlinkSync(this.probe); } catch { /* gone already */ }
  }

  async dispose(): Promise<void> {
    await unlink(this.probe).catch(() => undefined);
  }
}
