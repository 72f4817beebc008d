/**
 * Opening and closing regions leaves nothing behind: 1,000 regions over
 * every backend (memory, file, http, s3, redis), some written and flushed,
 * eight open at a time, and afterwards the process holds no more fds,
 * threads, mappings, address space or resident memory than it did after a
 * warm-up batch.
 *
 * Not part of `pnpm sanitize`: ASan's shadow memory, allocator and
 * quarantine move mappings, VmSize and RSS by far more than the allowances.
 */
import { join } from 'node:path'
import { describe, expect, inject, it } from 'vitest'
import { openRegion, releasePagerThreads, type BackendSpec } from '@faultline/core'
import { collectGarbage, processUsage, type ProcessUsage } from '../helpers/proc-usage.js'
import { sharedPattern, writeSparseFile } from '../helpers/dataset.js'
import { tempDir } from '../helpers/tmp.js'
import { putFile, s3Spec, uniqueKey } from '../helpers/remote.js'
import { dropAfterSuite, standaloneClient, standaloneSpec, uniqueNamespace } from '../helpers/redis.js'

const PAGE = 65536
/**
 * 16 MiB a region, of which only the first MiB holds data: address space
 * is free (nothing is resident until touched), and a region whose mapping
 * outlived it stands out in VmSize even where the kernel merged the leaked
 * mappings into one line of /proc/self/maps.
 */
const SIZE = 256 * PAGE
const DATA = 16 * PAGE
/**
 * Regions per backend, 1,000 in all. They share the process's pager
 * threads (threads.ts), so a region costs its backend's set-up and its
 * syscalls; s3 and redis (client, metadata, lease) cost the most and get
 * fewer. The whole run takes 10-15 s here (56-100 s when every region
 * started a thread of its own).
 */
const COUNTS = { memory: 500, file: 250, http: 200, s3: 25, redis: 25 }
/** Regions per backend before the baseline, so lazy singletons (libuv's threadpool, malloc arenas, module caches) exist in it. */
const WARM_UP = 8
/** Regions open at once, over all backends: more than pager threads, so regions share them. */
const IN_FLIGHT = 8
/** One region in this many of a backend that stores pages writes and flushes. */
const WRITE_EVERY = 4

/**
 * Allowances, from clean runs on a shared 2-core machine (baseline → after):
 * fds 22..23 → 22, threads 11 → 11, mappings 211..349 → 204..243, VmSize
 * −28..+111 MiB (in steps, not in proportion to the regions: the heap and
 * allocators of the process), RSS −17..+5 MiB. A leak of one of anything
 * per region is 25 (the fewest regions of one backend) or more; one leaked
 * region mapping is 16 MiB of VmSize. Planted leaks fail it: no close() in
 * the native closeFd gave fds 63 → 1063; a watchdog thread never told to
 * stop gave threads 52 → 1052 (and fds, mappings, VmSize with it); in the
 * pager's close, no retireMapping gave mappings 233 → 447 and VmSize
 * 2.1 → 17.7 GiB.
 */
const SLACK = { fds: 2, threads: 0, mappings: 32, vmKiB: 256 * 1024, rssKiB: 24 * 1024 }

type Kind = keyof typeof COUNTS

interface Source {
  kind: Kind
  /** A region that writes, or undefined when the backend is read-only. */
  writer: (() => BackendSpec | string) | undefined
  reader: () => BackendSpec | string
}

async function sources(): Promise<Source[]> {
  const data = sharedPattern(DATA)
  const file = join(tempDir(), 'leaks.bin')
  writeSparseFile(file, SIZE, [[0, DATA]])
  const httpName = `${uniqueKey('leaks')}.bin`
  writeSparseFile(join(inject('httpDir'), httpName), SIZE, [[0, DATA]])
  const s3Key = uniqueKey('leaks')
  await putFile(s3Key, file)
  const redis = dropAfterSuite(standaloneClient())(standaloneSpec(uniqueNamespace('leaks')))
  const seeded = await openRegion({ backend: redis, size: SIZE, pageSize: PAGE })
  seeded.view(0, DATA).set(data)
  await seeded.close()
  const memory = (): BackendSpec => ({ type: 'memory', data, size: SIZE })
  return [
    { kind: 'memory', writer: memory, reader: memory },
    { kind: 'file', writer: () => `file://${file}`, reader: () => `file://${file}` },
    { kind: 'http', writer: undefined, reader: () => `${inject('httpBase')}/${httpName}` },
    // Each writer a page store of its own: a dataset object is read-only.
    { kind: 's3', writer: () => s3Spec(uniqueKey('leaks-pages'), { mode: 'pages' }), reader: () => s3Spec(s3Key) },
    { kind: 'redis', writer: () => redis, reader: () => redis },
  ]
}

