// hugePages: regions over hugetlb pages, on the real kernel. The file
// reserves the pages it needs itself (relative to what the machine had) and
// gives every one back in afterAll; nothing here is skipped on a condition.
import { readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { checkPattern, fillPattern } from '@faultline/core/pattern'
import { constants, native, registerModeBits } from '@faultline/native'
import { writePatternFile, sharedPattern } from '../helpers/dataset.js'
import { rejection } from '../helpers/errors.js'
import { kernelCopy } from '../helpers/kernel-copy.js'
import { tempDir } from '../helpers/tmp.js'
import { HUGE_1G, HUGE_2M, hugePool, type HugePool } from '../helpers/hugepages.js'

const MiB = 2 ** 20
const dir = tempDir()
/** Enough 2 MiB pages for the largest region below (the eviction case: 40 pages). */
const RESERVED_2M = 48

let pool2M: HugePool
let pool1G: HugePool | undefined

beforeAll(() => {
  const p = hugePool(HUGE_2M)
  if (p === undefined) throw new Error('this machine has no 2 MiB hugetlb pool (/sys/kernel/mm/hugepages/hugepages-2048kB)')
  pool2M = p
  pool1G = hugePool(HUGE_1G)
  const got = pool2M.provide(RESERVED_2M)
  if (got < RESERVED_2M) throw new Error(`could reserve only ${got} of ${RESERVED_2M} 2 MiB huge pages`)
})

afterAll(() => {
  pool2M?.restore()
  pool1G?.restore()
})

/** This process's mappings of `path`, from /proc/self/smaps: their size and resident KiB. */
function fileMappings(path: string): Array<{ sizeKiB: number; rssKiB: number }> {
  const found: Array<{ sizeKiB: number; rssKiB: number }> = []
  let current: { sizeKiB: number; rssKiB: number } | undefined
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
      current = line.endsWith(` ${path}`) ? { sizeKiB: 0, rssKiB: 0 } : undefined
      if (current !== undefined) found.push(current)
    } else if (current !== undefined) {
      const field = /^(Size|Rss):\s+(\d+) kB/.exec(line)
      if (field?.[1] === 'Size') current.sizeKiB = Number(field[2])
      if (field?.[1] === 'Rss') current.rssKiB = Number(field[2])
    }
  }
  return found
}

/** Every byte of `view` is the pattern at `offset`: -1, or the first index that is not. */
function verify(view: Uint8Array, offset: number): number {
  return checkPattern(view, offset)
}

