/**
 * Redis going away under a region, on a server of this suite's own (the
 * shared ones are never killed). It persists every write (appendonly,
 * fsync always), as a production server that must survive a crash would:
 * after a SIGKILL and restart it holds exactly what it acknowledged.
 */
import { spawnSync } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRegion, type Region } from '@faultline/core'
import { redisKeys } from '@faultline/backends'
import { fillPattern } from '@faultline/core/pattern'
import { RedisServer } from '../helpers/redis-server.js'
import { uniqueNamespace } from '../helpers/redis.js'

const faultWorker = fileURLToPath(new URL('../fixtures/fault-worker.mjs', import.meta.url))
const busyPool = fileURLToPath(new URL('../fixtures/redis-busy-pool.mjs', import.meta.url))
let server: RedisServer
beforeAll(async () => {
  server = await RedisServer.start({ persistent: true })
})
afterAll(async () => server?.stop())

// A flush during the outage waits this long for Redis to come back before it fails.
const spec = (label: string) => ({ type: 'redis', url: `${server.url}/${uniqueNamespace(label)}`, connectTimeoutMs: 2000 })

async function until(what: string, done: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('redis backend: outages', () => {
  it('faults pending while redis-server is down complete with the right bytes once it is back', async () => {
    const backend = spec('faults')
    const size = 8 << 20
    const pageSize = 64 << 10
    const writer = await openRegion({ size, pageSize, backend })
    fillPattern(writer.view(), 0)
    await writer.close()

    const reader = await openRegion({ size, pageSize, backend, access: 'read-only', fetchTimeoutMs: 60_000 })
    const go = new Int32Array(new SharedArrayBuffer(4))
    const pages = Array.from({ length: size / pageSize }, (_, i) => i)
    // The faulting reads run in a worker: this thread must stay free to restart the server.
    const worker = new Worker(faultWorker, { workerData: { handle: reader.handle(), pages, go } })
    let result: { bad: number } | undefined
    worker.on('message', (m: { kind: string; bad: number }) => {
      if (m.kind === 'done') result = m
    })
    try {
      await new Promise<void>((resolve) => worker.once('message', () => resolve()))
      await server.kill('SIGKILL')
      Atomics.store(go, 0, 1)
      Atomics.notify(go, 0)
      await until('the pager to retry a failing read', () => reader.stats().fetchRetries >= 3)
      expect(result).toBeUndefined()
      expect(reader.stats().faults).toBeGreaterThan(0)
      expect(reader.stats().fetchErrors).toBe(0)

      await server.launch()
      await until('the faulting reads to finish', () => result !== undefined, 30_000)
      expect(result!.bad).toBe(-1)
      expect(reader.stats().fetchErrors).toBe(0)
      expect(reader.stats().pagesFetched).toBe(pages.length)
    } finally {
      await worker.terminate()
      await reader.close()
    }
  })

  it('a flush cut short by a crash rejects, keeps its pages dirty, and the next flush makes the store equal the model', async () => {
    const backend = spec('flush')
    const size = 32 << 20
    const pageSize = 16 << 10
    const count = size / pageSize
    // Small write batches: many round trips, so the kill lands in the middle of the flush.
    const region: Region = await openRegion({ size, pageSize, backend, maxBatchPages: 8 })
    try {
      const view = region.view()
      fillPattern(view, 0)
      await region.flush()
      const model = new Uint8Array(size)
      for (let p = 0; p < count; p++) {
        const page = view.subarray(p * pageSize, (p + 1) * pageSize)
        fillPattern(page, (p + 1) * 4096) // every page changes
        model.set(page, p * pageSize)
      }
      const before = region.stats().pagesWritten
      const flushing = region.flush()
      flushing.catch(() => undefined)
      await until('the flush to write its first batch', () => region.stats().pagesWritten > before)
      await server.kill('SIGKILL')
      await expect(flushing).rejects.toMatchObject({ code: 'ERR_BACKEND' })
      const written = region.stats().pagesWritten - before
      expect(written).toBeLessThan(count)
      expect(region.stats().dirtyPages).toBe(count - written)

      await server.launch()
      await flushOnceReconnected(region)
      expect(region.stats().dirtyPages).toBe(0)

      const keys = redisKeys(backend)
      const client = server.client()
      try {
        for (let p = 0; p < count; p += 256) {
          const got = await client.mgetBuffer(...Array.from({ length: 256 }, (_, i) => keys.page(p + i)))
          got.forEach((page, i) => {
            const at = (p + i) * pageSize
            if (page === null || !page.equals(model.subarray(at, at + pageSize))) throw new Error(`page ${p + i} differs from the model`)
          })
        }
      } finally {
        client.disconnect()
      }
    } finally {
      await region.close()
    }
  })
})

describe('redis backend: a flush after a long outage', () => {
  it('fails promptly while the server is down, then, once it is back, waits for the reconnect instead of being refused', async () => {
    const backend = { ...spec('late'), connectTimeoutMs: 500 }
    const pageSize = 16 << 10
    // Many small batches: a flush during the outage must not wait once per batch.
    const region = await openRegion({ size: 4 << 20, pageSize, backend, maxBatchPages: 4 })
    try {
      const view = region.view()
      fillPattern(view, 0)
      await region.flush()
      await server.kill('SIGKILL')
      fillPattern(view, 7)
      // Down far longer than connectTimeoutMs, and still down: the flush fails, after at most one reconnect wait.
      await new Promise((r) => setTimeout(r, 2000))
      const t0 = performance.now()
      await expect(region.flush()).rejects.toThrow(/not connected to Redis/)
      expect(performance.now() - t0).toBeLessThan(5000)
      expect(region.stats().dirtyPages).toBe(256)
      // A write within 250 ms of a failed one counts as the next batch of the same flush and fails
      // at once (client.ts SAME_FLUSH_MS); a server that relaunches faster than that would make the
      // next flush look like one.
      await new Promise((r) => setTimeout(r, 300))
      await server.launch()
      // Back, but the client may still be asleep in its backoff: the flush waits for it.
      await region.flush()
      expect(region.stats().dirtyPages).toBe(0)
      const client = server.client()
      try {
        const keys = redisKeys(backend)
        const last = await client.getBuffer(keys.page(255))
        expect(Buffer.compare(last!, Buffer.from(view.subarray(255 * pageSize, 256 * pageSize)))).toBe(0)
      } finally {
        client.disconnect()
      }
    } finally {
      await region.close()
    }
  })
})

/**
 * The outage outlasted connectTimeoutMs, so a flush waits for one more
 * reconnect attempt (≤ 2.5 s) and no longer; a server replaying its AOF on a
 * loaded machine may take longer to be ready. Only a flush refused for not
 * being connected is retried.
 */
async function flushOnceReconnected(region: Region): Promise<void> {
  const deadline = Date.now() + 15_000
  for (;;) {
    try {
      await region.flush()
      return
    } catch (err) {
      if (!/not connected to Redis/.test(String((err as Error).message)) || Date.now() > deadline) throw err
      await new Promise((r) => setTimeout(r, 200))
    }
  }
}

describe('redis backend: no threadpool on the fault path', () => {
  it('reconnects and serves a fault while the only threadpool thread is the one asleep in it', async () => {
    const size = 4 << 20
    const namespace = uniqueNamespace('pool')
    const writer = await openRegion({ size, pageSize: 64 << 10, backend: `${server.url}/${namespace}` })
    fillPattern(writer.view(), 0)
    await writer.close()
    // A host name, not an address: it is resolved without dns.lookup, whose getaddrinfo would need the pool.
    const url = `redis://localhost:${server.port}/${namespace}`
    const r = spawnSync(process.execPath, [busyPool, url, String(size)], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, UV_THREADPOOL_SIZE: '1' } })
    expect(r.signal, r.stderr).toBeNull()
    expect(r.status, r.stderr).toBe(0)
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { bad: number; retries: number }
    expect(summary.bad).toBe(-1)
    // The first read hit the dropped connection: the reconnect happened while the pool thread was asleep in the fault.
    expect(summary.retries).toBeGreaterThanOrEqual(1)
  })
})

