import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { rejection } from '../helpers/errors.js'

describe('openRegion option validation', () => {
  it('rejects size 0, naming the option', async () => {
    const err = await rejection(openRegion({ size: 0, backend: 'memory:' }))
    expect(err.code).toBe('ERR_INVALID_OPTION')
    expect(err.option).toBe('size')
    expect(err.message).toMatch(/`size`/)
  })

  it.each([3000, 12288, 2048, -4096, 1.5, Number.NaN])('rejects pageSize %s', async (pageSize) => {
    const err = await rejection(openRegion({ size: 1 << 20, pageSize, backend: 'memory:' }))
    expect(err.code).toBe('ERR_INVALID_OPTION')
    expect(err.option).toBe('pageSize')
    expect(err.message).toMatch(/power of two/)
  })

  it('rejects an unknown backend type inside the pager and names it', async () => {
    const err = await rejection(openRegion({ size: 1 << 20, backend: { type: 'floppy' } }))
    expect(err.code).toBe('ERR_UNKNOWN_BACKEND')
    expect(err.message).toMatch(/floppy/)
    expect(err.message).toMatch(/memory, file/)
  })

  it('rejects an unknown URL scheme', async () => {
    const err = await rejection(openRegion({ size: 1 << 20, backend: 'gopher://x/y' }))
    expect(err.code).toBe('ERR_UNKNOWN_BACKEND')
    expect(err.option).toBe('backend')
  })

  it('rejects a relative file URL path and a relative file path', async () => {
    const err = await rejection(openRegion({ size: 1 << 20, backend: { type: 'file', path: 'relative.bin' } }))
    expect(err.code).toBe('ERR_INVALID_OPTION')
    expect(err.option).toBe('backend.path')
    const err2 = await rejection(openRegion({ size: 1 << 20, backend: 'file://host/x' }))
    expect(err2.option).toBe('backend')
  })

  it('rejects options it does not know, so typos do not pass silently', async () => {
    const err = await rejection(openRegion({ size: 1 << 20, backend: 'memory:', pagesize: 4096 } as never))
    expect(err.option).toBe('pagesize')
  })

  it('rejects a missing backend and a missing size the backend cannot supply', async () => {
    expect((await rejection(openRegion({ size: 4096 } as never))).option).toBe('backend')
    const err = await rejection(openRegion({ backend: 'memory:' }))
    expect(err.code).toBe('ERR_GEOMETRY')
    expect(err.option).toBe('size')
  })

  it('rejects bad access, fetchTimeoutMs and maxBatchPages values', async () => {
    expect((await rejection(openRegion({ size: 4096, backend: 'memory:', access: 'rw' as never }))).option).toBe('access')
    expect((await rejection(openRegion({ size: 4096, backend: 'memory:', fetchTimeoutMs: -1 }))).option).toBe('fetchTimeoutMs')
    expect((await rejection(openRegion({ size: 4096, backend: 'memory:', maxBatchPages: 0 }))).option).toBe('maxBatchPages')
  })

  it('rejects unknown memory backend options', async () => {
    const err = await rejection(openRegion({ size: 4096, backend: { type: 'memory', bytes: 1 } }))
    expect(err.option).toBe('backend.bytes')
  })
})

describe('region argument validation', () => {
  it('rejects views and prefetches out of range, naming the argument', async () => {
    const region = await openRegion({ size: 1 << 20, pageSize: 4096, backend: 'memory:' })
    try {
      expect(() => region.view(-1, 10)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', option: 'offset' }))
      expect(() => region.view(1 << 20, 1)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', option: 'offset' }))
      expect(() => region.view(0, (1 << 20) + 1)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', option: 'length' }))
      expect(() => region.view(1.5, 1)).toThrow(expect.objectContaining({ option: 'offset' }))
      await expect(region.prefetch(0, 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', option: 'length' })
      expect(region.view(4096, 100).length).toBe(100)
      expect(region.view().length).toBe(1 << 20)
    } finally {
      await region.close()
    }
  })

  it('rejects every use after close with ERR_REGION_CLOSED', async () => {
    const region = await openRegion({ size: 1 << 20, backend: 'memory:' })
    await region.close()
    expect(() => region.view(0, 1)).toThrow(expect.objectContaining({ code: 'ERR_REGION_CLOSED' }))
    await expect(region.prefetch(0, 1)).rejects.toMatchObject({ code: 'ERR_REGION_CLOSED' })
    await expect(region.flush()).rejects.toMatchObject({ code: 'ERR_REGION_CLOSED' })
    expect(() => region.handle()).toThrow(expect.objectContaining({ code: 'ERR_REGION_CLOSED' }))
    await region.close() // idempotent
  })
})
