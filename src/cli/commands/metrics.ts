/**
 * `zcq metrics [--textfile DIR]`: the spool's Prometheus metrics once, for sites with no long-running
 * dashboard: on stdout, or written atomically to DIR/zcq.prom for node_exporter's textfile collector (run it
 * from cron). One reading has no "since": only the gauges are given; counters and the run-time histogram come
 * from `zcq dashboard`'s /metrics, which watches the spool over time.
 */
import type { Command } from 'commander';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../../errors.js';
import { openSpool } from '../common.js';

export function register(program: Command): void {
  program.command('metrics')
    .description("print the spool's Prometheus metrics (gauges), or write them to DIR/zcq.prom for node_exporter's textfile collector")
    .option('--textfile <dir>', 'write DIR/zcq.prom atomically (a temporary in DIR renamed over it) instead of printing')
    .action(async (o: { textfile?: string }, cmd: Command) => {
      if (o.textfile !== undefined) {
        let isDir = false;
        try { isDir = fs.statSync(o.textfile).isDirectory(); } catch { /* below */ }
        if (!isDir) throw new UsageError(`--textfile ${o.textfile}: no such folder; give node_exporter's --collector.textfile.directory`);
      }
      const spool = await openSpool(cmd);
      const { Overview } = await import('../../client/overview.js');
      const { SpoolMetrics } = await import('../../client/metrics.js');
      const metrics = new SpoolMetrics(undefined, { withCounters: false });
      metrics.update(await new Overview(spool).refresh());
      const { body } = await metrics.text();
      await spool.close();
      if (o.textfile === undefined) { process.stdout.write(body); return; }
      const { createExclusiveSync, renameOrGoneSync, unlinkQuietly, fsyncDirSync } = await import('../../spool/fsops.js');
      // Named so that the collector (which reads *.prom) never sees it half written.
      const tmp = createExclusiveSync(o.textfile, '.zcq.prom.', body, { durable: true, mode: 0o644 });
      if (!renameOrGoneSync(tmp, join(o.textfile, 'zcq.prom'))) { unlinkQuietly(tmp); throw new UsageError(`--textfile ${o.textfile}: could not rename into place`); }
      fsyncDirSync(o.textfile);
    });
}
