/**
 * openRegion({ shared }): one cache for every process on the machine.
 * Scanners run in child processes (test/fixtures/shared-scanner.mjs); the
 * HTTP object comes from the suites' static server (another process) or, for
 * a slowed or replaced object, from test/helpers/range-server.ts.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { openRegion, FaultlineError, type BackendSpec } from '@faultline/core'
import { checkPattern, fillPattern } from '@faultline/core/pattern'
import { closeScanners, nextMessage, scanTogether, startScanners } from '../fixtures/shared-scan.mjs'
import { startRangeServer } from '../helpers/range-server.js'
import { rangeSizes, requestLog } from '../helpers/remote.js'
import { dropAfterSuite, standaloneClient, standaloneSpec, uniqueNamespace } from '../helpers/redis.js'

const SIZE = Number(process.env['FAULTLINE_SHARED_TEST_MIB'] ?? 64) * 2 ** 20
const PAGE = 65536
const PROCESSES = 4

let pattern: Buffer
let dir: string
const files = (): string[] => readdirSync(dir)

beforeAll(() => {
  pattern = Buffer.alloc(SIZE)
  fillPattern(pattern, 0)
  // Each case gets its own directory under /dev/shm (tmpfs), so leftovers are its own.
  dir = mkdtempSync('/dev/shm/faultline-shared-test-')
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Four processes scan the object at once; every byte is checked in each. */
async function scanFour(backend: BackendSpec | string, shared: { dir: string; name?: string }): Promise<void> {
  const children = await startScanners(PROCESSES, { backend, pageSize: PAGE, shared })
  // Every process maps the two files of one segment.
  expect(files().filter((f) => f.startsWith(`${shared.name ?? 'faultline'}-`)).sort().map((f) => f.split('.').pop())).toEqual(['ctl', 'pages'])
  const { results, memory, wallMs } = await scanTogether(children)
  for (const r of results) expect(r.mismatch, 'first byte that differs from the pattern').toBe(-1)
  const fetched = results.reduce((sum, r) => sum + r.stats.bytesFetched, 0)
  const pss = memory.reduce((sum, m) => sum + m.pss, 0)
  console.log(`${typeof backend === 'string' ? backend : String(backend.url)}: ${PROCESSES} processes, ${SIZE / 2 ** 20} MiB: fetched ${(fetched / SIZE).toFixed(3)}x the object, PSS ${(pss / SIZE).toFixed(3)}x, rss per process ${memory.map((m) => (m.rss / SIZE).toFixed(2)).join('/')}, ${wallMs.toFixed(0)} ms; per process fetched ${results.map((r) => (r.stats.bytesFetched / SIZE).toFixed(2)).join('/')}`)
  expect(fetched).toBeLessThanOrEqual(1.1 * SIZE)
  expect(pss).toBeLessThanOrEqual(1.2 * SIZE)
  // The cache's own count (read as each process finished, while others may still fetch): every page, about once.
  const byAll = Math.max(...results.map((r) => r.stats.shared!.pagesFetched))
  expect(byAll).toBeGreaterThanOrEqual(SIZE / PAGE)
  expect(byAll * PAGE).toBeLessThanOrEqual(1.1 * SIZE)
  expect(Math.max(...results.map((r) => r.stats.shared!.processes.length))).toBe(PROCESSES)
  // The last to leave removed both files.
  expect(files()).toEqual([])
}

