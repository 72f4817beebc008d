/**
 * Replies of the HTTP fuzz peer to a range request: the honest one, or one
 * broken in its status, Content-Range, lengths, framing, body, version
 * headers or raw head bytes. Each comes with what a correct client must
 * make of it:
 *
 *   ok        accept it: the bytes are the range's true bytes
 *   fail      refuse it: accepting would install bytes it cannot vouch for
 *   either    no demand (a garbled but equivalent header, junk it may or may not see)
 *   redirect  follow it: the reply to the next request decides
 *
 * The body bytes are always the true bytes of the range a reply claims (or
 * a truncation of them): a reply that frames other bytes as the asked range
 * is a lie no client can detect, and is never made. Raw mutations of the
 * head never produce CR or LF, so they cannot end the head early and make
 * header text part of the body, and never touch a chunked reply's
 * Transfer-Encoding, whose loss would make the chunk framing body bytes.
 */
import type { PeerAnswer, PeerRequest } from './http-peer.js'
import type { Rng } from './rng.js'

export type Expect = 'ok' | 'fail' | 'either' | 'redirect'

export interface Truth {
  object: Buffer
  etag: string
  lastModified: string
}

/**
 * Who reads the reply: `read`, a page read after an honest open; `probe`,
 * the open's bytes=0-0, which discards the body and learns the version and
 * length (so a broken body, another version or length bind it to nothing);
 * `read after a lie`, a page read after an open that may have pinned a
 * wrong version or length (so only those are no longer judged).
 */
export type Phase = 'read' | 'probe' | 'read after a lie'

export interface Built {
  answer: PeerAnswer
  expect: Record<Phase, Expect>
  what: string[]
}

/** Why a reply must be refused: `head` at open too; the others only when its body is to be the page. */
type FailKind = 'head' | 'body' | 'version' | 'range' | 'total'

/**
 * What a mutation broke, one verdict each: a later mutation of the same
 * aspect (a second Content-Range) replaces the verdict of the earlier one.
 */
type Aspect = 'status' | 'range' | 'length' | 'body' | 'framing' | 'version' | 'content-encoding' | 'transfer-coding' | 'content-type' | 'informational' | 'connection' | 'extra'
type Verdict = { v: 'ok' } | { v: 'either' } | { v: 'redirect' } | { v: 'fail'; kind: FailKind }

interface Draft {
  version: string
  status: number
  reason: string
  headers: Array<[string, string]>
  body: Buffer
  framing: 'length' | 'chunked' | 'close'
  /** Content-Length values to send instead of the body's length ([] = none). */
  contentLength?: string[]
  chunks?: { sizes: number[]; declared?: Map<number, string>; last: boolean; trailer?: string }
  informational: string[]
  extra?: Buffer
  /** Send only this many bytes of the reply. */
  cut?: number
  after: PeerAnswer['after']
  dialect: ReplyContext['dialect']
  /** The expectation of the unmutated reply (a 416 may be honest, or not), and its status. */
  base: Expect
  honestStatus: number
  verdicts: Map<Aspect, Verdict>
  what: string[]
  rawGarble: boolean
}

export interface ReplyContext {
  /**
   * Whose replies: an HTTP server's for the http backend, or S3's for the
   * SDK, which follows no redirects, takes a content coding for the
   * object's metadata (S3 stores the bytes as they were put) and gets
   * errors as XML documents.
   */
  dialect: 'http' | 's3'
  /** Paths of redirects stay under this prefix, so their requests are told apart by backend. */
  pathPrefix: string
  origin: string
  /** A port nothing listens on. */
  deadPort: number
}

export function buildReply(rng: Rng, truth: Truth, request: PeerRequest, ctx: ReplyContext): Built {
  const d = honest(rng, truth, request)
  d.dialect = ctx.dialect
  if (rng.chance(0.35)) honestVariation(rng, d)
  else {
    for (let n = rng.range(1, 2); n > 0; n--) rng.weighted(MUTATIONS)(rng, d, truth, request, ctx)
  }
  return finish(rng, d)
}

