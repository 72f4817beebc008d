// The readahead planner alone, against a model of the pager: which pages a
// reader's touches make it fetch, and how many of them the reader never read.
import { describe, expect, it } from 'vitest'
import { SequentialReadahead, type AccessHint, type ReadaheadPlan } from '../../packages/core/src/pager/readahead.js'

interface Run {
  fetched: number
  /** Touches the pager saw: misses and markers. */
  seen: number
  misses: number
  /** Most pages fetched ahead of the reader at any time. */
  maxAhead: number
}

function simulate(touches: readonly number[], opts: { pageCount?: number; minPages?: number; maxPages?: number; partPages?: number; hintAt?: (p: number) => AccessHint } = {}): Run {
  const ra = new SequentialReadahead({ minPages: opts.minPages ?? 4, maxPages: opts.maxPages ?? 128, pageCount: opts.pageCount ?? 1 << 20, partPages: opts.partPages ?? 16, maxPartPages: 4096, hintAt: opts.hintAt })
  const fetched = new Set<number>()
  const markers = new Set<number>()
  const run: Run = { fetched: 0, seen: 0, misses: 0, maxAhead: 0 }
  const apply = (plan: ReadaheadPlan | undefined, at: number): void => {
    if (plan === undefined) return
    for (let p = plan.first; p < plan.first + plan.count; p++) {
      expect(fetched.has(p), `page ${p} planned twice`).toBe(false)
      fetched.add(p)
    }
    for (const m of plan.markers) {
      expect(m >= plan.first && m < plan.first + plan.count).toBe(true)
      markers.add(m)
    }
    run.maxAhead = Math.max(run.maxAhead, plan.first + plan.count - 1 - at)
  }
  for (const page of touches) {
    if (!fetched.has(page)) {
      fetched.add(page)
      run.misses++
      run.seen++
      apply(ra.onMiss(page), page)
    } else if (markers.delete(page)) {
      run.seen++
      apply(ra.onMarker(page), page)
    }
  }
  run.fetched = fetched.size
  return run
}

const range = (first: number, count: number): number[] => Array.from({ length: count }, (_, i) => first + i)

describe('readahead planner', () => {
  it('keeps a long scan fetched ahead: few misses, the full window in flight', () => {
    const r = simulate(range(0, 20_000))
    // What it ran ahead when the reader stopped is at most the window.
    expect(r.fetched).toBeLessThanOrEqual(20_000 + 128)
    // Misses only while the stream ramps up.
    expect(r.misses).toBeLessThan(10)
    expect(r.maxAhead).toBeGreaterThanOrEqual(120)
    // One touch seen per part once ramped: 20,000 / 16, and not many more.
    expect(r.seen).toBeLessThan(20_000 / 16 + 40)
  })

  it('wastes at most what a stream read when the reader stops', () => {
    for (const length of [2, 3, 5, 9, 17, 40, 100, 300, 1000]) {
      const r = simulate(range(1000, length))
      expect(r.fetched - length, `stopped after ${length} pages`).toBeLessThanOrEqual(Math.max(4, length))
    }
  })

  it('learns the length of repeating runs: a column of four read from 16 record batches', () => {
    for (const run of [8, 40, 100]) {
      const touches: number[] = []
      for (let batch = 0; batch < 16; batch++) touches.push(...range(batch * run * 4 + 1, run))
      const r = simulate(touches)
      const read = 16 * run
      expect(r.fetched / read, `runs of ${run} pages`).toBeLessThanOrEqual(1.1)
    }
  })

  it('follows a run longer than the ones before it', () => {
    const touches = [...range(100, 20), ...range(500, 20), ...range(900, 200)]
    const r = simulate(touches)
    expect(r.fetched).toBeGreaterThanOrEqual(240)
    expect(r.fetched).toBeLessThanOrEqual(240 + 200)
    // Past the prediction it misses once, then streams again.
    expect(r.misses).toBeLessThan(12)
  })

  it('fetches nothing extra for a random reader', () => {
    const touches = [7, 300, 12, 9000, 55, 1234, 70_000, 2]
    const r = simulate(touches)
    expect(r.fetched).toBe(touches.length)
  })

  it('honours hints: sequential runs the whole window ahead at the first miss, random never reads ahead', () => {
    const seq = simulate([5000], { hintAt: () => 'sequential' })
    expect(seq.fetched).toBe(1 + 128)
    const rnd = simulate(range(0, 500), { hintAt: () => 'random' })
    expect(rnd.fetched).toBe(500)
    expect(rnd.misses).toBe(500)
  })

  it('stops at the end of the region', () => {
    const r = simulate(range(0, 100), { pageCount: 100 })
    expect(r.fetched).toBe(100)
  })
})
