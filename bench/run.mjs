// `pnpm bench`: faultline against its baselines, measured in the same run.
// Builds the C kernel floor (bench/floor.c), runs every scenario, prints a
// table with ratios and writes .bench/results.json. See docs/benchmarks.md.
import { closeSync, fdatasyncSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync, readSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openRegion, releasePagerThreads } from '@faultline/core'
import { fillPattern } from '@faultline/core/pattern'
import { builtinBackends } from '@faultline/backends'
import { hugeScenarios } from './huge.mjs'
import { bestTouch, createRows, floor, out, runFloor, summarize, touch } from './measure.mjs'
import { remoteScenarios } from './remote.mjs'
import { randomPages } from './sampling.mjs'
import { redisScenarios } from './redis.mjs'
import { serveScenarios } from './serve.mjs'
import { renderTable } from './table.mjs'
import { sharedScenarios } from './shared.mjs'

mkdirSync(out, { recursive: true })
// Warm-up: have the host back a gigabyte of guest memory before anything is measured.
runFloor(['anon', 2 ** 30])

const quick = process.argv.includes('--quick')
const SEQ_BYTES = (quick ? 64 : 256) * 2 ** 20
const RANDOM_TOUCHES = quick ? 1000 : 5000
const dir = mkdtempSync(join(tmpdir(), 'faultline-bench-'))
const { rows, row } = createRows()

function patternFile(bytes) {
  const path = join(dir, `data-${bytes}.bin`)
  const buf = Buffer.alloc(bytes)
  fillPattern(buf, 0)
  writeFileSync(path, buf)
  return { path, buf }
}

function zipfPages(pages, count, skew = 0.99, seed = 11) {
  const cdf = new Float64Array(pages)
  let sum = 0
  for (let i = 0; i < pages; i++) cdf[i] = sum += 1 / (i + 1) ** skew
  let s = seed
  const out = []
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    const u = (s / 2 ** 32) * sum
    let lo = 0, hi = pages - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cdf[mid] < u) lo = mid + 1
      else hi = mid
    }
    out.push((Math.imul(lo, 2654435761) >>> 0) % pages) // scatter hot pages
  }
  return out
}

async function withRegion(options, fn) {
  const region = await openRegion(options)
  try {
    return await fn(region)
  } finally {
    await region.close()
  }
}

// ---- sequential scan, 64 KiB pages ------------------------------------------------
{
  const page = 65536
  const { path, buf } = patternFile(SEQ_BYTES)
  const offsets = Array.from({ length: SEQ_BYTES / 4096 }, (_, i) => i * 4096)
  const fl = row('seq scan 64K', 'kernel floor (fault per page)', floor('fault', SEQ_BYTES, page, 'seq', SEQ_BYTES / page))
  const copy = row('seq scan 64K', 'kernel floor (UFFDIO_COPY, no faults)', floor('copy', SEQ_BYTES, page), fl)
  row('seq scan 64K', 'kernel: first touch of anonymous memory', floor('anon', SEQ_BYTES), fl)
  row('seq scan 64K', 'kernel mmap of the file (warm cache)', floor('mmap', path, 'seq', SEQ_BYTES / 4096), fl)
  for (const [name, backend] of [
    ['memory', { type: 'memory', data: new Uint8Array(new SharedArrayBuffer(SEQ_BYTES)).fill(1) }],
    ['file', { type: 'file', path, readOnly: true }],
  ]) {
    for (const readahead of [false, undefined]) {
      await withRegion({ backend, pageSize: page, readahead }, (region) => {
        const { lat, ms } = touch(region.view(), offsets)
        const r = row('seq scan 64K', `faultline ${name}${readahead === false ? ' (no readahead)' : ''}`, summarize(lat, ms, SEQ_BYTES), fl)
        r.vs_copy = r.gbps / copy.gbps
        r.faults = region.stats().faults
      })
    }
  }
  // explicit code: read the file with the fs API
  const fd = openSync(path, 'r')
  const chunk = Buffer.alloc(page)
  let t0 = performance.now()
  for (let off = 0; off < SEQ_BYTES; off += page) readSync(fd, chunk, 0, page, off)
  row('seq scan 64K', 'explicit: fs.readSync per 64K page (reused buffer)', { ms: performance.now() - t0, gbps: SEQ_BYTES / (performance.now() - t0) / 1e6 }, fl)
  closeSync(fd)
  const fileBackend = await builtinBackends.file({ type: 'file', path, readOnly: true }, { pageSize: page, size: SEQ_BYTES, readOnly: true })
  t0 = performance.now()
  for (let p = 0; p < SEQ_BYTES / page; p++) await fileBackend.read([p])
  let ms = performance.now() - t0
  row('seq scan 64K', 'explicit: backend.read, one await per page', { ms, gbps: SEQ_BYTES / ms / 1e6 }, fl)
  t0 = performance.now()
  for (let p = 0; p < SEQ_BYTES / page; p += 64) await fileBackend.read(Array.from({ length: 64 }, (_, i) => p + i))
  ms = performance.now() - t0
  row('seq scan 64K', 'explicit: backend.read, 64-page batches', { ms, gbps: SEQ_BYTES / ms / 1e6 }, fl)
  await fileBackend.close()
  void buf
}

