// The vitest projects of this repository, one list for vitest.config.ts (which builds each project from it)
// and scripts/test-lanes.mjs (which runs each in its own vitest, side by side). `rig`: test/multihost/, several
// mounts of sshfs and GlusterFS with their daemons and libfaketime; `local`: everything else, one machine.
export const TEST_PROJECTS = [
  { name: 'rig', include: ['test/multihost/**/*.test.ts'], exclude: ['**/node_modules/**'] },
  { name: 'local', include: ['test/**/*.test.ts'], exclude: ['test/multihost/**', '**/node_modules/**'] },
];
