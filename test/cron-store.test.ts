// The scheduler pass with an injected clock: outages and their missed-tick policies, overlap, and
// many schedulers racing on the same ticks (exactly one job per tick).
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CronStore } from '../dist/schedule/store.js';
import { onStep } from '../dist/spool/transitions/steps.js';
import { initSpool, queueDir, type Layout } from '../dist/spool/layout.js';
import { cleanupTemp, names, tempDir } from './helpers.js';

afterAll(cleanupTemp);

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const clockAt = (ms: number) => ({ now: async () => ms });
const quiet = () => undefined;

/** The runs a schedule published: pending/<its queue>/ (the default queue here). */
const pendingOf = (layout: Layout, queue = 'default') => names(queueDir(layout, 'pending', queue));

async function storeWith(spec: Record<string, unknown>) {
  const layout = initSpool(join(tempDir(), 'spool'));
  const store = new CronStore(layout, false);
  await store.add({ name: 's', expr: '* * * * *', fn: './jobs.mjs#add', args: [1, 1], ...spec } as never, T0);
  return { layout, store };
}

describe('missed ticks after all workers were down for an hour (per-minute schedule)', () => {
  it("'once' (default) runs once for the missed window", async () => {
    const { layout, store } = await storeWith({});
    expect(await store.runDue(clockAt(T0 + HOUR) as never, quiet, 't')).toBe(1);
    expect(pendingOf(layout)).toEqual(['s@20261126T130000.000Z.json']);
    expect(await store.lastTick('s')).toBe(T0 + HOUR);
    // the next pass a minute later is back to normal
    expect(await store.runDue(clockAt(T0 + HOUR + 60_000) as never, quiet, 't')).toBe(1);
  });

  it("'all' runs the most recent missed ticks up to the cap, never a burst", async () => {
    const { layout, store } = await storeWith({ missed: 'all', cap: 10 });
    expect(await store.runDue(clockAt(T0 + HOUR) as never, quiet, 't')).toBe(10);
    expect(pendingOf(layout).sort()[0]).toBe('s@20261126T125100.000Z.json');
  });

  it("'skip' runs nothing for an old window", async () => {
    const { layout, store } = await storeWith({ missed: 'skip' });
    expect(await store.runDue(clockAt(T0 + HOUR + 30_000) as never, quiet, 't')).toBe(1);
    // only the tick within the grace (13:00, 30 s ago) runs, none of the hour before
    expect(pendingOf(layout)).toEqual(['s@20261126T130000.000Z.json']);
    // an hourly schedule down for 3.5 h: its latest tick is 30 min old, beyond the grace: nothing runs
    const { store: s2, layout: l2 } = await storeWith({ missed: 'skip', expr: '0 * * * *' });
    expect(await s2.runDue(clockAt(T0 + 3.5 * HOUR) as never, quiet, 't')).toBe(0);
    expect(pendingOf(l2)).toEqual([]);
    expect(await s2.lastTick('s')).toBe(T0 + 3 * HOUR);
  });

  it('a clock that goes back never re-runs a tick: lastTick only moves forward', async () => {
    const { layout, store } = await storeWith({});
    await store.runDue(clockAt(T0 + 5 * 60_000) as never, quiet, 't');
    const before = pendingOf(layout).length;
    expect(await store.runDue(clockAt(T0 + 2 * 60_000) as never, quiet, 't')).toBe(0);
    expect(pendingOf(layout).length).toBe(before);
    expect(await store.lastTick('s')).toBe(T0 + 5 * 60_000);
  });
});

describe('where runs go', () => {
  it("a schedule's runs go to pending/<its queue>/, nowhere else", async () => {
    const { layout, store } = await storeWith({ queue: 'reports' });
    expect(await store.runDue(clockAt(T0 + 2 * 60_000) as never, quiet, 't')).toBe(1);
    expect(pendingOf(layout, 'reports')).toEqual(['s@20261126T120200.000Z.json']);
    expect(names(layout.pending)).toEqual(['reports']);
  });
});