describe('shared regions', () => {
  it('four processes over one HTTP object read it about once and hold it once', async () => {
    writeFileSync(join(inject('httpDir'), 'shared-scan.bin'), pattern)
    await scanFour(`${inject('httpBase')}/shared-scan.bin`, { dir, name: 'http' })
    // What the server sent, readahead pages fetched but never installed included.
    const served = rangeSizes(await requestLog('http', '/shared-scan.bin')).reduce((a, b) => a + b, 0)
    console.log(`http: the server sent ${(served / SIZE).toFixed(3)}x the object`)
    expect(served).toBeLessThanOrEqual(1.1 * SIZE)
  })

  describe('over Redis', () => {
    const track = dropAfterSuite(standaloneClient())
    it('four processes over one page store read it about once and hold it once', async () => {
      const spec = track(standaloneSpec(uniqueNamespace('shared')))
      // Seed the store through a region of this process (not shared, read-write).
      const writer = await openRegion({ backend: spec, size: SIZE, pageSize: PAGE })
      writer.view().set(pattern)
      await writer.close()
      await scanFour(spec, { dir, name: 'redis' })
    })

    it('refuses a writable backend unless the region is read-only', async () => {
      const spec = track(standaloneSpec(uniqueNamespace('shared-rw')))
      const err = await openRegion({ backend: spec, size: 16 * PAGE, pageSize: PAGE, shared: { dir } }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(FaultlineError)
      expect((err as FaultlineError).code).toBe('ERR_INVALID_OPTION')
      expect((err as FaultlineError).message).toMatch(/`shared` needs access: 'read-only'/)
      expect(files()).toEqual([])
    })
  })

  it("a process killed with pages in flight: the others take its claims over", async () => {
    const server = await startRangeServer(pattern, '"v1"')
    try {
      const shared = { dir, name: 'killed' }
      const [victim, ...others] = await startScanners(PROCESSES, { backend: server.url, pageSize: PAGE, shared })
      // Replies past the first MiB wait: the victim's readahead beyond it stays in flight, claimed.
      server.holdFrom = 2 ** 20
      const scanning = nextMessage(victim!, 'scanning')
      victim!.send('go')
      await scanning
      await new Promise((resolve) => setTimeout(resolve, 100))
      victim!.kill('SIGKILL')
      await new Promise((resolve) => victim!.once('exit', resolve))
      server.holdFrom = undefined
      const { results } = await scanTogether(others)
      for (const r of results) expect(r.mismatch).toBe(-1)
      const takenOver = Math.max(...results.map((r) => r.stats.shared!.takenOver))
      console.log(`killed: claims taken over ${takenOver}, served ${(server.bytesServed / SIZE).toFixed(3)}x the object`)
      expect(takenOver).toBeGreaterThan(0)
      expect(files()).toEqual([])
    } finally {
      await server.close()
    }
  })

  it('a stale segment (every process killed) is reclaimed by the next open, and removed at its close', async () => {
    writeFileSync(join(inject('httpDir'), 'shared-stale.bin'), pattern)
    const backend = `${inject('httpBase')}/shared-stale.bin`
    const shared = { dir, name: 'stale' }
    const children = await startScanners(2, { backend, pageSize: PAGE, shared })
    const scans = children.map((c) => nextMessage(c, 'done'))
    for (const c of children) c.send('go')
    await Promise.all(scans)
    for (const c of children) c.kill('SIGKILL')
    await Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode === null && c.signalCode === null ? c.once('exit', resolve) : resolve(undefined)))))
    expect(files().length).toBe(2)
    // A fresh scan over the stale files: reclaimed (truncated), so everything is fetched again, and right.
    const again = await startScanners(1, { backend, pageSize: PAGE, shared })
    const { results } = await scanTogether(again)
    expect(results[0]!.mismatch).toBe(-1)
    expect(results[0]!.stats.shared!.processes.length).toBe(1)
    expect(results[0]!.stats.bytesFetched).toBe(SIZE)
    expect(files()).toEqual([])
  })

  it('another version of the object (a new ETag) gets another segment', async () => {
    const small = pattern.subarray(0, 32 * PAGE)
    const server = await startRangeServer(small, '"one"')
    try {
      const shared = { dir, name: 'versions' }
      // This thread never touches these views: the server answering the pager runs on it.
      const first = await openRegion({ backend: server.url, pageSize: PAGE, shared })
      const changed = Buffer.from(small)
      changed[0] = changed[0]! ^ 0xff
      server.replace(changed, '"two"')
      const second = await openRegion({ backend: server.url, pageSize: PAGE, shared })
      expect(second.stats().shared!.path).not.toBe(first.stats().shared!.path)
      expect(files().length).toBe(4)
      expect(first.stats().shared!.processes.length).toBe(1)
      await first.close()
      await second.close()
      expect(files()).toEqual([])
    } finally {
      await server.close()
    }
  })

  it('two regions of one process share too: what one prefetched, the other reads with no fault and no fetch', async () => {
    writeFileSync(join(inject('httpDir'), 'shared-prefetch.bin'), pattern.subarray(0, 8 * 2 ** 20))
    const backend = `${inject('httpBase')}/shared-prefetch.bin`
    const shared = { dir, name: 'prefetch' }
    const a = await openRegion({ backend, pageSize: PAGE, shared })
    const b = await openRegion({ backend, pageSize: PAGE, shared })
    try {
      await Promise.all([a.prefetch(), b.prefetch()])
      expect(a.stats().bytesFetched + b.stats().bytesFetched).toBe(8 * 2 ** 20)
      const faultsBefore = b.stats().faults
      expect(checkPattern(b.view(), 0)).toBe(-1)
      expect(b.stats().faults).toBe(faultsBefore)
      expect(b.stats().shared!.residentPages).toBe(8 * 2 ** 20 / PAGE)
    } finally {
      await a.close()
      await b.close()
    }
    expect(files()).toEqual([])
  })

  it('maxResident bounds the cache of every process together', async () => {
    writeFileSync(join(inject('httpDir'), 'shared-bounded.bin'), pattern)
    const budget = 16 * 2 ** 20
    const children = await startScanners(2, { backend: `${inject('httpBase')}/shared-bounded.bin`, pageSize: PAGE, shared: { dir, name: 'bounded' }, maxResident: budget })
    const { results, memory } = await scanTogether(children)
    for (const r of results) expect(r.mismatch).toBe(-1)
    for (const r of results) expect(r.stats.shared!.residentPages * PAGE).toBeLessThanOrEqual(budget)
    expect(results[0]!.stats.shared!.evictedPages).toBeGreaterThan(0)
    expect(memory.reduce((sum, m) => sum + m.pss, 0)).toBeLessThanOrEqual(1.2 * budget)
    expect(files()).toEqual([])
  })

  it('refuses read-write, and options it cannot honour, with a clear message', async () => {
    writeFileSync(join(inject('httpDir'), 'shared-refused.bin'), pattern.subarray(0, 16 * PAGE))
    const open = (extra: Record<string, unknown>): Promise<unknown> => openRegion({ backend: `${inject('httpBase')}/shared-refused.bin`, pageSize: PAGE, shared: true, ...extra }).catch((e: unknown) => e)
    const rw = (await open({ access: 'read-write' })) as FaultlineError
    expect(rw.code).toBe('ERR_INVALID_OPTION')
    expect(rw.message).toMatch(/`shared` needs access: 'read-only'/)
    expect(((await open({ secondTierBytes: PAGE, maxResident: 16 * PAGE })) as FaultlineError).message).toMatch(/secondTierBytes/)
    expect(((await open({ shared: { dir: 'relative' } })) as FaultlineError).message).toMatch(/shared\.dir/)
    expect(((await open({ shared: { name: 'a/b' } })) as FaultlineError).message).toMatch(/shared\.name/)
    expect(((await open({ backend: 'memory:', size: 16 * PAGE })) as FaultlineError).message).toMatch(/memory backend/)
    // Checked by the pager thread, once the backend is open.
    const disk = (await open({ shared: { dir: '/tmp' } })) as FaultlineError
    expect(disk.code).toBe('ERR_INVALID_OPTION')
    expect(disk.message).toMatch(/`shared.dir` "\/tmp" is not on tmpfs/)
    expect(((await open({ shared: { dir: '/nonexistent-faultline' } })) as FaultlineError).message).toMatch(/`shared.dir` "\/nonexistent-faultline" cannot be used: ENOENT/)
  })
})
