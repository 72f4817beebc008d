// Fuzzes the S3 backend's dataset mode (packages/backends/src/s3, through
// @aws-sdk/client-s3) against the raw peer: HeadObject replies broken in
// status, Content-Length, ETag, dates and raw bytes (s3-replies.ts), ranged
// GETs answered as the HTTP fuzzer does in its S3 dialect (XML error bodies,
// well-formed or not; no redirects followed; codings are object metadata).
// The oracle is range-fuzz.ts's: true pages only, typed failures only.
import { afterAll, beforeAll, describe, it } from 'vitest'
import { createS3Backend } from '../../packages/backends/src/s3/index.js'
import { fuzzTimeoutMs, runCases, type Budget } from './cases.js'
import { FuzzPeer } from './http-peer.js'
import { buildReply } from './http-replies.js'
import { PAGE, RangeFuzz } from './range-fuzz.js'
import { headReply } from './s3-replies.js'

// The SDK's notice about Node 20 would repeat for every client made here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

const BUDGET: Budget = { cases: 150, seconds: 10 }
const REQUEST_TIMEOUT_MS = 1500

let peer: FuzzPeer
const fuzz = new RangeFuzz((rng, truth, request, prefix) =>
  request.method === 'HEAD' ? headReply(rng, truth, request) : buildReply(rng, truth, request, { dialect: 's3', pathPrefix: prefix, origin: peer.origin, deadPort: 1 }),
)

describe('S3 backend (dataset mode) fuzz', () => {
  beforeAll(async () => {
    peer = await FuzzPeer.start(fuzz.answer)
  })
  afterAll(() => peer?.close())

  it('resolves only true pages and fails only with typed errors, whatever HeadObject and GetObject get back', { timeout: fuzzTimeoutMs(BUDGET) }, async () => {
    await runCases('s3', BUDGET, (rng, index) =>
      fuzz.run(rng, index, (prefix) =>
        createS3Backend(
          {
            type: 's3',
            url: `s3://${prefix.slice(1, -1)}/object.bin`,
            mode: 'dataset',
            endpoint: peer.origin,
            region: 'us-east-1',
            credentials: { accessKeyId: 'fuzz', secretAccessKey: 'fuzz' },
            // One attempt mostly: the SDK's retry backoff costs time; two now and then, for its retry path.
            maxAttempts: rng.chance(0.8) ? 1 : 2,
            maxSockets: rng.pick([1, 2, 4]),
            maxRangeBytes: rng.pick([PAGE, 2 * PAGE, 64 * PAGE]),
            connectTimeoutMs: 2000,
            requestTimeoutMs: REQUEST_TIMEOUT_MS,
          },
          { pageSize: PAGE, size: undefined, readOnly: true },
        ),
      ),
    )
  })
})
