// Shape limits of job JSON: deep nesting is refused before JSON.parse or any recursive walk sees it.
import { describe, expect, it } from 'vitest';
import { JSON_MAX_DEPTH, JSON_MAX_VALUE_DEPTH, checkJsonShape, checkValueShape } from '../../dist/job/json-limits.js';
import { JobFormatError, parseJob } from '../../dist/job/format.js';

const nest = (depth: number, inner = '1') => '['.repeat(depth) + inner + ']'.repeat(depth);

describe('checkJsonShape', () => {
  it('accepts nesting up to the limit and refuses one level more', () => {
    expect(JSON_MAX_DEPTH).toBe(64);
    expect(() => checkJsonShape(nest(64))).not.toThrow();
    expect(() => checkJsonShape(nest(65))).toThrow(/nested deeper than 64 levels/);
    expect(() => checkJsonShape(`{"a":${nest(63)}}`)).not.toThrow();
    expect(() => checkJsonShape(`{"a":${nest(64)}}`)).toThrow(JobFormatError);
  });

  it("refuses '['.repeat(100000) without overflowing the stack, and unclosed text the same", () => {
    expect(() => checkJsonShape('['.repeat(100_000))).toThrow(/nested deeper than 64/);
    expect(() => checkJsonShape('{"a":'.repeat(100_000))).toThrow(/nested deeper than 64/);
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    const deepInString = JSON.stringify({ s: '['.repeat(1000) + '{'.repeat(1000) });
    expect(() => checkJsonShape(deepInString)).not.toThrow();
    // An escaped quote does not end the string: the brackets after it are still inside.
    const escaped = JSON.stringify({ s: 'a"' + '['.repeat(200) + '\\' + '"' + '{'.repeat(200) });
    expect(() => checkJsonShape(escaped)).not.toThrow();
    // A string ending in a backslash: the quote after the escaped backslash closes it, brackets then count.
    const after = `{"s":"x\\\\",` + `"t":${nest(70)}}`;
    expect(() => checkJsonShape(after)).toThrow(/nested deeper/);
  });

  it('refuses text over maxBytes, counting UTF-8 bytes', () => {
    expect(() => checkJsonShape('"' + 'é'.repeat(600) + '"', { maxBytes: 1000 })).toThrow(/1202 bytes, larger than the limit of 1000/);
    expect(() => checkJsonShape('"' + 'e'.repeat(600) + '"', { maxBytes: 1000 })).not.toThrow();
  });

  it('runs first in parseJob: a deep job file is a JobFormatError, not a RangeError', () => {
    const text = `{"fn":"./x.mjs#a","args":${'['.repeat(100_000)}`;
    expect(() => parseJob(text, 'j1')).toThrow(JobFormatError);
    expect(() => parseJob(text, 'j1')).toThrow(/nested deeper than 64 levels/);
    // A job whose args sit at the deepest allowed level still parses.
    const ok = JSON.stringify({ fn: './x.mjs#a', args: JSON.parse(nest(JSON_MAX_VALUE_DEPTH)) });
    expect(parseJob(ok, 'j1').fn).toBe('./x.mjs#a');
  });
});

describe('checkValueShape', () => {
  const deep = (depth: number): unknown => { let v: unknown = 1; for (let i = 0; i < depth; i++) v = [v]; return v; };

  it('accepts nesting up to the limit and refuses deeper, naming the value', () => {
    expect(() => checkValueShape(deep(64))).not.toThrow();
    expect(() => checkValueShape(deep(65), { what: 'args' })).toThrow(/^args is nested deeper than 64 levels$/);
    expect(() => checkValueShape({ a: { b: deep(62) } })).not.toThrow();
    expect(() => checkValueShape({ a: { b: deep(63) } })).toThrow(JobFormatError);
  });

  it('walks 200,000 levels without recursion', () => {
    expect(() => checkValueShape(deep(200_000))).toThrow(/nested deeper than 64/);
  });

  it('ends on a cycle (as too deep) and on a shared-reference explosion (too many values)', () => {
    const a: unknown[] = [];
    a.push(a);
    expect(() => checkValueShape(a)).toThrow(/nested deeper/);
    // 40 levels of [x, x]: 2^40 values if expanded as JSON.stringify would.
    let v: unknown = 0;
    for (let i = 0; i < 40; i++) v = [v, v];
    expect(() => checkValueShape(v, { maxValues: 100_000 })).toThrow(/holds more than 100000 values/);
  });

  it('a value within JSON_MAX_VALUE_DEPTH fits a job file parseJob accepts', () => {
    const args = [deep(JSON_MAX_VALUE_DEPTH - 1)];
    expect(() => checkValueShape(args, { maxDepth: JSON_MAX_VALUE_DEPTH })).not.toThrow();
    expect(() => parseJob(JSON.stringify({ fn: './x.mjs#a', args }), 'j1')).not.toThrow();
    const tooDeep = [deep(JSON_MAX_VALUE_DEPTH)];
    expect(() => checkValueShape(tooDeep, { maxDepth: JSON_MAX_VALUE_DEPTH })).toThrow();
    expect(() => parseJob(JSON.stringify({ fn: './x.mjs#a', args: tooDeep }), 'j1')).toThrow(/nested deeper/);
  });
});
