import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { openRegion, type Region } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern, writePatternFile } from '../helpers/dataset.js'
import { tempDir } from '../helpers/tmp.js'

const workerUrl = new URL('../fixtures/fault-worker.mjs', import.meta.url)
const dir = tempDir()

function shuffled(pages: number[], seed: number): number[] {
  const out = [...pages]
  for (let i = out.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    const j = seed % (i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** Main thread and three workers fault on the same pages at once, each in its own order. */
async function faultTogether(region: Region, pages: number[]): Promise<void> {
  const go = new Int32Array(new SharedArrayBuffer(4))
  const workers = [1, 2, 3].map((n) => new Worker(workerUrl, { workerData: { handle: region.handle(), pages: shuffled(pages, n), go } }))
  const results = workers.map(
    (w) =>
      new Promise<{ bad: number }>((resolve, reject) => {
        w.on('message', (m: { kind: string; bad: number }) => m.kind === 'done' && resolve(m))
        w.on('error', reject)
      }),
  )
  const exits = workers.map((w) => new Promise((resolve) => w.once('exit', resolve)))
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))))
  Atomics.store(go, 0, 1)
  Atomics.notify(go, 0)
  let bad = -1
  for (const page of shuffled(pages, 99)) {
    if (checkPattern(region.view(page * region.pageSize, region.pageSize), page * region.pageSize) !== -1) bad = page
  }
  expect(bad).toBe(-1)
  for (const r of await Promise.all(results)) expect(r.bad).toBe(-1)
  await Promise.all(exits)
}

describe('concurrent faults from several threads', () => {
  it('memory backend: correct bytes, each page fetched once, no deadlock', async () => {
    const pageSize = 16384
    const size = 64 * 2 ** 20
    const region = await openRegion({ size, pageSize, backend: { type: 'memory', data: sharedPattern(size) } })
    try {
      const pages = Array.from({ length: size / pageSize }, (_, i) => i)
      await faultTogether(region, pages)
      const s = region.stats()
      expect(s.pagesFetched).toBe(pages.length)
      expect(s.residentPages).toBe(pages.length)
      expect(s.bytesFetched).toBe(size)
    } finally {
      await region.close()
    }
  })

  it('file backend: overlapping random subsets, each page fetched once', async () => {
    const path = join(dir, 'conc.bin')
    const size = 128 * 2 ** 20
    writePatternFile(path, size)
    const region = await openRegion({ backend: { type: 'file', path }, pageSize: 4096 })
    try {
      const pages = shuffled(Array.from({ length: size / 4096 }, (_, i) => i), 7).slice(0, 5000)
      await faultTogether(region, pages)
      const s = region.stats()
      // each page once; readahead may have fetched neighbours nobody asked for
      expect(s.pagesFetched).toBeGreaterThanOrEqual(pages.length)
      expect(s.pagesFetched).toBeLessThanOrEqual(s.residentPages)
      expect(s.duplicateFaults).toBeLessThanOrEqual(s.faults)
    } finally {
      await region.close()
    }
  })
})
