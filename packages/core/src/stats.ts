/**
 * Region statistics live in a SharedArrayBuffer written by the pager thread
 * and read by any thread holding the region, so `stats()` is synchronous and
 * costs the pager nothing. Single writer: plain aligned float64 stores are
 * never torn on the platforms userfaultfd exists on.
 */

import type { ServeSlots } from '@faultline/native'
import type { SharedStats } from './shared/layout.js'

export const COUNTERS = [
  'faults',
  'duplicateFaults',
  'pagesFetched',
  'bytesFetched',
  'fetchRequests',
  'fetchRetries',
  'fetchErrors',
  'zeroPages',
  'residentPages',
  'prefetchedPages',
  'dirtyPages',
  'pagesWritten',
  'bytesWritten',
  'writeRequests',
  'flushes',
  'flushMsTotal',
  'lastFlushMs',
  'writeFaults',
  'writeErrors',
  'evictedPages',
  'refetchedPages',
  'secondTierHits',
  'latencyCount',
  'latencyMaxUs',
  'servedNatively',
  'installedOffThread',
] as const
export type Counter = (typeof COUNTERS)[number]

/** Eight buckets per power of two: percentiles are exact to within 9%. */
const SUB_BUCKETS = 8
const OCTAVES = 28
const BUCKETS = 1 + SUB_BUCKETS * OCTAVES
const HIST_BASE = COUNTERS.length

export const STATS_BYTES = (COUNTERS.length + BUCKETS) * 8

export const counterIndex: Readonly<Record<Counter, number>> = Object.fromEntries(COUNTERS.map((name, i) => [name, i])) as Record<Counter, number>

export function bucketOf(us: number): number {
  if (!(us >= 1)) return 0
  return Math.min(BUCKETS - 1, 1 + Math.floor(Math.log2(us) * SUB_BUCKETS))
}

function bucketUpperUs(bucket: number): number {
  return bucket === 0 ? 1 : 2 ** (bucket / SUB_BUCKETS)
}

/** Where the native watcher counts the faults it answers itself (see Watcher.serveNatively). */
export function nativeServeSlots(): ServeSlots {
  const i = counterIndex
  return [i.faults, i.duplicateFaults, i.pagesFetched, i.bytesFetched, i.residentPages, i.latencyCount, i.latencyMaxUs, HIST_BASE, BUCKETS, SUB_BUCKETS, i.dirtyPages, i.servedNatively]
}

/** The pager's side: counters and the latency histogram. */
export class StatsWriter {
  readonly cells: Float64Array
  constructor(readonly buffer: SharedArrayBuffer) {
    this.cells = new Float64Array(buffer)
  }
  add(name: Counter, delta = 1): void {
    this.cells[counterIndex[name]]! += delta
  }
  set(name: Counter, value: number): void {
    this.cells[counterIndex[name]] = value
  }
  get(name: Counter): number {
    return this.cells[counterIndex[name]]!
  }
  recordLatency(us: number): void {
    this.cells[HIST_BASE + bucketOf(us)]! += 1
    this.add('latencyCount')
    if (us > this.get('latencyMaxUs')) this.set('latencyMaxUs', us)
  }
}

export interface LatencySummary {
  /** Faults measured: from the moment the pager read the fault to the page being installed. */
  count: number
  /** Median latency in microseconds (upper bound of a histogram bucket, within 9%). */
  p50: number
  /** 90th percentile in microseconds (upper bound of a histogram bucket, within 9%). */
  p90: number
  /** 99th percentile in microseconds (upper bound of a histogram bucket, within 9%). */
  p99: number
  /** The slowest fault measured, in microseconds. */
  max: number
}