describe('hugePages "2M" regions', () => {
  it('maps a memory region over 2 MiB pages: every byte read back, zero pages past the data, fault unit 2 MiB', async () => {
    const size = 16 * MiB
    // 9 MiB of data: 4 whole pages served natively, a half page through the pager, 3 absent pages copied as zeros.
    const data = sharedPattern(9 * MiB)
    const free = pool2M.available()
    const region = await openRegion({ backend: { type: 'memory', data }, size, hugePages: '2M', access: 'read-only', readahead: false })
    try {
      expect(region.pageSize).toBe(HUGE_2M)
      expect(region.hugePages).toBe(true)
      expect(region.size).toBe(size)
      const view = region.view()
      expect(verify(view.subarray(0, 9 * MiB), 0)).toBe(-1)
      expect(view.subarray(9 * MiB).every((b) => b === 0)).toBe(true)
      const s = region.stats()
      expect(s.faults).toBe(8)
      expect(s.residentPages).toBe(8)
      expect(s.servedNatively).toBe(4)
      expect(s.zeroPages).toBe(3)
      expect(s.fetchErrors).toBe(0)
      // The pages are the pool's, all 8 reserved (then used) since the open.
      expect(pool2M.available()).toBe(free - 8)
    } finally {
      await region.close()
    }
    expect(pool2M.available()).toBe(free)
  })

  for (const readahead of [undefined, { maxBytes: 8 * MiB }]) {
    it(`reads a file region over 2 MiB pages byte for byte (readahead ${readahead === undefined ? 'by default: off' : '8 MiB'})`, async () => {
      const path = join(dir, 'read.bin')
      const size = 24 * MiB + 12345 // not whole pages: the tail of the last one reads zeros
      writePatternFile(path, size)
      const region = await openRegion({ backend: `file://${path}`, hugePages: '2M', access: 'read-only', readahead })
      try {
        expect(region.pageSize).toBe(HUGE_2M)
        expect(region.size).toBe(26 * MiB)
        expect(region.dataSize).toBe(size)
        const view = region.view()
        expect(verify(view.subarray(0, size), 0)).toBe(-1)
        expect(view.subarray(size).every((b) => b === 0)).toBe(true)
        const s = region.stats()
        expect(s.pagesFetched).toBe(13)
        if (readahead === undefined) {
          expect(s.faults).toBe(13)
          expect(s.prefetchedPages).toBe(0)
        } else {
          // The window's pages are held markers, staged in the watcher and installed natively on their faults.
          expect(s.servedNatively).toBeGreaterThan(0)
        }
      } finally {
        await region.close()
      }
    })
  }

  it('serves a file region from a read-only mapping of the file, which maps none of it once the pages are in', async () => {
    const path = join(dir, 'mapped.bin')
    writePatternFile(path, 8 * MiB)
    const region = await openRegion({ backend: { type: 'file', path }, hugePages: '2M', access: 'read-only' })
    try {
      expect(verify(region.view(), 0)).toBe(-1)
      expect(region.stats().servedNatively).toBe(4)
      // The copy came straight from the file's mapping (no pread buffer), and
      // its page-cache pages were unmapped after: none count in this process's RSS.
      const mapping = fileMappings(path)
      expect(mapping).toEqual([{ sizeKiB: 8 * 1024, rssKiB: 0 }])
    } finally {
      await region.close()
    }
    expect(fileMappings(path)).toEqual([])
  })

  it('reads zeros where the file was truncated under its mapping after the open, and leaves none of the mapping resident', async () => {
    const path = join(dir, 'shrunk.bin')
    writePatternFile(path, 8 * MiB)
    const region = await openRegion({ backend: { type: 'file', path }, hugePages: '2M', access: 'read-only' })
    try {
      // Into the middle of page 1: page 0 whole, page 1 half there, pages 2 and 3 gone.
      const kept = HUGE_2M + 12345
      truncateSync(path, kept)
      const view = region.view()
      expect(verify(view.subarray(0, kept), 0)).toBe(-1)
      expect(view.subarray(kept).every((b) => b === 0)).toBe(true)
      expect(region.stats().fetchErrors).toBe(0)
      // Page 1's populate failed at the new end of the file, after mapping the part before it.
      expect(fileMappings(path)).toEqual([{ sizeKiB: 8 * 1024, rssKiB: 0 }])
    } finally {
      await region.close()
    }
  })

  for (const writeTracking of ['sync', 'async'] as const) {
    it(`writes and flushes a read-write file region over 2 MiB pages (${writeTracking} write tracking)`, async () => {
      const path = join(dir, `rw-${writeTracking}.bin`)
      const size = 16 * MiB
      writePatternFile(path, size)
      const region = await openRegion({ backend: { type: 'file', path }, hugePages: '2M', writeTracking })
      const expected = new Uint8Array(size)
      fillPattern(expected, 0)
      try {
        expect(region.writeTracking).toBe(writeTracking === 'sync' ? 'sync-wp' : 'async-wp')
        const view = region.view()
        // A read first (page 1 installed clean, then written), a write first (page 5), and two bytes across a page boundary.
        expect(verify(view.subarray(HUGE_2M, 2 * HUGE_2M), HUGE_2M)).toBe(-1)
        const writes: Array<[number, number]> = [
          [HUGE_2M + 17, 0xa1],
          [5 * HUGE_2M + 4096 * 3 + 1, 0xb2],
          [3 * HUGE_2M - 1, 0xc3],
          [3 * HUGE_2M, 0xd4],
        ]
        for (const [at, byte] of writes) {
          view[at] = byte
          expected[at] = byte
        }
        await region.flush()
        const s = region.stats()
        expect(s.writeErrors).toBe(0)
        // Pages 1, 2, 3 and 5, each written back whole.
        expect(s.pagesWritten).toBe(4)
        expect(Buffer.compare(readFileSync(path), expected)).toBe(0)
        // Written again after the flush: the page is tracked again.
        view[HUGE_2M + 18] = 0xe5
        expected[HUGE_2M + 18] = 0xe5
      } finally {
        await region.close()
      }
      expect(Buffer.compare(readFileSync(path), expected)).toBe(0)
    })
  }

  it('evicts 2 MiB pages past maxResident and fetches them again intact', async () => {
    const size = 40 * HUGE_2M
    const data = sharedPattern(size)
    const region = await openRegion({ backend: { type: 'memory', data }, hugePages: '2M', access: 'read-only', maxResident: 16 * HUGE_2M, readahead: false })
    try {
      for (let round = 0; round < 2; round++) expect(verify(region.view(), 0)).toBe(-1)
      // A round trip to the pager: the evictions the last faults started are on its books by then.
      await region.flush()
      const s = region.stats()
      expect(s.evictedPages).toBeGreaterThanOrEqual(40 - 16)
      expect(s.residentPages).toBeLessThanOrEqual(16)
    } finally {
      await region.close()
    }
  })

  it('fails with ERR_HUGE_PAGES when the pool has too few pages, saying how many and how to reserve them', async () => {
    const free = pool2M.provide(2)
    expect(free).toBe(2)
    try {
      const err = await rejection(openRegion({ backend: 'memory:', size: 8 * HUGE_2M, hugePages: '2M' }))
      expect(err.code).toBe('ERR_HUGE_PAGES')
      expect(err.option).toBe('hugePages')
      expect(err.message).toContain('needs 8 huge pages of 2 MiB')
      expect(err.message).toContain('has 2 free')
      expect(err.message).toMatch(/echo \d+ > \/sys\/kernel\/mm\/hugepages\/hugepages-2048kB\/nr_hugepages/)
      expect(err.message).toContain('vm.nr_hugepages')
      // The pool is untouched: a region that fits opens.
      const region = await openRegion({ backend: 'memory:', size: 2 * HUGE_2M, hugePages: '2M' })
      expect(region.view()[HUGE_2M + 1]).toBe(0)
      await region.close()
    } finally {
      pool2M.provide(RESERVED_2M)
    }
  })

  it('refuses bad hugePages, pageSize and size values with messages that say what to pass', async () => {
    for (const hugePages of ['4M', true, 2 ** 21, '2m']) {
      const err = await rejection(openRegion({ backend: 'memory:', size: HUGE_2M, hugePages: hugePages as never }))
      expect(err.code).toBe('ERR_INVALID_OPTION')
      expect(err.option).toBe('hugePages')
      expect(err.message).toContain('must be "2M", "1G" or false')
    }
    const page = await rejection(openRegion({ backend: 'memory:', size: HUGE_2M, hugePages: '2M', pageSize: 65536 }))
    expect(page.option).toBe('pageSize')
    expect(page.message).toContain('must be left out or be 2097152')
    const size = await rejection(openRegion({ backend: 'memory:', size: 3 * MiB, hugePages: '2M' }))
    expect(size.option).toBe('size')
    expect(size.message).toContain('whole number of 2 MiB huge pages')
    expect(size.message).toContain('4194304 is the next')
    // pageSize equal to the huge page size is fine, and hugePages: false is the default.
    const same = await openRegion({ backend: 'memory:', size: HUGE_2M, hugePages: '2M', pageSize: HUGE_2M })
    expect(same.pageSize).toBe(HUGE_2M)
    await same.close()
    const off = await openRegion({ backend: 'memory:', size: HUGE_2M, hugePages: false })
    expect(off.hugePages).toBe(false)
    expect(off.pageSize).toBe(65536)
    await off.close()
  })
})

