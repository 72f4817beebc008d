/**
 * Page reads over the Redis backend's own connection (page-reader.ts): the
 * data it reads, that it is really used, what happens when it is cut or its
 * server stops answering, and the buffer pool behind it.
 */
import net from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { checkPattern, fillPattern } from '@faultline/core/pattern'
import { PageReader } from '../../packages/backends/src/redis/page-reader.js'
import { ReadBufferPool } from '../../packages/backends/src/read-buffers.js'
import { dropNamespace, standaloneClient, standaloneSpec, uniqueNamespace } from '../helpers/redis.js'

const PAGE = 64 * 1024
/** A database no other suite uses, so CLIENT LIST's db= tells this suite's connections apart. */
const DB = 9
const client = standaloneClient()
const used: BackendSpec[] = []
afterAll(async () => {
  await client.select(DB)
  for (const spec of used) await dropNamespace(client, spec)
  client.disconnect()
})

/** A namespace in DB holding `size` bytes of the pattern. */
async function seeded(label: string, size: number, extra: Record<string, unknown> = {}): Promise<BackendSpec> {
  const spec = standaloneSpec(uniqueNamespace(label), { db: DB, ...extra })
  used.push(spec)
  const writer = await openRegion({ size, pageSize: PAGE, backend: { ...spec, pageReadConnection: false } })
  fillPattern(writer.view(), 0)
  await writer.close()
  return spec
}

/** Ids of the page-read connections open on database DB. */
async function pageConnections(): Promise<string[]> {
  const list = String(await client.call('CLIENT', 'LIST'))
  return list
    .split('\n')
    .filter((line) => / name=faultline-pages /.test(line) && new RegExp(` db=${DB} `).test(line))
    .map((line) => /^id=(\d+)/.exec(line)![1]!)
}

function expectPages(view: Uint8Array, first: number, count: number): void {
  for (let p = first; p < first + count; p++) expect(checkPattern(view.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE), `page ${p}`).toBe(-1)
}

