/**
 * The backend conformance suite. Every backend runs it; a new backend plugs
 * in with one entry in test/backends/conformance.test.ts.
 */
import { describe, expect, it, afterAll } from 'vitest'
import { openRegion, type Backend, type BackendSpec } from '@faultline/core'
import { builtinBackends } from '@faultline/backends'

export interface ConformanceTarget {
  /** A fresh, empty store's spec (unique namespace/path per call), for a region of `size` bytes. */
  spec(size: number): BackendSpec | Promise<BackendSpec>
  /** Stores `bytes` as page `index` directly in the store, bypassing the backend's checks (for the wrong-length case). */
  corrupt?(spec: BackendSpec, index: number, bytes: Uint8Array): Promise<void>
  /** Read-only stores (dataset/HTTP modes): `seed` fills a store with `data` and returns its spec. */
  readOnly?: { seed(data: Uint8Array): Promise<BackendSpec> }
  /** Runs after the suite. */
  cleanup?(): Promise<void>
}

const PAGE = 4096
const context = (size: number, readOnly = false) => ({ pageSize: PAGE, size, readOnly })

function page(index: number, salt = 0): Uint8Array {
  const p = new Uint8Array(PAGE)
  const words = new Uint32Array(p.buffer)
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(index + 1, 0x9e3779b1) ^ (i * 2654435761) ^ salt
  return p
}

async function create(spec: BackendSpec, size: number, readOnly = false): Promise<Backend> {
  const factory = builtinBackends[spec.type]
  if (factory === undefined) throw new Error(`no built-in backend ${spec.type}`)
  return factory(spec, context(size, readOnly))
}

export function conformance(name: string, target: ConformanceTarget): void {
  describe(`backend conformance: ${name}`, () => {
    afterAll(async () => target.cleanup?.())

    if (target.readOnly) {
      const ro = target.readOnly
      it('reads seeded pages back exactly, in scattered batches, and reports its size', async () => {
        const data = new Uint8Array(64 * PAGE + 100)
        for (let i = 0; i < 65; i++) data.set(page(i).subarray(0, Math.min(PAGE, data.length - i * PAGE)), i * PAGE)
        const b = await create(await ro.seed(data), data.length, true)
        try {
          expect(b.info.readOnly).toBe(true)
          expect(b.info.size).toBe(data.length)
          const got = await b.read([63, 2, 40, 0, 64])
          expect(Buffer.from(got[0]!)).toEqual(Buffer.from(page(63)))
          expect(Buffer.from(got[1]!)).toEqual(Buffer.from(page(2)))
          expect(Buffer.from(got[3]!)).toEqual(Buffer.from(page(0)))
          const tail = got[4]!
          expect(tail.byteLength).toBe(PAGE)
          expect(Buffer.from(tail.subarray(0, 100))).toEqual(Buffer.from(page(64).subarray(0, 100)))
          expect(tail.subarray(100).every((x) => x === 0)).toBe(true)
        } finally {
          await b.close()
        }
      })
      return
    }

    it('reads never-written pages as absent (undefined) or as exactly one page of zeros', async () => {
      const b = await create(await target.spec(1 << 20), 1 << 20)
      try {
        const got = await b.read([0, 5, 255])
        expect(got).toHaveLength(3)
        for (const g of got) {
          if (g === undefined) continue
          expect(g.byteLength).toBe(PAGE)
          expect(g.every((x) => x === 0)).toBe(true)
        }
      } finally {
        await b.close()
      }
    })

    it('round-trips pages, in scattered batches and across a reopen', async () => {
      const spec = await target.spec(1 << 20)
      const b = await create(spec, 1 << 20)
      await b.write!([3, 200, 17, 18, 19].map((index) => ({ index, data: page(index) })))
      await b.sync?.()
      const got = await b.read([19, 3, 100, 200, 17])
      expect(Buffer.from(got[0]!)).toEqual(Buffer.from(page(19)))
      expect(Buffer.from(got[1]!)).toEqual(Buffer.from(page(3)))
      expect(got[2] === undefined || got[2].every((x) => x === 0)).toBe(true)
      expect(Buffer.from(got[3]!)).toEqual(Buffer.from(page(200)))
      expect(Buffer.from(got[4]!)).toEqual(Buffer.from(page(17)))
      await b.close()
      const again = await create(spec, 1 << 20)
      try {
        expect(Buffer.from((await again.read([200]))[0]!)).toEqual(Buffer.from(page(200)))
      } finally {
        await again.close()
      }
    })

    it('handles a large batch (1024 pages) in one call', async () => {
      const size = 8 << 20
      const b = await create(await target.spec(size), size)
      try {
        const indexes = Array.from({ length: 1024 }, (_, i) => (i * 7) % 2048)
        await b.write!(indexes.map((index) => ({ index, data: page(index, 1) })))
        const got = await b.read(indexes)
        expect(got.every((g, i) => g !== undefined && Buffer.from(g).equals(Buffer.from(page(indexes[i]!, 1))))).toBe(true)
      } finally {
        await b.close()
      }
    })

    it('overwrites a page whole', async () => {
      const b = await create(await target.spec(1 << 20), 1 << 20)
      try {
        await b.write!([{ index: 4, data: page(4, 1) }])
        await b.write!([{ index: 4, data: page(4, 2) }])
        expect(Buffer.from((await b.read([4]))[0]!)).toEqual(Buffer.from(page(4, 2)))
      } finally {
        await b.close()
      }
    })

    it('takes concurrent writes to different pages', async () => {
      const b = await create(await target.spec(1 << 20), 1 << 20)
      try {
        await Promise.all(Array.from({ length: 16 }, (_, i) => b.write!([{ index: i * 3, data: page(i * 3, 5) }])))
        const got = await b.read(Array.from({ length: 16 }, (_, i) => i * 3))
        got.forEach((g, i) => expect(Buffer.from(g!)).toEqual(Buffer.from(page(i * 3, 5))))
      } finally {
        await b.close()
      }
    })

    if (target.corrupt) {
      const corrupt = target.corrupt
      it('a stored page of the wrong length is refused, never installed truncated or padded', async () => {
        const spec = await target.spec(1 << 20)
        await corrupt(spec, 6, new Uint8Array(PAGE - 1).fill(7))
        const region = await openRegion({ size: 1 << 20, pageSize: PAGE, backend: spec, access: 'read-only' })
        try {
          await expect(region.prefetch(6 * PAGE, PAGE)).rejects.toMatchObject({ code: 'ERR_BAD_PAGE', pages: [6] })
          expect(region.stats().residentPages).toBe(0)
        } finally {
          await region.close()
        }
      })
    }

    it('serves a region end to end: writes flushed, read back by a new region', async () => {
      const size = 2 << 20
      const spec = await target.spec(size)
      const region = await openRegion({ size, pageSize: 16384, backend: spec })
      const v = region.view()
      for (let i = 0; i < size; i += 9973) v[i] = (i % 251) + 1
      await region.close()
      const again = await openRegion({ size, pageSize: 16384, backend: spec, access: 'read-only' })
      try {
        const w = again.view()
        for (let i = 0; i < size; i += 9973) expect(w[i]).toBe((i % 251) + 1)
        expect(w[1]).toBe(0)
      } finally {
        await again.close()
      }
    })
  })
}
