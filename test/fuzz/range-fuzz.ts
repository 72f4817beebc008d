/**
 * The case loop and oracle shared by the fuzzers of the range backends
 * (HTTP, S3 dataset mode): an object, a peer answering each request with a
 * reply drawn from the case's seed, a real backend opening the object and
 * reading random pages, and the checks on what it resolves and how it fails.
 */
import { expect } from 'vitest'
import type { Backend } from '@faultline/core/backend'
import type { PeerAnswer, PeerRequest } from './http-peer.js'
import type { Built, Expect, Phase, Truth } from './http-replies.js'
import { mix32, Rng } from './rng.js'
import { typedCode } from './typed-error.js'

export const PAGE = 4096

interface Logged {
  prefix: string
  /** The method (unless GET) and Range of the request: the replies to one range are judged together. */
  range: string
  expect: Record<Phase, Expect>
  polluted: boolean
  what: string[]
}

interface CaseState {
  seed: number
  truth: Truth
  log: Logged[]
  seen: Map<string, number>
}

/** Makes the reply to a request, from a generator drawn for exactly that request. */
export type Replier = (rng: Rng, truth: Truth, request: PeerRequest, prefix: string) => Built

function hash(text: string): number {
  let h = 0
  for (let i = 0; i < text.length; i++) h = mix32(h ^ text.charCodeAt(i))
  return h
}

const expectation = (l: Logged, phase: Phase): Expect => l.expect[phase]

function describeChain(chain: readonly Logged[], phase: Phase): string {
  if (chain.length === 0) return '(no requests)'
  return chain.map((l) => `\n    ${l.range}: ${expectation(l, phase)}${l.polluted ? ' (polluted connection)' : ''} — ${l.what.join('; ')}`).join('')
}

/** Every range's last reply may be accepted (the replies before it were redirects or retried). */
function acceptable(chain: readonly Logged[], phase: Phase): boolean {
  const last = new Map<string, Logged>()
  for (const l of chain) last.set(l.range, l)
  return [...last.values()].every((l) => expectation(l, phase) === 'ok' || expectation(l, phase) === 'either')
}

/** Nothing in the exchange gave a correct client a reason to fail. */
function honest(chain: readonly Logged[], phase: Phase): boolean {
  const redirects = new Map<string, number>()
  for (const l of chain) if (expectation(l, phase) === 'redirect') redirects.set(l.range, (redirects.get(l.range) ?? 0) + 1)
  const fine = (l: Logged): boolean => (expectation(l, phase) === 'ok' || expectation(l, phase) === 'redirect') && !l.polluted
  return chain.length > 0 && chain.every(fine) && [...redirects.values()].every((n) => n <= 5)
}

function objectOf(rng: Rng): Buffer {
  const size = rng.weighted<() => number>([
    [1, () => 0],
    [2, () => rng.range(1, PAGE)],
    [6, () => rng.range(PAGE + 1, 5 * PAGE)],
  ])()
  // No CR or LF in the object: then no framing mistake can line up with
  // bytes of the body, and any wrong page is the client's fault.
  return Buffer.from(rng.bytes(size).map((b) => (b === 0x0d || b === 0x0a ? 0x20 : b)))
}

/** Page `index` of the object as a backend opened at `size` bytes sees it (the server may have lied about the size, consistently). */
function expectedPage(object: Buffer, size: number, index: number): Buffer | undefined {
  if (index * PAGE >= size) return undefined
  const page = Buffer.alloc(PAGE)
  object.copy(page, 0, index * PAGE, Math.min(object.length, size, (index + 1) * PAGE))
  return page
}

export class RangeFuzz {
  private current: CaseState | undefined

  constructor(private readonly reply: Replier) {}

  /** The peer's answer function. */
  readonly answer = (request: PeerRequest): PeerAnswer => {
    const c = this.current
    if (c === undefined) return { bytes: Buffer.from('HTTP/1.1 503 No case\r\nContent-Length: 0\r\n\r\n'), cuts: [], after: 'end', pollutes: false }
    const prefix = `/${request.path.split('/')[1] ?? ''}/`
    const range = `${request.method === 'GET' ? '' : `${request.method} `}${request.headers.range ?? '(no range)'}`
    // Drawn from the request's backend, range and repeat, not from arrival order: concurrent requests stay deterministic.
    const key = `${prefix} ${range}`
    const n = c.seen.get(key) ?? 0
    c.seen.set(key, n + 1)
    const built = this.reply(new Rng(c.seed ^ hash(`${key} ${n}`)), c.truth, request, prefix)
    c.log.push({ prefix, range, expect: built.expect, polluted: request.polluted, what: built.what })
    return built.answer
  }

