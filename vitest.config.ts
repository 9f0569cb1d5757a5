import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 180_000,
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['test/setup/cassandra.ts'],
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'main', include: ['test/**/*.test.ts'] } },
      {
        // The protocol suites once more against a node on the CQL store (the run's cqlContact server).
        extends: true,
        test: {
          name: 'cql-node',
          include: ['test/protocol/{messaging,receipts,groups}.test.ts'],
          env: { SB_TEST_STORE: 'cql' },
        },
      },
    ],
  },
});