// ---- sequential scan over huge pages (bench/huge.mjs) ------------------------------
await hugeScenarios({ quick, row })

// ---- random 4 KiB faults -----------------------------------------------------------
{
  const bytes = 64 * 2 ** 20
  const { path } = patternFile(bytes)
  const pages = randomPages(bytes / 4096, RANDOM_TOUCHES)
  const fl = row('random 4K', 'kernel floor (fault per page)', floor('fault', bytes, 4096, 'random', RANDOM_TOUCHES))
  row('random 4K', 'kernel mmap of the file (warm cache)', floor('mmap', path, 'random', RANDOM_TOUCHES), fl)
  for (const [name, backend] of [
    ['memory', { type: 'memory', data: new Uint8Array(new SharedArrayBuffer(bytes)).fill(1) }],
    ['file', { type: 'file', path, readOnly: true }],
  ]) {
    // Best of two fresh regions, as the floor is best of two runs: on this VM
    // a run whose memory the host still backs (freed just before) faults in
    // ~5 µs instead of ~60, and only the second of two runs is likely to get it.
    const best = await bestTouch(2, { backend, pageSize: 4096 }, pages.map((p) => p * 4096), pages.length * 4096)
    row('random 4K', `faultline ${name}`, best, fl)
  }
}

// ---- zipfian 4 KiB reads -----------------------------------------------------------
{
  const bytes = 64 * 2 ** 20
  const touches = zipfPages(bytes / 4096, RANDOM_TOUCHES * 4)
  const fl = row('zipf 4K', 'kernel floor (random fault per page)', floor('fault', bytes, 4096, 'random', RANDOM_TOUCHES))
  await withRegion({ backend: { type: 'memory', data: new Uint8Array(new SharedArrayBuffer(bytes)).fill(1) }, pageSize: 4096 }, (region) => {
    const { lat, ms } = touch(region.view(), touches.map((p) => p * 4096))
    const s = region.stats()
    const r = row('zipf 4K', 'faultline memory (touch-side, hits included)', summarize(lat, ms, touches.length * 4096))
    r.hit_rate = 1 - s.faults / touches.length
    r.fault_p50_us = s.faultLatencyUs.p50
    void fl
  })
}