  /**
   * One case: an object, then backends opened by `open` (each under a path
   * prefix of its own, so requests still in flight from a failed one are
   * told apart) reading random pages until the case's reads are used up.
   */
  async run(rng: Rng, index: number, open: (prefix: string) => Promise<Backend>): Promise<void> {
    const object = objectOf(rng)
    const truth = { object, etag: `"e${index}"`, lastModified: new Date(Date.UTC(2020, 0, 1 + (index % 300))).toUTCString() }
    const state: CaseState = { seed: rng.next(), truth, log: [], seen: new Map() }
    this.current = state
    try {
      await this.reads(rng, index, state, open)
    } finally {
      this.current = undefined
    }
  }

  private async reads(rng: Rng, index: number, state: CaseState, open: (prefix: string) => Promise<Backend>): Promise<void> {
    const { object } = state.truth
    const chainOf = (prefix: string, from: number): Logged[] => state.log.slice(from).filter((l) => l.prefix === prefix)
    let generation = 0
    let reads = rng.range(1, 4)
    while (reads > 0) {
      const prefix = `/c${index}g${generation++}/`
      const opened = state.log.length
      let backend: Backend
      try {
        backend = await open(prefix)
      } catch (err) {
        const chain = chainOf(prefix, opened)
        const code = typedCode(err, 'opening')
        if (honest(chain, 'probe')) throw new Error(`opening failed (${code}: ${(err as Error).message}) after an honest exchange:${describeChain(chain, 'probe')}`)
        reads--
        continue
      }
      const probe = chainOf(prefix, opened)
      // Only an honest probe pins the true version and length; after any other, honest replies may rightly be refused.
      const trusted = honest(probe, 'probe')
      const phase: Phase = trusted ? 'read' : 'read after a lie'
      try {
        if (!acceptable(probe, 'probe')) throw new Error(`opened after a reply it must refuse:${describeChain(probe, 'probe')}`)
        if (trusted) expect(backend.info.size, 'the size an honest probe gives').toBe(object.length)
        const size = backend.info.size ?? 0
        for (; reads > 0; reads--) {
          const pages = Math.ceil(object.length / PAGE) + 1
          const indexes = Array.from({ length: rng.range(1, 6) }, () => rng.int(pages))
          const from = state.log.length
          let got: ReadonlyArray<Uint8Array | undefined>
          try {
            got = await backend.read(indexes)
          } catch (err) {
            const chain = chainOf(prefix, from)
            const code = typedCode(err, `reading pages ${indexes.join(',')}`)
            if (trusted && honest(chain, 'read')) throw new Error(`reading pages ${indexes.join(',')} failed (${code}: ${(err as Error).message}) after an honest exchange:${describeChain(chain, 'read')}`)
            if (code === 'ERR_SOURCE_CHANGED') {
              // Sticky: the next read is refused at once, with no request.
              const again = await backend.read(indexes).then(() => 'resolved', (e: unknown) => typedCode(e, 'reading again'))
              expect(again, 'a read after ERR_SOURCE_CHANGED').toBe('ERR_SOURCE_CHANGED')
            }
            // A failed read may leave requests in flight: the next reads go to a new backend, under a new path.
            reads--
            break
          }
          const chain = chainOf(prefix, from)
          if (!acceptable(chain, phase)) throw new Error(`pages ${indexes.join(',')} resolved after a reply it must refuse:${describeChain(chain, phase)}`)
          indexes.forEach((page, slot) => {
            const want = expectedPage(object, size, page)
            const have = got[slot]
            if (want === undefined) expect(have, `page ${page} (past the end)`).toBeUndefined()
            else if (have === undefined || !Buffer.from(have.buffer, have.byteOffset, have.byteLength).equals(want)) {
              const opened = `the object is ${object.length} bytes, opened as ${size} after:${describeChain(probe, 'probe')}`
              throw new Error(`page ${page} is not the object's bytes (${have === undefined ? 'absent' : `${have.byteLength} bytes`}); ${opened}\n  read:${describeChain(chain, phase)}`)
            }
          })
        }
      } finally {
        await backend.close()
      }
    }
  }
}
