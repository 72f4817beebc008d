import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { conformance } from './conformance.js'
import { httpTarget, s3DatasetTarget, s3PagesTarget } from './remote-targets.js'
import { redisClusterTarget, redisStandaloneTarget } from './redis-targets.js'

// One entry per backend. Positional stores (memory, file) cannot hold a page
// of the wrong length, so they have no `corrupt` hook; key-value stores do.
const dir = mkdtempSync(join(tmpdir(), 'faultline-conf-'))
let n = 0
conformance('memory', { spec: () => ({ type: 'memory', data: new Uint8Array(new SharedArrayBuffer(8 << 20)) }) })
conformance('file', { spec: () => ({ type: 'file', path: join(dir, `f${n++}.bin`) }), cleanup: async () => rmSync(dir, { recursive: true, force: true }) })
conformance('redis', redisStandaloneTarget())
conformance('redis cluster', redisClusterTarget())
conformance('s3 dataset mode', s3DatasetTarget())
conformance('s3 pages mode', s3PagesTarget())
conformance('http', httpTarget())
