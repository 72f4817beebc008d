import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { sharedPattern } from '../helpers/dataset.js'
import { tempDir } from '../helpers/tmp.js'

const dir = tempDir()
const switchable = fileURLToPath(new URL('../fixtures/switchable-backend.mjs', import.meta.url))
const concurrent = fileURLToPath(new URL('../fixtures/concurrent-writes-backend.mjs', import.meta.url))

function concurrentBackend(size: number, maxWritesInFlight: number | undefined) {
  const store = new SharedArrayBuffer(size)
  const control = new SharedArrayBuffer(16)
  const flags = new Int32Array(control)
  return {
    spec: { type: 'module', module: concurrent, options: { store, control, maxWritesInFlight, seed: 5 } },
    data: new Uint8Array(store),
    mostInFlight: () => Atomics.load(flags, 1),
    calls: () => Atomics.load(flags, 2),
    failPage: (page: number | undefined) => Atomics.store(flags, 3, page === undefined ? 0 : page + 1),
  }
}

function switchableBackend(size: number) {
  const store = new SharedArrayBuffer(size)
  const control = new SharedArrayBuffer(8)
  return {
    spec: { type: 'module', module: switchable, options: { store, control } },
    data: new Uint8Array(store),
    setDown: (down: boolean) => Atomics.store(new Int32Array(control), 0, down ? 1 : 0),
    pagesStored: () => Atomics.load(new Int32Array(control), 1),
  }
}

