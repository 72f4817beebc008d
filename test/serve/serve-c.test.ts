/**
 * The C client and the Python example against `faultline serve` itself (the
 * built CLI, as a user runs it) over a file and over Redis: a 1 GiB range
 * checksums to the object's SHA-256; four peers at once with one SIGKILLed
 * midway leave the others right and the server up with no descriptor kept;
 * write-back reaches the backend; SIGTERM waits for a live peer.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { openSync, readSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { buildC, type CArtifacts } from '../../scripts/build-c.mjs'
import { tempDir } from '../helpers/tmp.js'
import { writePatternFile } from '../helpers/dataset.js'
import { dropNamespace, standaloneClient, standaloneSpec, uniqueNamespace } from '../helpers/redis.js'
import { cli, expectFdsBackTo, openFds, runPeer, sha256Of, startServer, status, type RunningServer } from './serve-helpers.js'

const GiB = 2 ** 30
const MiB = 2 ** 20
const dir = tempDir()
const example = fileURLToPath(new URL('../../clients/python/attach_example.py', import.meta.url))
const image = join(dir, 'memory.img')
let imageSha = ''
let bin: CArtifacts
const namespace = uniqueNamespace('serve')
const redisSpec = standaloneSpec(namespace)
const redisUrl = redisSpec.url as string
let fileServer: RunningServer
let redisServer: RunningServer

beforeAll(async () => {
  bin = buildC(join(dir, 'bin'))
  imageSha = writePatternFile(image, GiB)
  const imported = spawnSync(process.execPath, [cli, 'import', image, redisUrl], { encoding: 'utf8', timeout: 300_000 })
  if (imported.status !== 0) throw new Error(`faultline import failed: ${imported.stderr}`)
  fileServer = await startServer(join(dir, 'file.sock'), `file://${image}`)
  redisServer = await startServer(join(dir, 'redis.sock'), redisUrl)
}, 600_000)

afterAll(async () => {
  expect(await fileServer?.stop()).toBe(0)
  expect(await redisServer?.stop()).toBe(0)
  const client = standaloneClient()
  await dropNamespace(client, redisSpec)
  client.disconnect()
})

const peer = (server: RunningServer, ...args: string[]) => runPeer(bin.peer, [server.socket, ...args])

/** What `peer --write 65536:COUNT` wrote into a range of SIZE bytes at BASE: COUNT pages spread evenly, byte (page × 7 + 1). */
function expectPeerPattern(path: string, base: number, size: number, count: number): void {
  const fd = openSync(path, 'r')
  try {
    const pages = size / 65536
    for (let k = 0; k < count; k++) {
      const page = k * (pages / count)
      const got = Buffer.alloc(65536)
      readSync(fd, got, 0, 65536, base + page * 65536)
      expect(got.every((b) => b === ((page * 7 + 1) & 0xff)), `page ${page}`).toBe(true)
    }
  } finally {
    closeSync(fd)
  }
}

