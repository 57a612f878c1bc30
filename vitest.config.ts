import { defineConfig } from 'vitest/config';

// Tests run the sources: `import 'colony'` resolves through the `colony-source` condition of
// package.json `exports` (the worker processes they start add it too: runtime/cli/load-cli.mjs).
const conditions = ['colony-source'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ['test/**/*.test.ts'],
    // Every test starts real nats-servers and worker processes: keep a 2-core machine unsaturated.
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
    // remote-refs.test.ts checks that dropped RemoteRef handles are freed after a forced gc().
    execArgv: ['--expose-gc'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    reporters: ['default'],
  },
});
