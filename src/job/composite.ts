/**
 * The two composite facts every layer needs (issue 12): the built-in postprocess, and how a job's
 * returned value is recognised as a composite handle (the job then waits for that composite).
 */
import { SAFE_NAME } from './format.js';

/** The postprocess used when none is given: it returns the entries as its result (no module is loaded). */
export const BUILTIN_POSTPROCESS = 'zcq:builtin#entries';

/** What parallel/serial return; a job may return it to finish with the composite's outcome. */
export interface CompositeHandle {
  zcq: 'composite';
  kind: 'parallel' | 'serial';
  /** The postprocess job's id: `spool.wait([handle.id])`, `zcq wait ID`. */
  id: string;
  /** The group's id (groups/GID/): the postprocess's id, like `id`. */
  group: string;
  /** The members' ids, in input order. */
  members: string[];
}

/** Whether a value (a job's result) is a composite handle. */
export function isCompositeHandle(v: unknown): v is CompositeHandle {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  return o.zcq === 'composite' && typeof o.id === 'string' && SAFE_NAME.test(o.id);
}
