// `pnpm stress` (scripts/stress.mjs): the long stress alone, with only the server it needs.
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/stress/*.stress.ts'],
    globalSetup: ['test/setup/stress.ts'],
    pool: 'forks',
    hookTimeout: 60_000,
  },
})
