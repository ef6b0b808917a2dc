// parseJob: a job file's text to a checked Job. The parsed object is completed in place (defaults added,
// checked fields kept), so what a record looks like when it is written back is pinned here: the file's own
// fields first in the file's order, unknown ones kept, the defaults after them, and no field of the file able
// to reach the object's prototype.
import { describe, expect, it } from 'vitest';
import { JobFormatError, parseJob, serializeJob } from '../../dist/job/format.js';

describe('parseJob', () => {
  it("keeps the file's fields in order, unknown ones included, and adds the defaults after them", () => {
    const text = '{"fn":"./j.mjs#run","custom":{"a":1},"id":"job-1","args":[2],"queue":"q"}';
    const job = parseJob(text, 'job-1');
    expect(Object.keys(job)).toEqual([
      'fn', 'custom', 'id', 'args', 'queue',
      'zcq', 'created', 'createdBy', 'attempts', 'retries', 'backoff', 'timeoutMs', 'deadline', 'notBefore',
      'onInterrupt', 'maxInterrupts', 'interrupts', 'history',
    ]);
    expect(job).toMatchObject({ zcq: 1, id: 'job-1', args: [2], queue: 'q', custom: { a: 1 }, attempts: 0, retries: 0, timeoutMs: null, deadline: null, notBefore: null, onInterrupt: 'retry', interrupts: 0, history: [] });
    expect(job.created).toBe(new Date(0).toISOString());
    // Written back and read again, the same record.
    expect(parseJob(serializeJob(job), 'job-1')).toEqual(job);
  });

  it('keeps the last 100 attempts of a longer history, and one copy of each quota', () => {
    const history = Array.from({ length: 130 }, (_, i) => ({ n: i }));
    const job = parseJob(JSON.stringify({ id: 'h', fn: 'm.mjs#f', history, quotas: ['a', 'b', 'a'], priority: 3 }), 'h');
    expect(job.history).toHaveLength(100);
    expect(job.history[0]).toEqual({ n: 30 });
    expect(job.quotas).toEqual(['a', 'b']);
    expect(job.priority).toBe(3);
  });

  it('a "__proto__" field stays a plain field: it neither changes the prototype nor adds fields', () => {
    const job = parseJob('{"id":"p","fn":"m.mjs#f","__proto__":{"polluted":true,"attempts":99}}', 'p');
    expect(Object.getPrototypeOf(job)).toBe(Object.prototype);
    expect((job as unknown as Record<string, unknown>).polluted).toBeUndefined();
    expect(job.attempts).toBe(0);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses a field of the wrong type with a message naming it', () => {
    expect(() => parseJob('{"id":"x","fn":"m.mjs#f","attempts":-1}', 'x')).toThrow(JobFormatError);
    expect(() => parseJob('{"id":"x","fn":"m.mjs#f","quotas":[1]}', 'x')).toThrow(/"quotas"/);
    expect(() => parseJob('{"id":"y","fn":"m.mjs#f"}', 'x')).toThrow(/named for "x"/);
  });
});
