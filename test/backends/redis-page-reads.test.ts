/**
 * Page reads over the Redis backend's own connection (page-reader.ts): the
 * data it reads, that it is really used, what happens when it is cut or its
 * server stops answering, and the buffer pool behind it.
 */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { checkPattern, fillPattern } from '@faultline/core/pattern'
import { PageReader, PageReaderSlot } from '../../packages/backends/src/redis/page-reader.js'
import { ReadBufferPool } from '../../packages/backends/src/read-buffers.js'
import { dropAfterSuite, standaloneClient, standaloneSpec, uniqueNamespace } from '../helpers/redis.js'
import { RedisServer } from '../helpers/redis-server.js'

const PAGE = 64 * 1024
/** A database no other suite uses, so CLIENT LIST's db= tells this suite's connections apart. */
const DB = 9
const client = standaloneClient()
const track = dropAfterSuite(client, () => client.select(DB))

/** A namespace in DB holding `size` bytes of the pattern. */
async function seeded(label: string, size: number, extra: Record<string, unknown> = {}): Promise<BackendSpec> {
  const spec = standaloneSpec(uniqueNamespace(label), { db: DB, ...extra })
  track(spec)
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

/** The page-write connections open on database DB: id and last command. */
async function writeConnections(): Promise<Array<{ id: string; cmd: string }>> {
  const list = String(await client.call('CLIENT', 'LIST'))
  return list
    .split('\n')
    .filter((line) => / name=faultline-writes /.test(line) && new RegExp(` db=${DB} `).test(line))
    .map((line) => ({ id: /^id=(\d+)/.exec(line)![1]!, cmd: / cmd=(\S+)/.exec(line)![1]! }))
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
      // Faults read on (through ioredis while the connection is down)...
      expectPages(view, 8, pages / 2 - 8)
      // ...and reads (region.read() goes to the backend each time) bring a
      // new connection, after a backoff: the old one died young.
      let replaced: string[] = []
      const deadline = Date.now() + 10_000
      for (let p = 0; replaced.length === 0 && Date.now() < deadline; p = (p + 1) % pages) {
        expect(checkPattern(await region.read(p * PAGE, PAGE), p * PAGE)).toBe(-1)
        replaced = (await pageConnections()).filter((id) => !before.includes(id) && id !== ours)
        await new Promise((r) => setTimeout(r, 20))
      }
      expect(replaced).toHaveLength(1)
      expectPages(view, pages / 2, pages / 2)
      expect(region.stats().fetchErrors).toBe(0)
    } finally {
      await region.close()
    }
    // Closing the region closes it too.
    expect((await pageConnections()).filter((id) => !before.includes(id))).toEqual([])
  })

  it('times each command from when it was sent: one answered in time does not fail the next early (commandTimeoutMs)', async () => {
    // Answers the connect's CLIENT SETNAME and the first MGET, then never again.
    let commands = 0
    const hung = net.createServer((socket) => {
      socket.on('data', () => {
        commands++
        if (commands === 1) socket.write('+OK\r\n')
        else if (commands === 2) socket.write('*1\r\n$1\r\nx\r\n')
      })
    })
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve))
    const port = (hung.address() as net.AddressInfo).port
    try {
      const reader = await PageReader.connect({ host: '127.0.0.1', port, username: undefined, password: undefined, db: 0, connectTimeoutMs: 1000, commandTimeoutMs: 300, allocate: (n) => Buffer.alloc(n) })
      expect((await reader.mget(['a']))[0]?.toString()).toBe('x')
      await new Promise((resolve) => setTimeout(resolve, 200))
      const t0 = performance.now()
      await expect(reader.mget(['b'])).rejects.toThrow(/did not answer in time \(commandTimeoutMs, 300 ms\)/)
      expect(performance.now() - t0).toBeGreaterThanOrEqual(290)
      expect(reader.usable).toBe(false)
    } finally {
      hung.close()
    }
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

