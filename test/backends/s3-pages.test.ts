/** The S3 page store (pages mode): its metadata, geometry checks, sparse zero pages, mode selection and writer lease. */
import { hostname } from 'node:os'
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { deleteObject, s3, s3Spec, uniqueKey } from '../helpers/remote.js'
import { rejection } from '../helpers/errors.js'
import { crashedWriter, retryUntilOpen } from '../helpers/lease.js'
import { startConditionalProxy, type ConditionalProxy } from '../helpers/conditional-proxy.js'

const PAGE = 16384
const SIZE = 1 << 20

const pageKey = (prefix: string, index: number): string => `${prefix}/pages/${index.toString(16).padStart(10, '0')}`

async function exists(key: string): Promise<boolean> {
  try {
    await s3().send(new HeadObjectCommand({ Bucket: inject('s3Bucket'), Key: key }))
    return true
  } catch {
    return false
  }
}

/** A store of SIZE + 5 bytes with byte i of page p = p + 1 at a few places. */
async function createStore(prefix: string): Promise<void> {
  const region = await openRegion({ backend: s3Spec(prefix, { mode: 'pages' }), size: SIZE + 5, pageSize: PAGE })
  expect(region.readOnly).toBe(false)
  const v = region.view()
  for (let p = 0; p < 8; p++) v[p * PAGE + 7] = p + 1
  v[SIZE + 4] = 0xaa
  await region.close()
}

describe('s3 pages mode', () => {
  it('records the geometry in <prefix>/faultline.json; a reopen without size adopts it', async () => {
    const prefix = uniqueKey('store')
    await createStore(prefix)
    const res = await s3().send(new GetObjectCommand({ Bucket: inject('s3Bucket'), Key: `${prefix}/faultline.json` }))
    const meta = JSON.parse(await res.Body!.transformToString()) as Record<string, unknown>
    expect(meta).toMatchObject({ format: 'faultline-pages', version: 1, size: SIZE + 5, pageSize: PAGE })
    expect(Number.isNaN(Date.parse(meta.createdAt as string))).toBe(false)

    const region = await openRegion({ backend: s3Spec(prefix, { mode: 'pages' }), pageSize: PAGE, access: 'read-only' })
    try {
      expect(region.dataSize).toBe(SIZE + 5)
      const v = region.view()
      for (let p = 0; p < 8; p++) expect(v[p * PAGE + 7]).toBe(p + 1)
      expect(v[SIZE + 4]).toBe(0xaa)
      expect(v[SIZE + 5]).toBe(0)
    } finally {
      await region.close()
    }
  })

  it('refuses another geometry with ERR_GEOMETRY naming the option', async () => {
    const prefix = uniqueKey('geometry')
    await createStore(prefix)
    const page = await rejection(openRegion({ backend: s3Spec(prefix), pageSize: 2 * PAGE }))
    expect(page).toMatchObject({ code: 'ERR_GEOMETRY', option: 'pageSize' })
    expect(page.message).toMatch(/pageSize: 16384/)
    const size = await rejection(openRegion({ backend: s3Spec(prefix), pageSize: PAGE, size: 2 * SIZE }))
    expect(size).toMatchObject({ code: 'ERR_GEOMETRY', option: 'size' })
    expect(size.message).toMatch(/leave size out/)
  })

  it('stores a page of zeros as no object at all, and reads it back as zeros', async () => {
    const prefix = uniqueKey('sparse')
    await createStore(prefix)
    expect(await exists(pageKey(prefix, 3))).toBe(true)
    expect(await exists(pageKey(prefix, 20))).toBe(false)
    const region = await openRegion({ backend: s3Spec(prefix), pageSize: PAGE })
    expect(region.readOnly).toBe(false)
    region.view(3 * PAGE, PAGE)[7] = 0
    await region.close()
    expect(await exists(pageKey(prefix, 3))).toBe(false)
    const again = await openRegion({ backend: s3Spec(prefix), pageSize: PAGE, access: 'read-only' })
    try {
      expect(again.view(3 * PAGE, PAGE).every((b) => b === 0)).toBe(true)
      expect(again.view(4 * PAGE, PAGE)[7]).toBe(5)
    } finally {
      await again.close()
    }
  })

  it('a new store never GETs its never-written pages: they are known absent', async () => {
    const prefix = uniqueKey('fresh')
    const region = await openRegion({ backend: s3Spec(prefix), size: SIZE, pageSize: PAGE })
    try {
      expect(region.view()[SIZE - 1]).toBe(0)
      expect(await region.read(0, SIZE)).toEqual(new Uint8Array(SIZE))
      const s = region.stats()
      expect(s.zeroPages).toBeGreaterThan(0)
      expect(s.pagesFetched).toBe(0)
      expect(s.bytesFetched).toBe(0)
    } finally {
      await region.close()
    }
  })

  it('chooses the mode clearly: an object is a dataset, a prefix with metadata a store, nothing needs a size', async () => {
    const prefix = uniqueKey('modes')
    const nothing = await rejection(openRegion({ backend: s3Spec(prefix), pageSize: PAGE }))
    expect(nothing).toMatchObject({ code: 'ERR_BACKEND', option: 'backend.url' })
    expect(nothing.message).toMatch(/there is nothing at s3:\/\/.*: no object, and no page store .*give `size`/)
    const readOnly = await rejection(openRegion({ backend: s3Spec(prefix, { mode: 'pages' }), size: SIZE, pageSize: PAGE, access: 'read-only' }))
    expect(readOnly.message).toMatch(/no page store .* read-only region cannot create one/)
    const noSize = await rejection(openRegion({ backend: s3Spec(prefix, { mode: 'pages' }), pageSize: PAGE }))
    expect(noSize).toMatchObject({ code: 'ERR_GEOMETRY', option: 'size' })
    await createStore(prefix)
    const asDataset = await rejection(openRegion({ backend: s3Spec(prefix, { mode: 'dataset' }), pageSize: PAGE }))
    expect(asDataset.message).toMatch(/there is no object .*a page store is there: open it with mode: 'pages'/)
  })

  it('takes the endpoint, region, path style and mode from the URL, and credentials from the environment', async () => {
    const prefix = uniqueKey('url')
    await createStore(prefix)
    const saved = { ...process.env }
    // The pager thread gets a copy of the environment as it is when the region opens.
    process.env.AWS_ACCESS_KEY_ID = inject('s3AccessKeyId')
    process.env.AWS_SECRET_ACCESS_KEY = inject('s3SecretAccessKey')
    try {
      const url = `s3://${inject('s3Bucket')}/${prefix}?endpoint=${encodeURIComponent(inject('s3Endpoint'))}&region=eu-west-3&pathStyle=true&mode=pages`
      const region = await openRegion({ backend: url, pageSize: PAGE, access: 'read-only' })
      try {
        expect(region.backendName).toBe(`s3://${inject('s3Bucket')}/${prefix}`)
        expect(region.view()[2 * PAGE + 7]).toBe(3)
      } finally {
        await region.close()
      }
      // And the endpoint from AWS_ENDPOINT_URL_S3, path-style by default for an IP address.
      process.env.AWS_ENDPOINT_URL_S3 = inject('s3Endpoint')
      const fromEnv = await openRegion({ backend: `s3://${inject('s3Bucket')}/${prefix}`, pageSize: PAGE, access: 'read-only' })
      try {
        expect(fromEnv.view()[5 * PAGE + 7]).toBe(6)
      } finally {
        await fromEnv.close()
      }
    } finally {
      process.env = saved
    }
  })
})

