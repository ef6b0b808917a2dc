/**
 * zcq's public API. `import { Spool, currentJob } from 'zcq'`.
 */
export { Spool, type OpenOptions, type PutOptions, type PutItem, type JobRecord, type Status, type WorkerView, type RetryResult, type CancelResult, type JobLinks } from './client/spool.js';
export { Worker, type WorkerOptions, type WorkerSummary } from './worker/worker.js';
export { type JobContext } from './job/context.js';
export { currentJob, type CompositeJobContext, type CompositeHandle, type CompositeOptions, type CompositeEntry, BUILTIN_POSTPROCESS } from './client/composite.js';
export type { CallbackSpec } from './job/format.js';
export type { Job, Attempt, Failure, Backoff, InterruptPolicy, Outcome } from './job/format.js';
export type { JobState } from './spool/layout.js';
export * from './errors.js';
export { makeLogger, type Logger } from './log.js';
export { Retention, type RetentionPatch, type RetentionView, type RetentionConfig, type RetentionPolicy } from './client/retention.js';
export { WorkerConfig, type WorkerSettingsInput, type ConfigEntry, type WorkerSettings, type EffectiveSettings, type SettingSource, type SettingSources, type ConfigKey } from './client/config.js';
export type { PruneRule, PruneReport } from './spool/transitions/prune.js';
