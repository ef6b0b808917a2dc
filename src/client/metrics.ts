/**
 * The spool's Prometheus metrics (prom-client), made from the dashboard's snapshots (overview.ts): gauges
 * are set from each snapshot, counters and the run-time histogram grow with what changed between two.
 * One registry per spool, no process metrics: what it measures is the spool, wherever it is scraped from.
 * Each metric's name, type, labels and meaning are listed in zcq(1), METRICS.
 */
import { Counter, Gauge, Histogram, Registry, type RegistryContentType } from 'prom-client';
import type { Overview, Snapshot } from './overview.js';

/** Run-time buckets (seconds): from a no-op job to an hour-long one. */
export const RUN_SECONDS_BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600];

export class SpoolMetrics {
  readonly registry = new Registry<RegistryContentType>();
  private readonly jobs: Gauge;
  private readonly oldestPending: Gauge;
  private readonly queuePaused: Gauge;
  private readonly finished: Counter;
  private readonly runSeconds: Histogram;
  private readonly takeovers: Counter;
  private readonly quarantinedTotal: Counter;
  private readonly quarantineFiles: Gauge;
  private readonly workers: Gauge;
  private readonly workerRunning: Gauge;
  private readonly quotaUsed: Gauge;
  private readonly quotaLimit: Gauge;
  private readonly scanSeconds: Gauge;
  private readonly snapshotTime: Gauge;
  private takeoversSeen = 0;
  private quarantinedSeen = 0;

  /** `withCounters: false` for a one-shot reading (zcq metrics): counters would only ever read 0 there. */
  constructor(overview?: Overview, opts: { withCounters?: boolean } = {}) {
    const registers = [this.registry];
    this.jobs = new Gauge({ name: 'zcq_jobs', help: 'Jobs in the spool, per queue and state (from folder listings).', labelNames: ['queue', 'state'], registers });
    this.oldestPending = new Gauge({ name: 'zcq_oldest_pending_seconds', help: "Age of the queue's oldest pending job, by the file server's clock.", labelNames: ['queue'], registers });
    this.queuePaused = new Gauge({ name: 'zcq_queue_paused', help: '1 while the queue is paused (paused/QUEUE), else 0.', labelNames: ['queue'], registers });
    this.quarantineFiles = new Gauge({ name: 'zcq_quarantine_files', help: 'Files in quarantine/ (found in the spool, not jobs).', registers });
    this.workers = new Gauge({ name: 'zcq_workers', help: 'Worker leases, alive or silent (heartbeat older than the lease).', labelNames: ['state'], registers });
    this.workerRunning = new Gauge({ name: 'zcq_worker_running_jobs', help: "Jobs a live worker runs, as its last heartbeat says, by worker name and host.", labelNames: ['worker', 'host'], registers });
    this.quotaUsed = new Gauge({ name: 'zcq_quota_used', help: 'Slots of a quota held by running jobs (zcq quota).', labelNames: ['quota'], registers });
    this.quotaLimit = new Gauge({ name: 'zcq_quota_limit', help: "A quota's limit (absent while none is set).", labelNames: ['quota'], registers });
    this.scanSeconds = new Gauge({ name: 'zcq_scan_seconds', help: 'How long the last snapshot of the spool took.', registers });
    this.snapshotTime = new Gauge({ name: 'zcq_snapshot_timestamp_seconds', help: 'When the snapshot these values come from was made (Unix time).', registers });
    const counters = opts.withCounters !== false ? registers : [];
    this.finished = new Counter({ name: 'zcq_jobs_finished_total', help: 'Jobs seen finishing since this process started, per queue and outcome (done, failed).', labelNames: ['queue', 'outcome'], registers: counters });
    this.runSeconds = new Histogram({ name: 'zcq_job_run_seconds', help: "Run time of finished jobs' last attempt, per queue (at most 100 jobs per snapshot: a sample when more finish).", labelNames: ['queue'], buckets: RUN_SECONDS_BUCKETS, registers: counters });
    this.takeovers = new Counter({ name: 'zcq_lease_takeovers_total', help: "Dead workers' leases seen taken over (their jobs settled by another) since this process started.", registers: counters });
    this.quarantinedTotal = new Counter({ name: 'zcq_quarantined_files_total', help: 'Files seen arriving in quarantine/ since this process started.', registers: counters });
    overview?.onFinish((e) => {
      this.finished.inc({ queue: e.queue, outcome: e.outcome });
      if (e.runSeconds !== null) this.runSeconds.observe({ queue: e.queue }, e.runSeconds);
    });
  }

  /** Set the gauges from a snapshot, and the counters that the snapshot carries as totals. */
  update(s: Snapshot): void {
    this.jobs.reset();
    this.oldestPending.reset();
    this.queuePaused.reset();
    for (const q of s.queues) {
      for (const state of s.states) this.jobs.set({ queue: q.name, state }, q.counts[state] ?? 0);
      if (q.oldestPendingMs !== null) this.oldestPending.set({ queue: q.name }, q.oldestPendingMs / 1000);
      this.queuePaused.set({ queue: q.name }, q.paused ? 1 : 0);
    }
    for (const queue of Object.keys(s.finished)) {
      // Present from the start at 0, so that rate() sees the first finish.
      this.finished.inc({ queue, outcome: 'done' }, 0);
      this.finished.inc({ queue, outcome: 'failed' }, 0);
    }
    this.quarantineFiles.set(s.quarantine.count);
    this.workers.set({ state: 'alive' }, s.workers.filter((w) => w.alive).length);
    this.workers.set({ state: 'silent' }, s.workers.filter((w) => !w.alive).length);
    this.workerRunning.reset();
    for (const w of s.workers) if (w.alive) this.workerRunning.set({ worker: w.name ?? w.id, host: w.host }, w.running ?? w.jobs.length);
    this.quotaUsed.reset();
    this.quotaLimit.reset();
    for (const q of s.quotas) { this.quotaUsed.set({ quota: q.name }, q.used); if (q.limit !== null) this.quotaLimit.set({ quota: q.name }, q.limit); }
    this.scanSeconds.set(s.tookMs / 1000);
    this.snapshotTime.set(Date.parse(s.at) / 1000);
    if (s.takeovers > this.takeoversSeen) { this.takeovers.inc(s.takeovers - this.takeoversSeen); this.takeoversSeen = s.takeovers; }
    if (s.quarantinedSeen > this.quarantinedSeen) { this.quarantinedTotal.inc(s.quarantinedSeen - this.quarantinedSeen); this.quarantinedSeen = s.quarantinedSeen; }
  }

  /**
   * The text exposition and its content type: Prometheus text 0.0.4, or OpenMetrics 1.0 when asked
   * (Prometheus asks for it in its Accept header). The registry has one format at a time: calls take turns.
   */
  text(openMetrics = false): Promise<{ body: string; contentType: string }> {
    const turn = this.turn.then(async () => {
      this.registry.setContentType(openMetrics ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE);
      return { body: await this.registry.metrics(), contentType: this.registry.contentType };
    });
    this.turn = turn.then(() => undefined, () => undefined);
    return turn;
  }
  private turn: Promise<void> = Promise.resolve();
}
