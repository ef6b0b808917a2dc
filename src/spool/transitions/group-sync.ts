/**
 * Group commit of folder fsyncs. A durable state change is a rename into a folder followed by an fsync
 * of that folder; workers finishing many jobs at once would each pay a full fsync in turn. Here the
 * callers that arrive while an fsync of a folder is in flight wait for one more fsync of it, shared.
 *
 * Invariant: a caller's promise resolves only after an fsync of the folder that started after the call
 * (so after the caller's rename), and rejects if that fsync failed.
 */
import { fsyncDirOnPool } from '../fsops.js';

interface Slot { running?: Promise<void>; queued?: Promise<void> }

export class GroupSync {
  private readonly slots = new Map<string, Slot>();

  /** Resolves once a rename into `dir` made before this call is durable. */
  sync(dir: string): Promise<void> {
    let slot = this.slots.get(dir);
    if (!slot) { slot = {}; this.slots.set(dir, slot); }
    if (slot.queued) return slot.queued;
    const running = slot.running;
    if (!running) return this.start(dir, slot);
    const s = slot;
    const next = () => { s.queued = undefined; return this.start(dir, s); };
    s.queued = running.then(next, next);
    return s.queued;
  }

  private start(dir: string, slot: Slot): Promise<void> {
    const p: Promise<void> = fsyncDirOnPool(dir).finally(() => { if (slot.running === p) slot.running = undefined; });
    slot.running = p;
    return p;
  }
}