/** One region's life: open, touch some pages (data and zeros), maybe write and flush, close. */
async function cycle(spec: BackendSpec | string, write: boolean, n: number): Promise<void> {
  const region = await openRegion({ backend: spec, pageSize: PAGE, size: SIZE, access: write ? 'read-write' : 'read-only' })
  try {
    const v = region.view()
    let sum = 0
    for (let p = n % 3; p < DATA / PAGE; p += 3) sum += v[p * PAGE + 1]!
    sum += v[SIZE - 1]!
    expect(sum).toBeGreaterThanOrEqual(0)
    if (write) {
      v[(n % (DATA / PAGE)) * PAGE] = n & 0xff
      await region.flush()
    }
  } finally {
    await region.close()
  }
}

/**
 * Opens and closes `counts[kind]` regions of each source, {@link IN_FLIGHT}
 * at a time over all of them: the backends interleaved in proportion to
 * their counts, so that the s3 and redis regions (round trips) overlap the
 * memory and file ones (CPU: most of a region's cost is starting its pager
 * thread). One region in {@link WRITE_EVERY} of a source with a writer
 * writes and flushes, never two of one source at once.
 */
async function run(all: Source[], counts: Record<Kind, number>): Promise<{ opened: number; wrote: number }> {
  const queue: Source[] = []
  const total = all.reduce((sum, source) => sum + counts[source.kind], 0)
  const placed = new Map<Kind, number>(all.map((source) => [source.kind, 0]))
  for (let slot = 0; slot < total; slot++) {
    // Next: the source furthest behind its share of the slots so far.
    let best: Source | undefined
    let lag = -Infinity
    for (const source of all) {
      const k = placed.get(source.kind)!
      if (k >= counts[source.kind]) continue
      const behind = ((slot + 1) * counts[source.kind]) / total - k
      if (behind > lag) [best, lag] = [source, behind]
    }
    placed.set(best!.kind, placed.get(best!.kind)! + 1)
    queue.push(best!)
  }
  const started = new Map<Kind, number>(all.map((source) => [source.kind, 0]))
  const writing = new Set<Kind>()
  let next = 0
  let wrote = 0
  const lane = async (): Promise<void> => {
    while (next < queue.length) {
      const source = queue[next++]!
      const n = started.get(source.kind)!
      started.set(source.kind, n + 1)
      const write = source.writer !== undefined && n % WRITE_EVERY === 0 && !writing.has(source.kind)
      if (write) {
        writing.add(source.kind)
        wrote++
      }
      try {
        await cycle(write ? source.writer!() : source.reader(), write, n)
      } finally {
        if (write) writing.delete(source.kind)
      }
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
  return { opened: queue.length, wrote }
}

/** Pager threads kept for the next region (threads.ts) are ended first: what is left is what leaked. */
async function settled(): Promise<ProcessUsage> {
  await releasePagerThreads()
  collectGarbage()
  return processUsage()
}

describe('resource leaks', () => {
  const total = Object.values(COUNTS).reduce((a, b) => a + b)
  it(`open and close ${total} regions over every backend: fds, threads, mappings and RSS return to their baseline`, { timeout: 480_000 }, async () => {
    const all = await sources()
    const t0 = performance.now()
    // The same concurrency as the run: as many threads' malloc arenas and
    // V8 worker pools exist in the baseline as the run itself creates.
    await run(all, { memory: WARM_UP, file: WARM_UP, http: WARM_UP, s3: WARM_UP, redis: WARM_UP })
    const before = await settled()
    const { opened, wrote } = await run(all, COUNTS)
    const after = await settled()
    const seconds = ((performance.now() - t0) / 1000).toFixed(1)
    // One line for the record: what the allowances are measured against.
    console.info(`faultline leaks: ${opened} regions (${wrote} written and flushed) in ${seconds} s; baseline ${JSON.stringify(before)}; after ${JSON.stringify(after)}`)
    expect(opened).toBe(total)
    // Soft: a failure names every measure that is off, not only the first.
    for (const key of Object.keys(SLACK) as Array<keyof ProcessUsage>) {
      expect.soft(after[key], `${key}: baseline ${before[key]}, after ${after[key]}, allowed +${SLACK[key]}`).toBeLessThanOrEqual(before[key] + SLACK[key])
    }
  })
})
