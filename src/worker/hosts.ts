/**
 * Where a job's code runs: the worker hands each claimed job to its hosts and gets back an outcome. The
 * worker keeps the files; the hosts keep the code. Three kinds, chosen by `--runtime`:
 * - `threads` (default): a few long-lived pool threads (by default one per core), each serving many jobs
 *   at once over one MessagePort. A thread costs ~10–20 MB, so their number is set by the cores, not by
 *   the concurrency; the jobs handed to a thread in one turn of the event loop go in one message, and
 *   the outcomes of jobs that end together come back in one. Terminating a thread (a job that ignored its
 *   timeout) also ends the other jobs on it: they come back as `bystander`s, which the worker releases
 *   to run again without counting the attempt.
 * - `processes`: one child process per running job, for code that may take its process down.
 * - `inline`: the worker's own event loop, like BullMQ's default processor: the least memory and CPU,
 *   but a job that never yields stalls the worker (its lease then lapses and siblings take its jobs),
 *   and a job past its timeout is abandoned, not stopped.
 *
 * Invariant: `run` never rejects, and every job handed to `run` gets exactly one outcome.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type Tinypool from 'tinypool';
import { Outbox, RunningJob, type FromAgent, type FromAgentMessage, type RunOutcome, type RunTask, type ToAgent } from './runner.js';

export interface JobHosts {
  /**
   * Run a job; resolves with its outcome, never rejects. `started` is called once the job's host is ready to
   * run it — at once, or when a pool thread still starting is up (at the latest THREAD_START_GRACE_MS after
   * the hand-off) — and not at all if the host dies first: the job's timeout counts from then, so that a
   * thread's start (over a second on a busy machine) is not taken from the job's time.
   */
  run(task: RunTask, started?: () => void): Promise<RunOutcome>;
  /** Fire the job's AbortSignal (the job may stop by itself). */
  abort(id: string, why: string): void;
  /** Stop the job for good: terminate its host. */
  kill(id: string): void;
  /** Whether the job's AbortSignal can be fired without killing its host. */
  readonly canSignal: boolean;
  destroy(): Promise<void>;
}

interface Agent {
  port: MessagePort;
  /** Jobs handed to this agent in the current turn of the event loop, posted at its end in one message. */
  outbox: Outbox<RunTask>;
  stop: AbortController;
  waiting: Map<string, (o: RunOutcome) => void>;
  /** Jobs whose kill was asked for: they end `killed`, the rest of the thread's jobs `bystander`. */
  killed: Set<string>;
  /** Jobs asked to stop (their signal fired): if their thread is terminated, that was their end too. */
  aborted: Set<string>;
  /** Whether the thread said it is up (its first message); until then, what to call when it is. */
  up: boolean;
  starting: Starting[];
}

/** A job's `started` waiting for its thread to be up (called once, by whichever comes first), and the grace timer. */
interface Starting { call: () => void; timer: ReturnType<typeof setTimeout> }

/**
 * How long a job waits for its thread to be up before its timeout counts all the same: a thread that never
 * comes up (a preloaded module that hangs) must not keep a job with a timeout from ever timing out.
 */
export const THREAD_START_GRACE_MS = 30_000;

/** Long-lived pool threads, each an `agent` (runner.ts) serving many jobs. */
export class ThreadHosts implements JobHosts {
  readonly canSignal = true;
  private readonly agents: Agent[] = [];
  private readonly where = new Map<string, Agent>();
  private destroyed = false;

  constructor(private readonly pool: Tinypool, threads: number, private readonly startGraceMs = THREAD_START_GRACE_MS) {
    for (let i = 0; i < threads; i++) this.spawn();
  }

  private spawn(): void {
    const ch = new MessageChannel();
    const port = ch.port1;
    const outbox = new Outbox<RunTask>((tasks) => port.postMessage((tasks.length === 1 ? { run: tasks[0]! } : { runs: tasks }) satisfies ToAgent), setImmediate);
    const agent: Agent = { port, outbox, stop: new AbortController(), waiting: new Map(), killed: new Set(), aborted: new Set(), up: false, starting: [] };
    const settle = (m: FromAgent) => {
      const done = agent.waiting.get(m.id);
      if (!done) return;
      agent.waiting.delete(m.id);
      agent.aborted.delete(m.id);
      this.where.delete(m.id);
      done(m.outcome);
    };
    port.on('message', (m: FromAgentMessage) => {
      if ('outcomes' in m) for (const o of m.outcomes) settle(o);
      else if ('up' in m) {
        agent.up = true;
        const starting = agent.starting;
        agent.starting = [];
        for (const s of starting) s.call();
      } else settle(m);
    });
    // The port must not keep the process alive by itself: the worker's timers do that while it runs.
    ch.port1.unref();
    this.agents.push(agent);
    this.pool.run({ port: ch.port2 }, { name: 'agent', transferList: [ch.port2 as never], signal: agent.stop.signal })
      .then(() => this.ended(agent, null), (err: unknown) => this.ended(agent, err));
  }

