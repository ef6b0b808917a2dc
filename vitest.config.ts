import { defineConfig } from 'vitest/config';

// Tests run the compiled code (dist/) in real processes, so `npm test` builds first.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Worker processes are spawned by the tests: keep files in one fork at a time on a 2-core machine
    // so that timing-sensitive tests (leases, latency) are not starved.
    fileParallelism: false,
  },
});
