/**
 * The fuzz peer's replies to the S3 backend's HeadObject, which pins the
 * object's length and version at open: honest, or broken in its status
 * (with an XML error body, well-formed or not), Content-Length, ETag,
 * Last-Modified, framing or raw head bytes. Ranged GETs are answered by
 * http-replies.ts in its S3 dialect.
 */
import type { PeerRequest } from './http-peer.js'
import { s3ErrorDocument, type Built, type Expect, type Truth } from './http-replies.js'
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
