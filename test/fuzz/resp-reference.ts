/**
 * A reference RESP2 decoder for the fuzzer to check the streaming parser
 * against: whole stream in, recursive descent, written for obviousness, not
 * speed. It decodes the subset the page-read parser promises (simple
 * strings, errors, integers, bulk strings, nil, flat arrays) as strictly as
 * the protocol spec puts it: every line ends in CRLF, a bulk value is
 * followed by CRLF, lengths are -1 or unsigned.
 */
import { RedisReplyError, type RespReply, type RespValue } from '../../packages/backends/src/redis/resp-parser.js'

export interface ReferenceLimits {
  /** Longest header line, CR included, LF not. */
  maxLine: number
  maxBulkLength: number
}

export interface ReferenceResult {
  /** The top-level replies complete before the end of the stream or the first bad byte. */
  replies: RespReply[]
  /** `idle`: nothing left over; `partial`: a valid start of one more reply; `error`: not RESP. */
  end: 'idle' | 'partial' | 'error'
}

const PARTIAL = Symbol('partial')
const ERROR = Symbol('error')
type Fail = typeof PARTIAL | typeof ERROR

export function referenceDecode(stream: Buffer, limits: ReferenceLimits): ReferenceResult {
  const replies: RespReply[] = []
  let at = 0
  while (at < stream.length) {
    const r = reply(stream, at, limits, false)
    if (r === PARTIAL) return { replies, end: 'partial' }
    if (r === ERROR) return { replies, end: 'error' }
    replies.push(r.value)
    at = r.next
  }
  return { replies, end: 'idle' }
}

function reply(s: Buffer, at: number, limits: ReferenceLimits, inArray: boolean): { value: RespReply; next: number } | Fail {
  const l = line(s, at, limits)
  if (typeof l === 'symbol') return l
  const text = s.subarray(l.from, l.to)
  const type = text[0]
  const rest = text.subarray(1)
  switch (type) {
    case 0x2b: // +
      return { value: rest.toString('utf8'), next: l.next }
    case 0x2d: // -
      return { value: new RedisReplyError(rest.toString('utf8')), next: l.next }
    case 0x3a: {
      // :
      const n = signed(rest)
      return n === undefined ? ERROR : { value: n, next: l.next }
    }
    case 0x24: {
      // $
      const n = length(rest)
      if (n === undefined || n > limits.maxBulkLength) return ERROR
      if (n === -1) return { value: null, next: l.next }
      const end = l.next + n
      // Bytes of the value may be missing yet; those of its CRLF that are here must be CRLF.
      if (s.length > end && s[end] !== 0x0d) return ERROR
      if (s.length > end + 1 && s[end + 1] !== 0x0a) return ERROR
      if (s.length < end + 2) return PARTIAL
      return { value: Buffer.from(s.subarray(l.next, end)), next: end + 2 }
    }
    case 0x2a: {
      // *
      if (inArray) return ERROR
      const n = length(rest)
      if (n === undefined) return ERROR
      if (n === -1) return { value: null, next: l.next }
      const items: RespValue[] = []
      let next = l.next
      for (let i = 0; i < n; i++) {
        const item = reply(s, next, limits, true)
        if (typeof item === 'symbol') return item
        items.push(item.value as RespValue)
        next = item.next
      }
      return { value: items, next }
    }
    default:
      return ERROR
  }
}

/** The header line at `at`: its text [from, to) without CRLF, and where the next thing starts. */
function line(s: Buffer, at: number, limits: ReferenceLimits): { from: number; to: number; next: number } | Fail {
  const lf = s.indexOf(0x0a, at)
  if (lf === -1) return s.length - at > limits.maxLine ? ERROR : PARTIAL
  if (lf - at > limits.maxLine) return ERROR
  if (lf === at || s[lf - 1] !== 0x0d) return ERROR
  return { from: at, to: lf - 1, next: lf + 1 }
}

/** An integer reply: an optional minus, then digits, within the safe integers. */
function signed(text: Buffer): number | undefined {
  const negative = text[0] === 0x2d
  const digits = negative ? text.subarray(1) : text
  const n = unsigned(digits)
  if (n === undefined) return undefined
  return negative ? -n : n
}

/** A bulk length or array count: -1 (nil) or digits. */
function length(text: Buffer): number | undefined {
  if (text.length === 2 && text[0] === 0x2d && text[1] === 0x31) return -1
  return unsigned(text)
}

function unsigned(digits: Buffer): number | undefined {
  if (digits.length === 0 || digits.some((b) => b < 0x30 || b > 0x39)) return undefined
  // BigInt, not the parser's running sum: the reference should not share its arithmetic.
  const n = BigInt(digits.toString('latin1'))
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(n)
}
