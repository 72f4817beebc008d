/**
 * Random valid RESP2 reply streams of the kinds a page-read connection gets
 * (MGET arrays of page-sized values and nils, the +OK/-ERR of the
 * handshake), with bulk values full of bytes that look like framing.
 */
import { RedisReplyError, type RespReply, type RespValue } from '../../packages/backends/src/redis/resp-parser.js'
import type { Rng } from './rng.js'

/** Values that look like RESP headers, so a parser that loses its place gets plausible garbage. */
const LOOKALIKES = ['\r\n', '$4\r\n', '*2\r\n', '$-1\r\n', '+OK\r\n', ':1\r\n', '\n', '\r', '-ERR\r\n']

export function encode(reply: RespReply): Buffer {
  if (Array.isArray(reply)) return Buffer.concat([Buffer.from(`*${reply.length}\r\n`), ...reply.map(encode)])
  if (reply === null) return Buffer.from('$-1\r\n')
  if (Buffer.isBuffer(reply)) return Buffer.concat([Buffer.from(`$${reply.length}\r\n`), reply, Buffer.from('\r\n')])
  if (reply instanceof RedisReplyError) return Buffer.from(`-${reply.message}\r\n`)
  if (typeof reply === 'number') return Buffer.from(`:${reply}\r\n`)
  return Buffer.from(`+${reply}\r\n`)
}

export function bulkValue(rng: Rng): Buffer {
  const length = rng.weighted<() => number>([
    [6, () => rng.size(64)],
    [2, () => rng.pick([512, 4096])],
    [1, () => rng.size(20_000)],
    [0.05, () => 70_000],
  ])()
  const out = rng.bytes(length)
  // Sprinkle framing look-alikes over the random bytes.
  for (let n = rng.size(8); n > 0 && length > 0; n--) {
    const piece = Buffer.from(rng.pick(LOOKALIKES))
    piece.copy(out, rng.int(length))
  }
  return out
}

/** Text for a simple string or an error: no CR or LF, any other byte (UTF-8 or not). */
function lineText(rng: Rng): string {
  const kind = rng.pick(['OK', 'PONG', 'ERR wrong number of arguments', 'MOVED 3999 127.0.0.1:6381', 'NOAUTH Authentication required.', 'random'])
  if (kind !== 'random') return kind
  // Rarely, a line just short of the parser's 64 KiB header limit ('+' or '-', the text, CR): a mutation may push it over.
  if (rng.chance(0.01)) return 'x'.repeat(64 * 1024 - 2 - rng.int(3))
  // Invalid UTF-8 decodes to U+FFFD, which encodes and decodes to itself: the value round-trips.
  return Buffer.from(rng.bytes(rng.size(40)).map((b) => (b === 0x0a || b === 0x0d ? 0x20 : b))).toString('utf8')
}

export function element(rng: Rng): RespValue {
  return rng.weighted<() => RespValue>([
    [5, () => bulkValue(rng)],
    [2, () => null],
    [1, () => lineText(rng)],
    [1, () => new RedisReplyError(lineText(rng))],
    [1, () => rng.pick([0, 1, -1, 42, -7, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, rng.next(), -rng.next()])],
  ])()
}

export function reply(rng: Rng): RespReply {
  if (rng.chance(0.5)) return element(rng)
  if (rng.chance(0.1)) return rng.pick<RespReply>([[], null])
  return Array.from({ length: rng.range(1, 8) }, () => element(rng))
}

/** Replies and their bytes. */
export function stream(rng: Rng, most = 6): { replies: RespReply[]; bytes: Buffer } {
  const replies = Array.from({ length: rng.range(1, most) }, () => reply(rng))
  return { replies, bytes: Buffer.concat(replies.map(encode)) }
}
