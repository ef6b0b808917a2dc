/**
 * `spool.quota`: named limits across every machine (spool/quota.ts: the files; transitions/quota-take.ts and
 * quota-release.ts: the slots). `set` checks the name and the limit before anything is written (UsageError,
 * exit 2 on the command line); running workers apply a change within a poll.
 */
import type { Layout } from '../spool/layout.js';
import { QUEUE_NAME } from '../job/format.js';
import { UsageError } from '../errors.js';
import { checkQuotaName, listQuotas, parseLimit, readLimit, readQueueQuotas, removeLimit, setLimit, setQueueQuotas, slotsOf, type QuotaUse } from '../spool/quota.js';

export type { QuotaUse } from '../spool/quota.js';

export class Quotas {
  constructor(private readonly layout: Layout, private readonly durable: boolean) {}

  /** Set quota NAME to at most `limit` jobs at once (0..10000). */
  async set(name: string, limit: number | string): Promise<QuotaUse> {
    checkQuotaName(name);
    const n = parseLimit(limit);
    await setLimit(this.layout, name, n, this.durable);
    return this.get(name);
  }

  /** One quota's limit (null: none set) and use. */
  get(name: string): QuotaUse {
    checkQuotaName(name);
    const { limit, problem } = readLimit(this.layout, name);
    const used = slotsOf(this.layout, name).length;
    return { name, limit, used, holders: listQuotas(this.layout).find((q) => q.name === name)?.holders ?? [], ...(problem ? { problem } : {}) };
  }

  /** Every quota: its limit and its use. */
  ls(): QuotaUse[] {
    return listQuotas(this.layout);
  }

  /**
   * The quotas every job of `queue` holds besides its own (null or []: none). Workers apply a change at
   * their next poll, to pending jobs too. (`zcq config set queue:QUEUE quotas=a,b`.)
   */
  async setQueueDefault(queue: string, quotas: string[] | null): Promise<void> {
    if (typeof queue !== 'string' || !QUEUE_NAME.test(queue)) throw new UsageError(`queue '${String(queue).slice(0, 80)}': use letters, digits, '.', '_' or '-' (at most 64)`);
    await setQueueQuotas(this.layout, queue, quotas, this.durable);
  }

  /** Every queue's default quotas. */
  queueDefaults(): Record<string, string[]> {
    return Object.fromEntries(readQueueQuotas(this.layout).quotas);
  }

  /** Remove quota NAME's limit: its jobs are no longer limited. False when none was set. */
  rm(name: string): boolean {
    checkQuotaName(name);
    return removeLimit(this.layout, name);
  }
}
