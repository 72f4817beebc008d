/**
 * `faultline serve` with a peer that speaks Firecracker's handshake (v1.x
 * GuestRegionUffdMapping JSON + the uffd as SCM_RIGHTS, no reply read),
 * written in Python from the documented structure: bytes served, balloon
 * REMOVE events, misbehaving and refused peers, status.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { serve } from '@faultline/core'
import { processUsage } from '../helpers/proc-usage.js'
import { tempDir } from '../helpers/tmp.js'
import { expectFdsBackTo, firecrackerPeer, openFds, rawHello, runPeer, sha256Of, startServer, status, type RunningServer } from './serve-helpers.js'

const dir = tempDir()
const image = join(dir, 'memory.img')
const SIZE = 16 * 2 ** 20
let server: RunningServer

beforeAll(async () => {
  writeFileSync(image, randomBytes(SIZE))
  server = await startServer(join(dir, 'fc.sock'), `file://${image}`)
})

afterAll(async () => {
  expect(await server.stop()).toBe(0)
})

const peer = (...args: string[]) => runPeer('python3', [firecrackerPeer, server.socket, ...args])

describe('faultline serve, Firecracker peers', () => {
  it('serves the range from the memory file at its offset (page_size and page_size_kib, as Firecracker v1.x sends them)', async () => {
    const r = await peer(String(8 * 2 ** 20), '65536', 'sha256')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.lines[1]?.sha256).toBe(sha256Of(image, 65536, 8 * 2 ** 20))
  })

  it('serves an offset that is not a multiple of its page size in 4 KiB pages, and the older page_size_kib-only message', async () => {
    const r = await peer(String(4 * 2 ** 20), '4096', 'sha256', 'kib')
    expect(r.code).toBe(0)
    expect(r.lines[1]?.sha256).toBe(sha256Of(image, 4096, 4 * 2 ** 20))
  })

  it('two mappings on one userfaultfd (memory on both sides of the 32-bit gap) are each served from their offset', async () => {
    const size = 2 * 2 ** 20
    const r = await peer(String(size), '65536', 'two')
    expect(r.stderr).toBe('')
    expect(r.lines[1]?.sha256).toEqual([sha256Of(image, 65536, size), sha256Of(image, 65536 + 2 * size, size)])
  })

  it("write-back while the balloon gives pages back: the handler's write-protect ioctls that say EAGAIN (a REMOVE event waits) are retried, every flush lands", async () => {
    const size = 4 * 2 ** 20
    const store = join(dir, 'wb-remove.img')
    writeFileSync(store, Buffer.alloc(size))
    const wb = await startServer(join(dir, 'wb-remove.sock'), `file://${store}`)
    try {
      const r = await runPeer('python3', [firecrackerPeer, wb.socket, String(size), '0', 'wbremove'])
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      expect(r.lines.at(-1)).toEqual({ rounds: 40 })
      // The last round's bytes (40) in the half that was written, all of it.
      const bytes = readFileSync(store).subarray(0, size / 2)
      expect(bytes.every((b) => b === 40)).toBe(true)
    } finally {
      expect(await wb.stop()).toBe(0)
    }
    expect(wb.log()).not.toMatch(/pager thread failed|EAGAIN/)
  }, 60_000)

  it('a range given back with MADV_DONTNEED (UFFD_EVENT_REMOVE, the balloon) reads as zeros afterwards', async () => {
    const r = await peer(String(SIZE), '0', 'remove')
    expect(r.code).toBe(0)
    const line = r.lines[1]!
    expect(line.sha256).toBe(sha256Of(image, 0, SIZE))
    expect(line.removedZero).toBe(true)
    const expected = Buffer.concat([readFileSync(image).subarray(0, SIZE / 2), Buffer.alloc(SIZE / 2)])
    expect(line.sha256After).toBe(createHash('sha256').update(expected).digest('hex'))
  })

  it('a fault outside the declared range gets SIGBUS, and the server goes on serving others', async () => {
    const r = await peer(String(4 * 2 ** 20), '0', 'outside')
    expect(r.signal).toBe('SIGBUS')
    expect(server.log()).toMatch(/outside the ranges it attached .*answered with SIGBUS/)
    const next = await peer(String(2 ** 20), '0', 'sha256')
    expect(next.lines[1]?.sha256).toBe(sha256Of(image, 0, 2 ** 20))
  })

  it('a refused peer (offset past the end) gets SIGBUS on its first touch, never zeros', async () => {
    const before = (await status(server.socket)).refused
    const r = await peer(String(2 ** 20), String(SIZE), 'sha256')
    expect(r.signal).toBe('SIGBUS')
    expect(r.lines.some((l) => 'sha256' in l)).toBe(false)
    expect(server.log()).toMatch(/refused process \d+: faultline serve: the range's offset 16777216 is at or past the end of/)
    expect((await status(server.socket)).refused).toBe(before + 1)
  })

  it('a descriptor that is not a userfaultfd is refused, naming what it is; the server goes on', async () => {
    const r = await peer(String(2 ** 20), '0', 'notuffd')
    expect(r.lines.find((l) => 'ok' in l)).toMatchObject({ ok: false, code: 'ERR_PEER', message: expect.stringMatching(/not a userfaultfd but \/.*firecracker_peer\.py/) })
    const next = await peer(String(2 ** 20), '0', 'sha256')
    expect(next.lines[1]?.sha256).toBe(sha256Of(image, 0, 2 ** 20))
  })

  it('write_back on a userfaultfd without write-protect faults is refused (and the peer gets SIGBUS, not zeros)', async () => {
    const r = await peer(String(2 ** 20), '0', 'wbnowp')
    expect(r.signal).toBe('SIGBUS')
    expect(server.log()).toMatch(/write_back needs a userfaultfd with write-protect faults: enable UFFD_FEATURE_PAGEFAULT_FLAG_WP/)
  })

  it('answers a handshake without a descriptor, or not JSON, with a reply that names the problem', async () => {
    const mapping = JSON.stringify([{ base_host_virt_addr: 0x7f0000000000, size: 65536, offset: 0, page_size: 4096 }])
    expect(await rawHello(server.socket, mapping)).toMatchObject({ ok: false, code: 'ERR_PEER', message: expect.stringMatching(/without a descriptor: pass the userfaultfd as SCM_RIGHTS/) })
    expect(await rawHello(server.socket, 'hello\n')).toMatchObject({ ok: false, code: 'ERR_PEER', message: expect.stringMatching(/not JSON/) })
  })

  it('--status lists a live peer with its faults, bytes and latency', async () => {
    let seen: Awaited<ReturnType<typeof status>> | undefined
    const r = await runPeer('python3', [firecrackerPeer, server.socket, String(4 * 2 ** 20), '0', 'hold'], (line, child) => {
      if (!('sha256' in line)) return
      status(server.socket).then(
        (s) => {
          seen = s
          child.kill('SIGTERM')
        },
        () => child.kill('SIGTERM'),
      )
    })
    expect(r.signal).toBe('SIGTERM')
    const mine = seen?.peers.find((p) => p.pid === r.pid)
    expect(mine?.state).toBe('serving')
    expect(mine?.stats.faults).toBeGreaterThan(0)
    expect(mine?.stats.bytesFetched).toBeGreaterThanOrEqual(4 * 2 ** 20)
    expect(mine?.stats.faultLatencyUs.p50).toBeGreaterThan(0)
  })

  it('--status lists peers served with their faults and bytes; the server keeps no descriptor of a peer that left', async () => {
    const serverPid = server.process.pid!
    const fdsBefore = openFds(serverPid)
    const runs = await Promise.all([0, 1, 2, 3].map((k) => peer(String(2 * 2 ** 20), String(k * 2 * 2 ** 20), 'sha256')))
    for (const [k, r] of runs.entries()) expect(r.lines[1]?.sha256).toBe(sha256Of(image, k * 2 * 2 ** 20, 2 * 2 ** 20))
    // A peer is retired once its process is seen gone (checked every 500 ms).
    let s = await status(server.socket)
    for (let i = 0; i < 40 && s.peers.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      s = await status(server.socket)
    }
    expect(s.peers).toEqual([])
    expect(s.attached).toBeGreaterThanOrEqual(4)
    await expectFdsBackTo(serverPid, fdsBefore)
  })
})

describe('faultline serve in this process, when a peer pager thread dies of a bug', () => {
  it('the peer gets SIGBUS, not a hang, and once it has exited nothing of it is left: no descriptor, no thread', async () => {
    const testBackends = fileURLToPath(new URL('../fixtures/test-backends.mjs', import.meta.url))
    const socket = join(dir, 'crash.sock')
    const lines: string[] = []
    const crashing = await serve({ socket, backend: { type: 'module', module: testBackends, options: { mode: 'crash', size: SIZE } }, log: (l) => lines.push(l) })
    try {
      const fdsBefore = openFds(process.pid)
      const tasks = (): number => processUsage().threads
      const threadsBefore = tasks()
      const r = await runPeer('python3', [firecrackerPeer, socket, String(2 ** 20), '0', 'sha256'])
      expect(r.signal, r.stderr).toBe('SIGBUS')
      await expectFdsBackTo(process.pid, fdsBefore)
      for (let i = 0; i < 100 && tasks() > threadsBefore; i++) await new Promise((resolve) => setTimeout(resolve, 50))
      expect(tasks()).toBeLessThanOrEqual(threadsBefore)
    } finally {
      await crashing.close()
    }
  }, 60_000)
})
