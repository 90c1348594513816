import { defineConfig } from 'vitest/config';

// Tests run in forked processes: the wasm backend and the native addon hold
// process-wide state, and integration tests start real servers.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
