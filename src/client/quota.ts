/**
 * `spool.quota`: named limits across every machine (spool/quota.ts: the files; transitions/quota-take.ts and
 * quota-release.ts: the slots). `set` checks the name and the limit before anything is written (UsageError,
 * exit 2 on the command line); running workers apply a change at the next slot they take.
 */
import type { Layout } from '../spool/layout.js';
import { checkQuotaName, listQuotas, parseLimit, readLimit, removeLimit, setLimit, slotsOf, type QuotaUse } from '../spool/quota.js';

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

  /** Remove quota NAME's limit: its jobs are no longer limited. False when none was set. */
  rm(name: string): boolean {
    checkQuotaName(name);
    return removeLimit(this.layout, name);
  }
}