describe('overlap and racing schedulers', () => {
  it("overlap 'skip' does not start a tick while the previous run is pending", async () => {
    const { layout, store } = await storeWith({ overlap: 'skip' });
    expect(await store.runDue(clockAt(T0 + 60_000) as never, quiet, 't')).toBe(1);
    expect(await store.runDue(clockAt(T0 + 120_000) as never, quiet, 't')).toBe(0);
    expect(pendingOf(layout)).toHaveLength(1);
  });

  it('a pass that listed a schedule before `zcq cron rm` removed it publishes none of its past ticks again', async () => {
    const { layout, store } = await storeWith({ missed: 'all', cap: 50 });
    // Past the schedule's creation (stamped with this machine's time), so that counting from it would find ticks.
    const later = Date.now() + 10 * 60_000;
    expect(await store.runDue(clockAt(later) as never, quiet, 't')).toBe(50);
    // The runs ran: nothing left in pending/ to make a second publication fail.
    for (const n of pendingOf(layout)) rmSync(join(queueDir(layout, 'pending', 'default'), n));
    // A scheduler lists the schedule; `zcq cron rm` removes schedule, state and run markers; then that
    // scheduler's pass goes on with what it listed.
    const listed = await store.list();
    await store.remove('s');
    const lagging = new CronStore(layout, false);
    (lagging as unknown as { list: () => Promise<unknown> }).list = async () => listed;
    expect(await lagging.runDue(clockAt(later + 1000) as never, quiet, 't')).toBe(0);
    expect(pendingOf(layout)).toEqual([]);
  });

  it('`zcq cron rm` landing while a pass publishes: a pass that finds the schedule gone before its marker publishes nothing; one already past that look publishes only the tick it found due, never one that already ran', async () => {
    const logged: string[] = [];
    const log = (event: string, f?: Record<string, unknown>) => { logged.push(`${event} ${JSON.stringify(f ?? {})}`); };
    const later = Date.now() + 10 * 60_000;
    // The removal lands before the pass's look (it listed the schedule and read its state before).
    const { layout, store } = await storeWith({});
    const listed = await store.list();
    await store.remove('s');
    const lagging = new CronStore(layout, false);
    (lagging as unknown as { list: () => Promise<unknown> }).list = async () => listed;
    (lagging as unknown as { lastTick: () => Promise<number> }).lastTick = async () => T0;
    expect(await lagging.runDue(clockAt(later) as never, log, 't')).toBe(0);
    expect(pendingOf(layout)).toEqual([]);
    // ... or at its step 0 (its job in a temporary, its marker not linked yet): that one due tick goes through.
    const c = await storeWith({});
    onStep((t, k) => { if (t === 'putOnce' && k === 0) { onStep(); removeNow(c.layout, 's'); } });
    try {
      expect(await c.store.runDue(clockAt(later) as never, log, 't')).toBe(1);
    } finally { onStep(); }
    expect(pendingOf(c.layout)).toHaveLength(1);
    expect(logged.filter((l) => l.startsWith('cron.error'))).toEqual([]);
    // Only the markers' folder goes (someone's rm -r), the schedule stays: that is an error, logged.
    const b = await storeWith({});
    onStep((t, k) => { if (t === 'putOnce' && k === 0) { onStep(); rmSync(join(b.layout.cron, 'runs', 's'), { recursive: true }); } });
    try {
      expect(await b.store.runDue(clockAt(later) as never, log, 't')).toBe(0);
    } finally { onStep(); }
    expect(logged.filter((l) => l.startsWith('cron.error'))).toHaveLength(1);
    expect(logged.find((l) => l.startsWith('cron.error'))).toMatch(/ENOENT/);
  });

  it('a pass that read the last tick before another scheduler published the next one, and goes on after `zcq cron rm`: that tick is not published again', async () => {
    // The rig on GlusterFS replica 2 (three schedulers with skewed clocks, whose locks do not exclude each
    // other): one per-second tick ran twice, published again after the removal took its marker away.
    const { layout, store } = await storeWith({});
    const tick = T0 + 60_000;
    // A scheduler publishes the tick; its job runs (nothing left in pending/ to make a second put fail).
    expect(await store.runDue(clockAt(tick + 500) as never, quiet, 't')).toBe(1);
    for (const n of pendingOf(layout)) rmSync(join(queueDir(layout, 'pending', 'default'), n));
    // The lagging pass listed the schedule and read its state before that, and goes on after `zcq cron rm`.
    const listed = await store.list();
    await store.remove('s');
    const lagging = new CronStore(layout, false);
    (lagging as unknown as { list: () => Promise<unknown> }).list = async () => listed;
    (lagging as unknown as { lastTick: () => Promise<number> }).lastTick = async () => T0;
    expect(await lagging.runDue(clockAt(tick + 600) as never, quiet, 't')).toBe(0);
    expect(pendingOf(layout)).toEqual([]);
    // The same when the removal lands after the pass's last look at the schedule, just before the marker
    // link: the marker is still there (EEXIST).
    const c = await storeWith({});
    expect(await c.store.runDue(clockAt(tick + 500) as never, quiet, 't')).toBe(1);
    for (const n of pendingOf(c.layout)) rmSync(join(queueDir(c.layout, 'pending', 'default'), n));
    const lagging2 = new CronStore(c.layout, false);
    (lagging2 as unknown as { lastTick: () => Promise<number> }).lastTick = async () => T0;
    onStep((t, k) => { if (t === 'putOnce' && k === 0) { onStep(); removeNow(c.layout, 's'); } });
    try {
      expect(await lagging2.runDue(clockAt(tick + 600) as never, quiet, 't')).toBe(0);
    } finally { onStep(); }
    expect(pendingOf(c.layout)).toEqual([]);
  });

  it('ten schedulers on the same ticks create each job once', async () => {
    const { layout } = await storeWith({ missed: 'all', cap: 50 });
    const stores = Array.from({ length: 10 }, () => new CronStore(layout, false));
    const created = await Promise.all(stores.map((s) => s.runDue(clockAt(T0 + 30 * 60_000) as never, quiet, 't')));
    // 30 ticks, whoever created them
    expect(created.reduce((a, b) => a + b, 0)).toBe(30);
    expect(pendingOf(layout)).toHaveLength(30);
  });
});