describe('redis backend: a server that lost its data or may evict it', () => {
  // Not persistent: a restart empties it, as a cache-configured server's would.
  let volatile: RedisServer
  beforeAll(async () => {
    volatile = await RedisServer.start()
  })
  afterAll(async () => volatile?.stop())

  it('after a restart that emptied the server, pages are neither read as zeros nor written into the empty namespace', async () => {
    const backend = { type: 'redis', url: `${volatile.url}/${uniqueNamespace('lost')}`, connectTimeoutMs: 2000 }
    const writer = await openRegion({ size: 1 << 20, pageSize: 4096, backend })
    writer.view().fill(7)
    await writer.flush()
    const c = volatile.client()
    const meta = (await c.get(redisKeys(backend).meta))!
    const reader = await openRegion({ pageSize: 4096, backend, access: 'read-only', fetchTimeoutMs: 1500 })
    try {
      await volatile.kill('SIGKILL')
      await volatile.launch()
      const read = reader.prefetch(0, 4096)
      await expect(read).rejects.toMatchObject({ code: 'ERR_BACKEND' })
      await expect(read).rejects.toThrow(/metadata key is gone, so Redis lost this namespace's data/)
      expect(reader.stats().residentPages).toBe(0)

      writer.view(0, 1)[0] = 8
      await expect(writer.flush()).rejects.toThrow(/metadata key is gone/)
      expect(writer.stats().dirtyPages).toBe(1)
      expect(await c.dbsize()).toBe(0)
      // Someone restores the namespace (here just its metadata): the kept dirty page now flushes.
      await c.set(redisKeys(backend).meta, meta)
      await writer.flush()
      expect((await c.getBuffer(redisKeys(backend).page(0)))?.[0]).toBe(8)
    } finally {
      c.disconnect()
      await reader.close()
      await writer.close()
    }
  })

  it('refuses a server that may evict any key under memory pressure', async () => {
    const c = volatile.client()
    try {
      await c.config('SET', 'maxmemory-policy', 'allkeys-lru')
      const open = openRegion({ size: 1 << 20, backend: { type: 'redis', url: `${volatile.url}/${uniqueNamespace('evict')}` } })
      await expect(open).rejects.toMatchObject({ code: 'ERR_BACKEND', option: 'backend.url' })
      await expect(open).rejects.toThrow(/evicts keys under memory pressure \(maxmemory-policy allkeys-lru\)/)
      await c.config('SET', 'maxmemory-policy', 'volatile-lru')
      await (await openRegion({ size: 1 << 20, backend: { type: 'redis', url: `${volatile.url}/${uniqueNamespace('evict')}` } })).close()
    } finally {
      await c.config('SET', 'maxmemory-policy', 'noeviction')
      c.disconnect()
    }
  })
})
