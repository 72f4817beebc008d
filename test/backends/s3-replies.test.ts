// The S3 backend against replies S3 itself never sends, served
// by the fuzzers' raw peer (test/fuzz/http-peer.ts). Regression tests of
// what test/fuzz/s3.test.ts and test/fuzz/s3-pages.test.ts found.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createS3Backend } from '../../packages/backends/src/s3/index.js'
import { FuzzPeer, type PeerAnswer, type PeerRequest } from '../fuzz/http-peer.js'
import { rejection } from '../helpers/errors.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

const PAGE = 4096
const object = Buffer.alloc(2 * PAGE, 'faultline ')

/** The HEAD reply's Content-Length header (none when undefined), and the status of ranged GETs. */
let headLength: string | undefined = String(object.length)
let getStatus = '206 Partial Content'
/** The status of a pages-mode page GET, answered with an XML NoSuchKey error. */
let missingStatus = '404 Not Found'

function reply(head: string, body: Buffer = Buffer.alloc(0)): PeerAnswer {
  return { bytes: Buffer.concat([Buffer.from(`${head}\r\n\r\n`), body]), cuts: [], after: 'keep', pollutes: false }
}

const noSuchKey = Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>')

function answer(request: PeerRequest): PeerAnswer {
  if (request.path.includes('/faultline.json')) {
    const meta = Buffer.from(JSON.stringify({ format: 'faultline-pages', version: 1, size: 2 * PAGE, pageSize: PAGE, createdAt: '2020-01-01T00:00:00Z' }))
    return reply(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${meta.length}`, meta)
  }
  if (request.path.includes('/pages/')) return reply(`HTTP/1.1 ${missingStatus}\r\nContent-Type: application/xml\r\nContent-Length: ${noSuchKey.length}`, noSuchKey)
  if (request.method === 'HEAD') return reply(['HTTP/1.1 200 OK', 'ETag: "1"', ...(headLength === undefined ? [] : [`Content-Length: ${headLength}`])].join('\r\n'))
  const m = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '')!
  const [start, end] = [Number(m[1]), Number(m[2])]
  const body = object.subarray(start, end + 1)
  return reply([`HTTP/1.1 ${getStatus}`, 'ETag: "1"', `Content-Range: bytes ${start}-${end}/${object.length}`, `Content-Length: ${body.length}`].join('\r\n'), body)
}

let peer: FuzzPeer
beforeAll(async () => {
  peer = await FuzzPeer.start(answer)
})
afterAll(() => peer.close())

const open = () =>
  createS3Backend(
    { type: 's3', url: 's3://bucket/object.bin', mode: 'dataset', endpoint: peer.origin, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 1 },
    { pageSize: PAGE, size: undefined, readOnly: true },
  )

describe('s3 backend: replies S3 never sends', () => {
  it('refuses a HeadObject without a Content-Length, or with one past 2^53 - 1', async () => {
    // Found by the fuzzer: no Content-Length opened the object as 0 bytes, so every page read as zeros.
    try {
      for (const length of [undefined, '9007199254740993', '18446744073709551615']) {
        headLength = length
        const err = await rejection(open())
        expect(err.code, String(length)).toBe('ERR_BACKEND')
        expect(err.message).toMatch(/no usable Content-Length/)
      }
    } finally {
      headLength = String(object.length)
    }
    const backend = await open()
    expect(backend.info.size).toBe(object.length)
    const [page] = await backend.read([1])
    expect(Buffer.from(page!).equals(object.subarray(PAGE))).toBe(true)
    await backend.close()
  })

  it('takes a ranged GetObject only from a 206', async () => {
    // Found by the fuzzer: a 200 (or 201, 299) with the right Content-Range was read as the range.
    const backend = await open()
    try {
      for (const status of ['200 OK', '201 Created', '299 Fuzzed']) {
        getStatus = status
        const err = await rejection(backend.read([0]))
        expect(err.code, status).toBe('ERR_BACKEND')
        expect(err.message).toMatch(/not that range \(HTTP 2\d\d/)
      }
      getStatus = '206 Partial Content'
      const [page] = await backend.read([0])
      expect(Buffer.from(page!).equals(object.subarray(0, PAGE))).toBe(true)
    } finally {
      getStatus = '206 Partial Content'
      await backend.close()
    }
  })

  it('takes NoSuchKey for an absent page only from a 404', async () => {
    // Found by the fuzzer: a 500 (or 403, 400) whose XML body said NoSuchKey
    // read as an absent page, installed as zeros over a page that was there.
    const backend = await createS3Backend(
      { type: 's3', url: 's3://bucket/store', mode: 'pages', endpoint: peer.origin, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 1 },
      { pageSize: PAGE, size: undefined, readOnly: true },
    )
    try {
      for (const status of ['500 Internal Server Error', '403 Forbidden', '400 Bad Request']) {
        missingStatus = status
        const err = await rejection(backend.read([0]))
        expect(err.code, status).toBe('ERR_BACKEND')
        expect(err.message).toMatch(/NoSuchKey.*\(HTTP [45]\d\d\)/)
      }
      missingStatus = '404 Not Found'
      expect(await backend.read([0])).toEqual([undefined])
    } finally {
      missingStatus = '404 Not Found'
      await backend.close()
    }
  })
})
