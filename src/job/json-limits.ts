/**
 * Shape limits for job JSON. A job file is untrusted and `JSON.parse`, `JSON.stringify` and every
 * recursive walk over the result use the native stack: `'['.repeat(100000)` would end in a RangeError deep
 * inside whichever reader meets it first (the worker's claim loop, `zcq show`, a structured clone to a pool
 * thread). These checks bound nesting and size before any of that runs, and neither of them recurses.
 */
import { JobFormatError } from './format.js';

/** Deepest nesting of arrays and objects a job may hold (the whole file: args and result included). */
export const JSON_MAX_DEPTH = 64;
/**
 * Deepest nesting of one value inside a job (its args, its result): one level less than the file, whose
 * outermost object is the first level. A value within this fits a job file parseJob accepts.
 */
export const JSON_MAX_VALUE_DEPTH = JSON_MAX_DEPTH - 1;
/** Most values (every array, object, string, number, boolean and null) a job's args may hold. */
export const JSON_MAX_VALUES = 1_000_000;

export interface JsonShapeLimits {
  /** Deepest nesting allowed (default JSON_MAX_DEPTH). */
  maxDepth?: number;
  /** Largest UTF-8 size allowed (default: no limit here; readers cap the file size themselves). */
  maxBytes?: number;
}

const QUOTE = 0x22, BACKSLASH = 0x5c, OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d, OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d;

/**
 * Check raw JSON text before it is parsed: at most `maxBytes` bytes and no array or object nested deeper
 * than `maxDepth`. Brackets inside strings (escapes included) do not count. Only the shape is checked:
 * malformed text that passes is left for JSON.parse to reject. Throws JobFormatError.
 */
export function checkJsonShape(text: string, limits: JsonShapeLimits = {}): void {
  const maxDepth = limits.maxDepth ?? JSON_MAX_DEPTH;
  if (limits.maxBytes !== undefined && text.length > limits.maxBytes / 3) {
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > limits.maxBytes) throw new JobFormatError(`${bytes} bytes, larger than the limit of ${limits.maxBytes}`);
  }
  // Most job files hold a few brackets in all: no fewer than maxDepth + 1 can nest too deep, and counting
  // them natively is far cheaper than the walk below (which skips the brackets inside strings).
  if (fewBrackets(text, maxDepth)) return;
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Skip the string: find its closing quote, stepping over escaped characters.
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === BACKSLASH) i++;
        else if (d === QUOTE) break;
      }
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > maxDepth) throw new JobFormatError(`nested deeper than ${maxDepth} levels`);
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
}

/** At most `max` opening brackets ('[' and '{') in all, strings included. */
function fewBrackets(text: string, max: number): boolean {
  let count = 0;
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) if (++count > max) return false;
  for (let i = text.indexOf('['); i !== -1; i = text.indexOf('[', i + 1)) if (++count > max) return false;
  return true;
}

export interface ValueShapeLimits {
  /** Deepest nesting allowed (default JSON_MAX_DEPTH). */
  maxDepth?: number;
  /** Most values allowed (default JSON_MAX_VALUES). */
  maxValues?: number;
  /** Names the value in the error ("args"). */
  what?: string;
}

/**
 * Check a value about to be written as JSON (a job's args at put): nesting at most `maxDepth` and at most
 * `maxValues` values in all. Iterative, so a deep value cannot overflow the stack here; a cyclic value
 * fails as too deep. Arrays and plain objects are walked (their own enumerable values); everything else
 * counts as one value and is left for JSON.stringify to judge. Throws JobFormatError.
 */
export function checkValueShape(value: unknown, limits: ValueShapeLimits = {}): void {
  const maxDepth = limits.maxDepth ?? JSON_MAX_DEPTH;
  const maxValues = limits.maxValues ?? JSON_MAX_VALUES;
  const what = limits.what ?? 'value';
  // Parallel stacks of the values still to visit and their depths (1 = inside the outermost container).
  const values: unknown[] = [value];
  const depths: number[] = [0];
  let seen = 0;
  while (values.length > 0) {
    const v = values.pop();
    const depth = depths.pop()!;
    if (++seen > maxValues) throw new JobFormatError(`${what} holds more than ${maxValues} values`);
    if (typeof v !== 'object' || v === null) continue;
    const items = Array.isArray(v) ? v : isPlainObject(v) ? Object.values(v) : null;
    if (items === null) continue;
    if (depth + 1 > maxDepth) throw new JobFormatError(`${what} is nested deeper than ${maxDepth} levels`);
    for (let i = items.length - 1; i >= 0; i--) {
      values.push(items[i]);
      depths.push(depth + 1);
    }
  }
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
