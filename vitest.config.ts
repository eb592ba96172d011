import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup/node-set.ts'],
    globalSetup: ['test/setup/scratch-tmpdir.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Model tests are CPU-heavy and ORT already uses every core: run files one after another.
    fileParallelism: false,
    pool: 'forks',
    reporters: ['default', ['json', { outputFile: '.cache/vitest-results.json' }]],
  },
});