// ---- random writes + flush ---------------------------------------------------------
{
  const bytes = 64 * 2 ** 20
  const pages = randomPages(bytes / 4096, RANDOM_TOUCHES)
  const plain = new Uint8Array(new ArrayBuffer(bytes))
  for (let i = 0; i < bytes; i += 4096) plain[i] = 1 // resident, like the region's pages below
  const flushes = []
  const base = (() => {
    const { lat, ms } = touchWrite(plain, pages)
    return row('first write 4K', 'unregistered buffer', summarize(lat, ms, pages.length * 4096))
  })()
  // The file backend journals each flush (pages written twice, two syncs) so a crash cannot tear
  // pages; `journal: false` shows the flush itself against the same writes by hand.
  for (const [mode, journal] of [['sync', true], ['async', true], ['sync', false]]) {
    const path = join(dir, `w-${mode}-${journal}.bin`)
    await withRegion({ size: bytes, pageSize: 4096, backend: { type: 'file', path, journal }, writeTracking: mode }, async (region) => {
      await region.prefetch(0, bytes) // resident and clean: what is measured is the first write
      const { lat, ms } = touchWrite(region.view(), pages)
      const what = `faultline ${mode} WP${journal ? '' : ', journal: false'}`
      if (journal) {
        const r = row('first write 4K', what, summarize(lat, ms, pages.length * 4096))
        r.ratio = base.p50_us / r.p50_us
      }
      // Best of three flushes, the pages written again before each (the first into a file with holes).
      let fms = Infinity
      for (let round = 0; round < 3; round++) {
        if (round > 0) touchWrite(region.view(), pages, round)
        const t0 = performance.now()
        await region.flush()
        fms = Math.min(fms, performance.now() - t0)
      }
      flushes.push(row('flush', `${what}: flush ${pages.length} scattered pages`, { ms: fms, gbps: (pages.length * 4096) / fms / 1e6 }))
    })
  }
  const path = join(dir, 'w-direct.bin')
  const fd = openSync(path, 'w')
  let ms = Infinity
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now()
    // Each page's own bytes, from a buffer holding them, as the region's are (one 4 KiB
    // buffer written 5000 times would come from the L1 cache every time).
    for (const p of [...pages].sort((a, b) => a - b)) writeSync(fd, plain, p * 4096, 4096, p * 4096)
    fdatasyncSync(fd)
    ms = Math.min(ms, performance.now() - t0)
  }
  closeSync(fd)
  const byHand = row('flush', 'explicit: writeSync of each page, from its bytes, + fdatasync', { ms, gbps: (pages.length * 4096) / ms / 1e6 })
  for (const f of flushes) f.ratio = f.gbps / byHand.gbps
}

function touchWrite(view, pages, salt = 0) {
  const lat = new Float64Array(pages.length)
  const t0 = performance.now()
  for (let i = 0; i < pages.length; i++) {
    const a = performance.now()
    view[pages[i] * 4096 + 8] = (i + salt) & 0xff
    lat[i] = (performance.now() - a) * 1000
  }
  return { lat: Array.from(lat), ms: performance.now() - t0 }
}

// ---- opening regions: a pager thread reused, or started -----------------------------------
{
  const path = join(dir, `data-${SEQ_BYTES}.bin`)
  const file = { type: 'file', path, readOnly: true }
  const opens = []
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now()
    const region = await openRegion({ backend: file })
    opens.push(performance.now() - t0)
    await region.close()
  }
  opens.sort((a, b) => a - b)
  row('open', 'openRegion over a local file, median of 50 (each closed before the next)', { open_ms: opens[25], open_max_ms: opens[49] })
  await releasePagerThreads()
  const t0 = performance.now()
  const regions = await Promise.all(Array.from({ length: 32 }, () => openRegion({ backend: file })))
  row('open', '32 regions opened at once (no thread waiting)', { open_ms: performance.now() - t0 })
  await Promise.all(regions.map((r) => r.close()))
  const t1 = performance.now()
  const again = await Promise.all(Array.from({ length: 32 }, () => openRegion({ backend: file })))
  row('open', '32 regions opened at once, right after 32 closed', { open_ms: performance.now() - t1 })
  await Promise.all(again.map((r) => r.close()))
}

// ---- other processes' memory: faultline serve against its kernel floor ------------------
await serveScenarios({ quick, row, dir, path: join(dir, `data-${SEQ_BYTES}.bin`), bytes: SEQ_BYTES, outDir: out })

// ---- S3 and HTTP (servers in a child process) -----------------------------------------
await remoteScenarios({ quick, row })
await redisScenarios({ quick, row })
await sharedScenarios({ quick, row })

// ---- report --------------------------------------------------------------------------
rmSync(dir, { recursive: true, force: true })
console.log(renderTable(rows))
const when = new Date().toISOString()
writeFileSync(join(out, 'results.json'), JSON.stringify({ when, node: process.version, rows }, null, 2))
console.log(`\nwrote ${join(out, 'results.json')}`)

