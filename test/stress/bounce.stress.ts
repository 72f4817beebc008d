// The long bounce stress, for before releases: `pnpm stress -- --seconds N`
// (scripts/stress.mjs) runs this file alone. Run after run until the time is
// up, each with a fresh seed that also picks the backend, the mode and the
// length; the first failure stops it, naming the seed that reproduces it.
import { expect, inject, it } from 'vitest'
import { rng, subSeed } from '../fixtures/bounce-layout.mjs'
import { tempDir } from '../helpers/tmp.js'
import { MODES, bounce, describeRun } from './bounce.js'
import { baseSeed } from './seed.js'
import { LONG_STORE_KINDS } from './stores.js'

const seconds = Number(process.env.FAULTLINE_STRESS_SECONDS ?? 600)
const first = baseSeed(Math.floor(Math.random() * 2 ** 32))
const dir = tempDir()

function pick<T>(items: readonly T[], r: ReturnType<typeof rng>): T {
  return items[r.below(items.length)]!
}

it(`bounces pages for ${seconds} s, run after run, from seed ${first}`, { timeout: seconds * 1000 + 300_000 }, async () => {
  const deadline = Date.now() + seconds * 1000
  let runs = 0
  // The first run always happens, so `--seconds 0 --seed S` replays one run.
  do {
    const seed = runs === 0 ? first : subSeed(first, runs)
    const r = rng(subSeed(seed, 200))
    const store = pick(LONG_STORE_KINDS, r)
    const mode = pick(MODES, r)
    const result = await bounce({
      seed,
      store,
      mode,
      rounds: 3 + r.below(6),
      // With eviction nearly every operation is a fault, and on the slow backend a fault waits for a read of up to 3 ms.
      opsPerRound: (mode.resident === undefined ? 4000 : store === 'slow' ? 250 : 1000) * (1 + r.below(4)),
      context: { dir, redisUrl: inject('redisUrl') },
      rerun: `pnpm stress -- --seed ${seed} --seconds 0`,
    })
    const { geometry: g, counts: c, stats: s } = result
    console.log(
      `run ${runs}: ${describeRun({ seed, store, mode })}: ${g.pages} pages of ${g.pageSize / 1024} KiB, ${g.workers} workers, ` +
        `${c.ops} ops (${c.writes} writes, ${c.increments} increments, ${c.reads} reads, ${c.sweeps} sweeps), ` +
        `${result.flushes} flushes, ${s.faults} faults, ${s.evictedPages} evicted, ${s.prefetchedPages} read ahead, ${result.ms} ms`,
    )
    runs++
  } while (Date.now() < deadline)
  expect(runs).toBeGreaterThan(0)
})