function asked(request: PeerRequest): { start: number; end: number } | undefined {
  const m = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '')
  return m ? { start: Number(m[1]), end: Number(m[2]) } : undefined
}

function honest(rng: Rng, truth: Truth, request: PeerRequest): Draft {
  const total = truth.object.length
  const range = asked(request)
  const base: Draft = {
    version: 'HTTP/1.1',
    status: 206,
    reason: 'Partial Content',
    headers: [['Content-Type', 'application/octet-stream'], ['Accept-Ranges', 'bytes'], ['ETag', truth.etag], ['Last-Modified', truth.lastModified]],
    body: Buffer.alloc(0),
    framing: 'length',
    informational: [],
    after: 'keep',
    dialect: 'http',
    base: 'ok',
    honestStatus: 206,
    verdicts: new Map(),
    what: [],
    rawGarble: false,
  }
  if (range === undefined) return { ...base, status: 200, honestStatus: 200, reason: 'OK', body: truth.object, base: 'fail', what: ['no range asked: 200'] }
  if (range.start >= total) {
    base.headers.push(['Content-Range', `bytes */${total}`])
    // The probe's bytes=0-0 of an empty object is answered so, and must be accepted; any other range must not.
    const empty = total === 0 && range.start === 0
    return { ...base, status: 416, honestStatus: 416, reason: 'Range Not Satisfiable', base: empty ? 'ok' : 'fail', what: [empty ? '416: the object is empty' : '416: the range is past the end'] }
  }
  const end = Math.min(range.end, total - 1)
  base.headers.push(['Content-Range', `bytes ${range.start}-${end}/${total}`])
  base.body = truth.object.subarray(range.start, end + 1)
  if (rng.chance(0.2)) {
    base.headers.push(['Connection', 'close'])
    base.after = 'end'
  }
  return base
}

/** Changes any correct client must take in its stride. */
function honestVariation(rng: Rng, d: Draft): void {
  const v = rng.pick(['plain', 'chunked', 'close-delimited', 'http/1.0', 'header case', 'extra headers', 'informational'] as const)
  d.what.push(`honest, ${v}`)
  if (v === 'chunked') chunk(rng, d)
  else if (v === 'close-delimited') {
    d.framing = 'close'
    d.headers.push(['Connection', 'close'])
    d.after = 'end'
  } else if (v === 'http/1.0') {
    d.version = 'HTTP/1.0'
    d.after = 'end'
  } else if (v === 'header case') d.headers = d.headers.map(([n, value]) => [rng.chance(0.5) ? n.toLowerCase() : n.toUpperCase(), value])
  else if (v === 'extra headers') {
    d.headers.splice(rng.int(d.headers.length + 1), 0, ['X-Padding', 'p'.repeat(rng.size(8000))], ['Cache-Control', 'no-cache'], ['Server', 'fuzz'])
  } else if (v === 'informational') d.informational.push(rng.pick(['100 Continue', '102 Processing', '103 Early Hints']))
}

/** A reply that goes silent costs the client requestTimeoutMs: most draws of one become another reply. */
const STALL_SKIP = 0.95

type Mutation = (rng: Rng, d: Draft, truth: Truth, request: PeerRequest, ctx: ReplyContext) => void

const MUTATIONS: ReadonlyArray<readonly [number, Mutation]> = [
  [3, status],
  [2, redirect],
  [4, contentRange],
  [3, contentLength],
  [2, truncated],
  [2, chunkGames],
  [1, extraBytes],
  [2, versionHeaders],
  [2, encodings],
  [1, informational],
  [2, (rng, d) => (d.rawGarble = true)],
  [1, connectionGames],
]

function judge(d: Draft, aspect: Aspect, verdict: Verdict, what: string): void {
  d.what.push(what)
  d.verdicts.set(aspect, verdict)
}

