/**
 * The Redis backend on the shared standalone server: URL form, option
 * errors, metadata and geometry, the writer lease, credentials, and the
 * connection options that are passed through.
 */
import { hostname } from 'node:os'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { builtinBackends, redisKeys } from '@faultline/backends'
import { checkPattern, fillPattern } from '@faultline/core/pattern'
import { residentBytes } from '../helpers/smaps.js'
import { crashedWriter, retryUntilOpen } from '../helpers/lease.js'
import { dropAfterSuite, standaloneClient, standaloneSpec, uniqueNamespace } from '../helpers/redis.js'

const client = standaloneClient()
const track = dropAfterSuite(client)

function fresh(label: string, extra: Record<string, unknown> = {}): BackendSpec {
  const spec = standaloneSpec(uniqueNamespace(label), extra)
  track(spec)
  return spec
}

const KiB = 1024
const MiB = 1 << 20

describe('redis backend: opening', () => {
  it('takes the URL form through openRegion and round-trips data', async () => {
    const spec = fresh('url')
    const region = await openRegion({ size: MiB, pageSize: 4 * KiB, backend: spec.url as string })
    expect(region.backendName).toBe(spec.url)
    region.view(5 * 4 * KiB, 4)[0] = 42
    await region.close()
    const again = await openRegion({ pageSize: 4 * KiB, backend: spec.url as string, access: 'read-only' })
    try {
      expect(again.size).toBe(MiB)
      expect(again.view(5 * 4 * KiB, 1)[0]).toBe(42)
    } finally {
      await again.close()
    }
  })

  it.each([
    [{ url: 'redis://127.0.0.1:6379' }, 'backend.namespace', /namespace.* is required/],
    [{ url: 'redis://127.0.0.1:6379/a{b}' }, 'backend.namespace', /must not contain "\{"/],
    [{ url: 'redis://127.0.0.1:6379/a', keyPrefix: 'x{' }, 'backend.keyPrefix', /hash tag/],
    [{ url: 'redis://127.0.0.1:6379/a', colour: 'blue' }, 'backend.colour', /not an option of the redis backend/],
    [{ url: 'redis://127.0.0.1:6379/a?cluster', db: 2 }, 'backend.db', /must be 0 with Redis Cluster/],
    [{ url: 'redis://127.0.0.1:6379/a?sentinel=1' }, 'backend.url', /unknown query parameter "sentinel"/],
    [{ url: 'http://127.0.0.1:6379/a' }, 'backend.url', /redis:\/\/ or rediss:\/\//],
    [{ url: 'redis://127.0.0.1:6379/a', leaseMs: 5 }, 'backend.leaseMs', /whole number ≥ 100/],
    [{ url: 'redis://127.0.0.1:6379/a', cluster: { nodes: ['nohost'] } }, 'backend.cluster.nodes', /"host:port"/],
    [{ url: 'redis://127.0.0.1:6379/a', tls: 'yes' }, 'backend.tls', /true, false or an object/],
    [{ url: 'redis://127.0.0.1:6379/a', pageReadConnection: 'yes' }, 'backend.pageReadConnection', /must be true or false/],
    [{ url: 'rediss://127.0.0.1:6379/a', pageReadConnection: true }, 'backend.pageReadConnection', /works without TLS only; leave it unset with TLS/],
  ])('refuses bad options with a typed error naming the option: %j', async (options, option, message) => {
    const open = builtinBackends.redis!({ type: 'redis', ...options }, { pageSize: 4 * KiB, size: MiB, readOnly: false })
    await expect(open).rejects.toMatchObject({ name: 'FaultlineError', code: 'ERR_INVALID_OPTION', option })
    await expect(open).rejects.toThrow(message)
  })

  it('brings option errors across the pager thread with their code and option', async () => {
    const open = openRegion({ size: MiB, pageSize: 4 * KiB, backend: 'redis://127.0.0.1:6379/a{b}' })
    await expect(open).rejects.toMatchObject({ name: 'FaultlineError', code: 'ERR_INVALID_OPTION', option: 'backend.namespace' })
  })

  it('says which server it cannot reach, quickly, without the password', async () => {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    const open = openRegion({ size: MiB, backend: { type: 'redis', url: 'redis://app:hunter2@127.0.0.1:1/x', connectTimeoutMs: 2000 } })
    await expect(open).rejects.toMatchObject({ code: 'ERR_BACKEND', option: 'backend.url' })
    await expect(open).rejects.toThrow(/cannot connect to redis:\/\/127\.0\.0\.1:1\/x: .*ECONNREFUSED/)
    await expect(open).rejects.not.toThrow(/hunter2/)
  })

  it('resolves "localhost" itself (no dns.lookup on the threadpool) and connects', async () => {
    const spec = fresh('localhost')
    const url = (spec.url as string).replace('127.0.0.1', 'localhost')
    const region = await openRegion({ size: MiB, pageSize: 4 * KiB, backend: url })
    try {
      expect(region.backendName).toMatch(/^redis:\/\/localhost:\d+\//)
      region.view(0, 1)[0] = 7
      await region.flush()
      expect((await client.getBuffer(redisKeys(spec).page(0)))?.[0]).toBe(7)
    } finally {
      await region.close()
    }
  })
})

describe('redis backend: key layout and pass-through options', () => {
  it('stores one key per page under keyPrefix and the namespace, in the chosen database', async () => {
    const spec = fresh('layout', { keyPrefix: 'fl-test:', db: 3 })
    const region = await openRegion({ size: MiB, pageSize: 4 * KiB, backend: spec })
    region.view(17 * 4 * KiB, 4 * KiB).fill(9)
    await region.close()
    const db3 = standaloneClient(`${inject('redisUrl')}`)
    try {
      await db3.select(3)
      const keys = redisKeys(spec)
      expect(keys.page(17)).toBe(`fl-test:{${new URL(spec.url as string).pathname.slice(1)}:1}:17`)
      const page = await db3.getBuffer(keys.page(17))
      expect(page?.byteLength).toBe(4 * KiB)
      expect(page?.every((b) => b === 9)).toBe(true)
      expect(await client.exists(keys.page(17))).toBe(0) // not in database 0
      const found = await db3.keys(keys.pagePattern)
      expect(found).toEqual([keys.page(17)])
      await db3.unlink(keys.page(17), keys.meta, keys.lease)
    } finally {
      db3.disconnect()
    }
  })

  it('reads a region back in batches of many pages, each split into several MGETs', async () => {
    // 64 KiB pages and commandBytes 256 KiB: a 64-page batch is 16 MGETs sent together.
    const spec = fresh('batch', { commandBytes: 256 * KiB })
    const size = 8 * MiB
    const region = await openRegion({ size, pageSize: 64 * KiB, maxBatchPages: 64, backend: spec })
    const v = region.view()
    for (let i = 0; i < size; i += 4096) v[i] = (i / 4096) % 251
    await region.close()
    const again = await openRegion({ size, pageSize: 64 * KiB, maxBatchPages: 64, backend: spec, access: 'read-only' })
    try {
      await again.prefetch()
      const s = again.stats()
      expect(s.pagesFetched).toBe(128)
      expect(s.fetchRequests).toBeLessThanOrEqual(4)
      // Nobody faulted: every page went through the installer thread, and prefetch() waited for its copies.
      expect(s.installedOffThread).toBe(128)
      expect(s.residentPages).toBe(128)
      const w = again.view()
      for (let i = 0; i < size; i += 4096) expect(w[i]).toBe((i / 4096) % 251)
    } finally {
      await again.close()
    }
  })
})

describe('redis backend: a bounded region', () => {
  it('scans 4x maxResident and writes back through eviction, within the bound, with correct data', async () => {
    // Pages fetched ahead go through the installer thread (Redis read buffers are fresh).
    const spec = fresh('bounded')
    const size = 32 * MiB
    const pageSize = 64 * KiB
    const maxResident = 8 * MiB
    const writer = await openRegion({ size, pageSize, backend: spec })
    fillPattern(writer.view(), 0)
    await writer.close()
    const region = await openRegion({ pageSize, maxResident, backend: spec })
    try {
      const v = region.view()
      let peak = 0
      for (let p = 0; p < size / pageSize; p++) {
        expect(checkPattern(v.subarray(p * pageSize, (p + 1) * pageSize), p * pageSize)).toBe(-1)
        if (p % 2 === 1) v[p * pageSize] = v[p * pageSize]! ^ 0xff // half the pages dirty: eviction has to write them back before dropping them
        if (p % 64 === 0) peak = Math.max(peak, residentBytes(region.handle().address))
      }
      const s = region.stats()
      expect(s.installedOffThread).toBeGreaterThan(0)
      expect(s.evictedPages).toBeGreaterThan(size / pageSize / 2)
      expect(s.pagesWritten).toBeGreaterThan(0)
      expect(s.residentPages * pageSize).toBeLessThanOrEqual(maxResident)
      expect(peak).toBeLessThanOrEqual(maxResident * 1.1)
    } finally {
      await region.close()
    }
    const again = await openRegion({ pageSize, backend: spec, access: 'read-only' })
    try {
      const w = again.view()
      for (let p = 0; p < size / pageSize; p++) {
        const expected = new Uint8Array(pageSize)
        fillPattern(expected, p * pageSize)
        if (p % 2 === 1) expected[0]! ^= 0xff
        expect(Buffer.compare(w.subarray(p * pageSize, (p + 1) * pageSize), expected)).toBe(0)
      }
    } finally {
      await again.close()
    }
  })
})

describe('redis backend: metadata', () => {
  it('stores size, page size, format and creation time', async () => {
    const spec = fresh('meta')
    const before = Date.now()
    const region = await openRegion({ size: 3 * MiB + 100, pageSize: 8 * KiB, backend: spec })
    await region.close()
    const meta = JSON.parse((await client.get(redisKeys(spec).meta))!) as Record<string, unknown>
    expect(meta).toMatchObject({ format: 1, pageSize: 8 * KiB, size: 3 * MiB + 100 })
    const created = Date.parse(meta.createdAt as string)
    expect(created).toBeGreaterThanOrEqual(before - 1000)
    expect(created).toBeLessThanOrEqual(Date.now())
  })

  it('adopts the stored size when size is left out', async () => {
    const spec = fresh('adopt')
    await (await openRegion({ size: 3 * MiB + 100, pageSize: 8 * KiB, backend: spec })).close()
    const region = await openRegion({ pageSize: 8 * KiB, backend: spec })
    try {
      expect(region.dataSize).toBe(3 * MiB + 100)
      expect(region.size).toBe(3 * MiB + 8 * KiB)
    } finally {
      await region.close()
    }
  })

  it('refuses another geometry with ERR_GEOMETRY naming the option', async () => {
    const spec = fresh('geometry')
    await (await openRegion({ size: MiB, pageSize: 8 * KiB, backend: spec })).close()
    const wrongPage = openRegion({ size: MiB, pageSize: 16 * KiB, backend: spec })
    await expect(wrongPage).rejects.toMatchObject({ code: 'ERR_GEOMETRY', option: 'pageSize' })
    await expect(wrongPage).rejects.toThrow(/pageSize 8192; `pageSize` 16384 differs/)
    const wrongSize = openRegion({ size: 2 * MiB, pageSize: 8 * KiB, backend: spec, access: 'read-only' })
    await expect(wrongSize).rejects.toMatchObject({ code: 'ERR_GEOMETRY', option: 'size' })
    await expect(wrongSize).rejects.toThrow(/holds a region of 1048576 bytes; `size` 2097152 differs: leave size out/)
  })

  it('needs a size to create a namespace', async () => {
    await expect(openRegion({ pageSize: 8 * KiB, backend: fresh('nosize') })).rejects.toMatchObject({ code: 'ERR_GEOMETRY', option: 'size' })
  })

  it('refuses a namespace whose metadata key holds something else', async () => {
    const spec = fresh('foreign')
    await client.set(redisKeys(spec).meta, 'not json')
    await expect(openRegion({ size: MiB, backend: spec })).rejects.toThrow(/holds no faultline region metadata/)
  })
})

describe('redis backend: one writer per namespace', () => {
  const holder = `${process.pid}@${hostname()}`

  it('refuses a second read-write open naming the holder, allows read-only opens, and frees the namespace on close', async () => {
    const spec = fresh('lease')
    const writer = await openRegion({ size: MiB, pageSize: 4 * KiB, backend: spec })
    try {
      const second = openRegion({ size: MiB, pageSize: 4 * KiB, backend: spec })
      await expect(second).rejects.toMatchObject({ code: 'ERR_LOCKED', option: 'access' })
      await expect(second).rejects.toThrow(`is already open read-write by ${holder}`)
      writer.view(0, 1)[0] = 1
      await writer.flush()
      const reader = await openRegion({ pageSize: 4 * KiB, backend: spec, access: 'read-only' })
      expect(reader.view(0, 1)[0]).toBe(1)
      await reader.close()
    } finally {
      await writer.close()
    }
    expect(await client.exists(redisKeys(spec).lease)).toBe(0)
    await (await openRegion({ pageSize: 4 * KiB, backend: spec })).close()
  })

  it('renews the lease while the region is open', async () => {
    const spec = fresh('renew', { leaseMs: 1000 })
    const writer = await openRegion({ size: MiB, pageSize: 4 * KiB, backend: spec })
    try {
      await new Promise((r) => setTimeout(r, 2500))
      expect(await client.get(redisKeys(spec).lease)).toMatch(new RegExp(`^${holder} `))
      expect(await client.pttl(redisKeys(spec).lease)).toBeGreaterThan(0)
    } finally {
      await writer.close()
    }
  })

  it("lets the lease of a process that died expire, then another writer opens", async () => {
    const spec = fresh('dead', { leaseMs: 3000 })
    const pid = await crashedWriter(spec)
    // Straight after the death the lease is still there (the holder renewed it at most leaseMs / 3 ago).
    const context = { pageSize: 4 * KiB, size: MiB, readOnly: false }
    await expect(builtinBackends.redis!(spec, context)).rejects.toThrow(`is already open read-write by ${pid}@${hostname()}`)
    expect(await client.pttl(redisKeys(spec).lease)).toBeGreaterThan(0)
    await retryUntilOpen(() => builtinBackends.redis!(spec, context), 10_000)
  })
})

describe('redis backend: credentials', () => {
  const user = `fl-${uniqueNamespace('u')}`
  const password = `pw-${uniqueNamespace('secret')}`
  afterAll(async () => {
    await client.call('ACL', 'DELUSER', user)
  })

  it('authenticates as an ACL user and never shows the password', async () => {
    await client.call('ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all')
    const spec = fresh('acl')
    const url = (spec.url as string).replace('redis://', `redis://${user}:${password}@`)
    const region = await openRegion({ size: MiB, pageSize: 4 * KiB, backend: url })
    try {
      region.view(0, 1)[0] = 5
      await region.flush()
      const shown = JSON.stringify([region.backendName, region.stats()])
      expect(shown).not.toContain(password)
      expect(region.backendName).toBe(spec.url)
      const second = openRegion({ size: MiB, pageSize: 4 * KiB, backend: url })
      await expect(second).rejects.toThrow(/already open read-write/)
      await expect(second).rejects.not.toThrow(password)
    } finally {
      await region.close()
    }
    const wrong = openRegion({ size: MiB, backend: { type: 'redis', url: spec.url, username: user, password: 'wrong-secret-123' } })
    await expect(wrong).rejects.toMatchObject({ code: 'ERR_BACKEND' })
    await expect(wrong).rejects.toThrow(/WRONGPASS/)
    await expect(wrong).rejects.not.toThrow('wrong-secret-123')
  })
})
