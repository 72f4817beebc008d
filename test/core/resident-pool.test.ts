// A resident pool bounds several regions together: whoever grows past the
// pool's bound makes every member give back its share, idle members too.
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { createResidentPool, openRegion, ResidentPool } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern } from '../helpers/dataset.js'
import { rejection } from '../helpers/errors.js'
import { residentBytes } from '../helpers/smaps.js'

const PAGE = 65536
const MiB = 2 ** 20
const settle = (ms = 100): Promise<void> => new Promise((r) => setTimeout(r, ms))

function readAll(view: Uint8Array): number {
  let bad = 0
  for (let p = 0; p < view.byteLength / PAGE; p++) if (checkPattern(view.subarray(p * PAGE, p * PAGE + 256), p * PAGE) !== -1) bad++
  return bad
}

function nextMessage(worker: Worker, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>): void => {
      if (m.type !== type) return
      worker.off('message', onMessage)
      resolve(m)
    }
    worker.on('message', onMessage)
    worker.once('error', reject)
  })
}

describe('resident pool', () => {
  it('bounds two regions together: an idle region gives back its share when the other grows', async () => {
    const pool = createResidentPool({ maxBytes: 8 * MiB })
    const data = sharedPattern(32 * MiB)
    const a = await openRegion({ pageSize: PAGE, backend: { type: 'memory', data }, access: 'read-only', residentPool: pool })
    const b = await openRegion({ pageSize: PAGE, backend: { type: 'memory', data }, access: 'read-only', residentPool: pool })
    try {
      expect(readAll(a.view(0, 7 * MiB))).toBe(0)
      await settle()
      const aBefore = a.stats().residentPages
      expect(aBefore * PAGE).toBeGreaterThanOrEqual(7 * MiB)
      let peak = 0
      const vb = b.view()
      for (let p = 0; p < vb.byteLength / PAGE; p++) {
        expect(checkPattern(vb.subarray(p * PAGE, p * PAGE + 256), p * PAGE)).toBe(-1)
        if (p % 32 === 31) {
          await settle(5)
          peak = Math.max(peak, residentBytes(a.handle().address) + residentBytes(b.handle().address))
        }
      }
      await settle()
      // A did not touch anything, yet it gave pages back for B.
      expect(a.stats().residentPages).toBeLessThan(aBefore / 2)
      expect(a.stats().evictedPages).toBeGreaterThan(0)
      expect(pool.residentBytes).toBeLessThanOrEqual(pool.maxBytes)
      expect(pool.residentBytes).toBe((a.stats().residentPages + b.stats().residentPages) * PAGE)
      expect(peak).toBeLessThanOrEqual(pool.maxBytes * 1.1)
      // and both still read correctly, refetching what was evicted
      expect(readAll(a.view(0, 7 * MiB))).toBe(0)
    } finally {
      await a.close()
      await b.close()
    }
    expect(pool.residentBytes).toBe(0) // closed regions leave the pool
  })

  it('covers regions on other threads, joined with ResidentPool.attach(handle)', async () => {
    const pool = createResidentPool({ maxBytes: 4 * MiB })
    const data = sharedPattern(16 * MiB)
    const worker = new Worker(new URL('../fixtures/pooled-reader.mjs', import.meta.url), { workerData: { handle: pool.handle, data: sharedPattern(16 * MiB), pageSize: PAGE } })
    const region = await openRegion({ pageSize: PAGE, backend: { type: 'memory', data }, access: 'read-only', residentPool: pool })
    try {
      const read = await nextMessage(worker, 'read')
      expect(read.bad).toBe(0)
      expect(readAll(region.view())).toBe(0)
      await settle()
      const both = residentBytes(region.handle().address) + residentBytes(read.address as number)
      expect(both).toBeLessThanOrEqual(pool.maxBytes * 1.1)
      expect(pool.residentBytes).toBeLessThanOrEqual(pool.maxBytes)
      worker.postMessage('close')
      await nextMessage(worker, 'closed')
    } finally {
      await region.close()
      await worker.terminate()
    }
    expect(pool.residentBytes).toBe(0)
  })

  it('writes dirty pages of a pooled read-write region back before they are dropped', async () => {
    const pool = createResidentPool({ maxBytes: 2 * MiB })
    const data = new Uint8Array(new SharedArrayBuffer(16 * MiB))
    const model = new Uint8Array(16 * MiB)
    const region = await openRegion({ pageSize: PAGE, backend: { type: 'memory', data }, residentPool: pool })
    try {
      expect(region.writeTracking).toBe('sync-wp')
      const v = region.view()
      for (let p = 0; p < v.byteLength / PAGE; p++) v[p * PAGE + 7] = model[p * PAGE + 7] = (p % 250) + 1
      const s = region.stats()
      expect(s.evictedPages).toBeGreaterThan(0)
      expect(s.pagesWritten).toBeGreaterThan(0)
      for (let p = 0; p < v.byteLength / PAGE; p++) expect(v[p * PAGE + 7]).toBe(model[p * PAGE + 7])
    } finally {
      await region.close()
    }
    expect(Buffer.compare(Buffer.from(data), Buffer.from(model))).toBe(0)
  })

  it('gives back the pages of a region whose pager thread died', async () => {
    const pool = createResidentPool({ maxBytes: 4 * MiB })
    const module = fileURLToPath(new URL('../fixtures/test-backends.mjs', import.meta.url))
    const region = await openRegion({ size: 8 * MiB, pageSize: PAGE, backend: { type: 'module', module, options: { mode: 'crash-later', goodReads: 1 } }, residentPool: pool, readahead: false })
    await region.prefetch(0, MiB) // one good read: 16 pages resident
    expect(pool.residentBytes).toBe(MiB)
    // The next read kills the pager thread (an uncaught exception there).
    await expect(region.prefetch(2 * MiB, MiB)).rejects.toMatchObject({ code: 'ERR_PAGER_FAILED' })
    await settle(200)
    expect(pool.residentBytes).toBe(0)
    await region.close().catch(() => undefined)
  })

  it('takes closed regions out of the pool once, even when their close is answered while the application is busy', async () => {
    const pool = createResidentPool({ maxBytes: 8 * MiB })
    const data = sharedPattern(2 * MiB)
    // Three at once: whether the reply or the exit is heard first varies, so
    // one region alone may get through by luck.
    const regions = await Promise.all([0, 1, 2].map(() => openRegion({ pageSize: PAGE, backend: { type: 'memory', data }, access: 'read-only', residentPool: pool })))
    for (const region of regions) expect(readAll(region.view())).toBe(0)
    await settle()
    expect(pool.residentBytes).toBe(6 * MiB)
    const closing = Promise.all(regions.map((region) => region.close()))
    // Busy in slices, as on a loaded machine, until the pagers have left the
    // pool (each does so itself, before it answers), then long enough for them
    // to answer the close and end their threads: each reply then arrives
    // together with its thread's exit.
    const busy = new Int32Array(new SharedArrayBuffer(4))
    for (let slice = 0; pool.residentBytes !== 0 && slice < 500; slice++) {
      await new Promise((r) => setImmediate(r))
      for (let ms = 0; pool.residentBytes !== 0 && ms < 20; ms++) Atomics.wait(busy, 0, 0, 1)
    }
    Atomics.wait(busy, 0, 0, 500)
    await closing
    expect(pool.residentBytes).toBe(0)
  })

  it('rejects bad pools and bad combinations with errors that name the option', async () => {
    expect(() => createResidentPool({ maxBytes: 1000 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'maxBytes' }))
    expect(() => createResidentPool(undefined as never)).toThrow(/maxBytes/)
    expect(() => ResidentPool.attach(new SharedArrayBuffer(16))).toThrow(expect.objectContaining({ option: 'residentPool' }))
    const err = await rejection(openRegion({ size: MiB, backend: 'memory:', residentPool: { maxBytes: MiB } as never }))
    expect(err).toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'residentPool' })
    const pool = createResidentPool({ maxBytes: 4 * MiB })
    expect(await rejection(openRegion({ size: MiB, backend: 'memory:', residentPool: pool, writeTracking: 'async' }))).toMatchObject({ option: 'residentPool', message: expect.stringMatching(/async/) })
    // secondTierBytes works with a pool alone
    const region = await openRegion({ size: MiB, pageSize: PAGE, backend: 'memory:', residentPool: pool, secondTierBytes: MiB })
    await region.close()
  })
})
