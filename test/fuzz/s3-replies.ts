/**
 * The fuzz peer's replies to the S3 backend's HeadObject, which pins the
 * object's length and version at open: honest, or broken in its status
 * (with an XML error body, well-formed or not), Content-Length, ETag,
 * Last-Modified, framing or raw head bytes. Ranged GETs are answered by
 * http-replies.ts in its S3 dialect.
 */
import type { PeerRequest } from './http-peer.js'
import { s3Error, s3ErrorDocument, type Built, type Expect, type Truth } from './http-replies.js'
import type { Rng } from './rng.js'

export function headReply(rng: Rng, truth: Truth, request: PeerRequest): Built {
  void request
  let status = '200 OK'
  const headers: Array<[string, string]> = [
    ['Content-Type', 'application/octet-stream'],
    ['Accept-Ranges', 'bytes'],
    ['ETag', truth.etag],
    ['Last-Modified', truth.lastModified],
    ['Content-Length', String(truth.object.length)],
  ]
  let body: Buffer = Buffer.alloc(0)
  let after: Built['answer']['after'] = 'keep'
  // One verdict per aspect: a later mutation of the same aspect (a lying length after none) replaces the earlier one's.
  const verdicts = new Map<string, Expect>()
  const what: string[] = []
  const set = (name: string, value: string | undefined): void => {
    const i = headers.findIndex(([n]) => n === name)
    if (i !== -1) headers.splice(i, 1)
    if (value !== undefined) headers.push([name, value])
  }
  if (rng.chance(0.4)) what.push('honest')
  for (let n = rng.chance(0.4) ? 0 : rng.range(1, 2); n > 0; n--) {
    const kind = rng.pick(['status', 'no length', 'length garbled', 'length huge', 'length lies', 'no etag', 'etag garbled', 'date garbled', 'a body', 'reset', 'raw'] as const)
    what.push(kind)
    if (kind === 'status') {
      status = rng.pick(['403 Forbidden', '404 Not Found', '500 Internal Server Error', '503 Slow Down', '301 Moved Permanently', '206 Partial Content', '204 No Content'])
      // 206 or 204 to a HEAD: odd, but the headers still describe the object.
      if (status.startsWith('206') || status.startsWith('204')) verdicts.set('status', 'either')
      else verdicts.set('status', 'fail')
    } else if (kind === 'no length') {
      // Without it the object's length is unknown: taking 0 would read every page as zeros.
      set('Content-Length', undefined)
      verdicts.set('length', 'fail')
    } else if (kind === 'length garbled') {
      set('Content-Length', rng.pick(['abc', '-1', '1e3', '0x10', `${truth.object.length}.5`, '']))
      verdicts.set('length', 'fail')
    } else if (kind === 'length huge') {
      set('Content-Length', rng.pick(['9007199254740993', '18446744073709551615', '99999999999999999999']))
      verdicts.set('length', 'fail')
    } else if (kind === 'length lies') {
      // Well-formed and consistent: the backend cannot know.
      set('Content-Length', String(Math.max(0, truth.object.length + rng.pick([-1, 1, -4096, 4096]))))
      verdicts.set('length', 'either')
    } else if (kind === 'no etag') {
      set('ETag', undefined)
      verdicts.set('etag', 'either')
    } else if (kind === 'etag garbled') {
      set('ETag', rng.pick(['', '"', 'W/', '"\u00ff"', '"a" "b"']))
      verdicts.set('etag', 'either')
    } else if (kind === 'date garbled') {
      set('Last-Modified', rng.pick(['yesterday', '', 'Thu, 99 Jan 1970 00:00:00 GMT', '0']))
      verdicts.set('date', 'either')
    } else if (kind === 'a body') {
      // HEAD replies have none: node:http does not read it, and the connection is left with junk.
      body = rng.chance(0.5) ? s3ErrorDocument(rng) : truth.object.subarray(0, 100)
      verdicts.set('body', 'either')
    } else if (kind === 'reset') {
      after = rng.pick(['reset', 'end'] as const)
      verdicts.set('connection', 'fail')
    } else {
      verdicts.set('raw', 'either')
      after = 'end'
    }
  }
  let head = `HTTP/1.1 ${status}\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`
  if (what.includes('raw')) {
    // Never CR or LF: the head keeps its end where it was.
    const bytes = Buffer.from(head, 'latin1')
    const at = rng.int(bytes.length - 4)
    if (bytes[at] !== 0x0d && bytes[at] !== 0x0a) bytes[at] = rng.pick([0x00, 0x20, 0x3a, 0x30, 0x7f, 0xff])
    head = bytes.toString('latin1')
  }
  const bytes = after === 'keep' || !what.includes('reset') ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.alloc(0)
  const cuts: number[] = []
  for (let n = rng.size(4); n > 0 && bytes.length > 1; n--) cuts.push(rng.range(1, bytes.length - 1))
  cuts.sort((a, b) => a - b)
  const all = [...verdicts.values()]
  // A raw garble may have hit any header, the failing ones too.
  const expect: Expect = verdicts.has('raw') ? 'either' : all.includes('fail') ? 'fail' : all.includes('either') ? 'either' : 'ok'
  const pollutes = after === 'keep' && expect !== 'ok'
  return { answer: { bytes, cuts, after, pollutes }, expect: { read: expect, probe: expect, 'read after a lie': expect }, what }
}

