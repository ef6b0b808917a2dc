import { defineConfig } from 'vitest/config';
import { TEST_PROJECTS } from './scripts/test-projects.mjs';

// Tests run the compiled code (dist/) in real processes, so `npm test` builds first.
//
// Each project (scripts/test-projects.mjs) runs one file at a time: every file spawns worker processes and
// asserts timing bounds (leases, latency), so two files of one kind never run at once on a 2-core machine.
// `npm test` (scripts/test-lanes.mjs) runs the projects side by side, one vitest each; `npx vitest run` alone
// runs every file one after another.
export default defineConfig({
  test: {
    projects: TEST_PROJECTS.map((p) => ({
      extends: true,
      test: { ...p, fileParallelism: false, testTimeout: 60_000, hookTimeout: 120_000 },
    })),
  },
});
