import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { conformance } from './conformance.js'

// One entry per backend. Positional stores (memory, file) cannot hold a page
// of the wrong length, so they have no `corrupt` hook; key-value stores do.
const dir = mkdtempSync(join(tmpdir(), 'faultline-conf-'))
let n = 0
conformance('memory', { spec: () => ({ type: 'memory', data: new Uint8Array(new SharedArrayBuffer(8 << 20)) }) })
conformance('file', { spec: () => ({ type: 'file', path: join(dir, `f${n++}.bin`) }), cleanup: async () => rmSync(dir, { recursive: true, force: true }) })