describe.each(['sync', 'async'] as const)('write-back (%s write tracking)', (mode) => {
  it('a flush of more pages than one snapshot chunk, in batches that do not divide it, writes every page once', async () => {
    // 64 KiB pages: a 16 MiB snapshot chunk is 256 pages; batches of 100 do not divide it.
    const pages = 600
    const data = new Uint8Array(new SharedArrayBuffer(pages * 65536))
    const region = await openRegion({ pageSize: 65536, backend: { type: 'memory', data }, writeTracking: mode, maxBatchPages: 100 })
    try {
      const v = region.view()
      for (let p = 0; p < pages; p++) v.fill((p % 250) + 1, p * 65536, (p + 1) * 65536)
      await region.flush()
      for (let p = 0; p < pages; p++) {
        const page = data.subarray(p * 65536, (p + 1) * 65536)
        expect(page.every((b) => b === (p % 250) + 1), `page ${p}`).toBe(true)
      }
      expect(region.stats().pagesWritten).toBe(pages)
    } finally {
      await region.close()
    }
  })

  it('with maxWritesInFlight, a flush keeps that many batches in flight, each page written once with its bytes', async () => {
    // 64 KiB pages, batches of 60: snapshot chunks of 240 pages (4 batches), written 3 batches at a time, answered out of order.
    const pages = 700
    const b = concurrentBackend(pages * 65536, 3)
    const region = await openRegion({ pageSize: 65536, backend: b.spec, writeTracking: mode, maxBatchPages: 60 })
    try {
      const v = region.view()
      for (let round = 1; round <= 2; round++) {
        for (let p = 0; p < pages; p++) v.fill(((p + round) % 250) + 1, p * 65536, (p + 1) * 65536)
        await region.flush()
        for (let p = 0; p < pages; p++) {
          const page = b.data.subarray(p * 65536, (p + 1) * 65536)
          expect(page.every((x) => x === ((p + round) % 250) + 1), `page ${p}, round ${round}`).toBe(true)
        }
      }
      expect(b.mostInFlight()).toBe(3)
      expect(b.calls()).toBe(24)
      expect(region.stats()).toMatchObject({ pagesWritten: 2 * pages, writeRequests: 24, dirtyPages: 0 })
    } finally {
      await region.close()
    }
  })

  it.each([undefined, 0.5, Number.NaN])('with maxWritesInFlight %s, batches are written one after another', async (most) => {
    const b = concurrentBackend(300 * 4096, most)
    const region = await openRegion({ pageSize: 4096, backend: b.spec, writeTracking: mode, maxBatchPages: 50 })
    try {
      region.view().fill(9)
      await region.flush()
      expect(b.mostInFlight()).toBe(1)
      expect(b.calls()).toBe(6)
      expect(b.data.every((x) => x === 9)).toBe(true)
    } finally {
      await region.close()
    }
  })

  it('with batches in flight, a failing one rejects the flush naming its pages only; they stay dirty; the next flush writes them', async () => {
    const b = concurrentBackend(400 * 4096, 4)
    const region = await openRegion({ pageSize: 4096, backend: b.spec, writeTracking: mode, maxBatchPages: 50 })
    try {
      const v = region.view()
      v.fill(3)
      b.failPage(120) // in the third batch: pages 100-149
      await expect(region.flush()).rejects.toMatchObject({ code: 'ERR_BACKEND', pages: Array.from({ length: 50 }, (_, i) => 100 + i), message: expect.stringMatching(/page 120 refused/) })
      expect(region.stats()).toMatchObject({ dirtyPages: 50, writeErrors: 1, pagesWritten: 350 })
      expect(b.data.subarray(0, 100 * 4096).every((x) => x === 3)).toBe(true)
      expect(b.data.subarray(100 * 4096, 150 * 4096).every((x) => x === 0)).toBe(true)
      expect(b.data.subarray(150 * 4096).every((x) => x === 3)).toBe(true)
      b.failPage(undefined)
      await region.flush()
      expect(b.data.every((x) => x === 3)).toBe(true)
      expect(region.stats()).toMatchObject({ dirtyPages: 0, pagesWritten: 400 })
    } finally {
      await region.close()
    }
  })

  it('flush() writes pages written after a read fault and after a write fault on a missing page', async () => {
    const data = sharedPattern(1 << 20)
    const region = await openRegion({ pageSize: 4096, backend: { type: 'memory', data }, writeTracking: mode })
    try {
      expect(region.writeTracking).toBe(`${mode}-wp`)
      const v = region.view()
      expect(v[10]).toBe(data[10]) // read fault: installed write-protected, clean
      v[10] = 0xaa // first write: a WP fault marks it dirty
      v[5 * 4096 + 1] = 0xbb // a write to a missing page: fetched, installed, dirty
      // sync tracking sees the first write at once; async finds it at flush
      expect(region.stats().dirtyPages).toBe(mode === 'sync' ? 2 : 1)
      expect(region.stats().writeFaults).toBe(mode === 'sync' ? 1 : 0)
      expect(data[10]).not.toBe(0xaa)
      await region.flush()
      expect(data[10]).toBe(0xaa)
      expect(data[5 * 4096 + 1]).toBe(0xbb)
      const s = region.stats()
      expect(s).toMatchObject({ dirtyPages: 0, pagesWritten: 2, bytesWritten: 2 * 4096, flushes: 1, writeTracking: `${mode}-wp` })
      // the page is protected again: a second write is noticed and flushed
      v[11] = 0xcc
      expect(region.stats().dirtyPages).toBe(mode === 'sync' ? 1 : 0)
      await region.flush()
      expect(data[11]).toBe(0xcc)
      expect(region.stats().pagesWritten).toBe(3)
      // reads never dirty a page
      // The value is used: an unused load may be optimized away, and the read with it.
      expect(v[3 * 4096]).toBeGreaterThanOrEqual(0)
      await region.flush()
      expect(region.stats().pagesWritten).toBe(3)
    } finally {
      await region.close()
    }
  })

  it('the file backend file equals the model after close, and a new region reads it back', async () => {
    const path = join(dir, 'rw.bin')
    const size = 4 * 2 ** 20
    const model = new Uint8Array(size)
    const region = await openRegion({ size, pageSize: 65536, backend: { type: 'file', path }, writeTracking: mode })
    const v = region.view()
    for (let i = 0; i < 500; i++) {
      const off = (i * 7919 * 13) % size
      v[off] = model[off] = (i % 255) + 1
    }
    await region.close()
    expect(Buffer.compare(readFileSync(path), Buffer.from(model))).toBe(0)
    const again = await openRegion({ backend: `file://${path}`, access: 'read-only' })
    try {
      expect(Buffer.compare(Buffer.from(again.view().slice()), Buffer.from(model))).toBe(0)
    } finally {
      await again.close()
    }
  })

  it('a read-only region keeps writes private: the backend never sees them', async () => {
    const data = sharedPattern(1 << 20)
    const before = data.slice()
    const region = await openRegion({ pageSize: 4096, backend: { type: 'memory', data }, access: 'read-only' })
    try {
      expect(region.readOnly).toBe(true)
      expect(region.writeTracking).toBe('none')
      const v = region.view()
      v[0] = v[0]! ^ 0xff
      v[9000] = 1
      expect(v[9000]).toBe(1)
      await region.flush()
      expect(region.stats()).toMatchObject({ dirtyPages: 0, pagesWritten: 0, writeTracking: 'none' })
    } finally {
      await region.close()
    }
    expect(Buffer.compare(Buffer.from(data), Buffer.from(before))).toBe(0)
  })

  it('opening a read-only backend read-write fails at open with ERR_READ_ONLY', async () => {
    const path = join(dir, 'ro.bin')
    const r = await openRegion({ size: 65536, backend: { type: 'file', path } })
    await r.close()
    await expect(openRegion({ backend: { type: 'file', path, readOnly: true }, access: 'read-write' })).rejects.toMatchObject({ code: 'ERR_READ_ONLY', option: 'access' })
    const ro = await openRegion({ backend: { type: 'file', path, readOnly: true } })
    expect(ro.readOnly).toBe(true)
    await ro.close()
  })

  it('a failing backend write rejects flush with the pages named; they stay dirty; a later flush writes them', async () => {
    const b = switchableBackend(1 << 20)
    const region = await openRegion({ pageSize: 4096, backend: b.spec, writeTracking: mode })
    try {
      const v = region.view()
      v[2 * 4096] = 1
      v[7 * 4096] = 2
      b.setDown(true)
      await expect(region.flush()).rejects.toMatchObject({ code: 'ERR_BACKEND', pages: [2, 7], message: expect.stringMatching(/backend unavailable/) })
      expect(region.stats()).toMatchObject({ dirtyPages: 2, writeErrors: 1, pagesWritten: 0 })
      v[7 * 4096 + 1] = 3 // written again while dirty
      b.setDown(false)
      await region.flush()
      expect([b.data[2 * 4096], b.data[7 * 4096], b.data[7 * 4096 + 1]]).toEqual([1, 2, 3])
      expect(region.stats().dirtyPages).toBe(0)
    } finally {
      b.setDown(false)
      await region.close()
    }
  })

  it('close() with a failing backend rejects and leaves the region usable; a retry closes it with nothing lost', async () => {
    const b = switchableBackend(1 << 20)
    const region = await openRegion({ pageSize: 4096, backend: b.spec, writeTracking: mode })
    const v = region.view()
    v[100] = 42
    b.setDown(true)
    await expect(region.close()).rejects.toMatchObject({ code: 'ERR_BACKEND' })
    expect(region.closed).toBe(false)
    expect(v[100]).toBe(42)
    v[101] = 43
    b.setDown(false)
    await region.close()
    expect([b.data[100], b.data[101]]).toEqual([42, 43])
    expect(v.length).toBe(0)
  })

  it('background write-back: an interval flushes without being asked', async () => {
    const b = switchableBackend(1 << 20)
    const region = await openRegion({ pageSize: 4096, backend: b.spec, writeTracking: mode, writeBack: { intervalMs: 20 } })
    try {
      region.view()[4096 * 3] = 9
      await waitFor(() => b.data[4096 * 3] === 9)
      // The flush is counted once it is durable, a moment after the backend holds the bytes.
      await waitFor(() => region.stats().flushes > 0)
    } finally {
      await region.close()
    }
  })

  it('a background write-back failure is reported as an event and the pages stay dirty', async () => {
    const b = switchableBackend(1 << 20)
    b.setDown(true)
    const region = await openRegion({ pageSize: 4096, backend: b.spec, writeTracking: mode, writeBack: { intervalMs: 20 } })
    const events: number[][] = []
    region.on('writeback-error', (e) => events.push(e.pages))
    region.view()[0] = 5
    await waitFor(() => events.length > 0)
    expect(events[0]).toEqual([0])
    expect(region.stats().dirtyPages).toBe(1)
    b.setDown(false)
    await region.close()
    expect(b.data[0]).toBe(5)
  })
})

describe('write-back thresholds (sync write tracking)', () => {
  // The threshold is checked as writes fault; async tracking learns of writes only when it scans.
  it('background write-back: a dirty-bytes threshold flushes without being asked', async () => {
    const b2 = switchableBackend(1 << 20)
    const region2 = await openRegion({ pageSize: 4096, backend: b2.spec, writeTracking: 'sync', writeBack: { maxDirtyBytes: 8 * 4096 } })
    try {
      const v = region2.view()
      for (let p = 0; p < 8; p++) v[p * 4096] = p + 1
      // The eighth page's write fault crosses the threshold and starts the
      // flush; the writer may not have retried its store before the flush
      // protects the page again, so that page can be snapshotted unwritten
      // and stay dirty. The seven written before it are in the flush.
      await waitFor(() => region2.stats().flushes >= 1)
      expect(b2.pagesStored()).toBe(8)
      for (let p = 0; p < 7; p++) expect(b2.data[p * 4096]).toBe(p + 1)
      expect(region2.stats().dirtyPages).toBeLessThanOrEqual(1)
    } finally {
      await region2.close()
    }
    expect(b2.data[7 * 4096]).toBe(8)
  })

})

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 5))
  }
}