const fail = (d: Draft, aspect: Aspect, what: string, kind: FailKind = 'head'): void => judge(d, aspect, { v: 'fail', kind }, what)
const either = (d: Draft, aspect: Aspect, what: string): void => judge(d, aspect, { v: 'either' }, what)
const fine = (d: Draft, aspect: Aspect, what: string): void => judge(d, aspect, { v: 'ok' }, what)

/**
 * What the client must make of the reply as a whole. Body aspects matter
 * only to a 206 (other replies' bodies are not read); a redirect only
 * needs its head; the probe reads no body and learns the version and
 * length, so only `head` failures bind it.
 */
function expectation(d: Draft, phase: Phase): Expect {
  if (d.rawGarble) return 'either'
  const verdicts = [...d.verdicts.entries()].filter(([, v]) => v.v !== 'ok')
  if (d.verdicts.get('connection')?.v === 'fail') return 'fail'
  const status = d.verdicts.get('status')
  if (status?.v === 'redirect') return verdicts.length === 1 ? 'redirect' : 'either'
  if (status?.v === 'fail') return 'fail'
  if (d.status !== 206) return d.base === 'ok' && verdicts.length > 0 ? 'either' : d.base
  const kinds = verdicts.flatMap(([, v]) => (v.v === 'fail' ? [v.kind] : []))
  if (kinds.length > 0) {
    const binding = phase === 'read' ? kinds : phase === 'probe' ? kinds.filter((k) => k === 'head') : kinds.filter((k) => k !== 'version' && k !== 'total')
    return binding.length > 0 ? 'fail' : 'either'
  }
  return verdicts.length > 0 ? 'either' : d.base
}

function setHeader(d: Draft, name: string, value: string | undefined): void {
  d.headers = d.headers.filter(([n]) => n.toLowerCase() !== name.toLowerCase())
  if (value !== undefined) d.headers.push([name, value])
}

function header(d: Draft, name: string): string | undefined {
  return d.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1]
}

function status(rng: Rng, d: Draft, truth: Truth): void {
  const code = rng.pick([200, 200, 201, 204, 207, 299, 304, 400, 403, 404, 410, 416, 429, 500, 502, 503, 504, 599])
  if (code === d.status) return
  // (Not after a redirect: that took the Content-Range away.)
  if (code === d.honestStatus && header(d, 'Location') === undefined) {
    // Back to the status of the honest reply (a 416 for an empty object).
    d.status = code
    d.reason = 'Fuzzed'
    d.verdicts.delete('status')
    return void d.what.push(`status ${code} again`)
  }
  d.status = code
  d.reason = 'Fuzzed'
  if (code === 200 && rng.chance(0.5)) d.body = truth.object
  if (code === 204 || code === 304) d.body = Buffer.alloc(0)
  else if (d.dialect === 's3' && code >= 300) {
    d.body = s3ErrorDocument(rng)
    setHeader(d, 'Content-Type', 'application/xml')
  }
  fail(d, 'status', `status ${code}`)
}

function redirect(rng: Rng, d: Draft, truth: Truth, request: PeerRequest, ctx: ReplyContext): void {
  d.status = rng.pick([301, 302, 303, 307, 308])
  d.reason = 'Moved'
  d.body = Buffer.from('<a href="elsewhere">moved</a>')
  setHeader(d, 'Content-Range', undefined)
  const path = `${ctx.pathPrefix}moved-${rng.int(1000)}`
  const where = rng.pick(['relative', 'absolute', 'scheme-relative', 'dead port', 'garbage', 'none'] as const)
  const location = {
    relative: path,
    absolute: `${ctx.origin}${path}`,
    'scheme-relative': `//${new URL(ctx.origin).host}${path}`,
    'dead port': `http://127.0.0.1:${ctx.deadPort}${path}`,
    garbage: rng.pick(['http://[::1', 'http://', 'ht!tp://x', 'http://127.0.0.1:99999/']),
    none: undefined,
  }[where]
  setHeader(d, 'Location', location)
  const what = `redirect ${d.status} to ${where} ${JSON.stringify(location ?? null)}`
  if (d.dialect === 's3') fail(d, 'status', `${what}, which the S3 SDK does not follow`)
  else if (where === 'relative' || where === 'absolute' || where === 'scheme-relative') judge(d, 'status', { v: 'redirect' }, what)
  else fail(d, 'status', what)
}

