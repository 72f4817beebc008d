/**
 * Finding written pages under asynchronous write-protect (UFFD_FEATURE_WP_ASYNC):
 * PAGEMAP_SCAN reports pages written since the last scan and re-protects them
 * in the same walk. The arguments follow docs/experiments/wp-async.md: the
 * page must be written AND present (or swapped) — `WRITTEN` alone also
 * matches every hole and evicted page, which would mark the whole region dirty.
 */
import { native, constants } from '@faultline/native'

const REGIONS_PER_CALL = 1024

export function makeWrittenScanner(address: number, size: number, pageSize: number): () => number[] {
  const out = new Float64Array(3 * REGIONS_PER_CALL)
  const walkEnd = new Float64Array(1)
  const flags = constants.PM_SCAN_WP_MATCHING | constants.PM_SCAN_CHECK_WPASYNC
  const written = constants.PAGE_IS_WRITTEN
  const anyOf = constants.PAGE_IS_PRESENT | constants.PAGE_IS_SWAPPED
  const end = address + size
  return () => {
    const pages: number[] = []
    let start = address
    while (start < end) {
      const n = native.pagemapScan(start, end - start, flags, written, anyOf, 0, written, 0, out, walkEnd)
      for (let i = 0; i < n; i++) {
        // Regions are in system pages; a region page is dirty if any part of it is.
        const first = Math.floor((out[i * 3]! - address) / pageSize)
        const last = Math.floor((out[i * 3 + 1]! - 1 - address) / pageSize)
        for (let p = first; p <= last; p++) if (pages[pages.length - 1] !== p) pages.push(p)
      }
      const next = walkEnd[0]!
      if (next <= start || next >= end) break
      start = next
    }
    return pages
  }
}
