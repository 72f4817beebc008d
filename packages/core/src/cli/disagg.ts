/**
 * `faultline bench`: a memory-disaggregation run. A workload whose working
 * set is several times `maxResident` reads (and optionally writes) pages at
 * random or with a zipfian skew; the report gives hit rate, refetches, fault
 * latency and the region's peak resident memory as the kernel counts it.
 */
import { mappingResidentBytes as residentBytes } from '../diagnostics.js'
import { openRegion } from '../region.js'
import type { BackendSpec } from '@faultline/contract'
import { checkPattern, fillPattern } from './pattern.js'
import { formatBytes, Progress } from './progress.js'

export interface DisaggOptions {
  backend: BackendSpec | string | undefined
  size: number
  maxResident: number
  pageSize: number
  pattern: 'random' | 'zipf'
  touches: number
}

export interface DisaggResult {
  touches: number
  hitRate: number
  faults: number
  refetchedPages: number
  evictedPages: number
  peakResidentBytes: number
  /** Fault latency as the reading thread saw it: percentiles of its `faults` slowest touches. */
  touchFaultP50Us: number
  touchFaultP99Us: number
  /** The pager's time per fault, from reading the fault to installing the page. */
  faultP50Us: number
  faultP99Us: number
  seconds: number
  verified: boolean
}

export async function runDisagg(opts: DisaggOptions, out: (line: string) => void): Promise<DisaggResult> {
  const data = new Uint8Array(new SharedArrayBuffer(opts.size))
  if (opts.backend === undefined) fillPattern(data, 0)
  const backend = opts.backend ?? { type: 'memory', data }
  const region = await openRegion({ backend, size: opts.size, pageSize: opts.pageSize, maxResident: opts.maxResident, access: 'read-only' })
  try {
    out(`faultline bench: ${opts.pattern} reads, working set ${formatBytes(region.size)} = ${(region.size / opts.maxResident).toFixed(1)}× maxResident ${formatBytes(opts.maxResident)}, ${formatBytes(opts.pageSize)} pages, backend ${region.backendName}`)
    const pages = region.size / opts.pageSize
    const next = opts.pattern === 'zipf' ? zipf(pages) : uniform(pages)
    const v = region.view()
    const address = region.handle().address
    const progress = new Progress(`${opts.pattern} reads`, opts.touches)
    let peak = 0
    let verified = true
    const touchUs = new Float64Array(opts.touches)
    // Loaded bytes go somewhere observable: the optimizer drops a load whose value is unused (`void v[at]`), and with it the fault.
    let sink = 0
    const t0 = performance.now()
    for (let i = 0; i < opts.touches; i++) {
      const page = next()
      const at = page * opts.pageSize
      const start = performance.now()
      // Verify a slice of the page when the data is the embedded pattern.
      if (opts.backend === undefined && checkPattern(v.subarray(at, at + 64), at) !== -1) verified = false
      else sink ^= v[at]!
      touchUs[i] = (performance.now() - start) * 1000
      if (i % 256 === 0) {
        peak = Math.max(peak, residentBytes(address))
        progress.update(i)
      }
    }
    const seconds = (performance.now() - t0) / 1000
    progress.done()
    if (sink < 0) out('')
    const s = region.stats()
    // A hit costs well under a µs and a fault tens at least: the slowest touches are the faults.
    const slowest = touchUs.sort().reverse().subarray(0, Math.min(s.faults, opts.touches))
    const touchFault = (q: number): number => (slowest.length === 0 ? 0 : slowest[Math.min(slowest.length - 1, Math.floor((1 - q) * slowest.length))]!)
    const result: DisaggResult = {
      touches: opts.touches,
      hitRate: 1 - s.faults / opts.touches,
      faults: s.faults,
      refetchedPages: s.refetchedPages,
      evictedPages: s.evictedPages,
      peakResidentBytes: peak,
      touchFaultP50Us: touchFault(0.5),
      touchFaultP99Us: touchFault(0.99),
      faultP50Us: s.faultLatencyUs.p50,
      faultP99Us: s.faultLatencyUs.p99,
      seconds,
      verified,
    }
    out(`  ${opts.touches} touches in ${seconds.toFixed(2)} s; hit rate ${(result.hitRate * 100).toFixed(1)}%; faults ${s.faults}; evicted ${s.evictedPages}; refetched ${s.refetchedPages}`)
    out(`  fault latency µs, as the reader saw it: p50 ${result.touchFaultP50Us.toFixed(1)}  p99 ${result.touchFaultP99Us.toFixed(1)}  (its ${slowest.length} slowest touches)`)
    out(`  pager time per fault µs: p50 ${s.faultLatencyUs.p50.toFixed(1)}  p99 ${s.faultLatencyUs.p99.toFixed(1)}  (faults answered natively count ~1)`)
    out(`  peak resident ${formatBytes(peak)} (bound ${formatBytes(opts.maxResident)}, ${((peak / opts.maxResident) * 100).toFixed(0)}%)${opts.backend === undefined ? `; data ${verified ? 'verified' : 'MISMATCH'}` : ''}`)
    return result
  } finally {
    await region.close()
  }
}

function uniform(pages: number): () => number {
  let s = 0x2545f491
  return () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) % pages
  }
}

/** Zipf(0.99) over pages, hot pages scattered across the region. */
function zipf(pages: number): () => number {
  const cdf = new Float64Array(pages)
  let sum = 0
  for (let i = 0; i < pages; i++) cdf[i] = sum += 1 / (i + 1) ** 0.99
  const rand = uniform(2 ** 31)
  return () => {
    const u = (rand() / 2 ** 31) * sum
    let lo = 0
    let hi = pages - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cdf[mid]! < u) lo = mid + 1
      else hi = mid
    }
    return (Math.imul(lo, 2654435761) >>> 0) % pages
  }
}