  /** An agent's thread ended: settle its jobs and (unless shutting down) put a new thread in its place. */
  private ended(agent: Agent, err: unknown): void {
    const i = this.agents.indexOf(agent);
    if (i >= 0) this.agents.splice(i, 1);
    agent.port.close();
    for (const s of agent.starting) clearTimeout(s.timer);
    agent.starting = [];
    const shared = agent.waiting.size > 1;
    const killer = [...agent.killed][0];
    for (const [id, done] of agent.waiting) {
      this.where.delete(id);
      if (agent.killed.has(id) || (killer && agent.aborted.has(id))) done({ ok: false, lost: 'killed', message: 'its thread was terminated' });
      else if (killer) done({ ok: false, lost: 'bystander', message: `its thread was terminated to stop job ${killer}` });
      else done({ ok: false, lost: 'crashed', shared, message: `the job's thread died${shared ? ` while running ${agent.waiting.size} jobs` : ''}: ${(err as Error)?.message ?? 'exited'}` });
    }
    agent.waiting.clear();
    if (!this.destroyed) this.spawn();
  }

  run(task: RunTask, started?: () => void): Promise<RunOutcome> {
    let agent = this.agents[0]!;
    for (const a of this.agents) if (a.waiting.size < agent.waiting.size) agent = a;
    return new Promise<RunOutcome>((resolve) => {
      agent.waiting.set(task.ctx.id, resolve);
      this.where.set(task.ctx.id, agent);
      agent.outbox.push(task);
      if (started) {
        if (agent.up) started();
        else {
          let called = false;
          const call = () => { if (called) return; called = true; clearTimeout(timer); started(); };
          const timer = setTimeout(call, this.startGraceMs);
          timer.unref();
          agent.starting.push({ call, timer });
        }
      }
    });
  }

  abort(id: string, why: string): void {
    const agent = this.where.get(id);
    if (!agent) return;
    agent.aborted.add(id);
    // The job may still be queued: its run must reach the thread before its abort.
    agent.outbox.flush();
    agent.port.postMessage({ abort: id, why } satisfies ToAgent);
  }

  kill(id: string): void {
    const agent = this.where.get(id);
    if (!agent) return;
    agent.killed.add(id);
    agent.stop.abort();
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
    for (const a of this.agents) { try { a.outbox.flush(); a.port.postMessage({ stop: true } satisfies ToAgent); } catch { /* closed */ } }
    await this.pool.destroy().catch(() => undefined);
  }
}

/** One pool task, so one child process, per running job (`--runtime processes`). */
export class ProcessHosts implements JobHosts {
  readonly canSignal = false;
  private readonly stops = new Map<string, AbortController>();
  private readonly killed = new Set<string>();

  constructor(private readonly pool: Tinypool) {}

  /** `started` at once: the pool's processes are started with the worker and kept, so a job seldom waits for one. */
  async run(task: RunTask, started?: () => void): Promise<RunOutcome> {
    const id = task.ctx.id;
    started?.();
    const stop = new AbortController();
    this.stops.set(id, stop);
    try {
      return (await this.pool.run(task, { signal: stop.signal })) as RunOutcome;
    } catch (err) {
      if (this.killed.has(id)) return { ok: false, lost: 'killed', message: 'its process was terminated' };
      return { ok: false, lost: 'crashed', message: `the job's process died: ${(err as Error)?.message ?? String(err)}` };
    } finally {
      this.stops.delete(id);
      this.killed.delete(id);
    }
  }

  abort(id: string): void { this.kill(id); }

  kill(id: string): void {
    const stop = this.stops.get(id);
    if (!stop) return;
    this.killed.add(id);
    stop.abort();
  }

  async destroy(): Promise<void> { await this.pool.destroy().catch(() => undefined); }
}

/** The worker's own event loop (`--runtime inline`). */
export class InlineHosts implements JobHosts {
  readonly canSignal = true;
  private readonly jobs = new Map<string, { job: RunningJob; abandon: (o: RunOutcome) => void }>();

  run(task: RunTask, started?: () => void): Promise<RunOutcome> {
    const id = task.ctx.id;
    started?.();
    const job = new RunningJob(task);
    return new Promise<RunOutcome>((resolve) => {
      this.jobs.set(id, { job, abandon: resolve });
      void job.outcome.then(resolve);
    }).finally(() => this.jobs.delete(id));
  }

  abort(id: string, why: string): void { this.jobs.get(id)?.job.abort(why); }

  /** Nothing can stop code running on our own thread: record the job as ended and stop waiting for it. */
  kill(id: string): void {
    this.jobs.get(id)?.abandon({ ok: false, lost: 'killed', message: 'abandoned (the inline runtime cannot stop a job; it may still be running)' });
  }

  async destroy(): Promise<void> { /* nothing to stop */ }
}
