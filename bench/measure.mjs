// What every `pnpm bench` scenario file measures with: the C kernel floor
// (bench/floor.c, built once per process), the table's rows, and timed
// touches of a view. Shared by bench/run.mjs and scenario files usable alone.
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { openRegion } from '@faultline/core'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const out = join(root, '.bench')

let floorBin
/** Runs the kernel floor once: `floor <args…>`, its JSON line parsed. Builds it on first use. */
export function runFloor(args) {
  if (floorBin === undefined) {
    mkdirSync(out, { recursive: true })
    floorBin = join(out, 'floor')
    execFileSync('cc', ['-O2', '-pthread', '-o', floorBin, join(root, 'bench', 'floor.c')], { stdio: 'inherit' })
  }
  return JSON.parse(execFileSync(floorBin, args.map(String), { encoding: 'utf8' }))
}

/** Best of two runs: on a VM the first touch of guest memory the host has not backed yet costs extra. */
export function floor(...args) {
  const a = runFloor(args)
  const b = runFloor(args)
  return (b.gbps ?? 0) > (a.gbps ?? 0) ? b : a
}

/** The table's rows, and `row()`, which adds one with its ratio to `base` (GB/s, else p50). */
export function createRows() {
  const rows = []
  const row = (scenario, subject, m, base) => {
    const r = { scenario, subject, ...m }
    if (base !== undefined) {
      if (m.gbps !== undefined && base.gbps) r.ratio = m.gbps / base.gbps
      else if (m.p50_us !== undefined && base.p50_us) r.ratio = base.p50_us / m.p50_us
    }
    rows.push(r)
    return r
  }
  return { rows, row }
}

const percentile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

export function summarize(lat, ms, bytes) {
  lat.sort((a, b) => a - b)
  return { ms, gbps: bytes / ms / 1e6, p50_us: percentile(lat, 0.5), p99_us: percentile(lat, 0.99) }
}

/** Touches one byte per `stride` in `order`, timing each touch from the app's side. */
export function touch(view, offsets) {
  const lat = new Float64Array(offsets.length)
  let sink = 0
  const t0 = performance.now()
  for (let i = 0; i < offsets.length; i++) {
    const a = performance.now()
    sink += view[offsets[i]]
    lat[i] = (performance.now() - a) * 1000
  }
  const ms = performance.now() - t0
  if (sink === -1) console.log(sink)
  return { lat: Array.from(lat), ms }
}

/**
 * The fastest of `n` runs of `touch` over `offsets`, each in a fresh region
 * opened with `options` (every first touch of a page faults), with its fault
 * count. Best of several, as `floor()` is: on this VM a run that gets memory
 * the host still backs faults several times faster than one that does not.
 */
export async function bestTouch(n, options, offsets, bytes) {
  let best
  for (let i = 0; i < n; i++) {
    const region = await openRegion(options)
    try {
      const { lat, ms } = touch(region.view(), offsets)
      const m = { ...summarize(lat, ms, bytes), faults: region.stats().faults }
      if (best === undefined || m.gbps > best.gbps) best = m
    } finally {
      await region.close()
    }
  }
  return best
}