/** What a Content-Range value says, read by the RFC 9110 grammar (unit case-insensitive, blanks after it). */
export function rangeMeaning(value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const m = /^bytes[ \t]+([0-9]+)-([0-9]+)\/([0-9]+|\*)$/i.exec(value.trim())
  if (m === null) return undefined
  const [first, last] = [BigInt(m[1]!), BigInt(m[2]!)]
  const total = m[3] === '*' ? undefined : BigInt(m[3]!)
  if (last < first || (total !== undefined && last >= total)) return undefined
  // A length no object has (past 2^53 − 1) cannot be told from its neighbours as a JS number.
  if ([first, last, total ?? 0n].some((n) => n > BigInt(Number.MAX_SAFE_INTEGER))) return undefined
  return `${first}-${last}/${total ?? '*'}`
}

/** The verdict on a Content-Range of `value` where `truth` ("first-last/total") is right. */
function judgeRange(d: Draft, value: string, truth: string, what: string): void {
  const meaning = rangeMeaning(value)
  if (meaning === truth) return either(d, 'range', `${what}, the same range`)
  if (meaning === undefined || meaning.endsWith('/*')) return fail(d, 'range', what)
  // Well-formed but not the truth: another range's bytes, or a length the probe cannot know is wrong.
  const sameRange = meaning.split('/')[0] === truth.split('/')[0]
  fail(d, 'range', what, sameRange ? 'total' : 'range')
}

function contentRange(rng: Rng, d: Draft, truth: Truth, request: PeerRequest): void {
  const current = header(d, 'Content-Range')
  const range = asked(request)
  if (d.status !== 206 || current === undefined || range === undefined) return status(rng, d, truth)
  const total = truth.object.length
  const end = Math.min(range.end, total - 1)
  const kind = rng.pick(['remove', 'other range', 'total', 'unsatisfied', 'garble', 'duplicate', 'equivalent'] as const)
  if (kind === 'remove') {
    setHeader(d, 'Content-Range', undefined)
    return fail(d, 'range', 'no Content-Range')
  }
  if (kind === 'other range') {
    // Truthful about another range: accepting it would install the wrong bytes.
    const start = Math.max(0, Math.min(total - 1, range.start + rng.pick([-4096, -1, 1, 4096, 0])))
    const last = Math.max(start, Math.min(total - 1, end + rng.pick([-4096, -1, 1, 0, 4096])))
    if (start === range.start && last === end) return contentRange(rng, d, truth, request)
    setHeader(d, 'Content-Range', `bytes ${start}-${last}/${total}`)
    d.body = truth.object.subarray(start, last + 1)
    return fail(d, 'range', `Content-Range of another range, ${start}-${last}`, 'range')
  }
  if (kind === 'total') {
    const t = rng.pick([String(total + 1), String(total - 1), '*', '0', '99999999999999999999', '9007199254740993', `0${total}`])
    setHeader(d, 'Content-Range', `bytes ${range.start}-${end}/${t}`)
    return judgeRange(d, `bytes ${range.start}-${end}/${t}`, `${range.start}-${end}/${total}`, `total ${t}`)
  }
  if (kind === 'unsatisfied') {
    setHeader(d, 'Content-Range', `bytes */${total}`)
    return fail(d, 'range', 'a 206 with an unsatisfied Content-Range')
  }
  if (kind === 'duplicate') {
    // node:http joins repeated Content-Range values with ", ".
    d.headers.push(['Content-Range', rng.chance(0.5) ? current : `bytes 0-0/${total}`])
    return fail(d, 'range', 'Content-Range twice')
  }
  const value =
    kind === 'equivalent'
      ? rng.pick([current.toUpperCase(), current.replace(' ', '\t'), current.replace(' ', '   '), ` ${current} `, current.replace(/(\d+)-/, '00$1-')])
      : garbleText(rng, current)
  setHeader(d, 'Content-Range', value)
  judgeRange(d, value, `${range.start}-${end}/${total}`, `Content-Range ${JSON.stringify(value)}`)
}