/** A page store for the pages-mode fuzzer: pages present (their bytes) or absent, and its metadata. */
export interface Store {
  pageSize: number
  size: number
  pages: Array<Buffer | undefined>
}

/** A reply with one verdict per aspect, as headReply makes them. */
function verdictOf(verdicts: Map<string, Expect>): Expect {
  const all = [...verdicts.values()]
  return verdicts.has('raw') ? 'either' : all.includes('fail') ? 'fail' : all.includes('either') ? 'either' : 'ok'
}

function answer(status: string, headers: Array<[string, string]>, body: Buffer, after: Built['answer']['after'], cut?: number): Built['answer'] {
  const bytes = Buffer.concat([Buffer.from(`HTTP/1.1 ${status}\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`, 'latin1'), body])
  return { bytes: cut === undefined ? bytes : bytes.subarray(0, Math.max(0, bytes.length - cut)), cuts: [], after, pollutes: false }
}

const xmlHeaders = (body: Buffer): Array<[string, string]> => [['Content-Type', 'application/xml'], ['Content-Length', String(body.length)]]

/** GetObject of `<prefix>/faultline.json`: the store's geometry, or something else. */
export function metadataReply(rng: Rng, store: Store): Built {
  const meta: Record<string, unknown> = { format: 'faultline-pages', version: 1, size: store.size, pageSize: store.pageSize, createdAt: '2020-01-01T00:00:00.000Z' }
  const verdicts = new Map<string, Expect>()
  const what: string[] = []
  let status = '200 OK'
  let text: string | undefined
  let after: Built['answer']['after'] = 'keep'
  let cut: number | undefined
  for (let n = rng.chance(0.5) ? 0 : rng.range(1, 2); n > 0; n--) {
    const kind = rng.pick(['page size', 'size lies', 'size bad', 'format', 'version', 'not json', 'truncated', 'status', 'not found'] as const)
    what.push(kind)
    if (kind === 'page size') {
      meta.pageSize = rng.pick([store.pageSize * 2, store.pageSize / 2, 0, -1, 'x'])
      verdicts.set('geometry', 'fail')
    } else if (kind === 'size lies') {
      meta.size = store.size + rng.pick([-1, 1, store.pageSize])
      verdicts.set('size', 'either')
    } else if (kind === 'size bad') {
      meta.size = rng.pick([0, -1, 1.5, '12', null, 2 ** 60])
      verdicts.set('size', 'fail')
    } else if (kind === 'format') {
      meta.format = rng.pick(['faultline', '', 7])
      verdicts.set('format', 'fail')
    } else if (kind === 'version') {
      meta.version = rng.pick([2, '1', null])
      verdicts.set('format', 'fail')
    } else if (kind === 'not json') {
      text = rng.pick(['', '{', 'null', '[]', '"x"', '{"format":"faultline-pages"', rng.bytes(20).toString('latin1')])
      verdicts.set('json', 'fail')
    } else if (kind === 'truncated') {
      cut = rng.range(1, 20)
      after = rng.pick(['end', 'reset'] as const)
      verdicts.set('connection', 'fail')
    } else {
      status = kind === 'not found' ? '404 Not Found' : rng.pick(['403 Forbidden', '500 Internal Server Error', '503 Slow Down'])
      verdicts.set('status', 'fail')
    }
  }
  const body = status.startsWith('200') ? Buffer.from(text ?? JSON.stringify(meta)) : s3ErrorDocument(rng)
  const headers: Array<[string, string]> = status.startsWith('200') ? [['Content-Type', 'application/json'], ['Content-Length', String(body.length)]] : xmlHeaders(body)
  const expect = verdictOf(verdicts)
  return { answer: answer(status, headers, body, after, cut), expect: { read: expect, probe: expect, 'read after a lie': expect }, what }
}

