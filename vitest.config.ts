import { defineConfig } from 'vitest/config';

export const config = defineConfig({
  test: {
    include: [
      'src/**/*.test.ts',
      'edge-hub/**/*.test.ts',
      'controllers/**/*.test.ts',
      'runtime/**/*.test.ts',
      'test/**/*.test.ts',
      'scripts/**/*.test.ts',
      'node-setup/**/*.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    globalSetup: ['test/support/kubectl-setup.ts'],
  },
});
// vitest needs a default export; this is the one place the house rule bends.
// eslint-disable-next-line no-restricted-syntax
export default config;