function contentLength(rng: Rng, d: Draft): void {
  const n = d.body.length
  const kind = rng.pick(['none', 'shorter', 'longer', 'longer, silent', 'not a number', 'twice, same', 'twice, different', 'huge'] as const)
  if (kind === 'none') {
    d.contentLength = []
    d.framing = 'close'
    d.verdicts.delete('framing')
    d.after = 'end'
    return fine(d, 'length', 'no Content-Length, body to the close')
  }
  if (kind === 'shorter') {
    if (n === 0) return
    d.contentLength = [String(n - rng.range(1, n))]
    d.after = 'end'
    return fail(d, 'length', `Content-Length ${d.contentLength[0]} of ${n}`, 'body')
  }
  if (kind === 'longer' || kind === 'longer, silent') {
    d.contentLength = [String(n + rng.range(1, 5000))]
    // Silent: the client waits for the rest until requestTimeoutMs. Rare, it costs time.
    d.after = kind === 'longer' || rng.chance(STALL_SKIP) ? rng.pick(['end', 'reset'] as const) : 'stall'
    return fail(d, 'length', `Content-Length ${d.contentLength[0]} of ${n}, then ${d.after}`, 'body')
  }
  if (kind === 'not a number') {
    d.contentLength = [rng.pick(['abc', '-1', '0x10', '1e3', '+4096', `${n}.0`, `${n}x`, ''])]
    d.after = 'end'
    return fail(d, 'length', `Content-Length ${JSON.stringify(d.contentLength[0])}`, 'body')
  }
  if (kind === 'twice, same') {
    d.contentLength = [String(n), String(n)]
    return either(d, 'length', 'Content-Length twice, the same')
  }
  if (kind === 'twice, different') {
    d.contentLength = [String(n), String(n + 1)]
    d.after = 'end'
    return fail(d, 'length', 'Content-Length twice, different', 'body')
  }
  d.contentLength = [rng.pick(['18446744073709551616', '99999999999999999999999', '9007199254740993'])]
  d.after = 'end'
  fail(d, 'length', `Content-Length ${d.contentLength[0]}`, 'body')
}

function truncated(rng: Rng, d: Draft): void {
  if (d.body.length === 0) return connectionGames(rng, d)
  // Nothing or part of the head sent already (connectionGames): that stands.
  if (d.cut !== undefined) return
  d.cut = -rng.range(1, Math.max(1, d.body.length))
  d.after = rng.pick(['end', 'reset'] as const)
  fail(d, 'body', `the last ${-d.cut} byte(s) not sent, then ${d.after}`, 'body')
}

function chunk(rng: Rng, d: Draft): void {
  // A new framing: a Content-Length games set before are gone with it.
  d.framing = 'chunked'
  d.contentLength = undefined
  d.verdicts.delete('length')
  d.verdicts.delete('framing')
  const sizes: number[] = []
  for (let left = d.body.length; left > 0; ) {
    const size = Math.min(left, rng.range(1, rng.pick([7, 512, 5000, 70_000])))
    sizes.push(size)
    left -= size
  }
  d.chunks = { sizes, last: true, trailer: rng.chance(0.1) ? 'X-Trailer: t\r\n' : undefined }
  if (rng.chance(0.1)) d.chunks.declared = new Map(sizes.map((s, i) => [i, `${s.toString(16)};ext=1`]))
}

