/**
 * `region.read()` on the pager thread: bytes straight from the backend, not
 * through the mapping, so a page the backend cannot deliver rejects the call
 * (a memory access could only get SIGBUS) and nothing is installed. Failures
 * are retried with the fault path's backoff until fetchTimeoutMs.
 */
import { PageFetcher } from '../pager/fetcher.js'
import type { StatsWriter } from '../stats.js'
import type { Backend } from '@faultline/contract'

export interface ReadRangeConfig {
  pageSize: number
  maxBatchPages: number
  fetchTimeoutMs: number
}

/** Batches of one read() in flight at once. */
const CONCURRENT_BATCHES = 4

export async function readRange(backend: Backend, config: ReadRangeConfig, stats: StatsWriter, offset: number, length: number): Promise<Uint8Array> {
  const { pageSize, maxBatchPages } = config
  const fetcher = new PageFetcher(backend, pageSize, config.fetchTimeoutMs)
  // Its own ArrayBuffer, so it can be transferred to the caller's thread.
  const out = new Uint8Array(length)
  const first = Math.floor(offset / pageSize)
  const last = Math.floor((offset + length - 1) / pageSize)
  const batches: number[][] = []
  for (let p = first; p <= last; p++) {
    if (backend.isAbsent?.(p)) continue
    const batch = batches[batches.length - 1]
    if (batch !== undefined && batch.length < maxBatchPages) batch.push(p)
    else batches.push([p])
  }
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      const pages = batches[next++]!
      stats.add('fetchRequests')
      const data = await fetcher.readWithRetry(pages, { onRetry: () => stats.add('fetchRetries') })
      pages.forEach((page, i) => {
        const bytes = data[i]
        if (bytes === undefined) return
        stats.add('bytesFetched', bytes.byteLength)
        const pageStart = page * pageSize
        const from = Math.max(offset, pageStart)
        const to = Math.min(offset + length, pageStart + pageSize)
        out.set(bytes.subarray(from - pageStart, to - pageStart), from - offset)
      })
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENT_BATCHES, batches.length) }, worker))
  return out
}
