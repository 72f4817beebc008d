/**
 * Byte-level mutations for the fuzzers. Each returns a new buffer and never
 * changes its input, so a case can be printed as "input + mutations". The
 * numeric and CRLF games aim at what text protocols (RESP, HTTP) trip on:
 * lengths and line ends.
 */
import type { Rng } from './rng.js'

export interface Mutated {
  bytes: Buffer
  /** What was done, for the failure message. */
  applied: string[]
}

/** Bytes that mean something to RESP or HTTP framing. */
const INTERESTING_BYTES = [0x00, 0x0a, 0x0d, 0x20, 0x2a, 0x24, 0x2b, 0x2d, 0x3a, 0x30, 0x31, 0x39, 0x7f, 0x80, 0xff]

/** Numbers that break length handling: off by one, negative, huge, not numbers at all. */
export const INTERESTING_NUMBERS = [
  '0', '-0', '1', '-1', '-2', '00', '007', '4095', '4096', '4097', '65535', '65536', '2147483647', '2147483648',
  '4294967295', '4294967296', '9007199254740991', '9007199254740992', '9007199254740993', '18446744073709551615',
  '99999999999999999999999', '-9007199254740993', '', '-', '+1', ' 1', '1 ', '1e3', '0x10', '1.5', 'abc', '١',
]

const LINE_ENDS = ['\n', '\r', '\r\r\n', '\n\r', '', '\r\n\r\n', ' \r\n', '\r\n ']

type Op = (rng: Rng, input: Buffer, donors: readonly Buffer[]) => { bytes: Buffer; what: string }

const ops: ReadonlyArray<readonly [number, Op]> = [
  [3, flipBits],
  [3, setInteresting],
  [2, insertBytes],
  [2, deleteRange],
  [1, duplicateRange],
  [2, truncate],
  [2, splice],
  [4, numberGame],
  [3, lineEndGame],
]

/** One to `max` random mutations of `input`; `donors` are other inputs to splice in. */
export function mutate(rng: Rng, input: Buffer, donors: readonly Buffer[] = [], max = 3): Mutated {
  let bytes = input
  const applied: string[] = []
  for (let n = rng.range(1, max); n > 0; n--) {
    const op = rng.weighted(ops)
    const result = op(rng, bytes, donors)
    bytes = result.bytes
    applied.push(result.what)
  }
  return { bytes, applied }
}

function flipBits(rng: Rng, input: Buffer): { bytes: Buffer; what: string } {
  if (input.length === 0) return insertBytes(rng, input)
  const out = Buffer.from(input)
  const at: number[] = []
  for (let n = rng.range(1, 4); n > 0; n--) {
    const i = rng.int(out.length)
    out[i]! ^= 1 << rng.int(8)
    at.push(i)
  }
  return { bytes: out, what: `flip bits at ${at.join(',')}` }
}

function setInteresting(rng: Rng, input: Buffer): { bytes: Buffer; what: string } {
  if (input.length === 0) return insertBytes(rng, input)
  const out = Buffer.from(input)
  const i = rng.int(out.length)
  const b = rng.pick(INTERESTING_BYTES)
  out[i] = b
  return { bytes: out, what: `byte ${i} := 0x${b.toString(16)}` }
}

function insertBytes(rng: Rng, input: Buffer): { bytes: Buffer; what: string } {
  const at = rng.int(input.length + 1)
  const piece = rng.chance(0.5) ? rng.bytes(rng.range(1, 8)) : Buffer.from(rng.pick(['\r\n', '$-1\r\n', '*2\r\n', ':1\r\n', '+OK\r\n', '$3\r\n', '0', '\r', '\n']))
  return { bytes: Buffer.concat([input.subarray(0, at), piece, input.subarray(at)]), what: `insert ${JSON.stringify(piece.toString('latin1'))} at ${at}` }
}

function deleteRange(rng: Rng, input: Buffer): { bytes: Buffer; what: string } {
  if (input.length === 0) return insertBytes(rng, input)
  const at = rng.int(input.length)
  const n = Math.min(input.length - at, rng.range(1, 16))
  return { bytes: Buffer.concat([input.subarray(0, at), input.subarray(at + n)]), what: `delete ${n} at ${at}` }
}