async function keysUnder(prefix: string): Promise<string[]> {
  const list = await s3().send(new ListObjectsV2Command({ Bucket: inject('s3Bucket'), Prefix: `${prefix}/` }))
  return (list.Contents ?? []).map((o) => o.Key!.slice(prefix.length + 1)).sort()
}

/** The lease tests both protocols pass: `spec` opens the store with one or the other. */
function leaseBasics(spec: (prefix: string, extra?: Record<string, unknown>) => BackendSpec): void {
  it('refuses a second writer with ERR_LOCKED naming the holder; readers still open; close releases it', async () => {
    const prefix = uniqueKey('lease')
    const writer = await openRegion({ backend: spec(prefix), size: SIZE, pageSize: PAGE })
    try {
      expect(await keysUnder(prefix)).toEqual(['faultline.json', 'faultline.lease'])
      const second = await rejection(openRegion({ backend: spec(prefix), pageSize: PAGE }))
      expect(second).toMatchObject({ code: 'ERR_LOCKED', option: 'access' })
      expect(second.message).toMatch(new RegExp(`already open read-write by ${process.pid}@${hostname()}; one writer per page store`))
      writer.view(0, 1)[0] = 9
      await writer.flush()
      const reader = await openRegion({ backend: spec(prefix), pageSize: PAGE, access: 'read-only' })
      expect(reader.view(0, 1)[0]).toBe(9)
      await reader.close()
    } finally {
      await writer.close()
    }
    expect(await keysUnder(prefix)).toEqual(['faultline.json', 'pages/0000000000'])
    await (await openRegion({ backend: spec(prefix), pageSize: PAGE })).close()
  })

  it('takes over the lease of a writer that was SIGKILLed, once it expired', async () => {
    const backend = spec(uniqueKey('dead'), { leaseMs: 1000 })
    const pid = await crashedWriter(backend)
    const again = await rejection(openRegion({ backend, pageSize: 4096 }))
    expect(again).toMatchObject({ code: 'ERR_LOCKED' })
    expect(again.message).toMatch(new RegExp(`by ${pid}@${hostname()}.*expires within \\d+ ms`))
    // leaseMs, plus up to 2 s of whole-second timestamps, plus the retry step.
    await retryUntilOpen(() => openRegion({ backend, pageSize: 4096 }), 6_000)
  })
}

