// Per-fault latency of random single-page touches through a Redis region
// (128 MiB of 64 KiB pages on a redis-server of its own), from the main
// thread, interleaved sample by sample with an explicit `await getBuffer`
// of the same page, in one process. See docs/experiments/redis-random-faults.md.
//   node bench/redis-faults.mjs [rounds=3]        TOUCHES=1024 faults a round
//   BASE=/path/to/other/checkout node bench/redis-faults.mjs 6
//       A/B: a second build of faultline (its packages/core/dist), interleaved too
//   node bench/redis-faults-trace.mjs && FT_TRACE=/tmp/ftt node bench/redis-faults.mjs 4
//       the fault's time broken down (this tree's region; `pnpm build` undoes the trace)
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { openRegion } from '@faultline/core'
import { builtinBackends, redisKeys } from '@faultline/backends'

const PAGE = 65536
const BYTES = 128 * 2 ** 20
const PAGES = BYTES / PAGE
const ROUNDS = Number(process.argv[2] ?? 3)
const TOUCHES = Number(process.env.TOUCHES ?? 1024) // per round, distinct pages (all misses)

const freePort = () => new Promise((resolve) => { const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) }) })

const dir = mkdtempSync(join(tmpdir(), 'faultline-prof-redis-'))
const port = await freePort()
const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
const client = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 50 })
client.on('error', () => undefined)
await client.ping()
const spec = { type: 'redis', url: `redis://127.0.0.1:${port}/prof` }
try {
  const loader = await builtinBackends.redis(spec, { pageSize: PAGE, size: BYTES, readOnly: false })
  const chunk = Buffer.alloc(64 * PAGE)
  for (let p = 0; p < PAGES; p += 64) {
    for (let i = 0; i < 64; i++) chunk.fill((p + i) & 255, i * PAGE, (i + 1) * PAGE)
    await loader.write(Array.from({ length: 64 }, (_, i) => ({ index: p + i, data: chunk.subarray(i * PAGE, (i + 1) * PAGE) })))
  }
  await loader.close()
  const keys = redisKeys(spec)
  const subjects = [{ name: 'faultline (this tree)', open: openRegion }]
  if (process.env.BASE) subjects.push({ name: `faultline (${process.env.BASE})`, open: (await import(join(process.env.BASE, 'packages/core/dist/index.js'))).openRegion })
  const lat = subjects.map(() => [])
  const loop = []
const TRACE = process.env.FT_TRACE
const marks = []
  const pagerP50 = subjects.map(() => [])
  let s = 7, sink = 0
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0)
  // warm the server and client
  for (let p = 0; p < PAGES; p++) sink += (await client.getBuffer(keys.page(p)))[0]
  for (let round = 0; round < ROUNDS; round++) {
    const regions = []
    for (const sub of subjects) regions.push(await sub.open({ backend: spec, pageSize: PAGE, access: 'read-only' }))
    const views = regions.map((r) => r.view())
    const perm = Array.from({ length: PAGES }, (_, i) => i)
    for (let i = PAGES - 1; i > 0; i--) { const j = rnd() % (i + 1); [perm[i], perm[j]] = [perm[j], perm[i]] }
    // Let the pagers settle (connect etc.)
    await new Promise((r) => setTimeout(r, 200))
    for (let i = 0; i < TOUCHES; i++) {
      const p = perm[i]
      const n = subjects.length + 1
      for (let k = 0; k < n; k++) {
        const which = (i + k) % n
        if (which < subjects.length) {
          const v = views[which]
          const h0 = which === 0 && TRACE ? Number(process.hrtime.bigint()) / 1e3 : 0
          const t0 = performance.now()
          sink += v[p * PAGE]
          lat[which].push(performance.now() - t0)
          if (h0) marks.push(h0, Number(process.hrtime.bigint()) / 1e3)
        } else {
          const t0 = performance.now()
          sink += (await client.getBuffer(keys.page(p)))[0]
          loop.push(performance.now() - t0)
        }
      }
    }
    for (const [k, r] of regions.entries()) { pagerP50[k].push(r.stats().faultLatencyUs.p50); if (process.env.STATS) console.log(JSON.stringify(r.stats()))
      await r.close() }
  }
  const q = (a, f) => { const b = [...a].sort((x, y) => x - y); return b[Math.min(b.length - 1, Math.floor(f * b.length))] * 1000 }
  const fmt = (name, a) => `${name.padEnd(44)} n=${a.length} p10=${q(a, 0.1).toFixed(0)} p50=${q(a, 0.5).toFixed(0)} p90=${q(a, 0.9).toFixed(0)} p99=${q(a, 0.99).toFixed(0)} mean=${(a.reduce((x, y) => x + y, 0) / a.length * 1000).toFixed(0)} us`
  for (const [k, sub] of subjects.entries()) console.log(fmt(sub.name, lat[k]), ' pager-side p50', pagerP50[k].join('/'))
  console.log(fmt('await getBuffer (ioredis)', loop))
  for (const [k, sub] of subjects.entries()) console.log(`${sub.name}: p50 ratio vs loop ${(q(loop, 0.5) / q(lat[k], 0.5)).toFixed(2)}x  mean ratio ${(loop.reduce((x, y) => x + y) / lat[k].reduce((x, y) => x + y) * lat[k].length / loop.length).toFixed(2)}x`)
  if (TRACE) {
    await new Promise((r) => setTimeout(r, 300))
    const { readdirSync, readFileSync } = await import('node:fs')
    const base = TRACE.split('/').pop()
    const ev = []
    for (const f of readdirSync(TRACE.slice(0, TRACE.lastIndexOf('/')))) if (f.startsWith(base + '-')) { const a = JSON.parse(readFileSync(join(TRACE.slice(0, TRACE.lastIndexOf('/')), f))); for (let i = 0; i < a.length; i += 2) ev.push([a[i], a[i + 1]]) }
    ev.sort((a, b) => a[1] - b[1])
    const segs = {}
    const add = (k, v) => (segs[k] ??= []).push(v)
    let j = 0
    for (let i = 0; i < marks.length; i += 2) {
      const [a, b] = [marks[i], marks[i + 1]]
      while (j < ev.length && ev[j][1] < a) j++
      const first = {}
      for (let k = j; k < ev.length && ev[k][1] <= b; k++) first[ev[k][0]] ??= ev[k][1]
      const need = [2, 3, 4, 5, 11, 6, 7, 8, 9]
      if (!need.every((c) => first[c] !== undefined)) { add('incomplete', 1); continue }
      add('A touch -> onMessages (kernel+uv_poll+native drain)', first[2] - a)
      add('B onMessages -> readWithRetry call (onFault, drain, plan)', first[3] - first[2])
      if (first[12] !== undefined) { add('B1 onMessages -> drain (onFault)', first[12] - first[2]); add('B2 drain -> runBatchAsync', first[13] - first[12]); add('B3 runBatchAsync -> fetchWithRetry', first[14] - first[13]); add('B4 fetchWithRetry -> readWithRetry (plan)', first[3] - first[14]) }
      add('C -> socket.write starts (backend.read, io.get, command)', first[4] - first[3])
      add('D socket.write', first[5] - first[4])
      add('E write -> first reply bytes (server RTT)', first[11] - first[5])
      add('F first bytes -> reply parsed', first[6] - first[11])
      add('G parsed -> fetcher resumes (promise hops)', first[7] - first[6])
      add('H fetcher -> runBatchAsync resumes (hops)', first[8] - first[7])
      add('I -> before UFFDIO_COPY (install books)', first[9] - first[8])
      add('J UFFDIO_COPY + wake -> toucher resumes', b - first[9])
      add('total', b - a)
    }
    const med = (a) => { const c = [...a].sort((x, y) => x - y); return c[c.length >> 1] }
    for (const [k, v] of Object.entries(segs)) console.log(k.padEnd(60), 'n=' + v.length, 'p50=' + med(v).toFixed(1), 'mean=' + (v.reduce((x, y) => x + y, 0) / v.length).toFixed(1))
  }
  if (sink === -1) console.log(sink)
} finally {
  client.disconnect(); proc.kill(); rmSync(dir, { recursive: true, force: true })
}