describe('redis backend: the page-read connection, refused or cut short', () => {
  const shared = new URL(String(standaloneSpec('x').url))
  const options = (extra: Partial<Parameters<typeof PageReader.connect>[0]> = {}) => ({
    host: shared.hostname,
    port: Number(shared.port),
    username: undefined,
    password: undefined,
    db: 0,
    connectTimeoutMs: 2000,
    commandTimeoutMs: 5000,
    allocate: (n: number) => Buffer.alloc(n),
    ...extra,
  })

  it('fails to connect to a server at maxclients, with its message (not taken for a refused CLIENT SETNAME)', async () => {
    const server = await RedisServer.start({ args: ['--maxclients', '1'] })
    const holder = server.client()
    try {
      await holder.ping()
      await expect(PageReader.connect(options({ host: '127.0.0.1', port: server.port }))).rejects.toThrow(/max number of clients|connection to Redis was lost/)
    } finally {
      holder.disconnect()
      await server.stop()
    }
  })

  it('authenticates with a password alone (requirepass), and refuses a wrong one with the server\'s reason', async () => {
    const server = await RedisServer.start()
    const admin = server.client()
    await admin.call('CONFIG', 'SET', 'requirepass', 'pw-only')
    admin.disconnect()
    try {
      const at = { host: '127.0.0.1', port: server.port }
      const reader = await PageReader.connect(options({ ...at, password: 'pw-only' }))
      try {
        expect(await reader.mget(['absent-key'])).toEqual([null])
      } finally {
        reader.close()
      }
      await expect(PageReader.connect(options({ ...at, password: 'wrong' }))).rejects.toThrow(/WRONGPASS|invalid password/)
      await expect(PageReader.connect(options(at))).rejects.toThrow(/NOAUTH/)
    } finally {
      await server.stop()
    }
  })

  it('goes without a name where the ACL refuses CLIENT (NOPERM), and reads', async () => {
    const user = `fl-${uniqueNamespace('noclient')}`
    await client.call('ACL', 'SETUSER', user, 'on', '>pw-noclient', '~*', '&*', '+@all', '-client')
    try {
      const reader = await PageReader.connect(options({ username: user, password: 'pw-noclient' }))
      try {
        expect(await reader.mget([`${uniqueNamespace('absent')}`])).toEqual([null])
      } finally {
        reader.close()
      }
    } finally {
      await client.call('ACL', 'DELUSER', user)
    }
  })

  it('backs off before remaking a connection that died soon after it was made', async () => {
    let attempts = 0
    const slot = new PageReaderSlot((signal) => {
      attempts++
      return PageReader.connect(options(), signal)
    })
    await slot.start()
    const first = slot.current()
    expect(first).toBeDefined()
    // Kill ours: the newest page connection, the one just made.
    const ids = String(await client.call('CLIENT', 'LIST', 'TYPE', 'normal')).split('\n').filter((l) => / name=faultline-pages /.test(l)).map((l) => Number(/^id=(\d+)/.exec(l)![1]))
    await client.call('CLIENT', 'KILL', 'ID', String(Math.max(...ids)))
    while (first!.usable) await new Promise((r) => setTimeout(r, 5))
    // Within the first 500 ms of backoff, asking again and again makes no new attempt.
    const until = performance.now() + 300
    while (performance.now() < until) {
      expect(slot.current()).toBeUndefined()
      await new Promise((r) => setTimeout(r, 10))
    }
    expect(attempts).toBe(1)
    await new Promise((r) => setTimeout(r, 400))
    expect(slot.current()).toBeUndefined()
    expect(attempts).toBe(2)
    slot.close()
  })

  it('close() while connecting closes that connection at once', async () => {
    const closed: Array<Promise<void>> = []
    // Accepts and never answers: the handshake would wait commandTimeoutMs.
    const hung = net.createServer((socket) => {
      socket.resume()
      closed.push(new Promise((resolve) => socket.once('close', () => resolve())))
    })
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve))
    try {
      const slot = new PageReaderSlot((signal) => PageReader.connect(options({ host: '127.0.0.1', port: (hung.address() as net.AddressInfo).port, commandTimeoutMs: 30_000 }), signal))
      const started = slot.start()
      while (closed.length === 0) await new Promise((r) => setTimeout(r, 5))
      const t0 = performance.now()
      slot.close()
      await started
      await closed[0]
      expect(performance.now() - t0).toBeLessThan(5000)
      expect(slot.current()).toBeUndefined()
    } finally {
      hung.close()
    }
  })
})

