/**
 * The scheduler's share of a worker's periodic pass, and what says whether there is anything to schedule.
 * The schedule store (store.ts) and what it imports — cron-parser, proper-lockfile — are loaded by the
 * first pass that finds a schedule file, not at the worker's start: in a spool with no schedule that is
 * ~20 module files and 25–60 ms of CPU at every worker's start (bench/PROFILE.md section 14).
 */
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { listNamesChecked } from '../spool/fsops.js';
import type { Layout } from '../spool/layout.js';
import type { ServerClock } from '../spool/server-clock.js';

/** Where the schedules are: cron/schedules/NAME.json. */
export function schedulesDirOf(l: Layout): string {
  return join(l.cron, 'schedules');
}

/** A schedule's file name (readers skip dot-names: temporaries and a file system's own). */
export function isScheduleFileName(name: string): boolean {
  return name.endsWith('.json') && !name.startsWith('.');
}

export interface SchedulerHost { layout: Layout; durable: boolean; clock: ServerClock; log: Logger; id: string; wake(): void }

/** A worker's scheduler duty: each pass, the due ticks of every schedule become jobs (store.ts runDue). */
export function schedulerDuty(): (w: SchedulerHost) => Promise<void> {
  let run: ((w: SchedulerHost) => Promise<void>) | undefined;
  return async (w) => {
    if (!run) {
      // null: something other than a folder there (a co-user's symlink or FIFO); the store's pass says what.
      const names = await listNamesChecked(schedulesDirOf(w.layout));
      if (names !== null && !names.some(isScheduleFileName)) return;
      const { CronStore } = await import('./store.js');
      run = CronStore.duty();
    }
    await run(w);
  };
}
