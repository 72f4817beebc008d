// The HTTP range backend against replies that frame the right bytes but say
// they are something else, served by the fuzzers' raw peer
// (test/fuzz/http-peer.ts). Regression tests of what test/fuzz/http.test.ts
// found.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHttpBackend } from '../../packages/backends/src/http/index.js'
import { FuzzPeer, type PeerRequest } from '../fuzz/http-peer.js'
import { rejection } from '../helpers/errors.js'

const PAGE = 4096
const object = Buffer.alloc(2 * PAGE, 'faultline ')

/** Headers the next replies carry, on the probe, on page reads, or both. */
let extra: { probe: string[]; read: string[] } = { probe: [], read: [] }
let total = String(object.length)
// When set, the probe is answered 416 with Content-Range "bytes */<this>".
let unsatisfied: string | undefined

function answer(request: PeerRequest): ReturnType<Parameters<typeof FuzzPeer.start>[0]> {
  const m = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '')!
  const [start, end] = [Number(m[1]), Number(m[2])]
  if (unsatisfied !== undefined && start === 0 && end === 0) {
    return { bytes: Buffer.from(`HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */${unsatisfied}\r\nContent-Length: 0\r\n\r\n`), cuts: [], after: 'keep', pollutes: false }
  }
  const body = object.subarray(start, end + 1)
  const headers = start === 0 && end === 0 ? extra.probe : extra.read
  const coding = headers.find((h) => /^transfer-encoding/i.test(h))
  const chunked = coding !== undefined
  const lines = ['HTTP/1.1 206 Partial Content', `Content-Range: bytes ${start}-${end}/${total}`, 'ETag: "1"', ...headers]
  // Chunked last, as a transfer coding must be: "gzip" becomes "gzip, chunked".
  if (!chunked) lines.push(`Content-Length: ${body.length}`)
  else if (!/chunked\s*$/i.test(coding)) lines.push('Transfer-Encoding: chunked')
  const framed = chunked ? Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]) : body
  return { bytes: Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), framed]), cuts: [], after: 'keep', pollutes: false }
}

let peer: FuzzPeer
beforeAll(async () => {
  peer = await FuzzPeer.start(answer)
})
afterAll(() => peer.close())

const open = () => createHttpBackend({ type: 'http', url: `${peer.origin}/object.bin`, requestTimeoutMs: 2000 }, { pageSize: PAGE, size: undefined, readOnly: true })

describe('http backend: replies that are not the bytes of the range as they are in the file', () => {
  it('refuses a Content-Encoding, another transfer coding or a multipart body, at open and on a page read', async () => {
    // Found by the fuzzer: all three were installed as page bytes (or opened), since only Content-Range was looked at.
    for (const header of ['Content-Encoding: gzip', 'Content-Encoding: br', 'Transfer-Encoding: gzip', 'Content-Type: multipart/byteranges; boundary=x']) {
      extra = { probe: [header], read: [] }
      const atOpen = await rejection(open())
      expect(atOpen.code, header).toBe('ERR_BACKEND')
      expect(atOpen.message).toMatch(/encoded|transfer coding|multipart/)
      extra = { probe: [], read: [header] }
      const backend = await open()
      try {
        const onRead = await rejection(backend.read([1]))
        expect(onRead.code, header).toBe('ERR_BACKEND')
        expect(onRead.message).toMatch(/encoded|transfer coding|multipart/)
      } finally {
        await backend.close()
      }
    }
  })

  it('refuses a Content-Range whose numbers are past 2^53 - 1 or whose range does not fit its total', async () => {
    // Found by the fuzzer: a total of 99999999999999999999 (or 2^53 + 1) opened as a length JS numbers cannot hold exactly.
    extra = { probe: [], read: [] }
    for (const bad of ['99999999999999999999', '9007199254740993', '0']) {
      total = bad
      const err = await rejection(open())
      expect(err.code, bad).toBe('ERR_BACKEND')
      expect(err.message).toMatch(/Content-Range/)
    }
    total = String(object.length)
    const backend = await open()
    expect(backend.info.size).toBe(object.length)
    await backend.close()
  })

  it('opens a 416 to bytes=0-0 as an empty file only if it says the file is empty', async () => {
    // Found by the fuzzer: "bytes */8192" on a 416 to bytes=0-0 opened a file of 8192 bytes without a byte 0.
    extra = { probe: [], read: [] }
    try {
      unsatisfied = '8192'
      const err = await rejection(open())
      expect(err.code).toBe('ERR_BACKEND')
      expect(err.message).toMatch(/contradicts itself/)
      unsatisfied = '0'
      const backend = await open()
      expect(backend.info.size).toBe(0)
      await backend.close()
    } finally {
      unsatisfied = undefined
    }
  })

  it('reads what says it is identity, chunked or not', async () => {
    for (const header of ['Content-Encoding: identity', 'Content-Type: application/octet-stream', 'Transfer-Encoding: chunked']) {
      extra = { probe: [header], read: [header] }
      const backend = await open()
      try {
        const [page] = await backend.read([1])
        expect(Buffer.from(page!).equals(object.subarray(PAGE)), header).toBe(true)
      } finally {
        await backend.close()
      }
    }
  })
})
