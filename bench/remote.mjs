// S3 and HTTP scenarios of `pnpm bench`: sequential and sparse (1% of the
// pages at random) reads through a mapped s3rver object or HTTP file, in the
// same run as what a user would write instead: downloading the whole object
// with the SDK / fetch, the best parallel ranged-GET loop over a small grid
// of part sizes and concurrencies (bench/remote-loops.mjs), and one ranged
// GET per page. Every subject runs on loopback and again through
// bench/delay-proxy.mjs at 5 ms and 20 ms round trip, so each ratio is taken
// within one latency. The servers run in a child process
// (bench/remote-servers.mjs). Usable alone:
//   node bench/remote.mjs [--quick] [--rtt 0,5,20]
import { fork } from 'node:child_process'
import { createReadStream, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { openRegion } from '@faultline/core'
import { fillPattern } from '@faultline/core/pattern'
import { startDelayProxy } from './proxy.mjs'
import { bestParallelLoop, describeLoop } from './remote-loops.mjs'
import { randomPages } from './sampling.mjs'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
const PAGE = 65536
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }
/** Round trips the scenarios run at, in ms: loopback, then through the delay proxy. */
export const ROUND_TRIPS_MS = [0, 5, 20]

export function startServers() {
  const child = fork(fileURLToPath(new URL('./remote-servers.mjs', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('message', (info) => resolve({ ...info, stop: () => child.disconnect() }))
    child.once('exit', (code) => reject(new Error(`bench servers exited (code ${code})`)))
  })
}

const gbps = (bytes, ms) => bytes / ms / 1e6
const rate = (bytes, ms) => ({ ms, gbps: gbps(bytes, ms) })

/** Runs `fn` (which returns its ms and anything else) `n` times and keeps the fastest run. */
async function bestOf(n, fn) {
  let best
  for (let i = 0; i < n; i++) {
    const r = await fn()
    if (best === undefined || r.ms < best.ms) best = r
  }
  return best
}

/** The S3 and HTTP targets as seen through `s3Endpoint` and `httpBase` (loopback or a delay proxy's port). */
function targetsAt(s3Endpoint, httpBase) {
  const client = new S3Client({ region: 'us-east-1', endpoint: s3Endpoint, forcePathStyle: true, credentials: { ...credentials }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' })
  const url = `${httpBase}/bench.bin`
  return {
    close: () => client.destroy(),
    targets: [
      {
        name: 's3',
        backend: { type: 's3', url: 's3://bench/bench.bin', endpoint: s3Endpoint, credentials },
        whole: async () => (await client.send(new GetObjectCommand({ Bucket: 'bench', Key: 'bench.bin' }))).Body.transformToByteArray(),
        range: async (start, end) => (await client.send(new GetObjectCommand({ Bucket: 'bench', Key: 'bench.bin', Range: `bytes=${start}-${end - 1}` }))).Body.transformToByteArray(),
        explicitName: 'SDK',
      },
      {
        name: 'http',
        backend: url,
        whole: async () => new Uint8Array(await (await fetch(url)).arrayBuffer()),
        range: async (start, end) => new Uint8Array(await (await fetch(url, { headers: { range: `bytes=${start}-${end - 1}` } })).arrayBuffer()),
        explicitName: 'fetch',
      },
    ],
  }
}

/** A fresh region over `backend`, `touch(view)` timed (after `advice` for the whole region, if given); the region's request and byte counts with it. */
async function mapped(backend, touch, advice) {
  const region = await openRegion({ backend, pageSize: PAGE })
  try {
    if (advice !== undefined) await region.advise(0, region.size, advice)
    const v = region.view()
    const t0 = performance.now()
    const sink = touch(v)
    const ms = performance.now() - t0
    if (sink === -1) console.log(sink)
    const s = region.stats()
    return { ms, faults: s.faults, requests: s.fetchRequests, fetched_bytes: s.bytesFetched }
  } finally {
    await region.close()
  }
}

async function seqScan(t, label, data, row, runs) {
  const size = data.byteLength
  const scenario = `${t.name} seq scan${label}`
  const whole = await bestOf(runs, async () => {
    const t0 = performance.now()
    const bytes = await t.whole()
    const ms = performance.now() - t0
    if (bytes.byteLength !== size) throw new Error(`${t.name}: downloaded ${bytes.byteLength} bytes, expected ${size}`)
    return { ms }
  })
  const download = row(scenario, `explicit: whole object with ${t.explicitName}`, rate(size, whole.ms))
  const best = await bestParallelLoop(t.range, data)
  const loop = row(scenario, `explicit: parallel ranged GETs with ${t.explicitName}, best (${describeLoop(best)})`, rate(size, best.ms), download)
  loop.part = best.part
  loop.concurrency = best.concurrency
  loop.grid = best.grid.map((g) => ({ part: g.part, concurrency: g.concurrency, gbps: gbps(size, g.ms) }))
  const scan = (v) => {
    let sink = 0
    for (let i = 0; i < size; i += 4096) sink += v[i]
    return sink
  }
  // The default, then what a user who knows it is a scan would write: advise('sequential').
  for (const [subject, advice] of [['faultline, mapped (readahead)', undefined], ["faultline, mapped, advise('sequential')", 'sequential']]) {
    const m = await bestOf(runs, () => mapped(t.backend, scan, advice))
    const r = row(scenario, subject, rate(size, m.ms), download)
    Object.assign(r, { faults: m.faults, requests: m.requests, fetched_bytes: m.fetched_bytes, vs_loop: r.gbps / loop.gbps, vs_download: r.gbps / download.gbps })
  }
}

async function sparseRead(t, label, size, pages, row, runs) {
  const scenario = `${t.name} sparse 1%${label}`
  const wanted = pages.length * PAGE
  let sink = 0
  let t0 = performance.now()
  const all = await t.whole()
  for (const p of pages) sink += all[p * PAGE]
  const base = row(scenario, `explicit: whole object with ${t.explicitName}, then read`, rate(wanted, performance.now() - t0))
  t0 = performance.now()
  for (const p of pages) sink += (await t.range(p * PAGE, (p + 1) * PAGE))[0]
  const perPage = row(scenario, `explicit: one ranged GET per page with ${t.explicitName}`, rate(wanted, performance.now() - t0), base)
  const m = await bestOf(runs, () =>
    mapped(t.backend, (v) => {
      let s = 0
      for (const p of pages) s += v[p * PAGE]
      return s
    }),
  )
  const r = row(scenario, 'faultline, mapped', rate(wanted, m.ms), base)
  Object.assign(r, { faults: m.faults, requests: m.requests, fetched_bytes: m.fetched_bytes, fetched: m.fetched_bytes / size, vs_per_page: r.gbps / perPage.gbps })
  if (sink === -1) console.log(sink)
}

/**
 * Runs the scenarios; `row(scenario, subject, measurement, base)` records one
 * line of the table (bench/run.mjs's), `base` being the row a ratio is taken to.
 */
export async function remoteScenarios({ quick, row, roundTrips = ROUND_TRIPS_MS }) {
  const size = (quick ? 64 : 256) * 2 ** 20
  const runs = 2 // faultline and the whole download: best of two, like the grid's best loop is a best
  const servers = await startServers()
  try {
    const data = Buffer.alloc(size)
    fillPattern(data, 0)
    const path = join(servers.httpDir, 'bench.bin')
    writeFileSync(path, data)
    const uploader = new S3Client({ region: 'us-east-1', endpoint: servers.s3Endpoint, forcePathStyle: true, credentials: { ...credentials }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' })
    await uploader.send(new PutObjectCommand({ Bucket: 'bench', Key: 'bench.bin', Body: createReadStream(path), ContentLength: size }))
    uploader.destroy()
    const sparse = randomPages(size / PAGE, size / PAGE / 100)
    for (const rtt of roundTrips) {
      const proxies = rtt === 0 ? [] : await Promise.all([servers.s3Endpoint, servers.httpBase].map((u) => startDelayProxy(Number(new URL(u).port), rtt / 2)))
      const at = (u, i) => (rtt === 0 ? u : `http://127.0.0.1:${proxies[i].port}`)
      const { targets, close } = targetsAt(at(servers.s3Endpoint, 0), at(servers.httpBase, 1))
      const label = rtt === 0 ? '' : `, ${rtt} ms RTT`
      try {
        for (const t of targets) {
          await seqScan(t, label, data, row, runs)
          await sparseRead(t, label, size, sparse, row, runs)
        }
      } finally {
        close()
        for (const p of proxies) p.stop()
      }
    }
  } finally {
    servers.stop()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { renderTable } = await import('./table.mjs')
  const rows = []
  const row = (scenario, subject, m, base) => {
    const r = { scenario, subject, ...m }
    if (base !== undefined && base.gbps) r.ratio = m.gbps / base.gbps
    rows.push(r)
    return r
  }
  const rttArg = process.argv.indexOf('--rtt')
  const roundTrips = rttArg > 0 ? process.argv[rttArg + 1].split(',').map(Number) : ROUND_TRIPS_MS
  await remoteScenarios({ quick: process.argv.includes('--quick'), row, roundTrips })
  console.log(renderTable(rows))
}
