import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { tempDir } from '../helpers/tmp.js'
import { writePatternFile, writeSparseFile } from '../helpers/dataset.js'

const dir = tempDir()

describe('file backend through a region', () => {
  it('reads a 1 GiB file from the main thread with the same SHA-256 as the file', async () => {
    const path = join(dir, 'one-gib.bin')
    const size = 2 ** 30
    const expected = writePatternFile(path, size)
    const region = await openRegion({ backend: `file://${path}`, pageSize: 64 * 1024 })
    try {
      expect(region.size).toBe(size)
      const hash = createHash('sha256')
      for (let off = 0; off < size; off += 16 * 2 ** 20) hash.update(region.view(off, 16 * 2 ** 20))
      expect(hash.digest('hex')).toBe(expected)
      const s = region.stats()
      expect(s.pagesFetched).toBe(size / (64 * 1024))
      expect(s.bytesFetched).toBe(size)
      expect(s.residentPages).toBe(size / (64 * 1024))
      expect(s.fetchErrors).toBe(0)
      expect(s.faultLatencyUs.count).toBeGreaterThan(0)
      expect(s.faultLatencyUs.p50).toBeGreaterThan(0)
    } finally {
      await region.close()
    }
  })

  it('maps an 8 GiB sparse file: data where it has data, zeros in holes, no backend reads for holes', async () => {
    const path = join(dir, 'sparse.bin')
    const size = 8 * 2 ** 30
    const pageSize = 64 * 1024
    // Data at 1 MiB, at 3 GiB (crossing no page boundary) and in the last page.
    const ranges: Array<[number, number]> = [
      [2 ** 20, 4 * pageSize],
      [3 * 2 ** 30, pageSize],
      [size - pageSize, pageSize],
    ]
    writeSparseFile(path, size, ranges)
    const isData = (page: number): boolean => ranges.some(([s, l]) => page * pageSize >= s && page * pageSize < s + l)
    // readahead off: this test counts exactly which pages were read
    const region = await openRegion({ backend: { type: 'file', path }, pageSize, readahead: false })
    try {
      expect(region.size).toBe(size)
      const pages = new Set<number>()
      for (const [s, l] of ranges) for (let o = s; o < s + l; o += pageSize) pages.add(o / pageSize)
      let seed = 12345
      while (pages.size < 400) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
        pages.add(seed % (size / pageSize))
      }
      let dataPages = 0
      for (const page of pages) {
        const v = region.view(page * pageSize, pageSize)
        if (isData(page)) {
          dataPages++
          expect(checkPattern(v, page * pageSize)).toBe(-1)
        } else {
          expect(v.every((b) => b === 0)).toBe(true)
        }
      }
      const s = region.stats()
      expect(s.pagesFetched).toBe(dataPages)
      expect(s.zeroPages).toBe(pages.size - dataPages)
      expect(s.bytesFetched).toBe(dataPages * pageSize)
    } finally {
      await region.close()
    }
  })

  it('reads the tail of a file that is not a whole number of pages, zero-filled', async () => {
    const path = join(dir, 'odd.bin')
    const size = 3 * 4096 + 100
    writePatternFile(path, size)
    const region = await openRegion({ backend: { type: 'file', path, readOnly: true }, pageSize: 4096 })
    try {
      expect(region.size).toBe(4 * 4096)
      expect(region.dataSize).toBe(size)
      const tail = region.view(3 * 4096, 4096)
      expect(checkPattern(tail.subarray(0, 100), 3 * 4096)).toBe(-1)
      expect(tail.subarray(100).every((b) => b === 0)).toBe(true)
    } finally {
      await region.close()
    }
  })
})
