import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global.ts'],
    // userfaultfd regions, worker threads and native handles: one process per
    // file keeps a hang or a signal in one suite from taking down the others.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: more than two forks at once only adds contention.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
})
