// pagemapScan (ioctl PAGEMAP_SCAN on /proc/self/pagemap) with real memory.
// Nothing here touches a missing page: pages are filled with uffdCopy before
// any access, and writes go to present pages, which on a WP_ASYNC
// registration never block (the kernel unprotects them itself). A watchdog
// still guards every access to registered memory, so a surprise fault fails
// the test instead of hanging it.
import { describe, expect, it } from 'vitest'
import { constants, FEATURE_BITS, isNativeError, native, type NativeError } from '@faultline/native'
import { PAGE, pattern, region, watchdog } from './helpers.js'

const MISSING = constants.UFFDIO_REGISTER_MODE_MISSING
const WP = constants.UFFDIO_REGISTER_MODE_WP
const COPY_WP = constants.UFFDIO_COPY_MODE_WP
const WP_MATCHING = constants.PM_SCAN_WP_MATCHING
const CHECK_WPASYNC = constants.PM_SCAN_CHECK_WPASYNC
const WRITTEN = constants.PAGE_IS_WRITTEN
const PRESENT = constants.PAGE_IS_PRESENT

interface Region3 {
  start: number
  end: number
  categories: number
}

/** One pagemapScan call; regions decoded from the triples. */
function scanOnce(
  address: number,
  length: number,
  opts: { flags?: number; mask?: number; anyof?: number; inverted?: number; ret?: number; maxPages?: number; capacity?: number },
): { regions: Region3[]; walkEnd: number } {
  const out = new Float64Array(3 * (opts.capacity ?? 64))
  const walkEnd = new Float64Array(1)
  const n = native.pagemapScan(
    address,
    length,
    opts.flags ?? 0,
    opts.mask ?? 0,
    opts.anyof ?? 0,
    opts.inverted ?? 0,
    opts.ret ?? 0,
    opts.maxPages ?? 0,
    out,
    walkEnd,
  )
  const regions: Region3[] = []
  for (let k = 0; k < n; k++) regions.push({ start: out[3 * k]!, end: out[3 * k + 1]!, categories: out[3 * k + 2]! })
  return { regions, walkEnd: walkEnd[0]! }
}

/** Page indices (relative to base) covered by regions. */
function pagesOf(base: number, regions: Region3[]): number[] {
  const pages: number[] = []
  for (const r of regions) for (let a = r.start; a < r.end; a += PAGE) pages.push((a - base) / PAGE)
  return pages
}

function nativeError(fn: () => unknown): NativeError {
  try {
    fn()
  } catch (err) {
    expect(isNativeError(err)).toBe(true)
    return err as NativeError
  }
  throw new Error('expected a FaultlineNativeError, nothing was thrown')
}

/** A WP_ASYNC uffd with `pages` registered MISSING|WP, every page filled (clean) with COPY_MODE_WP. */
function filledAsyncRegion(pages: number) {
  const r = region(pages, MISSING | WP, FEATURE_BITS.WP_ASYNC)
  const src = pattern(pages, 3)
  expect(native.uffdCopy(r.fd, r.base, src, 0, r.length, COPY_WP)).toBe(r.length)
  return { r, src }
}

/** Writes one byte into each listed page from this thread, guarded by a watchdog. */
async function writePages(r: { fd: number; base: number; length: number }, pages: number[], value: number) {
  const dog = watchdog(r.fd, r.base, r.length, 3000)
  await dog.ready
  const view = new Uint8Array(native.externalBuffer(r.base, r.length))
  for (const p of pages) view[p * PAGE + 17] = value
  native.detachBuffer(view.buffer)
  await dog.cancel()
  expect(dog.fired()).toBe(false)
}

describe('pagemapScan constants', () => {
  it('match include/uapi/linux/fs.h', () => {
    const c = native.constants
    expect(c.PAGEMAP_SCAN).toBe(0xc0606610)
    expect([c.PM_SCAN_WP_MATCHING, c.PM_SCAN_CHECK_WPASYNC]).toEqual([1, 2])
    const names = ['WPALLOWED', 'WRITTEN', 'FILE', 'PRESENT', 'SWAPPED', 'PFNZERO', 'HUGE', 'SOFT_DIRTY', 'GUARD']
    expect(names.map((n) => c[`PAGE_IS_${n}`])).toEqual(names.map((_, bit) => 2 ** bit))
  })
})

