// Fuzzes the HTTP range backend (packages/backends/src/http, remote/) against
// a raw peer (http-peer.ts) that answers its range requests with replies
// broken in status, Content-Range, lengths, framing, truncation, resets and
// raw head bytes (http-replies.ts). The real backend opens the object and
// reads random pages; every page it resolves must be the object's true
// bytes, every failure a FaultlineError with a code of the union, a reply a
// correct client must refuse is never accepted, and an honest exchange
// never fails (range-fuzz.ts).
import net from 'node:net'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { createHttpBackend } from '../../packages/backends/src/http/index.js'
import { fuzzTimeoutMs, runCases, type Budget } from './cases.js'
import { FuzzPeer } from './http-peer.js'
import { buildReply } from './http-replies.js'
import { PAGE, RangeFuzz } from './range-fuzz.js'

const BUDGET: Budget = { cases: 300, seconds: 10 }
/** Long enough that an honest reply on a loaded machine never times out; the few silent replies cost this each. */
const REQUEST_TIMEOUT_MS = 1500

let peer: FuzzPeer
let deadPort: number
const fuzz = new RangeFuzz((rng, truth, request, prefix) => buildReply(rng, truth, request, { dialect: 'http', pathPrefix: prefix, origin: peer.origin, deadPort }))

describe('HTTP range backend fuzz', () => {
  beforeAll(async () => {
    peer = await FuzzPeer.start(fuzz.answer)
    const dead = net.createServer()
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve))
    deadPort = (dead.address() as net.AddressInfo).port
    await new Promise<void>((resolve) => dead.close(() => resolve()))
  })
  afterAll(() => peer?.close())

  it('resolves only true pages, fails only with typed errors, refuses what it must and accepts what is honest', { timeout: fuzzTimeoutMs(BUDGET) }, async () => {
    await runCases('http', BUDGET, (rng, index) =>
      fuzz.run(rng, index, (prefix) => {
        const options = { maxSockets: rng.pick([1, 2, 4]), maxRangeBytes: rng.pick([PAGE, 2 * PAGE, 64 * PAGE]), connectTimeoutMs: 2000, requestTimeoutMs: REQUEST_TIMEOUT_MS }
        return createHttpBackend({ type: 'http', url: `${peer.origin}${prefix}object.bin`, ...options }, { pageSize: PAGE, size: undefined, readOnly: true })
      }),
    )
  })
})
