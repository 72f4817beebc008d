// Fuzzes the S3 backend's pages mode (packages/backends/src/s3/pages.ts)
// against the raw peer: the store's faultline.json broken in geometry,
// format and JSON, pages broken in length, status, framing and raw bytes,
// absent pages as 404s with XML bodies well-formed or not (s3-replies.ts).
// Every page read resolves to the page's true bytes or absent (for a page
// that is absent), every failure is a FaultlineError with a code of the union.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Backend } from '@faultline/core/backend'
import { createS3Backend } from '../../packages/backends/src/s3/index.js'
import { fuzzTimeoutMs, runCases, type Budget } from './cases.js'
import { FuzzPeer, type PeerAnswer, type PeerRequest } from './http-peer.js'
import type { Built, Expect } from './http-replies.js'
import { mix32, Rng } from './rng.js'
import { metadataReply, pageReply, type Store } from './s3-replies.js'
import { typedCode } from './typed-error.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

const PAGE = 4096
const BUDGET: Budget = { cases: 100, seconds: 8 }

interface Logged {
  bucket: string
  /** The page index, or -1 for faultline.json. */
  page: number
  expect: Expect
  polluted: boolean
  what: string[]
}

let peer: FuzzPeer
let current: { seed: number; store: Store; log: Logged[]; seen: Map<string, number> } | undefined

function answer(request: PeerRequest): PeerAnswer {
  const c = current
  const [, bucket = '', ...rest] = request.path.split('?')[0]!.split('/')
  const key = rest.join('/')
  if (c === undefined) return { bytes: Buffer.from('HTTP/1.1 503 No case\r\nContent-Length: 0\r\n\r\n'), cuts: [], after: 'end', pollutes: false }
  const seen = `${bucket} ${key}`
  const n = c.seen.get(seen) ?? 0
  c.seen.set(seen, n + 1)
  let h = c.seed
  for (let i = 0; i < seen.length; i++) h = mix32(h ^ seen.charCodeAt(i))
  const rng = new Rng(h ^ mix32(n))
  const m = /^store\/pages\/([0-9a-f]{10})$/.exec(key)
  const page = m === null ? -1 : parseInt(m[1]!, 16)
  const built: Built = page === -1 ? metadataReply(rng, c.store) : pageReply(rng, c.store, page)
  c.log.push({ bucket, page, expect: built.expect.read, polluted: request.polluted, what: built.what })
  return built.answer
}

const describeLog = (log: readonly Logged[]): string =>
  log.map((l) => `\n    ${l.page === -1 ? 'faultline.json' : `page ${l.page}`}: ${l.expect}${l.polluted ? ' (polluted connection)' : ''} — ${l.what.join('; ') || 'honest'}`).join('')

/** The last reply for each object may be accepted; all of them honest means nothing may fail. */
function judge(log: readonly Logged[]): { acceptable: boolean; honest: boolean } {
  const last = new Map<number, Logged>()
  for (const l of log) last.set(l.page, l)
  return {
    acceptable: [...last.values()].every((l) => l.expect !== 'fail'),
    honest: log.length > 0 && log.every((l) => l.expect === 'ok' && !l.polluted),
  }
}

function storeOf(rng: Rng): Store {
  const count = rng.range(1, 6)
  const pages = Array.from({ length: count }, () => (rng.chance(0.7) ? rng.bytes(PAGE) : undefined))
  return { pageSize: PAGE, size: count * PAGE - rng.int(PAGE), pages }
}

async function oneCase(rng: Rng, index: number): Promise<void> {
  const store = storeOf(rng)
  const c = { seed: rng.next(), store, log: [] as Logged[], seen: new Map<string, number>() }
  current = c
  for (let generation = 0, reads = rng.range(1, 3); reads > 0; generation++) {
    const bucket = `c${index}g${generation}`
    const mine = (from: number): Logged[] => c.log.slice(from).filter((l) => l.bucket === bucket)
    let backend: Backend
    try {
      backend = await createS3Backend(
        { type: 's3', url: `s3://${bucket}/store`, mode: 'pages', endpoint: peer.origin, region: 'us-east-1', credentials: { accessKeyId: 'fuzz', secretAccessKey: 'fuzz' }, maxAttempts: 1, maxSockets: rng.pick([1, 4]), requestTimeoutMs: 1500 },
        { pageSize: PAGE, size: undefined, readOnly: true },
      )
    } catch (err) {
      const code = typedCode(err, 'opening the store')
      if (judge(mine(0)).honest) throw new Error(`opening failed (${code}: ${(err as Error).message}) after an honest exchange:${describeLog(mine(0))}`)
      reads--
      continue
    }
    try {
      if (!judge(mine(0)).acceptable) throw new Error(`opened after a reply it must refuse:${describeLog(mine(0))}`)
      if (judge(mine(0)).honest) expect(backend.info.size, 'the size honest metadata gives').toBe(store.size)
      for (; reads > 0; reads--) {
        const indexes = Array.from({ length: rng.range(1, 6) }, () => rng.int(store.pages.length))
        const from = c.log.length
        let got: ReadonlyArray<Uint8Array | undefined>
        try {
          got = await backend.read(indexes)
        } catch (err) {
          const code = typedCode(err, `reading pages ${indexes.join(',')}`)
          if (judge(mine(from)).honest) throw new Error(`reading pages ${indexes.join(',')} failed (${code}: ${(err as Error).message}) after an honest exchange:${describeLog(mine(from))}`)
          reads--
          break
        }
        if (!judge(mine(from)).acceptable) throw new Error(`pages ${indexes.join(',')} resolved after a reply it must refuse:${describeLog(mine(from))}`)
        indexes.forEach((page, slot) => {
          const want = store.pages[page]
          const have = got[slot]
          if (want === undefined) expect(have, `page ${page} is absent`).toBeUndefined()
          else if (have === undefined || !Buffer.from(have.buffer, have.byteOffset, have.byteLength).equals(want)) {
            throw new Error(`page ${page} is not its bytes (${have === undefined ? 'absent' : `${have.byteLength} bytes`}):${describeLog(mine(from))}`)
          }
        })
      }
    } finally {
      await backend.close()
    }
  }
  current = undefined
}

describe('S3 backend (pages mode) fuzz', () => {
  beforeAll(async () => {
    peer = await FuzzPeer.start(answer)
  })
  afterAll(() => peer?.close())

  it('resolves only the pages stored, or absent for absent ones, and fails only with typed errors', { timeout: fuzzTimeoutMs(BUDGET) }, async () => {
    await runCases('s3-pages', BUDGET, oneCase)
  })
})
