// S3 and HTTP scenarios of `pnpm bench`: sequential and sparse (1% of the
// pages at random) reads through a mapped s3rver object or HTTP file,
// against downloading the whole object with the SDK / fetch and against
// one explicit ranged GET per page, in the same run. The servers run in a
// child process (bench/remote-servers.mjs). Usable alone:
//   node bench/remote.mjs [--quick]
import { fork } from 'node:child_process'
import { createReadStream, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { openRegion } from '@faultline/core'
import { fillPattern } from '@faultline/core/pattern'
import { randomPages } from './sampling.mjs'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
const PAGE = 65536
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }

function startServers() {
  const child = fork(fileURLToPath(new URL('./remote-servers.mjs', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('message', (info) => resolve({ ...info, stop: () => child.disconnect() }))
    child.once('exit', (code) => reject(new Error(`bench servers exited (code ${code})`)))
  })
}

const gbps = (bytes, ms) => bytes / ms / 1e6

/**
 * Runs the scenarios; `row(scenario, subject, measurement, base)` records one
 * line of the table (bench/run.mjs's), `base` being the row a ratio is taken to.
 */
export async function remoteScenarios({ quick, row }) {
  const size = (quick ? 64 : 256) * 2 ** 20
  const servers = await startServers()
  try {
    const data = Buffer.alloc(size)
    fillPattern(data, 0)
    const path = join(servers.httpDir, 'bench.bin')
    writeFileSync(path, data)
    const client = new S3Client({ region: 'us-east-1', endpoint: servers.s3Endpoint, forcePathStyle: true, credentials: { ...credentials }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' })
    await client.send(new PutObjectCommand({ Bucket: 'bench', Key: 'bench.bin', Body: createReadStream(path), ContentLength: size }))

    const targets = [
      {
        name: 's3',
        backend: { type: 's3', url: 's3://bench/bench.bin', endpoint: servers.s3Endpoint, credentials },
        whole: async () => (await client.send(new GetObjectCommand({ Bucket: 'bench', Key: 'bench.bin' }))).Body.transformToByteArray(),
        range: async (start, end) => (await client.send(new GetObjectCommand({ Bucket: 'bench', Key: 'bench.bin', Range: `bytes=${start}-${end - 1}` }))).Body.transformToByteArray(),
        explicitName: 'SDK',
      },
      {
        name: 'http',
        backend: `${servers.httpBase}/bench.bin`,
        whole: async () => new Uint8Array(await (await fetch(`${servers.httpBase}/bench.bin`)).arrayBuffer()),
        range: async (start, end) => new Uint8Array(await (await fetch(`${servers.httpBase}/bench.bin`, { headers: { range: `bytes=${start}-${end - 1}` } })).arrayBuffer()),
        explicitName: 'fetch',
      },
    ]
    const sparse = randomPages(size / PAGE, size / PAGE / 100)
    for (const t of targets) {
      // Sequential: every byte, through the mapping vs one download of the whole object.
      let t0 = performance.now()
      const whole = await t.whole()
      const download = row(`${t.name} seq scan`, `explicit: whole object with ${t.explicitName}`, { ms: performance.now() - t0, gbps: gbps(size, performance.now() - t0) })
      if (whole.byteLength !== size) throw new Error(`${t.name}: downloaded ${whole.byteLength} bytes, expected ${size}`)
      const region = await openRegion({ backend: t.backend, pageSize: PAGE })
      try {
        const v = region.view()
        let sink = 0
        t0 = performance.now()
        for (let i = 0; i < size; i += 4096) sink += v[i]
        const ms = performance.now() - t0
        const s = region.stats()
        const r = row(`${t.name} seq scan`, 'faultline, mapped (readahead)', { ms, gbps: gbps(size, ms) }, download)
        r.faults = s.faults
        r.requests = s.fetchRequests
        if (sink === -1) console.log(sink)
      } finally {
        await region.close()
      }

      // Sparse: 1% of the pages at random; bytes that matter ÷ time to get them.
      const wanted = sparse.length * PAGE
      t0 = performance.now()
      const all = await t.whole()
      let sink = 0
      for (const p of sparse) sink += all[p * PAGE]
      const base = row(`${t.name} sparse 1%`, `explicit: whole object with ${t.explicitName}, then read`, { ms: performance.now() - t0, gbps: gbps(wanted, performance.now() - t0) })
      t0 = performance.now()
      for (const p of sparse) sink += (await t.range(p * PAGE, (p + 1) * PAGE))[0]
      row(`${t.name} sparse 1%`, `explicit: one ranged GET per page with ${t.explicitName}`, { ms: performance.now() - t0, gbps: gbps(wanted, performance.now() - t0) }, base)
      const sparseRegion = await openRegion({ backend: t.backend, pageSize: PAGE })
      try {
        const v = sparseRegion.view()
        t0 = performance.now()
        for (const p of sparse) sink += v[p * PAGE]
        const ms = performance.now() - t0
        const r = row(`${t.name} sparse 1%`, 'faultline, mapped', { ms, gbps: gbps(wanted, ms) }, base)
        r.faults = sparseRegion.stats().faults
        r.fetched = sparseRegion.stats().bytesFetched / size
      } finally {
        await sparseRegion.close()
      }
      if (sink === -1) console.log(sink)
    }
    client.destroy()
  } finally {
    servers.stop()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = []
  const row = (scenario, subject, m, base) => {
    const r = { scenario, subject, ...m }
    if (base !== undefined && base.gbps) r.ratio = m.gbps / base.gbps
    rows.push(r)
    return r
  }
  await remoteScenarios({ quick: process.argv.includes('--quick'), row })
  for (const r of rows) {
    const extra = [r.faults !== undefined ? `faults ${r.faults}` : '', r.requests !== undefined ? `requests ${r.requests}` : '', r.fetched !== undefined ? `fetched ${(r.fetched * 100).toFixed(2)}%` : ''].filter(Boolean).join(', ')
    console.log(`| ${r.scenario.padEnd(16)} | ${r.subject.padEnd(50)} | ${r.gbps.toFixed(3).padStart(7)} GB/s | ${r.ratio === undefined ? '     ' : r.ratio.toFixed(2).padStart(5)} | ${extra}`)
  }
}