describe('a pass with nothing due leaves the folders alone', () => {
  // Every worker runs a pass each second: on a network mount, a lock file made and removed per folder per
  // pass is two round trips that change the folder (and, for N workers, N times the server's work).
  it('the spool root and cron/ keep their mtime, and no .mkdir lock is made', async () => {
    const { layout, store } = await storeWith({ expr: '0 0 1 1 *' });
    await store.runDue(clockAt(T0) as never, quiet, 't');
    const before = [layout.root, layout.cron, join(layout.cron, 'state'), join(layout.cron, 'runs')].map((d) => statSync(d).mtimeMs);
    await new Promise((r) => setTimeout(r, 20)); // file times move in clock ticks of a few ms (ext4, tmpfs): 20 ms lets any change show
    for (let i = 0; i < 3; i++) expect(await store.runDue(clockAt(T0 + i * 1000) as never, quiet, 't')).toBe(0);
    const after = [layout.root, layout.cron, join(layout.cron, 'state'), join(layout.cron, 'runs')].map((d) => statSync(d).mtimeMs);
    expect(after).toEqual(before);
  });
});

/** What `zcq cron rm` does to the files (CronStore.remove), synchronously: the schedule and its state; the run markers stay. */
function removeNow(layout: Layout, name: string): void {
  rmSync(join(layout.cron, 'schedules', `${name}.json`));
  rmSync(join(layout.cron, 'state', `${name}.json`), { force: true });
}