describe('faultline serve, C peers', () => {
  it('a C program maps 1 GiB, attaches it over a file, and checksums to the file', async () => {
    const r = await peer(fileServer, String(GiB), '0', 'sha256')
    expect(r.stderr).toBe('')
    expect(r.lines.at(-1)?.sha256).toBe(imageSha)
  }, 120_000)

  it('the same over Redis (the file imported as a page store)', async () => {
    const r = await peer(redisServer, String(GiB), '0', 'sha256')
    expect(r.stderr).toBe('')
    expect(r.lines.at(-1)?.sha256).toBe(imageSha)
    const mine = (await status(redisServer.socket)).attached
    expect(mine).toBeGreaterThanOrEqual(1)
  }, 120_000)

  it('four threads of one peer faulting the same pages: duplicate faults are answered once each, the bytes are right', async () => {
    const size = 64 * MiB
    let duplicates = -1
    let fetched = -1
    const r = await runPeer(bin.peer, [fileServer.socket, String(size), '0', 'seq', '--threads', '4', '--sha256-after', '--hold'], (line, child) => {
      if (line.holding !== true) return
      status(fileServer.socket).then(
        (s) => {
          const mine = s.peers.find((p) => p.pid === child.pid) as unknown as { stats: { duplicateFaults: number; bytesFetched: number } } | undefined
          duplicates = mine?.stats.duplicateFaults ?? -1
          fetched = mine?.stats.bytesFetched ?? -1
          child.kill('SIGTERM')
        },
        () => child.kill('SIGTERM'),
      )
    })
    expect(r.stderr).toBe('')
    expect(r.lines.find((l) => l.mode === 'seq')?.threads).toBe(4)
    expect(r.lines.find((l) => 'sha256_after' in l)?.sha256_after).toBe(sha256Of(image, 0, size))
    expect(duplicates).toBeGreaterThan(0)
    // Each page once from the backend, however many threads faulted on it.
    expect(fetched).toBe(size)
  }, 60_000)

  it('four at once over Redis, one SIGKILLed midway: the others finish right, the server stays up and keeps no descriptor', async () => {
    const serverPid = redisServer.process.pid!
    const fdsBefore = openFds(serverPid)
    const size = 128 * MiB
    const runs = [0, 1, 2, 3].map((k) =>
      runPeer(bin.peer, [redisServer.socket, String(size), String(k * size), 'sha256', ...(k === 2 ? ['--slow-ms', '5000'] : [])], (line, child) => {
        // The slowed one dies once it is attached and has started reading.
        if (k === 2 && line.attached === true) setTimeout(() => child.kill('SIGKILL'), 100)
      }),
    )
    const results = await Promise.all(runs)
    expect(results[2]!.signal, JSON.stringify(results[2])).toBe('SIGKILL')
    for (const k of [0, 1, 3]) {
      expect(results[k]!.stderr).toBe('')
      expect(results[k]!.lines.at(-1)?.sha256).toBe(sha256Of(image, k * size, size))
    }
    let s = await status(redisServer.socket)
    for (let i = 0; i < 50 && s.peers.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      s = await status(redisServer.socket)
    }
    expect(s.peers).toEqual([])
    await expectFdsBackTo(serverPid, fdsBefore)
    expect(redisServer.log()).toMatch(/exited/)
  }, 120_000)

  it('write-back: pages a C peer writes reach the file on flush', async () => {
    const copy = join(dir, 'writable.img')
    writePatternFile(copy, 64 * MiB)
    const server = await startServer(join(dir, 'wb.sock'), `file://${copy}`)
    try {
      const r = await runPeer(bin.peer, [server.socket, String(16 * MiB), String(8 * MiB), 'none', '--write-back', '--write', '65536:8'])
      expect(r.stderr).toBe('')
      expect(r.lines.at(-1)).toEqual({ written: 8 })
    } finally {
      expect(await server.stop()).toBe(0)
    }
    expectPeerPattern(copy, 8 * MiB, 16 * MiB, 8)
  }, 60_000)

  it('SIGUSR1 to the server writes back a live peer that never flushed', async () => {
    const copy = join(dir, 'usr1.img')
    writePatternFile(copy, 16 * MiB)
    const server = await startServer(join(dir, 'usr1.sock'), `file://${copy}`)
    try {
      const r = await runPeer(bin.peer, [server.socket, String(16 * MiB), '0', 'none', '--write-back', '--write', '65536:4', '--hold'], (line, child) => {
        if (line.holding !== true) return
        server.process.kill('SIGUSR1')
        const wait = setInterval(() => {
          if (!server.log().includes('SIGUSR1: every write-back peer flushed')) return
          clearInterval(wait)
          child.kill('SIGKILL')
        }, 20)
      })
      expect(r.signal).toBe('SIGKILL')
    } finally {
      expect(await server.stop()).toBe(0)
    }
    expectPeerPattern(copy, 0, 16 * MiB, 4)
  }, 60_000)

  it('the Python example puts a mmap buffer in Redis: what it wrote and flushed is in the page store', async () => {
    const ns = uniqueNamespace('serve-py')
    const spec = standaloneSpec(ns)
    // 4 KiB pages whatever the buffer's alignment, so the store's geometry is known.
    const server = await startServer(join(dir, 'py.sock'), spec.url as string, ['--page-size', '4K'])
    const size = 4 * MiB
    try {
      const r = await runPeer('python3', [example, server.socket, String(size), '0', '--write', '6', '--lib', bin.lib], undefined, 60_000)
      expect(r.stderr).toBe('')
      const out = r.lines.at(-1)!
      expect(out.sha256).toBe(createHash('sha256').update(Buffer.alloc(size)).digest('hex')) // a new namespace reads as zeros
      expect(out.pages_written).toBe(6)
      const region = await openRegion({ backend: spec, size, pageSize: 4096, access: 'read-only' })
      try {
        const v = region.view()
        for (const index of out.written_page_indexes as number[]) {
          expect(v.subarray(index * 4096, (index + 1) * 4096).every((b) => b === ((index * 7 + 1) & 0xff))).toBe(true)
        }
        expect(region.stats().zeroPages).toBeLessThan(size / 4096)
      } finally {
        await region.close()
      }
    } finally {
      expect(await server.stop()).toBe(0)
      const client = standaloneClient()
      await dropNamespace(client, spec)
      client.disconnect()
    }
  }, 60_000)

  it('SIGTERM waits for a live peer instead of leaving its pages to read as zeros', async () => {
    const server = await startServer(join(dir, 'term.sock'), `file://${image}`)
    let signalled = false
    let aliveAfterSignal: boolean | undefined
    // 128 MiB with a 1 s pause after the first 64: the peer is mid-read when the server is told to stop.
    const r = await runPeer(bin.peer, [server.socket, String(128 * MiB), '0', 'sha256', '--slow-ms', '1000'], (line) => {
      if (line.attached !== true || signalled) return
      signalled = true
      server.process.kill('SIGTERM')
      setTimeout(() => (aliveAfterSignal = server.process.exitCode === null), 500)
    })
    expect(r.lines.at(-1)?.sha256).toBe(sha256Of(image, 0, 128 * MiB))
    expect(aliveAfterSignal).toBe(true)
    // Told to stop once already: it stops by itself once the peer is gone (a
    // second SIGTERM sent while it exits would kill it with the signal).
    const code = server.process.exitCode ?? (await new Promise<number | null>((resolve) => server.process.once('exit', resolve)))
    expect(code).toBe(0)
    expect(server.log()).toMatch(/still running would read zeros for pages not served yet; waiting/)
  }, 60_000)
})