function chunkGames(rng: Rng, d: Draft): void {
  chunk(rng, d)
  const chunks = d.chunks!
  const kind = rng.pick(['honest', 'size off', 'not hex', 'no last chunk', 'no last chunk, silent', 'also a Content-Length', 'upper-case hex'] as const)
  const i = rng.int(Math.max(1, chunks.sizes.length))
  const size = chunks.sizes[i] ?? 0
  if (kind === 'honest') return fine(d, 'framing', 'chunked')
  if (kind === 'upper-case hex') {
    chunks.declared = new Map(chunks.sizes.map((s, k) => [k, s.toString(16).toUpperCase()]))
    return fine(d, 'framing', 'chunked, upper-case hex')
  }
  if (kind === 'size off') {
    if (chunks.sizes.length === 0) return
    chunks.declared = new Map([[i, Math.max(0, size + rng.pick([-1, 1, 16, -16])).toString(16)]])
    d.after = 'end'
    return fail(d, 'framing', `chunk ${i} of ${size} declared ${chunks.declared.get(i)}`, 'body')
  }
  if (kind === 'not hex') {
    if (chunks.sizes.length === 0) return
    chunks.declared = new Map([[i, rng.pick(['zz', '-1', '', ' ', '0x10', 'ffffffffffffffffff'])]])
    d.after = 'end'
    return fail(d, 'framing', `chunk ${i} declared ${JSON.stringify(chunks.declared.get(i))}`, 'body')
  }
  if (kind === 'no last chunk' || kind === 'no last chunk, silent') {
    chunks.last = false
    d.after = kind === 'no last chunk' || rng.chance(STALL_SKIP) ? 'end' : 'stall'
    return fail(d, 'framing', `chunked without the last chunk, then ${d.after}`, 'body')
  }
  d.contentLength = [String(d.body.length)]
  d.after = 'end'
  either(d, 'framing', 'chunked and a Content-Length')
}

function extraBytes(rng: Rng, d: Draft): void {
  d.extra = rng.pick([Buffer.from('HTTP/1.1 500 Junk\r\nContent-Length: 0\r\n\r\n'), Buffer.from('junk'), rng.bytes(rng.range(1, 100))])
  either(d, 'extra', `${d.extra.length} byte(s) after the reply`)
}

function versionHeaders(rng: Rng, d: Draft, truth: Truth): void {
  const kind = rng.pick(['etag changed', 'no etag', 'weak etag', 'last-modified changed', 'neither'] as const)
  if (kind === 'etag changed') setHeader(d, 'ETag', '"v2"')
  else if (kind === 'no etag') setHeader(d, 'ETag', undefined)
  else if (kind === 'weak etag') setHeader(d, 'ETag', `W/${truth.etag}`)
  else if (kind === 'last-modified changed') setHeader(d, 'Last-Modified', 'Thu, 01 Jan 1970 00:00:00 GMT')
  else {
    setHeader(d, 'ETag', undefined)
    setHeader(d, 'Last-Modified', undefined)
  }
  // With an ETag pinned, Last-Modified is not compared.
  if (kind === 'last-modified changed') either(d, 'version', kind)
  else fail(d, 'version', kind, 'version')
}

function encodings(rng: Rng, d: Draft): void {
  const kind = rng.pick(['gzip', 'br', 'deflate', 'x-custom', 'identity', 'gzip, chunked', 'multipart'] as const)
  if (d.dialect === 's3' && kind !== 'gzip, chunked') {
    // Metadata of an S3 object, whose bytes are what was put.
    if (kind === 'multipart') setHeader(d, 'Content-Type', 'multipart/byteranges; boundary=fuzz')
    else setHeader(d, 'Content-Encoding', kind)
    return either(d, kind === 'multipart' ? 'content-type' : 'content-encoding', `S3 object metadata: ${kind}`)
  }
  if (kind === 'identity') {
    setHeader(d, 'Content-Encoding', 'identity')
    return fine(d, 'content-encoding', 'Content-Encoding: identity')
  }
  if (kind === 'gzip, chunked') {
    chunk(rng, d)
    d.headers.push(['Transfer-Encoding', 'gzip'])
    // The SDK's output does not show transfer codings: nothing S3 sends, and nothing the S3 backend can check.
    if (d.dialect === 's3') return either(d, 'transfer-coding', 'Transfer-Encoding: gzip, chunked')
    return fail(d, 'transfer-coding', 'Transfer-Encoding: gzip, chunked')
  }
  if (kind === 'multipart') {
    setHeader(d, 'Content-Type', 'multipart/byteranges; boundary=fuzz')
    return fail(d, 'content-type', 'Content-Type multipart/byteranges')
  }
  setHeader(d, 'Content-Encoding', kind)
  fail(d, 'content-encoding', `Content-Encoding: ${kind}`)
}

