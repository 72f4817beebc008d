// Fuzzes the page-read connection's RESP parser (packages/backends/src/redis/resp-parser.ts)
// against the reference decoder in resp-reference.ts: valid streams, the
// seed corpus in corpus/resp/, and mutations of both, each cut into random
// reads delivered in a reused buffer with junk past the read. The parser
// must give exactly the reference's replies and end state: the replies of
// the valid prefix, then a RespProtocolError where the bytes stop being
// RESP, and nothing else (no other exception, no differing value).
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { RespParser, RespProtocolError, RedisReplyError, type RespReply } from '../../packages/backends/src/redis/resp-parser.js'
import { runCases, fuzzTimeoutMs, type Budget } from './cases.js'
import { chunking, mutate, preview } from './mutate.js'
import { referenceDecode, type ReferenceLimits } from './resp-reference.js'
import * as gen from './resp-gen.js'
import type { Rng } from './rng.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const corpusDir = path.join(here, 'corpus', 'resp')
const corpus = readdirSync(corpusDir)
  .filter((f) => f.endsWith('.bin'))
  .sort()
  .map((f) => ({ name: f, bytes: readFileSync(path.join(corpusDir, f)) }))

/** The parser's header-line limit (resp-parser.ts); bulk values capped low so a mutated length cannot allocate gigabytes here. */
const LIMITS: ReferenceLimits = { maxLine: 64 * 1024, maxBulkLength: 1 << 20 }

interface Outcome {
  replies: unknown[]
  end: 'idle' | 'partial' | 'error'
}

/** Replies in a form that compares fast and prints short: a buffer (or a long string) as its length and digest. */
function digest(replies: readonly RespReply[]): unknown[] {
  const short = (v: Buffer | string): string => `${v.length} ${createHash('sha1').update(v).digest('hex').slice(0, 16)}`
  const text = (v: string): string => (v.length > 80 ? `string ${short(v)}` : v)
  const one = (v: unknown): unknown =>
    Buffer.isBuffer(v) ? `bytes ${short(v)}` : v instanceof RedisReplyError ? `error ${text(v.message)}` : typeof v === 'string' ? text(v) : Array.isArray(v) ? v.map(one) : v
  return replies.map(one)
}

/**
 * Feeds `bytes` cut at `cuts`, each read copied to the start of one reused
 * buffer whose bytes past the read are junk rich in CR and LF (a parser that
 * looks past `end` finds line ends that are not there).
 */
function parse(rng: Rng, bytes: Buffer, cuts: readonly number[]): Outcome {
  const replies: RespReply[] = []
  const given = new Set<Buffer>()
  const parser = new RespParser(
    (length) => {
      if (length > LIMITS.maxBulkLength) throw new Error(`the parser asked for a ${length}-byte buffer, past its maxBulkLength`)
      const b = Buffer.alloc(length, 0xa5)
      given.add(b)
      return b
    },
    (r) => replies.push(r),
    { maxBulkLength: LIMITS.maxBulkLength },
  )
  const reads = [...cuts, bytes.length]
  let longest = 0
  reads.reduce((from, to) => ((longest = Math.max(longest, to - from)), to), 0)
  const junk = Buffer.alloc(longest + 64).fill(Buffer.from(Array.from({ length: 61 }, () => rng.pick([0x0a, 0x0d, 0x24, 0x30, 0x2a]))))
  const socket = Buffer.alloc(junk.length)
  let at = 0
  let end: Outcome['end'] | undefined
  for (const cut of reads) {
    junk.copy(socket)
    const n = bytes.copy(socket, 0, at, cut)
    at = cut
    try {
      parser.feed(socket, n)
    } catch (err) {
      if (!(err instanceof RespProtocolError)) throw new Error(`the parser threw something other than a RespProtocolError: ${String(err)}`, { cause: err })
      end = 'error'
      break
    }
  }
  for (const r of replies) {
    for (const v of Array.isArray(r) ? r : [r]) {
      if (Buffer.isBuffer(v) && !given.has(v)) throw new Error('a bulk value is not the buffer allocate() gave for it')
    }
  }
  return { replies: digest(replies), end: end ?? (parser.idle ? 'idle' : 'partial') }
}

function reference(bytes: Buffer): Outcome {
  const r = referenceDecode(bytes, LIMITS)
  return { replies: digest(r.replies), end: r.end }
}

function check(rng: Rng, bytes: Buffer, what: string): Outcome {
  const cuts = chunking(rng, bytes.length)
  const expected = reference(bytes)
  const got = parse(rng, bytes, cuts)
  expect(got, `${what}\n  input ${preview(bytes)}\n  reads cut at ${cuts.slice(0, 20).join(',')}${cuts.length > 20 ? '…' : ''}`).toEqual(expected)
  return expected
}

/** A valid stream to start from: one of the corpus, or a generated one (whose replies are known). */
function validStream(rng: Rng): { bytes: Buffer; what: string } {
  if (rng.chance(0.4)) {
    const c = rng.pick(corpus)
    return { bytes: c.bytes, what: `corpus ${c.name}` }
  }
  const s = gen.stream(rng)
  expect(reference(s.bytes), 'the reference decoder disagrees with the generator').toEqual({ replies: digest(s.replies), end: 'idle' })
  return { bytes: s.bytes, what: 'generated' }
}

const FUZZ: Budget = { cases: 8000, seconds: 8 }

describe('RESP parser fuzz', () => {
  it('every corpus file is a valid stream', () => {
    for (const c of corpus) expect(reference(c.bytes).end, c.name).toBe('idle')
    expect(corpus.length).toBeGreaterThanOrEqual(8)
  })

  it('a stream truncated at every offset gives the replies before the cut and waits for the rest', () => {
    return runCases('resp-truncation', { cases: corpus.length, seconds: 8, exhaustive: true }, (rng, index) => {
      const c = corpus[index % corpus.length]!
      for (let at = 0; at <= c.bytes.length; at += at < 600 ? 1 : 97) {
        const outcome = check(rng, c.bytes.subarray(0, at), `corpus ${c.name} truncated at ${at}`)
        expect(outcome.end).not.toBe('error')
      }
    })
  })

  it('valid streams, and streams of two spliced together, parse as the reference decodes them', { timeout: fuzzTimeoutMs(FUZZ) }, async () => {
    await runCases('resp-valid', { cases: 1000, seconds: 4 }, (rng) => {
      const a = validStream(rng)
      const b = validStream(rng)
      check(rng, a.bytes, a.what)
      expect(check(rng, Buffer.concat([a.bytes, b.bytes]), `${a.what} + ${b.what}`).end).toBe('idle')
    })
  })

  it('mutated streams give the valid prefix\'s replies, then a RespProtocolError or a wait: never a different value', { timeout: fuzzTimeoutMs(FUZZ) }, async () => {
    const donors = corpus.map((c) => c.bytes)
    await runCases('resp-mutated', FUZZ, (rng) => {
      const base = validStream(rng)
      const m = mutate(rng, base.bytes, donors, 4)
      check(rng, m.bytes, `${base.what}, mutated: ${m.applied.join('; ')}`)
    })
  })
})
