/**
 * Step marks: each transition calls `step(name, k)` after its step k, where a crash would leave the state
 * its header describes. Nothing happens in production. Tests register a hook (`onStep`) that throws at a
 * chosen step, so that "crash after step k" is run for real: the steps after k do not run, and the test
 * then runs the actor the header names (recovery, the next pass) and checks what it completes.
 */
export type StepHook = (transition: string, step: number, detail?: string) => void;

let hook: StepHook | undefined;

/** Install (or with no argument remove) the test hook. */
export function onStep(h?: StepHook): void { hook = h; }

export function step(transition: string, k: number, detail?: string): void {
  if (hook) hook(transition, k, detail);
}

/** What a test hook throws to stop a transition where it stands. */
export class SimulatedCrash extends Error {
  constructor(readonly transition: string, readonly step: number) { super(`simulated crash after ${transition} step ${step}`); this.name = 'SimulatedCrash'; }
}
