import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern, writePatternFile } from '../helpers/dataset.js'
import { tempDir } from '../helpers/tmp.js'

const PAGE = 65536
const SIZE = 64 * 2 ** 20
const PAGES = SIZE / PAGE

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 50))
}

describe('readahead', () => {
  it('installs pages ahead of a sequential reader, in few requests, with correct bytes', async () => {
    const region = await openRegion({ pageSize: PAGE, backend: { type: 'memory', data: sharedPattern(SIZE) } })
    try {
      const v = region.view()
      for (let p = 0; p < 8; p++) expect(checkPattern(v.subarray(p * PAGE, p * PAGE + 64), p * PAGE)).toBe(-1)
      await settle()
      // the reader touched 8 pages; more than that are installed
      const ahead = region.stats()
      expect(ahead.residentPages).toBeGreaterThan(8)
      expect(ahead.prefetchedPages).toBeGreaterThan(0)
      for (let p = 8; p < PAGES; p++) expect(checkPattern(v.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)).toBe(-1)
      const s = region.stats()
      expect(s.pagesFetched).toBe(PAGES)
      expect(s.faults).toBeLessThan(PAGES / 4)
      expect(s.fetchRequests).toBeLessThan(PAGES / 4)
    } finally {
      await region.close()
    }
  })

  it('fetches nothing extra for a random reader', async () => {
    const region = await openRegion({ pageSize: PAGE, backend: { type: 'memory', data: sharedPattern(SIZE) } })
    try {
      const v = region.view()
      const touched = new Set<number>()
      let seed = 42
      while (touched.size < 100) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
        const p = 1 + (seed % (PAGES - 1)) // page 0 starts a stream by design
        if (touched.has(p) || touched.has(p - 1) || touched.has(p + 1)) continue
        touched.add(p)
        expect(checkPattern(v.subarray(p * PAGE, p * PAGE + 64), p * PAGE)).toBe(-1)
      }
      await settle()
      const s = region.stats()
      expect(s.pagesFetched).toBe(100)
      expect(s.prefetchedPages).toBe(0)
      expect(s.residentPages).toBe(100)
    } finally {
      await region.close()
    }
  })

  it('can be turned off: one fault per page', async () => {
    const region = await openRegion({ pageSize: PAGE, readahead: false, backend: { type: 'memory', data: sharedPattern(SIZE) } })
    try {
      const v = region.view()
      let sum = 0
      for (let p = 0; p < 64; p++) sum += v[p * PAGE]!
      expect(sum).toBeGreaterThanOrEqual(0)
      const s = region.stats()
      expect(s.faults).toBe(64)
      expect(s.residentPages).toBe(64)
    } finally {
      await region.close()
    }
  })

  it('rejects a bad readahead option, naming it', async () => {
    await expect(openRegion({ size: PAGE, backend: 'memory:', readahead: { maxBytes: -1 } })).rejects.toMatchObject({ option: 'readahead.maxBytes' })
    await expect(openRegion({ size: PAGE, backend: 'memory:', readahead: true as never })).rejects.toMatchObject({ option: 'readahead' })
  })

  it('starts the next window when the reader reaches a marker still on its way, not when it arrives', async () => {
    // One read at a time, 100 ms each, 2 pages per read: the window after
    // page 3's marker is pages 5-12 in four reads, its marker (page 9) in
    // the third. The reader waits for 7-8, then faults on 9 while its read
    // is still queued: the next window (from page 13) must be asked for then.
    const pageSize = 4096
    const data = sharedPattern(64 * pageSize)
    const log = new SharedArrayBuffer(8 * (1 + 4 * 64))
    const module = fileURLToPath(new URL('../fixtures/serial-backend.mjs', import.meta.url))
    const region = await openRegion({ pageSize, maxBatchPages: 2, readahead: { maxBytes: 16 * pageSize }, access: 'read-only', backend: { type: 'module', module, options: { store: data.buffer, log, delayMs: 100 } } })
    try {
      const v = region.view()
      for (let p = 0; p < 20; p++) expect(checkPattern(v.subarray(p * pageSize, (p + 1) * pageSize), p * pageSize)).toBe(-1)
    } finally {
      await region.close()
    }
    const cells = new Float64Array(log)
    const reads = Array.from({ length: cells[0]! }, (_, k) => ({ start: cells[1 + 4 * k]!, end: cells[2 + 4 * k]!, first: cells[3 + 4 * k]!, count: cells[4 + 4 * k]! }))
    const holding = (page: number) => reads.find((r) => page >= r.first && page < r.first + r.count)
    const marker = holding(9)
    const next = holding(13)
    expect(marker).toBeDefined()
    expect(next).toBeDefined()
    // Asked for while the marker's read was still a whole delay away from done.
    expect(next!.start).toBeLessThan(marker!.end - 50)
  })

  // Found by the bounce stress (test/stress): the held copy was data.slice(),
  // which on a Buffer is a view, so the file backend's next read into its
  // scratch buffer (or a recycled Redis read buffer) rewrote it, and the
  // marker page was installed with another page's bytes.
  it('installs a held marker with its own bytes after the backend has reused its read buffer', async () => {
    const pageSize = 4096
    const path = join(tempDir(), 'pattern.bin')
    writePatternFile(path, 64 * pageSize)
    const region = await openRegion({ pageSize, access: 'read-only', backend: { type: 'file', path } })
    try {
      const v = region.view()
      // A miss at page 0 reads 0-4 in one batch and holds pages 1 and 3, the window's markers.
      expect(checkPattern(v.subarray(0, 64), 0)).toBe(-1)
      await settle()
      // Five pages elsewhere: the file backend reads them into the same scratch buffer.
      await region.prefetch(40 * pageSize, 5 * pageSize)
      // Installs the held marker from JS.
      await region.prefetch(3 * pageSize, pageSize)
      expect(checkPattern(v.subarray(3 * pageSize, 4 * pageSize), 3 * pageSize)).toBe(-1)
    } finally {
      await region.close()
    }
  })
})
