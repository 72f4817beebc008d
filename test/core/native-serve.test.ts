// Pages already in the process are installed by the native watcher before
// any JS runs (stats().servedNatively); everything else still goes through
// the pager, and the books (resident, dirty, eviction, readahead) stay right.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern, writePatternFile } from '../helpers/dataset.js'
import { tempDir } from '../helpers/tmp.js'

const PAGE = 65536

function randomPages(count: number, pages: number, seed = 3): number[] {
  const out: number[] = []
  for (let i = 0; i < count; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    out.push(seed % pages)
  }
  return out
}

describe('faults answered natively', () => {
  it("the memory backend's shared pages: every fault, with correct bytes and exact counters", async () => {
    const size = 16 * 2 ** 20
    const region = await openRegion({ pageSize: PAGE, backend: { type: 'memory', data: sharedPattern(size) }, readahead: false })
    try {
      const v = region.view()
      const touched = new Set<number>()
      for (const p of randomPages(100, size / PAGE)) {
        expect(checkPattern(v.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)).toBe(-1)
        touched.add(p)
      }
      const s = region.stats()
      expect(s.servedNatively).toBe(s.faults)
      expect(s.faults).toBe(touched.size)
      expect(s.pagesFetched).toBe(touched.size)
      expect(s.residentPages).toBe(touched.size)
      expect(s.fetchRequests).toBe(0) // the backend's read() was never called
      expect(s.faultLatencyUs.count).toBe(touched.size)
    } finally {
      await region.close()
    }
  })

  it('a write to a missing shared page is dirty at once and reaches the backend on flush', async () => {
    const data = sharedPattern(2 ** 20)
    const region = await openRegion({ pageSize: 4096, backend: { type: 'memory', data }, writeTracking: 'sync', readahead: false })
    try {
      const v = region.view()
      v[7 * 4096 + 3] = 0xee
      expect(region.stats()).toMatchObject({ servedNatively: 1, dirtyPages: 1, residentPages: 1 })
      expect(data[7 * 4096 + 3]).not.toBe(0xee)
      await region.flush()
      expect(data[7 * 4096 + 3]).toBe(0xee)
      expect(region.stats()).toMatchObject({ dirtyPages: 0, pagesWritten: 1 })
    } finally {
      await region.close()
    }
  })

  it("the file backend's held readahead pages: the reader's fault on one is answered natively and the stream goes on", async () => {
    const size = 32 * 2 ** 20
    const path = join(tempDir(), 'seq.bin')
    writePatternFile(path, size)
    // Read-write, so misses go to the pager (a read-only file's are all answered with pread).
    const region = await openRegion({ pageSize: PAGE, backend: { type: 'file', path }, writeTracking: 'sync' })
    try {
      const v = region.view()
      for (let p = 0; p < size / PAGE; p++) expect(checkPattern(v.subarray(p * PAGE, p * PAGE + 512), p * PAGE)).toBe(-1)
      const s = region.stats()
      expect(s.servedNatively).toBeGreaterThan(0)
      expect(s.servedNatively).toBeLessThan(s.faults) // the stream's first misses went to the pager
      expect(s.pagesFetched).toBe(size / PAGE)
      expect(s.faults).toBeLessThan(size / PAGE / 4)
    } finally {
      await region.close()
    }
  })

  it('evicted clean pages kept in the second tier come back natively, without the backend', async () => {
    const size = 8 * 2 ** 20
    const path = join(tempDir(), 'tier.bin')
    writePatternFile(path, size)
    // Read-write (nothing is written), so misses go to the pager, not to pread.
    const region = await openRegion({ pageSize: PAGE, backend: { type: 'file', path }, readahead: false, maxResident: 2 * 2 ** 20, secondTierBytes: 16 * 2 ** 20 })
    try {
      const v = region.view()
      for (let pass = 0; pass < 2; pass++) {
        for (let p = 0; p < size / PAGE; p++) expect(checkPattern(v.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)).toBe(-1)
      }
      // Let the pager finish its books for the last faults.
      await region.flush()
      const s = region.stats()
      expect(s.secondTierHits).toBeGreaterThan(size / PAGE / 2)
      expect(s.servedNatively).toBe(s.secondTierHits)
      expect(s.refetchedPages).toBe(s.secondTierHits)
      expect(s.fetchRequests).toBe(size / PAGE) // only the first pass read the file
      expect(s.residentPages * PAGE).toBeLessThanOrEqual(2 * 2 ** 20)
    } finally {
      await region.close()
    }
  })
})

describe('file pages answered natively (pread in the watcher)', () => {
  const dir = tempDir()

  it('a read-only file: every fault, with correct bytes, zeros past the end of a partial last page', async () => {
    const path = join(dir, 'ro.bin')
    const size = 4 * 2 ** 20 + 1000
    writePatternFile(path, size - 1000)
    // A tail shorter than a page: pattern, then zeros to the page's end.
    const { appendFileSync } = await import('node:fs')
    appendFileSync(path, Buffer.alloc(1000, 7))
    const region = await openRegion({ pageSize: 4096, backend: { type: 'file', path, readOnly: true }, readahead: false })
    try {
      const v = region.view()
      const touched = new Set<number>()
      for (const p of randomPages(300, Math.floor((size - 1000) / 4096), 11)) {
        expect(checkPattern(v.subarray(p * 4096, (p + 1) * 4096), p * 4096)).toBe(-1)
        touched.add(p)
      }
      const last = v.subarray(region.size - 4096)
      const tailStart = size - (region.size - 4096)
      expect(last.subarray(tailStart - 1000, tailStart).every((b) => b === 7)).toBe(true)
      expect(last.subarray(tailStart).every((b) => b === 0)).toBe(true)
      const s = region.stats()
      expect(s.servedNatively).toBe(s.faults)
      expect(s.faults).toBe(touched.size + 1)
      expect(s.fetchRequests).toBe(0)
    } finally {
      await region.close()
    }
  })

  it('a read-write file region stays on the JS path (its journal may hold pages newer than the file)', async () => {
    const path = join(dir, 'rw.bin')
    writePatternFile(path, 2 ** 20)
    const region = await openRegion({ pageSize: 4096, backend: { type: 'file', path }, writeTracking: 'sync', readahead: false })
    try {
      const v = region.view()
      expect(checkPattern(v.subarray(5 * 4096, 6 * 4096), 5 * 4096)).toBe(-1)
      expect(region.stats().servedNatively).toBe(0)
      expect(region.stats().fetchRequests).toBe(1)
    } finally {
      await region.close()
    }
  })
})
