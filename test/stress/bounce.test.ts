// The short bounce stress of `pnpm test`: every backend in every write
// tracking mode openRegion allows, three rounds each. `pnpm stress` runs the
// same scenario for longer, with fresh seeds (docs/DEVELOPERS.md).
import { describe, expect, inject, it } from 'vitest'
import { subSeed } from '../fixtures/bounce-layout.mjs'
import { tempDir } from '../helpers/tmp.js'
import { MODES, bounce } from './bounce.js'
import { baseSeed } from './seed.js'
import { STORE_KINDS } from './stores.js'

// Fixed, so the suite makes the same workload every time; FAULTLINE_STRESS_SEED varies it.
const seed = baseSeed(15)
const dir = tempDir()
const combinations = STORE_KINDS.flatMap((store) => MODES.map((mode) => ({ store, mode })))

describe('bounce stress: worker threads share pages while flush, eviction and readahead run', () => {
  for (const [i, { store, mode }] of combinations.entries()) {
    it(`${store}, ${mode.name}: every word equals the model`, async () => {
      const result = await bounce({
        seed: subSeed(seed, i),
        store,
        mode,
        rounds: 3,
        // Eviction makes most operations a fault (~100 µs here): fewer keep each case to a few seconds.
        opsPerRound: mode.resident === undefined ? 2500 : 600,
        context: { dir, redisUrl: inject('redisUrl') },
        // Rounds take about a second: a hung one fails with its seed well before the test's 60 s timeout.
        roundTimeoutMs: 15_000,
        rerun: `FAULTLINE_STRESS_SEED=${seed} npx vitest run test/stress/bounce.test.ts -t '${store}, ${mode.name.replace(/[+]/g, '\\+')}:'`,
      })
      expect(result.counts.writes).toBeGreaterThan(0)
    })
  }
})
