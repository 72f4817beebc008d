/** region.read(): bytes from the backend as a promise, so a failed fetch is an exception, not a SIGBUS. */
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern } from '../helpers/dataset.js'

const testBackends = fileURLToPath(new URL('../fixtures/test-backends.mjs', import.meta.url))
const PAGE = 4096

describe('region.read()', () => {
  it('returns any byte range, across pages and past the data into the zero tail, without installing anything', async () => {
    const data = sharedPattern(64 * PAGE)
    const region = await openRegion({ size: 64 * PAGE + 100, pageSize: PAGE, backend: { type: 'memory', data } })
    try {
      const bytes = await region.read(3 * PAGE + 12, 9 * PAGE)
      expect(bytes.byteLength).toBe(9 * PAGE)
      expect(checkPattern(bytes, 3 * PAGE + 12)).toBe(-1)
      const tail = await region.read(63 * PAGE, PAGE + 100)
      expect(checkPattern(tail.subarray(0, PAGE), 63 * PAGE)).toBe(-1)
      expect(tail.subarray(PAGE).every((b) => b === 0)).toBe(true)
      const s = region.stats()
      expect(s.residentPages).toBe(0)
      expect(s.faults).toBe(0)
      expect(s.bytesFetched).toBe(11 * PAGE)
    } finally {
      await region.close()
    }
  })

  it('rejects a page of the wrong length with ERR_BAD_PAGE, and a backend that stays down with ERR_BACKEND', async () => {
    const short = await openRegion({ size: 1 << 20, pageSize: PAGE, backend: { type: 'module', module: testBackends, options: { mode: 'short' } } })
    try {
      await expect(short.read(2 * PAGE, 10)).rejects.toMatchObject({ code: 'ERR_BAD_PAGE', pages: [2] })
    } finally {
      await short.close()
    }
    const down = await openRegion({ size: 1 << 20, pageSize: PAGE, fetchTimeoutMs: 100, backend: { type: 'module', module: testBackends, options: { mode: 'down' } } })
    try {
      await expect(down.read(0, 2 * PAGE)).rejects.toMatchObject({ code: 'ERR_BACKEND', pages: [0, 1], message: expect.stringMatching(/backend is down/) })
      expect(down.stats().fetchRetries).toBeGreaterThan(0)
    } finally {
      await down.close()
    }
  })

  it('validates its arguments and refuses a closed region', async () => {
    const region = await openRegion({ size: 1 << 20, pageSize: PAGE, backend: 'memory:' })
    await expect(region.read(-1, 5)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', option: 'offset' })
    await expect(region.read(0, 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', option: 'length' })
    await expect(region.read((1 << 20) - 4, 8)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', option: 'length' })
    await region.close()
    await expect(region.read(0, 5)).rejects.toMatchObject({ code: 'ERR_REGION_CLOSED' })
  })
})