describe('failures over hugetlb: poison and takeovers one huge page at a time', () => {
  const PAGES = 8
  const backendModule = fileURLToPath(new URL('../fixtures/stalling-backend.mjs', import.meta.url))

  /** Page p holds the byte p + 1; reading page 5 stalls as `stall` says (test/fixtures/stalling-backend.mjs). */
  function stallingRegion(name: string, stall: 'block' | 'hang', extra: Record<string, unknown>, fetchTimeoutMs: number) {
    const path = join(dir, `${name}.bin`)
    const bytes = Buffer.alloc(HUGE_2M * PAGES)
    for (let p = 0; p < PAGES; p++) bytes.fill(p + 1, p * HUGE_2M, (p + 1) * HUGE_2M)
    writeFileSync(path, bytes)
    const region = openRegion({ size: HUGE_2M * PAGES, hugePages: '2M', fetchTimeoutMs, writeTracking: 'sync', backend: { type: 'module', module: backendModule, options: { path, page: 5, stall, size: HUGE_2M * PAGES, ...extra } } })
    return { path, region }
  }

  const sink = join(dir, 'sink.bin')

  it('a fetch that never settles poisons the whole huge page at fetchTimeoutMs; the others are served', async () => {
    const region = await stallingRegion('hang', 'hang', {}, 400).region
    try {
      expect(kernelCopy(region.view(5 * HUGE_2M + 3 * 4096, 16), sink)).toEqual({ ok: false, code: 'EFAULT' })
      // Poisoned as one unit: its last 4 KiB fails too, without another fetch deadline.
      const started = performance.now()
      expect(kernelCopy(region.view(6 * HUGE_2M - 16, 16), sink)).toEqual({ ok: false, code: 'EFAULT' })
      expect(performance.now() - started).toBeLessThan(300)
      expect(region.view(6 * HUGE_2M, 1)[0]).toBe(7)
      expect(region.stats().fetchErrors).toBe(1)
    } finally {
      await region.close()
    }
  })

  it('the watchdog takes a blocked pager over per huge page: the waiting fault fails, writes let through are written back', async () => {
    const { path, region: opening } = stallingRegion('block', 'block', { blockMs: 7000 }, 300)
    const region = await opening
    const stalled = new Promise<{ message: string }>((resolve) => region.once('pager-stalled', resolve))
    try {
      expect(region.view(0, 1)[0]).toBe(1)
      expect(region.view(HUGE_2M, 1)[0]).toBe(2)
      region.view(2 * HUGE_2M, 1)[0] = 0xa2
      expect(kernelCopy(region.view(5 * HUGE_2M + 4096, 16), sink)).toEqual({ ok: false, code: 'EFAULT' })
      // Still blocked: a write to a clean huge page, inside it rather than at its start, is let through.
      region.view(HUGE_2M - 4096, 1)[0] = 0xa0
      expect((await stalled).message).toMatch(/did not answer faults for 5000 ms/)
      region.view(HUGE_2M + 12345, 1)[0] = 0xa1
      await region.flush()
      const stored = readFileSync(path)
      expect(stored[HUGE_2M - 4096]).toBe(0xa0)
      expect(stored[HUGE_2M + 12345]).toBe(0xa1)
      expect(stored[2 * HUGE_2M]).toBe(0xa2)
      expect(stored[5 * HUGE_2M]).toBe(6)
    } finally {
      await region.close()
    }
  }, 30_000)
})

