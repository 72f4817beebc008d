/**
 * Opening and closing regions leaves nothing behind: 1,000 regions over
 * every backend (memory, file, http, s3, redis), some written and flushed,
 * four open at a time, and afterwards the process holds no more fds,
 * threads, mappings, address space or resident memory than it did after a
 * warm-up batch.
 */
import { join } from 'node:path'
import { describe, expect, inject, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
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
 * Regions per backend, 1,000 in all. Each costs a pager thread; s3 and
 * redis regions cost several round trips more (client, metadata, lease), so
 * they get fewer, to keep the suite near a minute.
 */
const COUNTS = { memory: 500, file: 250, http: 200, s3: 25, redis: 25 }
/** Regions per backend before the baseline, so lazy singletons (libuv's threadpool, malloc arenas, module caches) exist in it. */
const WARM_UP = 8
/** Regions open at once: the first of each batch writes and flushes where the backend stores pages. */
const BATCH = 4

/**
 * Allowances, from clean runs on a shared 2-core machine (baseline → after):
 * fds 22..23 → 22, threads 11 → 11, mappings 212..349 → 204..243, VmSize
 * +28..+111 MiB (in steps, not in proportion to the regions: the heap and
 * allocators of the process), RSS −8..−17 MiB. A leak of one of anything
 * per region is 25 (the fewest regions of one backend) or more; one leaked
 * region mapping is 16 MiB of VmSize. Planting leaks in the pager's close
 * fails it: no closeFd gave fds 63 → 1063, no retireMapping mappings
 * 233 → 447 and VmSize 2.1 → 17.7 GiB.
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

async function run(source: Source, count: number): Promise<void> {
  for (let done = 0; done < count; done += BATCH) {
    const batch: Array<Promise<void>> = []
    for (let k = 0; k < BATCH && done + k < count; k++) {
      const write = k === 0 && source.writer !== undefined
      batch.push(cycle(write ? source.writer!() : source.reader(), write, done + k))
    }
    await Promise.all(batch)
  }
}

function settled(): ProcessUsage {
  collectGarbage()
  return processUsage()
}

describe('resource leaks', () => {
  const total = Object.values(COUNTS).reduce((a, b) => a + b)
  it(`open and close ${total} regions over every backend: fds, threads, mappings and RSS return to their baseline`, { timeout: 480_000 }, async () => {
    const all = await sources()
    for (const source of all) await run(source, WARM_UP)
    const before = settled()
    for (const source of all) await run(source, COUNTS[source.kind])
    const after = settled()
    // One line for the record: what the allowances are measured against.
    console.info(`faultline leaks: ${total} regions; baseline ${JSON.stringify(before)}; after ${JSON.stringify(after)}`)
    // Soft: a failure names every measure that is off, not only the first.
    for (const key of Object.keys(SLACK) as Array<keyof ProcessUsage>) {
      expect.soft(after[key], `${key}: baseline ${before[key]}, after ${after[key]}, allowed +${SLACK[key]}`).toBeLessThanOrEqual(before[key] + SLACK[key])
    }
  })
})
