// A range's body is written into page buffers (remote/page-sink.ts), which
// the HTTP and S3 backends take from a pool and get back through recycle().
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import type { Backend } from '@faultline/core/backend'
import { createHttpBackend } from '../../packages/backends/src/http/index.js'
import { PageSink } from '../../packages/backends/src/remote/page-sink.js'
import { createS3Backend } from '../../packages/backends/src/s3/index.js'
import { deleteObject, putObject, s3Spec, uniqueKey } from '../helpers/remote.js'

const PAGE = 4096

describe('PageSink', () => {
  const bytes = (n: number, from = 0) => Uint8Array.from({ length: n }, (_, i) => (from + i) % 251)

  it('spreads chunks that straddle pages over them in order', () => {
    const pages = [new Uint8Array(8), new Uint8Array(8), new Uint8Array(8)]
    const sink = new PageSink(pages, 24)
    const body = bytes(24)
    for (const [a, b] of [[0, 5], [5, 13], [13, 16], [16, 24]] as const) sink.write(body.subarray(a, b))
    sink.end()
    expect(Buffer.concat(pages)).toEqual(Buffer.from(body))
  })

  it('zeroes the rest of a last page the range ends inside, whatever the buffer held', () => {
    const pages = [new Uint8Array(8).fill(0xee), new Uint8Array(8).fill(0xee)]
    const sink = new PageSink(pages, 11)
    sink.write(bytes(11))
    sink.end()
    expect([...pages[1]!]).toEqual([8, 9, 10, 0, 0, 0, 0, 0])
  })

  it('refuses a body longer than the range, and one that ends short of it', () => {
    const long = new PageSink([new Uint8Array(8)], 8)
    long.write(bytes(6))
    expect(() => long.write(bytes(3))).toThrow('the body is longer than the 8 bytes asked for')
    const short = new PageSink([new Uint8Array(8)], 8)
    short.write(bytes(5))
    expect(() => short.end()).toThrow('the body ended after 5 of 8 bytes')
  })
})

// 10.5 pages: the last page of the object is part zeros.
const SIZE = 10 * PAGE + PAGE / 2
const object = Uint8Array.from({ length: SIZE }, (_, i) => (i * 7 + (i >> 12)) % 256)
const name = `${uniqueKey('sink')}.bin`
const key = uniqueKey('sink')

beforeAll(async () => {
  writeFileSync(join(inject('httpDir'), name), object)
  await putObject(key, object)
})

afterAll(async () => {
  rmSync(join(inject('httpDir'), name), { force: true })
  await deleteObject(key)
})

const context = { pageSize: PAGE, size: undefined, readOnly: true }
const opens: Array<[string, () => Promise<Backend>]> = [
  ['http', () => createHttpBackend({ type: 'http', url: `${inject('httpBase')}/${name}` }, context)],
  ['s3', () => createS3Backend(s3Spec(key), context)],
]

describe.each(opens)('page buffers of the %s backend', (_kind, open) => {
  it('a read refills the pages recycled after the last one, with the right bytes, zero-padded at the end', async () => {
    const backend = await open()
    try {
      const first = await backend.read([0, 1, 2, 3])
      const memory = first.map((p) => p!.buffer)
      for (const page of first) backend.recycle!(page!)
      // The last pages of the object: the one it ends inside must be zeros after its end, not the old bytes.
      const indexes = [7, 8, 9, 10]
      const again = await backend.read(indexes)
      // The same memory, not new buffers with equal bytes.
      expect(again.filter((p) => memory.includes(p!.buffer)).length).toBe(4)
      for (const [i, page] of again.entries()) {
        const expected = new Uint8Array(PAGE)
        expected.set(object.subarray(indexes[i]! * PAGE, Math.min(SIZE, (indexes[i]! + 1) * PAGE)))
        expect(Buffer.compare(page!, expected)).toBe(0)
      }
      // Each page is a buffer of its own, so each comes back on its own.
      expect(new Set(again.map((p) => p!.buffer)).size).toBe(4)
    } finally {
      await backend.close()
    }
  })
})
