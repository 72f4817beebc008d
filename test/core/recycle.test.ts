// A backend may fill a read buffer again once the pager hands it back
// (Backend.recycle). The pager must hand each buffer back once, and only when
// its bytes are in the region: the fixture poisons a buffer the moment it
// comes back, so an early hand-back shows up as a wrong page.
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern } from '../helpers/dataset.js'

const PAGE = 65536
const recycling = fileURLToPath(new URL('../fixtures/recycling-backend.mjs', import.meta.url))

function recyclingBackend(size: number) {
  const control = new SharedArrayBuffer(8)
  const backend = { type: 'module', module: recycling, options: { store: sharedPattern(size).buffer, control } }
  return { backend, counters: new Int32Array(control) }
}

function expectPattern(view: Uint8Array, pages: Iterable<number>): void {
  for (const p of pages) expect(checkPattern(view.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE), `page ${p}`).toBe(-1)
}

describe('read buffers handed back to the backend', () => {
  it('a sequential scan (readahead, held markers, the installer thread) reads every page right and hands each buffer back once', async () => {
    const size = 32 * 2 ** 20
    const { backend, counters } = recyclingBackend(size)
    const region = await openRegion({ pageSize: PAGE, backend, access: 'read-only' })
    try {
      const v = region.view()
      expectPattern(v, Array.from({ length: size / PAGE }, (_, p) => p))
      await region.prefetch()
      const s = region.stats()
      expect(s.installedOffThread).toBeGreaterThan(0)
      expect(Atomics.load(counters, 1)).toBe(0)
      // Every page fetched was handed back: each page came from the backend once.
      expect(Atomics.load(counters, 0)).toBe(s.pagesFetched)
    } finally {
      await region.close()
    }
  })

  it('random faults, prefetch() and eviction under maxResident: pages refetched into reused buffers are right', async () => {
    const size = 16 * 2 ** 20
    const { backend, counters } = recyclingBackend(size)
    const region = await openRegion({ pageSize: PAGE, backend, access: 'read-only', maxResident: 4 * 2 ** 20 })
    try {
      const v = region.view()
      const pages = size / PAGE
      let s = 7
      for (let round = 0; round < 3; round++) {
        const order = Array.from({ length: pages }, (_, p) => p)
        for (let i = order.length - 1; i > 0; i--) {
          s = (Math.imul(s, 1103515245) + 12345) >>> 0
          const j = s % (i + 1)
          ;[order[i], order[j]] = [order[j]!, order[i]!]
        }
        expectPattern(v, order.slice(0, pages / 2))
        await region.prefetch(round * 2 * 2 ** 20, 2 * 2 ** 20)
        expectPattern(v, Array.from({ length: 32 }, (_, p) => (round * 2 * 2 ** 20) / PAGE + p))
      }
      const stats = region.stats()
      expect(stats.evictedPages).toBeGreaterThan(0)
      expect(Atomics.load(counters, 1)).toBe(0)
      expect(Atomics.load(counters, 0)).toBeGreaterThan(pages)
    } finally {
      await region.close()
    }
  })
})