describe('hugePages "1G"', () => {
  it('maps a 1 GiB page when one can be reserved, else fails with ERR_HUGE_PAGES and the reservation hint', async () => {
    if (pool1G === undefined) {
      const err = await rejection(openRegion({ backend: 'memory:', size: HUGE_1G, hugePages: '1G' }))
      expect(err.code).toBe('ERR_HUGE_PAGES')
      expect(err.message).toContain('offers no 1 GiB huge pages')
      return
    }
    const got = pool1G.provide(1)
    if (got < 1) {
      // Memory too fragmented for a runtime 1 GiB page: the empty pool is reported as such.
      const err = await rejection(openRegion({ backend: 'memory:', size: HUGE_1G, hugePages: '1G' }))
      expect(err.code).toBe('ERR_HUGE_PAGES')
      expect(err.message).toContain('needs 1 huge page of 1 GiB but the pool has 0 free')
      expect(err.message).toContain('hugepages-1048576kB/nr_hugepages')
      expect(err.message).toContain('hugepagesz=1G')
      return
    }
    const data = sharedPattern(3 * MiB)
    const region = await openRegion({ backend: { type: 'memory', data }, size: HUGE_1G, hugePages: '1G', access: 'read-only' })
    try {
      expect(region.pageSize).toBe(HUGE_1G)
      const view = region.view()
      expect(verify(view.subarray(0, 3 * MiB), 0)).toBe(-1)
      // The rest of the page is zeros, every byte: one page, one fault.
      const zeros = Buffer.alloc(16 * MiB)
      for (let at = 3 * MiB; at < HUGE_1G; at += zeros.byteLength) {
        const chunk = view.subarray(at, Math.min(HUGE_1G, at + zeros.byteLength))
        if (Buffer.compare(chunk, zeros.subarray(0, chunk.byteLength)) !== 0) throw new Error(`a non-zero byte in [${at}, +${chunk.byteLength})`)
      }
      expect(region.stats().faults).toBe(1)
    } finally {
      await region.close()
    }
    pool1G.restore()
    // With the page given back the pool is empty again: the typed error, not SIGBUS.
    if (pool1G.available() === 0) {
      const err = await rejection(openRegion({ backend: 'memory:', size: HUGE_1G, hugePages: '1G' }))
      expect(err.code).toBe('ERR_HUGE_PAGES')
    }
  })
})

