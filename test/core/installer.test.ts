// Pages fetched ahead from a backend with fresh read buffers are copied into
// the region by the native installer thread. What the pager promises about
// them must hold all the same: prefetch() resolves when they are there, and
// a bounded region stays within its bound.
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern } from '../helpers/dataset.js'
import { residentBytes } from '../helpers/smaps.js'

const PAGE = 65536
const switchable = fileURLToPath(new URL('../fixtures/switchable-backend.mjs', import.meta.url))

/** The switchable fixture (async reads returning new copies) over a pattern, saying its buffers are fresh. */
function freshBackend(size: number) {
  const data = sharedPattern(size)
  return { type: 'module', module: switchable, options: { store: data.buffer, control: new SharedArrayBuffer(8), fresh: true } }
}

describe('pages copied by the installer thread', () => {
  it('prefetch() resolves once every page is in place, held readahead markers included: touching them faults nothing', async () => {
    const size = 8 * 2 ** 20
    const region = await openRegion({ pageSize: PAGE, backend: freshBackend(size), access: 'read-only' })
    try {
      const v = region.view()
      // Page 0 starts a stream: pages 1-4 come with it, page 3 (the middle) held back as its marker.
      for (let p = 0; p < 3; p++) expect(checkPattern(v.subarray(p * PAGE, p * PAGE + 64), p * PAGE)).toBe(-1)
      // Copies are reported in the order they were queued: once page 4's is in, so are 1's and 2's.
      await region.prefetch(4 * PAGE, PAGE)
      const held = region.stats().installedOffThread
      // Prefetching the held page alone hands it to the installer; the promise waits for the copy.
      await region.prefetch(3 * PAGE, PAGE)
      expect(region.stats().installedOffThread).toBe(held + 1)
      await region.prefetch()
      const before = region.stats()
      expect(before.residentPages).toBe(size / PAGE)
      // Every copy was reported before prefetch() resolved: none comes in later.
      await new Promise((r) => setTimeout(r, 50))
      expect(region.stats().installedOffThread).toBe(before.installedOffThread)
      for (let p = 0; p < size / PAGE; p++) expect(checkPattern(v.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)).toBe(-1)
      expect(region.stats().faults).toBe(before.faults)
    } finally {
      await region.close()
    }
  })

  it('a prefetch four times maxResident stays within the bound (books and kernel), with correct data', async () => {
    const size = 32 * 2 ** 20
    const maxResident = 8 * 2 ** 20
    const region = await openRegion({ pageSize: PAGE, maxResident, backend: freshBackend(size), access: 'read-only' })
    try {
      await region.prefetch()
      const s = region.stats()
      expect(s.installedOffThread).toBeGreaterThan(0)
      expect(s.evictedPages).toBeGreaterThan(0)
      expect(s.residentPages * PAGE).toBeLessThanOrEqual(maxResident)
      expect(residentBytes(region.handle().address)).toBeLessThanOrEqual(maxResident * 1.1)
      const v = region.view()
      for (let p = 0; p < size / PAGE; p += 7) expect(checkPattern(v.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)).toBe(-1)
      expect(region.stats().residentPages * PAGE).toBeLessThanOrEqual(maxResident)
    } finally {
      await region.close()
    }
  })
})
