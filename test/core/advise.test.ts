import { describe, expect, it } from 'vitest'
import { FaultlineError, openRegion, type Region } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern } from '../helpers/dataset.js'

const PAGE = 65536
const SIZE = 32 * 2 ** 20
const PAGES = SIZE / PAGE

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50))

async function withRegion(run: (region: Region) => Promise<void>, extra: Parameters<typeof openRegion>[0] extends infer O ? Partial<O> : never = {}): Promise<void> {
  const region = await openRegion({ pageSize: PAGE, backend: { type: 'memory', data: sharedPattern(SIZE) }, ...extra })
  try {
    await run(region)
  } finally {
    await region.close()
  }
}

function touch(region: Region, first: number, count: number): void {
  const v = region.view()
  for (let p = first; p < first + count; p++) expect(checkPattern(v.subarray(p * PAGE, p * PAGE + 64), p * PAGE)).toBe(-1)
}

async function rejection(p: Promise<unknown>): Promise<FaultlineError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(FaultlineError)
  return err as FaultlineError
}

describe('region.advise()', () => {
  it('refuses an unknown advice, a range outside the region and a closed region, naming the problem', async () => {
    const region = await openRegion({ pageSize: PAGE, backend: { type: 'memory', data: sharedPattern(SIZE) } })
    // @ts-expect-error not an advice
    const bad = await rejection(region.advise(0, PAGE, 'sequentail'))
    expect(bad.code).toBe('ERR_INVALID_OPTION')
    expect(bad.message).toContain("'sequential'")
    expect(bad.message).toContain('"sequentail"')
    expect((await rejection(region.advise(SIZE, 1, 'random'))).code).toBe('ERR_OUT_OF_RANGE')
    expect((await rejection(region.advise(0, SIZE + 1, 'random'))).code).toBe('ERR_OUT_OF_RANGE')
    expect((await rejection(region.advise(-1, 1, 'random'))).code).toBe('ERR_OUT_OF_RANGE')
    await region.close()
    expect((await rejection(region.advise(0, 1, 'random'))).code).toBe('ERR_REGION_CLOSED')
  })

  it("'random' turns readahead off in the range only; 'normal' turns it back on", async () => {
    await withRegion(async (region) => {
      await region.advise(0, SIZE / 2, 'random')
      touch(region, 10, 40)
      await settle()
      expect(region.stats().prefetchedPages).toBe(0)
      expect(region.stats().pagesFetched).toBe(40)
      // Outside it, the same reads stream.
      touch(region, PAGES / 2 + 10, 40)
      await settle()
      expect(region.stats().prefetchedPages).toBeGreaterThan(0)
      const before = region.stats().prefetchedPages
      await region.advise(0, SIZE / 2, 'normal')
      touch(region, 100, 40)
      await settle()
      expect(region.stats().prefetchedPages).toBeGreaterThan(before)
    })
  })

  it("'sequential' reads the whole window ahead from the first miss", async () => {
    // Touches 17 pages from page 200 and counts backend requests; the window is 16 pages (1 MiB at 64 KiB).
    const requestsFor = async (advice: 'sequential' | undefined): Promise<number> => {
      let requests = 0
      await withRegion(
        async (region) => {
          if (advice !== undefined) await region.advise(0, SIZE, advice)
          touch(region, 200, 17)
          requests = region.stats().fetchRequests
        },
        { readahead: { maxBytes: 16 * PAGE } },
      )
      return requests
    }
    const hinted = await requestsFor('sequential')
    // The miss, and the 16 pages after it in at most two requests, asked for at that miss
    // (a top-up at a marker further on may add one more).
    expect(hinted).toBeLessThanOrEqual(4)
    // Without the hint the stream starts at the second miss and ramps up from 4 pages.
    expect(await requestsFor(undefined)).toBeGreaterThan(hinted)
  })

  it("'willneed' fetches the range without a fault", async () => {
    await withRegion(
      async (region) => {
        await region.advise(8 * PAGE, 24 * PAGE, 'willneed')
        await region.prefetch(8 * PAGE, 24 * PAGE) // waits for what advise started
        expect(region.stats().residentPages).toBe(24)
        const faults = region.stats().faults
        touch(region, 8, 24)
        expect(region.stats().faults).toBe(faults)
      },
      { readahead: false },
    )
  })

  it("'dontneed' drops clean pages, which read right when touched again", async () => {
    await withRegion(
      async (region) => {
        touch(region, 0, 32)
        expect(region.stats().residentPages).toBe(32)
        await region.advise(4 * PAGE, 10 * PAGE + 1, 'dontneed') // a partial page counts: 11 pages
        expect(region.stats().residentPages).toBe(21)
        expect(region.stats().evictedPages).toBe(11)
        touch(region, 0, 32)
        expect(region.stats().pagesFetched).toBe(43)
        expect(region.stats().residentPages).toBe(32)
      },
      { readahead: false, access: 'read-only' },
    )
  })

  it("'dontneed' writes dirty pages back before dropping them (sync write tracking)", async () => {
    const region = await openRegion({ pageSize: PAGE, size: SIZE, backend: { type: 'memory' }, writeTracking: 'sync', readahead: false })
    try {
      const v = region.view()
      for (let p = 0; p < 8; p++) v[p * PAGE + 5] = p + 1
      expect(region.stats().dirtyPages).toBe(8)
      await region.advise(0, 8 * PAGE, 'dontneed')
      expect(region.stats().residentPages).toBe(0)
      expect(region.stats().dirtyPages).toBe(0)
      // From the backend, then through the mapping (refetched).
      const stored = await region.read(0, 8 * PAGE)
      for (let p = 0; p < 8; p++) expect(stored[p * PAGE + 5]).toBe(p + 1)
      for (let p = 0; p < 8; p++) expect(v[p * PAGE + 5]).toBe(p + 1)
      expect(region.stats().pagesFetched).toBe(8)
    } finally {
      await region.close()
    }
  })

  it("refuses 'dontneed' in a read-write region with async write tracking, where a racing write would be lost", async () => {
    const region = await openRegion({ pageSize: PAGE, size: SIZE, backend: { type: 'memory' }, writeTracking: 'async' })
    try {
      const err = await rejection(region.advise(0, PAGE, 'dontneed'))
      expect(err.code).toBe('ERR_INVALID_OPTION')
      expect(err.message).toContain("writeTracking: 'sync'")
    } finally {
      await region.close()
    }
  })
})
