/**
 * The done-means test: a 512 MiB region on the shared 3-master
 * cluster, written, flushed and closed; its pages are on every master, and a
 * new region over the same namespace reads the pattern back.
 */
import { afterAll, expect, it } from 'vitest'
import { openRegion, type Region } from '@faultline/core'
import { redisKeys } from '@faultline/backends'
import { checkPattern, fillPattern } from '@faultline/core/pattern'
import { clusterClient, clusterSpec, dropNamespace, uniqueNamespace } from '../helpers/redis.js'

const client = clusterClient()
const spec = clusterSpec(uniqueNamespace('big'))
afterAll(async () => {
  await dropNamespace(client, spec)
  client.disconnect()
})

/**
 * Awaits one step of the test, or fails naming it, with the region's stats:
 * twice in full-suite runs this test timed out at 240 s (it takes ~15 s)
 * without saying where it stood.
 */
async function step<T>(name: string, work: Promise<T>, ms: number, region?: Region): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} did not finish within ${ms} ms; region stats: ${region === undefined ? '(none)' : JSON.stringify(region.stats())}`)), ms)
  })
  try {
    return await Promise.race([work, stalled])
  } finally {
    clearTimeout(timer)
  }
}

it('holds a 512 MiB region on a 3-master cluster, spread over every master, and reads it back', async () => {
  const size = 512 << 20
  const pageSize = 64 << 10
  const pages = size / pageSize
  const region = await step('opening the region', openRegion({ size, pageSize, maxBatchPages: 256, backend: spec }), 30_000)
  fillPattern(region.view(), 0)
  await step('close() (writing 512 MiB back)', region.close(), 150_000, region)

  const masters = client.nodes('master')
  expect(masters).toHaveLength(3)
  const pattern = redisKeys(spec).pagePattern
  const perMaster = await step('counting the keys on each master', Promise.all(
    masters.map(async (node) => {
      let n = 0
      let cursor = '0'
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 2000)
        cursor = next
        n += keys.length
      } while (cursor !== '0')
      return n
    }),
  ), 60_000)
  expect(perMaster.reduce((a, b) => a + b)).toBe(pages)
  for (const n of perMaster) expect(n).toBeGreaterThan(pages / 6)

  const again = await step('reopening read-only', openRegion({ pageSize, maxBatchPages: 256, backend: spec, access: 'read-only' }), 30_000)
  try {
    expect(again.size).toBe(size)
    expect(checkPattern(again.view(), 0)).toBe(-1)
    expect(again.stats().pagesFetched).toBe(pages)
  } finally {
    await step('closing the read-only region', again.close(), 60_000, again)
  }
}, 240_000)
