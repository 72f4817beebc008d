/**
 * The done-means test: a 512 MiB region on the shared 3-master
 * cluster, written, flushed and closed; its pages are on every master, and a
 * new region over the same namespace reads the pattern back.
 */
import { afterAll, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { redisKeys } from '@faultline/backends'
import { checkPattern, fillPattern } from '@faultline/core/pattern'
import { clusterClient, clusterSpec, dropNamespace, uniqueNamespace } from '../helpers/redis.js'

const client = clusterClient()
const spec = clusterSpec(uniqueNamespace('big'))
afterAll(async () => {
  await dropNamespace(client, spec)
  client.disconnect()
})

it('holds a 512 MiB region on a 3-master cluster, spread over every master, and reads it back', async () => {
  const size = 512 << 20
  const pageSize = 64 << 10
  const pages = size / pageSize
  const region = await openRegion({ size, pageSize, maxBatchPages: 256, backend: spec })
  fillPattern(region.view(), 0)
  await region.close()

  const masters = client.nodes('master')
  expect(masters).toHaveLength(3)
  const pattern = redisKeys(spec).pagePattern
  const perMaster = await Promise.all(
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
  )
  expect(perMaster.reduce((a, b) => a + b)).toBe(pages)
  for (const n of perMaster) expect(n).toBeGreaterThan(pages / 6)

  const again = await openRegion({ pageSize, maxBatchPages: 256, backend: spec, access: 'read-only' })
  try {
    expect(again.size).toBe(size)
    expect(checkPattern(again.view(), 0)).toBe(-1)
    expect(again.stats().pagesFetched).toBe(pages)
  } finally {
    await again.close()
  }
}, 240_000)
