import { defineConfig } from 'vitest/config';

// Tests run the compiled code (dist/) in real processes, so `npm test` builds first.
//
// Two projects, each one file at a time: `rig` (test/multihost: several mounts of sshfs and GlusterFS, their
// daemons, libfaketime) and `local` (everything else: one machine, real folders and processes). Each file
// spawns worker processes and asserts timing bounds (leases, latency), so two files of one kind never run at
// once on a 2-core machine. `npm test` (scripts/test-lanes.mjs) runs the two projects side by side, one
// vitest each; `npx vitest run` alone runs every file one after another.
const serial = { fileParallelism: false, testTimeout: 60_000, hookTimeout: 120_000 };

export default defineConfig({
  test: {
    projects: [
      { extends: true, test: { name: 'rig', include: ['test/multihost/**/*.test.ts'], ...serial } },
      { extends: true, test: { name: 'local', include: ['test/**/*.test.ts'], exclude: ['test/multihost/**', '**/node_modules/**'], ...serial } },
    ],
    ...serial,
  },
});
