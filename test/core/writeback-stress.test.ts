import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { randomWrites } from '../fixtures/random-writes.mjs'
import { tempDir } from '../helpers/tmp.js'

const dir = tempDir()
const writerUrl = new URL('../fixtures/random-writer.mjs', import.meta.url)
const regionSha = fileURLToPath(new URL('../fixtures/region-sha256.mjs', import.meta.url))
const SIZE = 256 * 2 ** 20
// In sync tracking every flush re-protects what it wrote, so with flush in a
// loop nearly every write is a write-protect fault (~100 µs round trip here):
// 40k writes per thread keeps the test near 15 s.
const WRITES_PER_WORKER = 40_000

// Without a journal, sync tracking writes the pages from the region's own
// memory (synchronousWrites) rather than from a copy: writers must still
// never tear one.
describe.each([
  ['sync', true],
  ['async', true],
  ['sync', false],
] as const)('write-back under concurrent writers (%s tracking, journal %s)', (mode, journal) => {
  it('two threads write random words while flush() loops; a new process sees exactly the model', async () => {
    const path = join(dir, `stress-${mode}-${journal}.bin`)
    // No fdatasync per flush: this test is about consistency, not crash durability.
    const spec = { type: 'file', path, sync: false, journal }
    const region = await openRegion({ size: SIZE, pageSize: 16384, backend: spec, writeTracking: mode })
    let flushes = 0
    try {
      const workers = [0, 1].map(
        (lane) => new Worker(writerUrl, { workerData: { handle: region.handle(), seed: 1000 + lane, count: WRITES_PER_WORKER, lane } }),
      )
      const done = Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              w.once('message', () => resolve())
              w.once('error', reject)
            }),
        ),
      )
      let finished = false
      void done.then(() => (finished = true))
      // Flush back to back; the short pause lets writers make progress
      // (each flush re-protects what it wrote, so the next write faults again).
      while (!finished) {
        await region.flush()
        flushes++
        await new Promise((r) => setTimeout(r, 2))
      }
      await done
      await region.flush()
      expect(region.stats().dirtyPages).toBe(0)
      expect(region.stats().writeTracking).toBe(`${mode}-wp`)
    } finally {
      await region.close()
    }
    expect(flushes).toBeGreaterThan(1)

    const model = new Uint32Array(SIZE / 4)
    for (const lane of [0, 1]) for (const [word, value] of randomWrites(1000 + lane, WRITES_PER_WORKER, lane, SIZE)) model[word] = value
    const expected = createHash('sha256').update(new Uint8Array(model.buffer)).digest('hex')
    const child = spawnSync(process.execPath, [regionSha, JSON.stringify(spec), String(SIZE)], { encoding: 'utf8', timeout: 60_000 })
    expect(child.stderr).toBe('')
    expect(child.stdout.trim()).toBe(expected)
  })
})