describe('pagemapScan on a WP_ASYNC registration', () => {
  it('reports exactly the pages written since the last scan, and re-protects them', async () => {
    const pages = 16
    const { r } = filledAsyncRegion(pages)
    try {
      const get = () =>
        scanOnce(r.base, r.length, { flags: WP_MATCHING | CHECK_WPASYNC, mask: WRITTEN, ret: WRITTEN })
      // COPY_MODE_WP pages are clean
      expect(get()).toEqual({ regions: [], walkEnd: r.base + r.length })
      // without output: present, write-protected, WP allowed
      const all = scanOnce(r.base, r.length, { ret: WRITTEN | PRESENT | constants.PAGE_IS_WPALLOWED })
      expect(all.regions).toEqual([
        { start: r.base, end: r.base + r.length, categories: PRESENT | constants.PAGE_IS_WPALLOWED },
      ])

      await writePages(r, [1, 5, 6, 12], 0xee)
      // no uffd message: WP_ASYNC resolved the write-protect faults in the kernel
      expect(native.uffdRead(r.fd, new Float64Array(8))).toBe(0)

      const first = get()
      expect(first.walkEnd).toBe(r.base + r.length)
      expect(first.regions).toEqual([
        { start: r.base + PAGE, end: r.base + 2 * PAGE, categories: WRITTEN },
        { start: r.base + 5 * PAGE, end: r.base + 7 * PAGE, categories: WRITTEN },
        { start: r.base + 12 * PAGE, end: r.base + 13 * PAGE, categories: WRITTEN },
      ])
      // get-and-reset: the same pages are clean now
      expect(get().regions).toEqual([])

      // and they are tracked again
      await writePages(r, [6], 0xef)
      expect(pagesOf(r.base, get().regions)).toEqual([6])
      expect(get().regions).toEqual([])
    } finally {
      r.dispose()
    }
  })

  it('resumes from walkEnd when out is too small or maxPages runs out', async () => {
    const pages = 32
    const { r } = filledAsyncRegion(pages)
    try {
      const dirty = [0, 3, 4, 9, 10, 11, 20, 31]
      const runs = [[0], [3, 4], [9, 10, 11], [20], [31]]
      const end = r.base + r.length
      const scanFrom = (from: number, capacity: number, maxPages: number) =>
        scanOnce(from, end - from, {
          flags: WP_MATCHING | CHECK_WPASYNC,
          mask: WRITTEN,
          ret: WRITTEN,
          capacity,
          maxPages,
        })

      // room for one region per call: each call returns one run, and stops
      // at the start of the next one (those pages stay unreported and protected)
      await writePages(r, dirty, 1)
      let from = r.base
      const calls: number[][] = []
      while (from < end) {
        const { regions, walkEnd } = scanFrom(from, 1, 0)
        expect(regions.length).toBeLessThanOrEqual(1)
        expect(walkEnd).toBeGreaterThan(from)
        if (regions.length) calls.push(pagesOf(r.base, regions))
        if (regions.length && walkEnd < end) {
          // stopped right where the next run begins
          expect(dirty).toContain((walkEnd - r.base) / PAGE)
        }
        from = walkEnd
      }
      expect(calls).toEqual(runs)
      expect(scanFrom(r.base, 64, 0).regions).toEqual([]) // everything was re-protected

      // maxPages = 2: at most two pages per call, a run may be split
      await writePages(r, dirty, 2)
      from = r.base
      const byPages: number[][] = []
      while (from < end) {
        const { regions, walkEnd } = scanFrom(from, 64, 2)
        const got = pagesOf(r.base, regions)
        expect(got.length).toBeLessThanOrEqual(2)
        if (got.length) byPages.push(got)
        from = walkEnd
      }
      expect(byPages).toEqual([[0, 3], [4, 9], [10, 11], [20, 31]])
      expect(scanFrom(r.base, 64, 0).regions).toEqual([])
    } finally {
      r.dispose()
    }
  })

  it('more regions than one kernel round (512): walkEnd is exact, nothing is reported twice', async () => {
    // 6.18 alone returns a stale walk_end when one ioctl completes the walk in
    // its second or later internal round; the binding splits calls to avoid it
    const pages = 2048
    const { r } = filledAsyncRegion(pages)
    try {
      const dirty = Array.from({ length: pages / 2 }, (_, k) => 2 * k + 1) // 1024 one-page regions
      await writePages(r, dirty, 9)
      const end = r.base + r.length
      // report only (no WP_MATCHING): a wrong walkEnd would show up as duplicates
      const whole = scanOnce(r.base, r.length, { mask: WRITTEN, ret: WRITTEN, capacity: 4096 })
      expect(whole.walkEnd).toBe(end)
      expect(pagesOf(r.base, whole.regions)).toEqual(dirty)

      const seen: number[] = []
      const sizes: number[] = []
      for (let from = r.base; from < end; ) {
        const { regions, walkEnd } = scanOnce(from, end - from, { mask: WRITTEN, ret: WRITTEN, capacity: 700 })
        sizes.push(regions.length)
        seen.push(...pagesOf(r.base, regions))
        from = walkEnd
      }
      expect(sizes).toEqual([700, 324])
      expect(seen).toEqual(dirty)

      // maxPages across sub-calls: exactly 600 pages; the walk stops at the
      // next matching page, where the caller resumes
      const capped = scanOnce(r.base, r.length, { mask: WRITTEN, ret: WRITTEN, capacity: 4096, maxPages: 600 })
      expect(pagesOf(r.base, capped.regions)).toEqual(dirty.slice(0, 600))
      expect(capped.walkEnd).toBe(r.base + dirty[600]! * PAGE)

      // and get-and-reset over all of them
      const reset = scanOnce(r.base, r.length, { flags: WP_MATCHING | CHECK_WPASYNC, mask: WRITTEN, ret: WRITTEN, capacity: 4096 })
      expect(reset.walkEnd).toBe(end)
      expect(pagesOf(r.base, reset.regions)).toEqual(dirty)
      expect(scanOnce(r.base, r.length, { mask: WRITTEN, ret: WRITTEN }).regions).toEqual([])
    } finally {
      r.dispose()
    }
  })

  it('an out array shorter than one triple passes no vector: WP_MATCHING then protects without reporting', async () => {
    const { r } = filledAsyncRegion(4)
    try {
      await writePages(r, [2], 7)
      const walkEnd = new Float64Array(1)
      expect(
        native.pagemapScan(r.base, r.length, WP_MATCHING | CHECK_WPASYNC, WRITTEN, 0, 0, WRITTEN, 0, new Float64Array(2), walkEnd),
      ).toBe(0)
      expect(walkEnd[0]).toBe(r.base + r.length)
      expect(scanOnce(r.base, r.length, { mask: WRITTEN, ret: WRITTEN }).regions).toEqual([])
    } finally {
      r.dispose()
    }
  })
})