function duplicateRange(rng: Rng, input: Buffer): { bytes: Buffer; what: string } {
  if (input.length === 0) return insertBytes(rng, input)
  const at = rng.int(input.length)
  const n = Math.min(input.length - at, rng.range(1, 64))
  const piece = input.subarray(at, at + n)
  return { bytes: Buffer.concat([input.subarray(0, at + n), piece, input.subarray(at + n)]), what: `repeat ${n} at ${at}` }
}

function truncate(rng: Rng, input: Buffer): { bytes: Buffer; what: string } {
  const at = rng.int(input.length + 1)
  return { bytes: input.subarray(0, at), what: `truncate at ${at}` }
}

/** A prefix of the input followed by a suffix of a donor (or of itself). */
function splice(rng: Rng, input: Buffer, donors: readonly Buffer[]): { bytes: Buffer; what: string } {
  const donor = donors.length > 0 && rng.chance(0.7) ? rng.pick(donors) : input
  const cut = rng.int(input.length + 1)
  const from = rng.int(donor.length + 1)
  return { bytes: Buffer.concat([input.subarray(0, cut), donor.subarray(from)]), what: `splice at ${cut} from donor offset ${from}` }
}

/** Replaces one run of ASCII digits (with its sign) by an interesting number, or nudges it by ±1. */
function numberGame(rng: Rng, input: Buffer): { bytes: Buffer; what: string } {
  const runs: Array<[number, number]> = []
  for (let i = 0; i < input.length; ) {
    const start = i
    if (input[i] === 0x2d) i++
    const digits = i
    while (i < input.length && input[i]! >= 0x30 && input[i]! <= 0x39) i++
    if (i > digits) runs.push([start, i])
    else i = start + 1
  }
  if (runs.length === 0) return insertBytes(rng, input)
  const [from, to] = rng.pick(runs)
  const old = input.toString('latin1', from, to)
  const replacement = rng.chance(0.3) ? String(Number(old) + rng.pick([-1, 1])) : rng.pick(INTERESTING_NUMBERS)
  return { bytes: Buffer.concat([input.subarray(0, from), Buffer.from(replacement), input.subarray(to)]), what: `number ${old} at ${from} := ${JSON.stringify(replacement)}` }
}

/** Replaces one CRLF by another line end (or none), or adds one somewhere. */
function lineEndGame(rng: Rng, input: Buffer): { bytes: Buffer; what: string } {
  const ends: number[] = []
  for (let i = input.indexOf('\r\n'); i !== -1; i = input.indexOf('\r\n', i + 1)) ends.push(i)
  const replacement = rng.pick(LINE_ENDS)
  if (ends.length === 0 || rng.chance(0.2)) {
    const at = rng.int(input.length + 1)
    return { bytes: Buffer.concat([input.subarray(0, at), Buffer.from('\r\n'), input.subarray(at)]), what: `insert CRLF at ${at}` }
  }
  const at = rng.pick(ends)
  return { bytes: Buffer.concat([input.subarray(0, at), Buffer.from(replacement), input.subarray(at + 2)]), what: `CRLF at ${at} := ${JSON.stringify(replacement)}` }
}

/** Cut points in (0, length) splitting one stream into reads the way a socket might. */
export function chunking(rng: Rng, length: number): number[] {
  const style = rng.weighted<'whole' | 'one cut' | 'bytes' | 'random' | 'tiny'>([
    [2, 'whole'],
    [2, 'one cut'],
    [1, 'bytes'],
    [4, 'random'],
    [1, 'tiny'],
  ])
  if (length < 2 || style === 'whole') return []
  if (style === 'one cut') return [rng.range(1, length - 1)]
  // Reads of a byte or three only for short streams: a long one would cost a feed call per byte.
  if (style === 'bytes' && length <= 4096) return Array.from({ length: length - 1 }, (_, i) => i + 1)
  const cuts: number[] = []
  const most = style === 'tiny' && length <= 8192 ? 3 : Math.max(2, Math.floor(length / 2))
  for (let at = rng.range(1, most); at < length; at += rng.range(1, most)) cuts.push(at)
  return cuts
}

/** A short printable form of bytes for a failure message. */
export function preview(bytes: Buffer, max = 200): string {
  const text = JSON.stringify(bytes.subarray(0, max).toString('latin1'))
  return bytes.length > max ? `${text}… (${bytes.length} bytes)` : text
}
