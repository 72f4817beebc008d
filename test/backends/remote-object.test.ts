/**
 * The "mmap a remote dataset" case end to end: a 256 MiB file uploaded to
 * s3rver and served by the static HTTP server is mapped through the s3
 * (dataset mode) and http backends. What crossed the network is checked
 * twice: by the region's stats and by the servers' own request logs.
 */
import { createHash } from 'node:crypto'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { writePatternFile } from '../helpers/dataset.js'
import { deleteObject, putFile, rangeSizes, requestLog, s3Spec, uniqueKey } from '../helpers/remote.js'

const SIZE = 256 * 2 ** 20
const PAGE = 65536
const PAGES = SIZE / PAGE
const CHUNK = 4 * 2 ** 20

const name = `${uniqueKey('big')}.bin`
const key = uniqueKey('big')
let fileHash = ''

beforeAll(async () => {
  const path = join(inject('httpDir'), name)
  fileHash = writePatternFile(path, SIZE)
  await putFile(key, path)
}, 180_000)

afterAll(async () => {
  rmSync(join(inject('httpDir'), name), { force: true })
  await deleteObject(key)
})

const targets: Array<[string, () => BackendSpec, () => Promise<number[]>]> = [
  ['s3', () => s3Spec(key), async () => rangeSizes(await requestLog('s3', `/${inject('s3Bucket')}/${key}`))],
  ['http', () => `${inject('httpBase')}/${name}` as unknown as BackendSpec, async () => rangeSizes(await requestLog('http', `/${name}`))],
]

/** 1% of the pages, spread at random (seeded, so a failure reproduces). */
function randomPages(count: number): number[] {
  const picked = new Set<number>()
  let seed = 0x2545f491
  while (picked.size < count) {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    picked.add((seed >>> 0) % PAGES)
  }
  return [...picked]
}

describe.each(targets)('a 256 MiB object mapped through %s', (_kind, spec, ranges) => {
  it('maps as a region of the object\'s size whose SHA-256 is the file\'s; a sequential scan fetches it in large ranges', async () => {
    const region = await openRegion({ backend: spec(), pageSize: PAGE })
    // After the open: the http backend's one-byte probe is not part of the scan.
    const before = (await ranges()).length
    try {
      expect(region.dataSize).toBe(SIZE)
      expect(region.readOnly).toBe(true)
      const hash = createHash('sha256')
      for (let offset = 0; offset < SIZE; offset += CHUNK) hash.update(region.view(offset, CHUNK))
      expect(hash.digest('hex')).toBe(fileHash)
      const s = region.stats()
      expect(s.fetchErrors).toBe(0)
      expect(s.pagesFetched).toBe(PAGES)
      expect(s.bytesFetched).toBe(SIZE)
      // Readahead and range merging: a handful of requests, not one per page.
      expect(s.fetchRequests).toBeLessThan(PAGES / 8)
      // Pages fetched ahead are copied in by the installer thread, off the pager's.
      expect(s.installedOffThread).toBeGreaterThan(PAGES / 2)
      const sizes = (await ranges()).slice(before)
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(SIZE)
      expect(sizes.length).toBeLessThan(PAGES / 8)
      // Requests near the reader start small while the stream ramps up; past
      // that they are large: most bytes come in ranges of 4 MiB or more (the
      // ramp to the 64 MiB lookahead reads a few tens of MiB), none over the 8 MiB bound.
      expect(sizes.filter((n) => n >= 4 * 2 ** 20).reduce((a, b) => a + b, 0)).toBeGreaterThan(SIZE * 0.85)
      expect(Math.max(...sizes)).toBeLessThanOrEqual(8 * 2 ** 20)
      console.log(`${_kind}: ${PAGES} pages in ${s.fetchRequests} backend reads, ${sizes.length} ranged GETs (median ${sizes.sort((a, b) => a - b)[sizes.length >> 1]} bytes), ${s.faults} faults`)
    } finally {
      await region.close()
    }
  })

  it('reading 1% of the pages at random fetches at most 2% of the bytes, all correct', async () => {
    const region = await openRegion({ backend: spec(), pageSize: PAGE })
    const before = (await ranges()).length
    try {
      const pages = randomPages(PAGES / 100)
      const v = region.view()
      for (const p of pages) expect(checkPattern(v.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)).toBe(-1)
      const s = region.stats()
      expect(s.fetchErrors).toBe(0)
      expect(s.bytesFetched).toBeLessThanOrEqual(0.02 * SIZE)
      const fetched = (await ranges()).slice(before).reduce((a, b) => a + b, 0)
      expect(fetched).toBeLessThanOrEqual(0.02 * SIZE)
      console.log(`${_kind}: ${pages.length} random pages (${((pages.length / PAGES) * 100).toFixed(2)}%) → ${s.bytesFetched} bytes fetched (${((s.bytesFetched / SIZE) * 100).toFixed(2)}%), server saw ${fetched} bytes in ranged GETs`)
    } finally {
      await region.close()
    }
  })
})