describe('pagemapScan without userfaultfd', () => {
  it('lists present pages of a plain mapping (no flags)', () => {
    const length = 8 * PAGE
    const base = native.mapAnonymous(length)
    try {
      const view = new Uint8Array(native.externalBuffer(base, length))
      view[2 * PAGE] = 1
      view[3 * PAGE] = 1
      view[7 * PAGE + 5] = 1
      native.detachBuffer(view.buffer)
      const { regions, walkEnd } = scanOnce(base, length, { mask: PRESENT, ret: PRESENT })
      expect(walkEnd).toBe(base + length)
      expect(regions).toEqual([
        { start: base + 2 * PAGE, end: base + 4 * PAGE, categories: PRESENT },
        { start: base + 7 * PAGE, end: base + 8 * PAGE, categories: PRESENT },
      ])
      // WP_MATCHING silently skips a VMA that is not WP_ASYNC; CHECK_WPASYNC refuses it
      expect(scanOnce(base, length, { flags: WP_MATCHING, mask: PRESENT, ret: PRESENT }).regions).toEqual([])
      const err = nativeError(() => scanOnce(base, length, { flags: WP_MATCHING | CHECK_WPASYNC, mask: WRITTEN, ret: WRITTEN }))
      expect(err.code).toBe('EPERM')
      expect(err.syscall).toBe('ioctl(PAGEMAP_SCAN)')
    } finally {
      native.retireMapping(base)
    }
  })
})

describe('pagemapScan errors', () => {
  it('unknown flag or category bits are EINVAL from the kernel', () => {
    const base = native.mapAnonymous(PAGE)
    try {
      for (const opts of [{ flags: 1 << 2, ret: WRITTEN }, { mask: 1 << 9, ret: WRITTEN }, { ret: 1 << 9 }]) {
        const err = nativeError(() => scanOnce(base, PAGE, opts))
        expect(err.code).toBe('EINVAL')
        expect(err.errno).toBe(22)
        expect(err.syscall).toBe('ioctl(PAGEMAP_SCAN)')
        expect(err.message).toBe('ioctl(PAGEMAP_SCAN) failed: EINVAL (Invalid argument)')
      }
    } finally {
      native.retireMapping(base)
    }
  })

  it('bad arguments are TypeError/RangeError before the ioctl', () => {
    const out = new Float64Array(3)
    const we = new Float64Array(1)
    expect(() => native.pagemapScan(PAGE + 1, PAGE, 0, 0, 0, 0, WRITTEN, 0, out, we)).toThrow(/address must be page-aligned/)
    expect(() => native.pagemapScan(PAGE, 0, 0, 0, 0, 0, WRITTEN, 0, out, we)).toThrow(RangeError)
    expect(() => native.pagemapScan(PAGE, PAGE, -1, 0, 0, 0, WRITTEN, 0, out, we)).toThrow(/flags/)
    expect(() => native.pagemapScan(PAGE, PAGE, 0, 0, 0, 0, WRITTEN, 0.5, out, we)).toThrow(/maxPages must be an integer/)
    expect(() => native.pagemapScan(PAGE, PAGE, 0, 0, 0, 0, WRITTEN, 0, [] as never, we)).toThrow(/out must be a Float64Array/)
    expect(() => native.pagemapScan(PAGE, PAGE, 0, 0, 0, 0, WRITTEN, 0, out, new Float64Array(0))).toThrow(/walkEnd must hold/)
    expect(() => native.pagemapScan(PAGE, PAGE, 0, 0, 0, 0, WRITTEN, 0, out, new Float32Array(1) as never)).toThrow(TypeError)
  })
})