/** A snapshot of a region's activity. */
export interface RegionStats {
  /** Page faults the pager received (including duplicates of a page already on its way). */
  faults: number
  /** Faults on a page already being fetched or installed, answered without a second backend read. */
  duplicateFaults: number
  /** Pages read from the backend (or, after eviction, from the second tier: see secondTierHits). */
  pagesFetched: number
  /** Bytes of those pages. */
  bytesFetched: number
  /** Backend read calls (each may carry several pages). */
  fetchRequests: number
  /** Backend reads retried after a failure. */
  fetchRetries: number
  /** Backend reads that failed for good (the faulting access got SIGBUS). */
  fetchErrors: number
  /** Pages the backend reported absent, installed as zeros with no data transfer. */
  zeroPages: number
  /** Pages installed and not evicted. */
  residentPages: number
  /** Pages installed by prefetch rather than by a fault. */
  prefetchedPages: number
  /** Pages written since their last write-back. */
  dirtyPages: number
  /** Pages written to the backend. */
  pagesWritten: number
  /** Bytes written to the backend. */
  bytesWritten: number
  /** Backend write calls. */
  writeRequests: number
  /** Completed flushes (explicit, background and at close). */
  flushes: number
  /** Milliseconds spent in completed flushes, in all. */
  flushMsTotal: number
  /** Milliseconds the last completed flush took. */
  lastFlushMs: number
  /** Write-protect faults served (first writes to clean pages, `sync` tracking only). */
  writeFaults: number
  /** Backend write batches that failed (their pages stayed dirty). */
  writeErrors: number
  /** Pages dropped to stay under `maxResident`. */
  evictedPages: number
  /** Evicted pages fetched again on a later touch (from the backend or the second tier). */
  refetchedPages: number
  /** Refetches answered from the second tier without the backend. */
  secondTierHits: number
  /**
   * Faults answered by the native watcher before any JS ran: pages already in
   * the process (a memory backend's shared pages, a held readahead page, the
   * second tier). Included in `faults`.
   */
  servedNatively: number
  /** Pages fetched ahead that the native installer thread copied into the region while the pager went on (backends with fresh read buffers: Redis, S3, HTTP). */
  installedOffThread: number
  /** How writes are tracked: `none` for read-only regions. */
  writeTracking: WriteTrackingMode
  /** Fault service latency, as seen by the pager. */
  faultLatencyUs: LatencySummary
  /** Set for a region shared between processes (`shared` option) while it is open: the machine's cache. */
  shared?: SharedStats
}

export type WriteTrackingMode = 'none' | 'sync-wp' | 'async-wp'

export function readStats(buffer: SharedArrayBuffer, writeTracking: WriteTrackingMode): RegionStats {
  const cells = new Float64Array(buffer)
  const get = (name: Counter): number => cells[counterIndex[name]]!
  const count = get('latencyCount')
  const percentile = (q: number): number => {
    if (count === 0) return 0
    const rank = Math.ceil(q * count)
    let seen = 0
    for (let b = 0; b < BUCKETS; b++) {
      seen += cells[HIST_BASE + b]!
      if (seen >= rank) return Math.min(bucketUpperUs(b), get('latencyMaxUs'))
    }
    return get('latencyMaxUs')
  }
  return {
    faults: get('faults'),
    duplicateFaults: get('duplicateFaults'),
    pagesFetched: get('pagesFetched'),
    bytesFetched: get('bytesFetched'),
    fetchRequests: get('fetchRequests'),
    fetchRetries: get('fetchRetries'),
    fetchErrors: get('fetchErrors'),
    zeroPages: get('zeroPages'),
    residentPages: get('residentPages'),
    prefetchedPages: get('prefetchedPages'),
    dirtyPages: get('dirtyPages'),
    pagesWritten: get('pagesWritten'),
    bytesWritten: get('bytesWritten'),
    writeRequests: get('writeRequests'),
    flushes: get('flushes'),
    flushMsTotal: get('flushMsTotal'),
    lastFlushMs: get('lastFlushMs'),
    writeFaults: get('writeFaults'),
    writeErrors: get('writeErrors'),
    evictedPages: get('evictedPages'),
    refetchedPages: get('refetchedPages'),
    secondTierHits: get('secondTierHits'),
    servedNatively: get('servedNatively'),
    installedOffThread: get('installedOffThread'),
    writeTracking,
    faultLatencyUs: { count, p50: percentile(0.5), p90: percentile(0.9), p99: percentile(0.99), max: get('latencyMaxUs') },
  }
}