describe('redis backend: the page-write connection', () => {
  /** Every page of the namespace as stored, read back with our own client. */
  async function stored(spec: BackendSpec, pages: number): Promise<Buffer> {
    const probe = await openRegion({ pageSize: PAGE, backend: { ...spec, pageReadConnection: false }, access: 'read-only' })
    try {
      return Buffer.from(await probe.read(0, pages * PAGE))
    } finally {
      await probe.close()
    }
  }

  it('flushes over a connection of its own (CLIENT LIST shows it sending MSET), only read-write, without waitReplicas, when enabled', async () => {
    const pages = 64
    const spec = standaloneSpec(uniqueNamespace('writes'), { db: DB })
    track(spec)
    const before = (await writeConnections()).map((c) => c.id)
    const opened = async () => (await writeConnections()).filter((c) => !before.includes(c.id))
    const region = await openRegion({ size: pages * PAGE, pageSize: PAGE, backend: spec })
    try {
      expect(await opened()).toHaveLength(1)
      const view = region.view()
      // Scattered pages, every byte, several batches at once.
      for (let p = 0; p < pages; p += 3) view.fill(p + 1, p * PAGE, (p + 1) * PAGE)
      await region.flush()
      const [conn] = await opened()
      expect(conn!.cmd).toBe('mset')
      const data = await stored(spec, pages)
      for (let p = 0; p < pages; p++) expect(data.subarray(p * PAGE, (p + 1) * PAGE).every((b) => b === (p % 3 === 0 ? p + 1 : 0)), `page ${p}`).toBe(true)
    } finally {
      await region.close()
    }
    expect(await opened()).toEqual([])
    for (const backend of [{ ...spec, pageReadConnection: false }, { ...spec, waitReplicas: 1, commandTimeoutMs: 200 }]) {
      const other = await openRegion({ pageSize: PAGE, backend })
      expect(await opened()).toEqual([])
      await other.close()
    }
    const reader = await openRegion({ pageSize: PAGE, backend: spec, access: 'read-only' })
    expect(await opened()).toEqual([])
    await reader.close()
  })

  it('MSET is sent as exact RESP (byte lengths of UTF-8 keys, binary values); an error reply (read 8 bytes at a time) rejects and the connection stays usable', async () => {
    const received: Buffer[] = []
    const replies = ['+OK\r\n', '+OK\r\n', '-OOM command not allowed\r\n', '+OK\r\n']
    // One reply per command (CLIENT SETNAME, then each MSET): each is sent whole and waits for its reply, so a quiet 20 ms ends one.
    const server = net.createServer((socket) => {
      let quiet: NodeJS.Timeout | undefined
      socket.on('data', (chunk) => {
        received.push(chunk)
        clearTimeout(quiet)
        quiet = setTimeout(() => socket.write(replies.shift() ?? '-ERR no more\r\n'), 20)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as net.AddressInfo).port
    try {
      const reader = await PageReader.connect({ host: '127.0.0.1', port, username: undefined, password: undefined, db: 0, connectTimeoutMs: 1000, commandTimeoutMs: 1000, allocate: (n) => Buffer.alloc(n), name: 'faultline-writes', readBufferBytes: 8 })
      received.length = 0
      const value = Buffer.from([0x2a, 0x0d, 0x0a, 0x00, 0xff])
      await reader.mset([['pä{g}:1', value], ['k', Buffer.from('vv')]])
      expect(Buffer.concat(received).toString('latin1')).toBe(Buffer.concat([Buffer.from('*5\r\n$4\r\nMSET\r\n$8\r\npä{g}:1\r\n$5\r\n'), value, Buffer.from('\r\n$1\r\nk\r\n$2\r\nvv\r\n')]).toString('latin1'))
      await expect(reader.mset([['a', Buffer.from('x')]])).rejects.toThrow(/OOM command not allowed/)
      expect(reader.usable).toBe(true)
      await reader.mset([['b', Buffer.from('y')]])
      reader.close()
    } finally {
      server.close()
    }
  })

  it('writes on through ioredis when the connection is cut, then makes a new one; the store equals the region', async () => {
    const pages = 32
    const spec = standaloneSpec(uniqueNamespace('writes-cut'), { db: DB })
    track(spec)
    const before = (await writeConnections()).map((c) => c.id)
    const region = await openRegion({ size: pages * PAGE, pageSize: PAGE, backend: spec })
    try {
      const view = region.view()
      fillPattern(view, 1 << 20)
      await region.flush()
      const [ours] = (await writeConnections()).filter((c) => !before.includes(c.id))
      expect(ours).toBeDefined()
      await client.call('CLIENT', 'KILL', 'ID', ours!.id)
      await new Promise((r) => setTimeout(r, 100)) // the pager thread hears of it
      fillPattern(view, 2 << 20)
      await region.flush()
      expect(checkPattern(await stored(spec, pages), 2 << 20)).toBe(-1)
      // After its backoff (it died young) a new connection carries the flushes again.
      let replaced: Array<{ id: string; cmd: string }> = []
      const deadline = Date.now() + 10_000
      for (let round = 3; replaced.length === 0 && Date.now() < deadline; round++) {
        fillPattern(view, round << 20)
        await region.flush()
        expect(checkPattern(await stored(spec, pages), round << 20)).toBe(-1)
        replaced = (await writeConnections()).filter((c) => !before.includes(c.id) && c.id !== ours!.id && c.cmd === 'mset')
        await new Promise((r) => setTimeout(r, 50))
      }
      expect(replaced).toHaveLength(1)
      expect(region.stats().writeErrors).toBe(0)
    } finally {
      await region.close()
    }
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

  it('lets its free buffers go once a whole interval passed without a take', () => {
    const pool = new ReadBufferPool(4096, 8)
    const a = pool.take()
    pool.recycle(a)
    pool.trimIfIdle() // a take since the last trim: kept
    expect(pool.freeCount).toBe(1)
    pool.trimIfIdle()
    expect(pool.freeCount).toBe(0)
    expect(pool.take().buffer).not.toBe(a.buffer)
  })
})
