// Loaded with `node --import`: counts the promises the process makes (async_hooks PROMISE inits) and writes
// the count to stderr at exit, as "promises: N". Used by promises-a-job.mjs.
import { createHook } from 'node:async_hooks';

let n = 0;
createHook({ init(_id, type) { if (type === 'PROMISE') n++; } }).enable();
process.on('exit', () => { process.stderr.write(`promises: ${n}\n`); });