/** GetObject of one page: its bytes (exactly a page), a 404 if it is absent, or something broken. */
export function pageReply(rng: Rng, store: Store, index: number): Built {
  const page = store.pages[index]
  const verdicts = new Map<string, Expect>()
  const what: string[] = []
  let status = page === undefined ? '404 Not Found' : '200 OK'
  const missing = s3Error(rng)
  let body: Buffer = page ?? missing.body
  let headers: Array<[string, string]> = page === undefined ? xmlHeaders(body) : [['Content-Type', 'application/octet-stream'], ['ETag', '"p"'], ['Content-Length', String(body.length)]]
  if (page === undefined && missing.code !== 'NoSuchKey') {
    // A 404 whose body does not say NoSuchKey in good XML: absent, or an error; never a page.
    verdicts.set('status', 'either')
  }
  let after: Built['answer']['after'] = 'keep'
  let cut: number | undefined
  const length = (value: string | undefined): void => {
    headers = headers.filter(([n]) => n !== 'Content-Length')
    if (value !== undefined) headers.push(['Content-Length', value])
  }
  for (let n = rng.chance(0.5) || page === undefined ? 0 : rng.range(1, 2); n > 0; n--) {
    const kind = rng.pick(['length other', 'length none', 'truncated', 'longer', 'status', '206', 'extra', 'raw'] as const)
    what.push(kind)
    if (kind === 'length other') {
      // The stored object is another size: refused unread (ERR_BAD_PAGE).
      body = body.subarray(0, rng.int(body.length))
      length(String(body.length))
      verdicts.set('length', 'fail')
    } else if (kind === 'length none') {
      length(undefined)
      after = 'end'
      verdicts.set('length', 'either')
    } else if (kind === 'truncated') {
      cut = rng.range(1, body.length)
      after = rng.pick(['end', 'reset'] as const)
      verdicts.set('body', 'fail')
    } else if (kind === 'longer') {
      length(String(body.length + rng.range(1, 100)))
      after = 'end'
      verdicts.set('length', 'fail')
    } else if (kind === 'status') {
      status = rng.pick(['403 Forbidden', '500 Internal Server Error', '503 Slow Down', '400 Bad Request'])
      body = s3ErrorDocument(rng)
      headers = xmlHeaders(body)
      verdicts.set('status', 'fail')
    } else if (kind === '206') {
      status = '206 Partial Content'
      headers.push(['Content-Range', `bytes 0-${body.length - 1}/${body.length}`])
      verdicts.set('status', 'either')
    } else if (kind === 'extra') {
      body = Buffer.concat([body, Buffer.from('junk')])
      verdicts.set('extra', 'either')
    } else {
      verdicts.set('raw', 'either')
      after = 'end'
    }
  }
  let built = answer(status, headers, body, after, cut)
  if (verdicts.has('raw')) {
    // One byte of the head, never into CR or LF, never one of them.
    const head = built.bytes.indexOf('\r\n\r\n')
    const at = rng.int(Math.max(1, head))
    if (built.bytes[at] !== 0x0d && built.bytes[at] !== 0x0a) built.bytes[at] = rng.pick([0x00, 0x20, 0x3a, 0x30, 0x7f, 0xff])
  }
  // Junk past the framing is left on a kept connection for the next reply to trip on.
  if (verdicts.has('extra') && after === 'keep') built = { ...built, pollutes: true }
  const expect = verdictOf(verdicts)
  return { answer: built, expect: { read: expect, probe: expect, 'read after a lie': expect }, what }
}
