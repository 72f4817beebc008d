// Redis scenarios of `pnpm bench`: a sequential scan and random page reads
// through a region over a real redis-server, against explicit ioredis code
// doing the same reads — one `await getBuffer` per page, and batched
// `mgetBuffer` calls with several in flight — in the same run.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { openRegion } from '@faultline/core'
import { fillPattern } from '@faultline/core/pattern'
import { builtinBackends, redisKeys } from '@faultline/backends'

const PAGE = 65536

function ensureRedis() {
  if (spawnSync('redis-server', ['--version']).status === 0) return
  if (process.getuid?.() !== 0) throw new Error('redis-server is not installed (apt-get install redis-server)')
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'redis-server']]) {
    const r = spawnSync('apt-get', args, { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed`)
  }
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

async function startRedis() {
  ensureRedis()
  const dir = mkdtempSync(join(tmpdir(), 'faultline-bench-redis-'))
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
  // Retries until the server listens; the offline queue holds the ping till then.
  const client = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 50 })
  client.on('error', () => undefined)
  const timeout = setTimeout(() => proc.kill(), 10_000)
  await client.ping()
  clearTimeout(timeout)
  return { port, client, stop: () => { client.disconnect(); proc.kill(); rmSync(dir, { recursive: true, force: true }) } }
}

export async function redisScenarios({ quick, row }) {
  const bytes = (quick ? 32 : 128) * 2 ** 20
  const pages = bytes / PAGE
  const server = await startRedis()
  try {
    const spec = { type: 'redis', url: `redis://127.0.0.1:${server.port}/bench` }
    // Load the dataset in the region layout through the backend itself.
    const data = Buffer.alloc(bytes)
    fillPattern(data, 0)
    const loader = await builtinBackends.redis(spec, { pageSize: PAGE, size: bytes, readOnly: false })
    for (let p = 0; p < pages; p += 64) {
      await loader.write(Array.from({ length: Math.min(64, pages - p) }, (_, i) => ({ index: p + i, data: data.subarray((p + i) * PAGE, (p + i + 1) * PAGE) })))
    }
    await loader.close()
    const keys = redisKeys(spec)
    const rate = (ms, n) => ({ ms, gbps: (n * PAGE) / ms / 1e6 })
    const random = []
    let s = 99
    while (random.length < pages / 4) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0
      random.push(s % pages)
    }
    let sink = 0
    const oneAwait = async (order) => {
      for (const p of order) sink += (await server.client.getBuffer(keys.page(p)))?.[0] ?? 0
    }
    const batchedLoop = async (order) => {
      const batches = []
      for (let i = 0; i < order.length; i += 64) batches.push(order.slice(i, i + 64))
      let next = 0
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (next < batches.length) {
          const batch = batches[next++]
          for (const b of await server.client.mgetBuffer(...batch.map((p) => keys.page(p)))) sink += b?.[0] ?? 0
        }
      }))
    }
    let faults = 0
    const mapped = async (order) => {
      const region = await openRegion({ backend: spec, pageSize: PAGE, access: 'read-only' })
      try {
        const v = region.view()
        const t0 = performance.now()
        for (const p of order) sink += v[p * PAGE]
        faults = region.stats().faults
        return performance.now() - t0
      } finally {
        await region.close()
      }
    }
    /** Best of two runs: the first pays for JIT, socket buffers and fresh guest memory. */
    const best = async (fn, order) => {
      let ms = Infinity
      for (let run = 0; run < 2; run++) {
        const t0 = performance.now()
        const inner = await fn(order)
        ms = Math.min(ms, inner ?? performance.now() - t0)
      }
      return rate(ms, order.length)
    }
    // Warm the server, the client and this process's memory once for everyone.
    await batchedLoop(Array.from({ length: pages }, (_, i) => i))
    for (const [scenario, order] of [['redis seq scan 64K', Array.from({ length: pages }, (_, i) => i)], ['redis random 64K', random]]) {
      const one = row(scenario, 'explicit: one await getBuffer per page', await best(oneAwait, order))
      const batched = row(scenario, 'explicit: mgetBuffer, 64 keys, 4 in flight', await best(batchedLoop, order), one)
      const r = row(scenario, 'faultline, mapped', await best(mapped, order), one)
      r.vs_batched = r.gbps / batched.gbps
      r.faults = faults
    }
    if (sink === -1) console.log(sink)
  } finally {
    server.stop()
  }
}