describe('redis backend: the page-read connection', () => {
  it('reads pages over a connection of its own (CLIENT LIST shows it), and only when enabled', async () => {
    const size = 8 << 20
    const spec = await seeded('own', size)
    for (const enabled of [true, false]) {
      const before = await pageConnections()
      const region = await openRegion({ pageSize: PAGE, backend: { ...spec, pageReadConnection: enabled }, access: 'read-only' })
      try {
        const opened = (await pageConnections()).filter((id) => !before.includes(id))
        expect(opened).toHaveLength(enabled ? 1 : 0)
        expectPages(region.view(), 0, size / PAGE)
      } finally {
        await region.close()
      }
    }
  })

  it('reads on through ioredis when the connection is cut, then makes a new one', async () => {
    const size = 16 << 20
    const pages = size / PAGE
    const spec = await seeded('cut', size)
    const before = await pageConnections()
    const region = await openRegion({ pageSize: PAGE, backend: spec, access: 'read-only', readahead: false })
    try {
      const view = region.view()
      expectPages(view, 0, 8)
      const [ours] = (await pageConnections()).filter((id) => !before.includes(id))
      expect(ours).toBeDefined()
      await client.call('CLIENT', 'KILL', 'ID', ours!)
      // Each fault is a read: the first after the cut goes to ioredis and starts a reconnect.
      let p = 8
      let replaced: string[] = []
      const deadline = Date.now() + 10_000
      while (replaced.length === 0 && p < pages) {
        expectPages(view, p++, 1)
        replaced = (await pageConnections()).filter((id) => !before.includes(id) && id !== ours)
        if (Date.now() > deadline) break
      }
      expect(replaced).toHaveLength(1)
      expectPages(view, p, pages - p)
      expect(region.stats().fetchErrors).toBe(0)
    } finally {
      await region.close()
    }
    // Closing the region closes it too.
    expect((await pageConnections()).filter((id) => !before.includes(id))).toEqual([])
  })

  it('fails the commands in flight, and the connection, when the server stops answering (commandTimeoutMs)', async () => {
    // Answers the connect's CLIENT SETNAME, then reads on and never answers again: a hung server.
    const hung = net.createServer((socket) => {
      socket.once('data', () => socket.write('+OK\r\n'))
      socket.resume()
    })
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve))
    const port = (hung.address() as net.AddressInfo).port
    try {
      const reader = await PageReader.connect({ host: '127.0.0.1', port, username: undefined, password: undefined, db: 0, connectTimeoutMs: 1000, commandTimeoutMs: 300, allocate: (n) => Buffer.alloc(n) })
      const t0 = performance.now()
      const reads = [reader.mget(['a']), reader.mget(['b'])]
      for (const read of reads) await expect(read).rejects.toThrow(/did not answer in time \(commandTimeoutMs, 300 ms\)/)
      expect(performance.now() - t0).toBeGreaterThanOrEqual(290)
      expect(reader.usable).toBe(false)
      await expect(reader.mget(['c'])).rejects.toThrow(/did not answer in time/)
    } finally {
      hung.close()
    }
  })

  it('reads values of any length, absent keys as null, and an error reply rejects only its command', async () => {
    const url = new URL(String(standaloneSpec('x').url))
    const reader = await PageReader.connect({ host: url.hostname, port: Number(url.port), username: undefined, password: undefined, db: DB, connectTimeoutMs: 2000, commandTimeoutMs: 5000, allocate: (n) => Buffer.alloc(n) })
    const prefix = uniqueNamespace('raw')
    try {
      await client.select(DB)
      const big = Buffer.alloc(300_000, 0x5a)
      await client.set(`${prefix}:a`, big)
      await client.set(`${prefix}:b`, '')
      const [values, refused, again] = await Promise.allSettled([
        reader.mget([`${prefix}:a`, `${prefix}:missing`, `${prefix}:b`]),
        // MGET of no key is an error reply, between two good ones in the same pipeline.
        reader.mget([]),
        reader.mget([`${prefix}:b`]),
      ])
      expect(values.status).toBe('fulfilled')
      const [a, missing, b] = (values as PromiseFulfilledResult<Array<Buffer | null>>).value
      expect(a!.equals(big)).toBe(true)
      expect(missing).toBeNull()
      expect(b!.length).toBe(0)
      expect(refused).toMatchObject({ status: 'rejected', reason: { name: 'RedisReplyError', message: expect.stringMatching(/wrong number of arguments/) } })
      expect(again).toMatchObject({ status: 'fulfilled' })
      expect(reader.usable).toBe(true)
    } finally {
      reader.close()
      await client.unlink(`${prefix}:a`, `${prefix}:b`)
    }
    expect(reader.usable).toBe(false)
    await expect(reader.mget(['k'])).rejects.toThrow(/page-read connection was closed/)
  })
})

describe('read buffer pool', () => {
  it('hands a recycled buffer out again, and ignores foreign buffers, second recycles and any beyond maxFree', () => {
    const pool = new ReadBufferPool(4096, 2)
    const a = pool.take()
    const b = pool.take()
    const c = pool.take()
    expect(a.length).toBe(4096)
    pool.recycle(new Uint8Array(4096))
    pool.recycle(a.subarray(0, 100))
    expect(pool.freeCount).toBe(0)
    pool.recycle(a)
    pool.recycle(a)
    expect(pool.freeCount).toBe(1)
    pool.recycle(b)
    pool.recycle(c)
    expect(pool.freeCount).toBe(2)
    const again = [pool.take(), pool.take()].map((x) => x.buffer)
    expect(again.filter((m) => m === a.buffer || m === b.buffer)).toHaveLength(2)
    expect(again[0]).not.toBe(again[1])
    const made = pool.take().buffer
    expect([a.buffer, b.buffer, c.buffer]).not.toContain(made)
  })
})