describe('native layer over hugetlb', () => {
  it('mapAnonymous refuses a hugePageSize that is no huge page size', () => {
    expect(() => native.mapAnonymous(HUGE_2M, 4096)).toThrow(RangeError)
    expect(() => native.mapAnonymous(HUGE_2M, 3 * MiB)).toThrow(/power of two/)
  })

  it('the installer copies whole huge pages and steps over a present one by the fill unit', async () => {
    const address = native.mapAnonymous(2 * HUGE_2M, HUGE_2M)
    const { fd } = native.uffdOpen(0, 'fallback')
    native.uffdRegister(fd, address, 2 * HUGE_2M, registerModeBits({ missing: true, wp: false }))
    const results: number[] = []
    const installer = native.createInstaller(fd, (count, pairs) => {
      for (let k = 0; k < count; k++) results.push(pairs[2 * k + 1]!)
    }, HUGE_2M)
    try {
      const bytes = new Uint8Array(2 * HUGE_2M)
      fillPattern(bytes, 0)
      expect(native.uffdCopy(fd, address, bytes, 0, HUGE_2M, 0)).toBe(HUGE_2M)
      expect(() => installer.install(address, bytes.subarray(0, 4096), 0, 1)).toThrow(/fill unit/)
      // Page 0 is there already: EEXIST on it, then page 1 copied.
      installer.install(address, bytes, 0, 2)
      const deadline = Date.now() + 5000
      while (results.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2))
      expect(results).toEqual([1])
      expect(native.uffdCopy(fd, address + HUGE_2M, bytes, HUGE_2M, HUGE_2M, 0)).toBe(-constants.EEXIST)
      // No ZEROPAGE on hugetlb: the kernel refuses it (the pager copies zeros instead).
      expect(() => native.uffdZeropage(fd, address, HUGE_2M, 0)).toThrow(/EINVAL|EEXIST/)
      const view = new Uint8Array(native.externalBuffer(address, 2 * HUGE_2M))
      expect(checkPattern(view, 0)).toBe(-1)
      native.detachBuffer(view.buffer)
    } finally {
      installer.stop()
      native.uffdUnregister(fd, address, 2 * HUGE_2M)
      native.closeFd(fd)
      native.retireMapping(address)
    }
  })
})