function informational(rng: Rng, d: Draft): void {
  const line = rng.pick(['100 Continue', '102 Processing', '103 Early Hints', '101 Switching Protocols'])
  d.informational.push(line)
  // They pile up: a 101 sent stays sent.
  if (line.startsWith('101')) either(d, 'informational', `${line} first`)
  else if (!d.verdicts.has('informational')) fine(d, 'informational', `${line} first`)
  else d.what.push(`${line} first`)
}

function connectionGames(rng: Rng, d: Draft): void {
  const kind = rng.pick(['reset at once', 'end at once', 'reset in the head', 'silent'] as const)
  if (kind === 'silent' && rng.chance(STALL_SKIP)) return connectionGames(rng, d)
  d.cut = kind === 'reset in the head' ? rng.range(1, 30) : 0
  d.after = kind === 'end at once' ? 'end' : kind === 'silent' ? 'stall' : 'reset'
  fail(d, 'connection', kind)
}

/** An S3 error body: a well-formed <Error>, or one broken in the ways an XML parser trips on. */
export function s3ErrorDocument(rng: Rng): Buffer {
  return s3Error(rng).body
}

/** An S3 error body, and the Code it says if it is a well-formed <Error>. */
export function s3Error(rng: Rng): { body: Buffer; code: string | undefined } {
  const code = rng.pick(['NoSuchKey', 'InvalidRange', 'AccessDenied', 'InternalError', 'SlowDown', 'NoSuchBucket', 'PreconditionFailed', ''])
  const good = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>fuzzed</Message><RequestId>r</RequestId></Error>`
  const kind = rng.pick(['good', 'truncated', 'html', 'empty', 'bytes', 'nested', 'entity', 'huge message', 'no code'] as const)
  const text = {
    good,
    truncated: good.slice(0, rng.int(good.length)),
    html: '<html><body>502 Bad Gateway</body></html>',
    empty: '',
    bytes: rng.bytes(rng.range(1, 64)).toString('latin1'),
    nested: '<Error>'.repeat(2000),
    entity: `<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x "${'x'.repeat(100)}"><!ENTITY y "&x;&x;&x;&x;">]><Error><Code>&y;</Code></Error>`,
    'huge message': `<Error><Code>${code}</Code><Message>${'m'.repeat(100_000)}</Message></Error>`,
    'no code': '<Error><Message>no code</Message></Error>',
  }[kind]
  return { body: Buffer.from(text, 'latin1'), code: kind === 'good' || kind === 'huge message' ? code : undefined }
}

/** A header value with bytes changed, inserted or deleted: never CR or LF, never empty. */
function garbleText(rng: Rng, text: string): string {
  const bytes = [...Buffer.from(text, 'latin1')]
  for (let n = rng.range(1, 3); n > 0; n--) {
    const at = rng.int(bytes.length + 1)
    const op = rng.int(3)
    const b = rng.pick([0x00, 0x09, 0x20, 0x2d, 0x2f, 0x2a, 0x30, 0x39, 0x7f, 0xff, rng.int(256)])
    if (b === 0x0a || b === 0x0d) continue
    if (op === 0 && at < bytes.length) bytes[at] = b
    else if (op === 1) bytes.splice(at, 0, b)
    else if (bytes.length > 1 && at < bytes.length) bytes.splice(at, 1)
  }
  return Buffer.from(bytes).toString('latin1')
}

function finish(rng: Rng, d: Draft): Built {
  // Closing a kept-alive connection unannounced races the client's next
  // request on it. The http backend sends that request again (getFresh);
  // the S3 SDK only if it has attempts left, and the fuzzer mostly gives it one.
  const announced = d.version === 'HTTP/1.0' || /close/i.test(header(d, 'Connection') ?? '')
  if (d.dialect === 's3' && d.after !== 'keep' && !announced && !d.verdicts.has('connection')) either(d, 'connection', 'the connection closed unannounced')
  // A reset may discard bytes already sent but not yet read: even a whole reply before it may not arrive.
  if (d.after === 'reset' && !d.verdicts.has('connection')) either(d, 'connection', 'reset after the reply')
  const lines = [`${d.version} ${d.status} ${d.reason}`, ...d.headers.map(([n, v]) => `${n}: ${v}`)]
  if (d.framing === 'length') for (const v of d.contentLength ?? [String(d.body.length)]) lines.push(`Content-Length: ${v}`)
  if (d.framing === 'chunked') {
    lines.push('Transfer-Encoding: chunked')
    for (const v of d.contentLength ?? []) lines.push(`Content-Length: ${v}`)
  }
  if (d.framing === 'close') for (const v of d.contentLength ?? []) lines.push(`Content-Length: ${v}`)
  const ends = lines.map(() => '\r\n')
  // Never the chunked framing's Transfer-Encoding (nor the end of the line
  // before it, which could fold it away): without it the chunk framing
  // would be delimited as page bytes, a lie no client can see through.
  const garbleable = lines.map((_, i) => i).filter((i) => !/^transfer-encoding/i.test(lines[i]!) && !/^transfer-encoding/i.test(lines[i + 1] ?? ''))
  if (d.rawGarble && garbleable.length > 0) {
    const i = rng.pick(garbleable)
    if (rng.chance(0.6)) lines[i] = garbleText(rng, lines[i]!)
    else ends[i] = rng.pick(['\n', '\r', '\r\n ', ' \r\n', '\r\n\t'])
    d.what.push(`raw head garble of line ${i}`)
    // Ended, so a garbled length cannot leave the client waiting.
    d.after = 'end'
  }
  const head = Buffer.from(d.informational.map((l) => `HTTP/1.1 ${l}\r\n\r\n`).join('') + lines.map((l, i) => l + ends[i]).join('') + '\r\n', 'latin1')
  const body = d.framing === 'chunked' ? chunked(d) : d.body
  let bytes = Buffer.concat([head, body, d.extra ?? Buffer.alloc(0)])
  if (d.cut !== undefined) bytes = bytes.subarray(0, d.cut < 0 ? Math.max(head.length, bytes.length + d.cut) : Math.min(d.cut, bytes.length))
  const cuts: number[] = []
  for (let n = rng.size(6); n > 0 && bytes.length > 1; n--) cuts.push(rng.range(1, bytes.length - 1))
  cuts.sort((a, b) => a - b)
  const expect = { read: expectation(d, 'read'), probe: expectation(d, 'probe'), 'read after a lie': expectation(d, 'read after a lie') }
  const pollutes = d.after === 'keep' && expect.read !== 'ok'
  return { answer: { bytes, cuts, after: d.after, pollutes }, expect, what: d.what }
}

function chunked(d: Draft): Buffer {
  const c = d.chunks!
  const parts: Buffer[] = []
  let at = 0
  c.sizes.forEach((size, i) => {
    parts.push(Buffer.from(`${c.declared?.get(i) ?? size.toString(16)}\r\n`), d.body.subarray(at, at + size), Buffer.from('\r\n'))
    at += size
  })
  if (c.last) parts.push(Buffer.from(`0\r\n${c.trailer ?? ''}\r\n`))
  return Buffer.concat(parts)
}
