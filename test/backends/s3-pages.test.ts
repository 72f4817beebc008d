/** The S3 page store (pages mode): its metadata, geometry checks, sparse zero pages and mode selection. */
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3'
import { describe, expect, inject, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { s3, s3Spec, uniqueKey } from '../helpers/remote.js'
import { rejection } from '../helpers/errors.js'

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