// s3rver ignores If-None-Match and If-Match, so these run the weaker lease
// (writerLease: 'best-effort', the s3Spec default here); the conditional
// protocol is tested below through a proxy that adds them.
describe('s3 pages mode: the writer lease', () => {
  it('by default refuses a service that ignores conditional writes, before writing anything', async () => {
    const prefix = uniqueKey('strict')
    const err = await rejection(openRegion({ backend: s3Spec(prefix, { writerLease: undefined }), size: SIZE, pageSize: PAGE }))
    expect(err).toMatchObject({ code: 'ERR_BACKEND', option: 'backend.writerLease' })
    expect(err.message).toMatch(/ignores conditional writes .*writerLease: 'best-effort'/)
    expect(await keysUnder(prefix)).toEqual([])
    // A reader takes no lease, so it needs no conditional writes.
    await createStore(prefix)
    await (await openRegion({ backend: s3Spec(prefix, { writerLease: undefined }), pageSize: PAGE, access: 'read-only' })).close()
  })

  it('validates writerLease and leaseMs, naming them', async () => {
    const bad = await rejection(openRegion({ backend: s3Spec(uniqueKey('opt'), { writerLease: 'strict' }), size: SIZE, pageSize: PAGE }))
    expect(bad).toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'backend.writerLease' })
    expect(bad.message).toMatch(/"conditional" .* or "best-effort"/)
    const short = await rejection(openRegion({ backend: s3Spec(uniqueKey('opt'), { leaseMs: 500 }), size: SIZE, pageSize: PAGE }))
    expect(short).toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'backend.leaseMs' })
    expect(short.message).toMatch(/≥ 1000/)
  })

  leaseBasics((prefix, extra) => s3Spec(prefix, extra))

  it('a writer whose lease was taken over has its writes refused, and its pages stay dirty', async () => {
    const prefix = uniqueKey('lost')
    const spec = s3Spec(prefix, { leaseMs: 1000 })
    const first = await openRegion({ backend: spec, size: SIZE, pageSize: PAGE })
    try {
      // As if first had stalled past its lease: the lease object is gone and a second writer holds it.
      await deleteObject(`${prefix}/faultline.lease`)
      const second = await openRegion({ backend: spec, pageSize: PAGE })
      try {
        await new Promise((r) => setTimeout(r, 500))
        first.view(0, 1)[0] = 1
        const err = await rejection(first.flush())
        expect(err.code).toBe('ERR_LOCKED')
        expect(err.message).toMatch(/writer lease expired and was taken by/)
        expect(first.stats().dirtyPages).toBe(1)
        expect(await exists(pageKey(prefix, 0))).toBe(false)
      } finally {
        await second.close()
      }
    } finally {
      await first.close().catch(() => undefined)
    }
  })
})

// The conditional protocol against s3rver with If-None-Match / If-Match on PUT
// added by a proxy (test/fixtures/conditional-proxy.mjs): what AWS S3 answers,
// not AWS S3 itself.
describe('s3 pages mode: the writer lease with conditional writes', () => {
  let proxy: ConditionalProxy
  beforeAll(async () => {
    proxy = await startConditionalProxy()
  })
  afterAll(async () => {
    await proxy.close()
  })
  const spec = (prefix: string, extra: Record<string, unknown> = {}): BackendSpec => s3Spec(prefix, { endpoint: proxy.endpoint, writerLease: undefined, ...extra })

  leaseBasics((prefix, extra) => spec(prefix, extra))

  it('opens by default (writerLease: conditional) once the probe saw both conditional PUTs refused', async () => {
    const before = await proxy.refused()
    const writer = await openRegion({ backend: spec(uniqueKey('cond')), size: SIZE, pageSize: PAGE })
    await writer.close()
    expect((await proxy.refused()) - before).toBe(2)
  })

  it('of three writers opening at once, exactly one gets the lease', async () => {
    for (let round = 0; round < 3; round++) {
      const prefix = uniqueKey('race')
      await createStore(prefix)
      const opens = await Promise.allSettled([0, 1, 2].map(() => openRegion({ backend: spec(prefix), pageSize: PAGE })))
      const won = opens.filter((o) => o.status === 'fulfilled')
      expect(won.length).toBe(1)
      for (const o of opens) if (o.status === 'rejected') expect(o.reason).toMatchObject({ code: 'ERR_LOCKED' })
      await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof openRegion>>>).value.close()
    }
  })

  it('a writer whose lease object vanished refuses its writes (If-Match fails)', async () => {
    const prefix = uniqueKey('cond-lost')
    const writer = await openRegion({ backend: spec(prefix, { leaseMs: 1000 }), size: SIZE, pageSize: PAGE })
    try {
      await deleteObject(`${prefix}/faultline.lease`)
      await new Promise((r) => setTimeout(r, 500))
      writer.view(0, 1)[0] = 1
      const err = await rejection(writer.flush())
      expect(err.code).toBe('ERR_LOCKED')
      expect(err.message).toMatch(/writer lease expired and was taken by another process/)
      expect(await exists(pageKey(prefix, 0))).toBe(false)
    } finally {
      await writer.close().catch(() => undefined)
    }
  })
})
