import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'

describe('regions larger than 4 GiB', () => {
  it('serves views anywhere in a 12 GiB region through windows', async () => {
    const size = 12 * 2 ** 30
    const region = await openRegion({ size, pageSize: 65536, backend: 'memory:', readahead: false })
    try {
      for (const offset of [0, 2 ** 31 - 8, 5 * 2 ** 30 + 12345, size - 16]) {
        const v = region.view(offset, 16)
        expect(v.length).toBe(16)
        v.fill(7)
        expect(region.view(offset, 16).every((b) => b === 7)).toBe(true)
      }
      // a full 4 GiB view starting on a window boundary
      expect(region.view(2 ** 32, 2 ** 32).length).toBe(2 ** 32)
      // default length stops at the window's end
      expect(region.view(2 ** 30).length).toBe(3 * 2 ** 30)
      expect(() => region.view(2 ** 30, 2 ** 32)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', option: 'length' }))
      expect(() => region.view(0, 2 ** 32 + 1)).toThrow(/4 GiB/)
      // pages 0, 32767 and 32768 (the view at 2 GiB − 8 spans both), 81920 and the last
      expect(region.stats().residentPages).toBe(5)
      expect(region.stats().zeroPages).toBe(5)
    } finally {
      await region.close()
    }
  })
})
