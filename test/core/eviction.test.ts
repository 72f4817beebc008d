import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern } from '../helpers/dataset.js'
import { residentBytes } from '../helpers/smaps.js'

const PAGE = 65536
const switchable = fileURLToPath(new URL('../fixtures/switchable-backend.mjs', import.meta.url))

describe('eviction under maxResident', () => {
  it('keeps a read-only region within the bound (kernel RSS), with correct data on refetch', async () => {
    const size = 64 * 2 ** 20
    const maxResident = 4 * 2 ** 20
    const region = await openRegion({ pageSize: PAGE, maxResident, backend: { type: 'memory', data: sharedPattern(size) }, access: 'read-only' })
    try {
      const v = region.view()
      const address = region.handle().address
      let peak = 0
      // smaps walks the page tables over milliseconds; sampled while the pager
      // installs ahead and evicts behind, it counts both. Sample when it is idle.
      const sample = async (): Promise<void> => {
        await new Promise((r) => setTimeout(r, 5))
        peak = Math.max(peak, residentBytes(address))
      }
      for (let pass = 0; pass < 2; pass++) {
        for (let p = 0; p < size / PAGE; p++) {
          expect(checkPattern(v.subarray(p * PAGE, p * PAGE + 256), p * PAGE)).toBe(-1)
          if (p % 16 === 0) await sample()
        }
        let seed = 5 + pass
        for (let i = 0; i < 300; i++) {
          seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
          const p = seed % (size / PAGE)
          expect(checkPattern(v.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)).toBe(-1)
          if (i % 8 === 0) await sample()
        }
      }
      const s = region.stats()
      expect(peak).toBeLessThanOrEqual(maxResident * 1.1)
      expect(s.residentPages * PAGE).toBeLessThanOrEqual(maxResident)
      expect(s.evictedPages).toBeGreaterThan(size / PAGE)
      expect(s.refetchedPages).toBeGreaterThan(0)
    } finally {
      await region.close()
    }
  })

  // fresh: the backend's read buffers are fresh, so pages fetched ahead go
  // through the installer thread while writers fault on them and the evictor runs.
  it.each([false, true])('writes dirty pages back before dropping them; the backend ends equal to the model (fresh read buffers: %s)', async (fresh) => {
    const size = 32 * 2 ** 20
    const store = new SharedArrayBuffer(size)
    const control = new SharedArrayBuffer(8)
    const region = await openRegion({ pageSize: PAGE, maxResident: 2 * 2 ** 20, backend: { type: 'module', module: switchable, options: { store, control, fresh } } })
    const model = new Uint8Array(size)
    try {
      expect(region.writeTracking).toBe('sync-wp')
      const v = region.view()
      let peak = 0
      for (let p = 0; p < size / PAGE; p++) {
        for (let k = 0; k < 4; k++) v[p * PAGE + k * 1000] = model[p * PAGE + k * 1000] = (p + k) % 251 + 1
        peak = Math.max(peak, region.stats().residentPages)
      }
      // written back without anyone calling flush: eviction did it
      const before = region.stats()
      expect(before.pagesWritten).toBeGreaterThan(0)
      expect(before.evictedPages).toBeGreaterThan(0)
      expect(peak * PAGE).toBeLessThanOrEqual(2 * 2 ** 20 + 16 * PAGE)
      if (fresh) expect(before.installedOffThread).toBeGreaterThan(0)
      else expect(before.installedOffThread).toBe(0)
      // read everything back through the bounded region: evicted pages come back with their writes
      for (let p = 0; p < size / PAGE; p++) expect(v[p * PAGE]).toBe(model[p * PAGE])
    } finally {
      await region.close()
    }
    expect(Buffer.compare(Buffer.from(new Uint8Array(store)), Buffer.from(model))).toBe(0)
  })

  it('answers refaults of evicted clean pages from the second tier, without the backend', async () => {
    const size = 16 * 2 ** 20
    const region = await openRegion({ pageSize: PAGE, maxResident: 2 * 2 ** 20, secondTierBytes: 32 * 2 ** 20, backend: { type: 'memory', data: sharedPattern(size) }, access: 'read-only', readahead: false })
    try {
      const v = region.view()
      for (let pass = 0; pass < 2; pass++) {
        for (let p = 0; p < size / PAGE; p++) expect(checkPattern(v.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)).toBe(-1)
      }
      const s = region.stats()
      // the first pass fetched every page; the second pass refetched them all from the tier
      expect(s.pagesFetched).toBe(2 * (size / PAGE))
      expect(s.fetchRequests).toBeLessThanOrEqual(size / PAGE)
      expect(s.secondTierHits).toBeGreaterThanOrEqual(size / PAGE - 32)
      expect(s.refetchedPages).toBe(s.secondTierHits)
    } finally {
      await region.close()
    }
  })

  it('rejects a bound too small or combined with async tracking', async () => {
    await expect(openRegion({ size: 2 ** 20, pageSize: PAGE, maxResident: PAGE, backend: 'memory:' })).rejects.toMatchObject({ option: 'maxResident' })
    await expect(openRegion({ size: 2 ** 20, pageSize: 4096, maxResident: 2 ** 20, writeTracking: 'async', backend: 'memory:' })).rejects.toMatchObject({ option: 'maxResident', message: expect.stringMatching(/async/) })
    await expect(openRegion({ size: 2 ** 20, secondTierBytes: 2 ** 20, backend: 'memory:' })).rejects.toMatchObject({ option: 'secondTierBytes' })
  })
})
