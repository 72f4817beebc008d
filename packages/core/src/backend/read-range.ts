/**
 * `region.read()` on the pager thread: bytes straight from the backend, not
 * through the mapping, so a page the backend cannot deliver rejects the call
 * (a memory access could only get SIGBUS) and nothing is installed. Failures
 * are retried with the fault path's backoff until fetchTimeoutMs.
 */
import { FaultlineError } from '../errors.js'
import { describePages } from '../pager/describe.js'
import type { StatsWriter } from '../stats.js'
import type { Backend } from './contract.js'

export interface ReadRangeConfig {
  pageSize: number
  maxBatchPages: number
  fetchTimeoutMs: number
}

const RETRY_FIRST_MS = 10
const RETRY_MAX_MS = 1000
/** Batches of one read() in flight at once. */
const CONCURRENT_BATCHES = 4

export async function readRange(backend: Backend, config: ReadRangeConfig, stats: StatsWriter, offset: number, length: number): Promise<Uint8Array> {
  const { pageSize, maxBatchPages } = config
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
      const data = await readWithRetry(backend, config, stats, pages)
      pages.forEach((page, i) => {
        const bytes = data[i]
        if (bytes === undefined) return
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

async function readWithRetry(backend: Backend, config: ReadRangeConfig, stats: StatsWriter, pages: number[]): Promise<ReadonlyArray<Uint8Array | undefined>> {
  const started = performance.now()
  let delay = RETRY_FIRST_MS
  for (let attempt = 1; ; attempt++) {
    try {
      return await readOnce(backend, config, stats, pages)
    } catch (err) {
      if (err instanceof FaultlineError && err.code === 'ERR_BAD_PAGE') throw err
      const elapsed = performance.now() - started
      if (elapsed + delay > config.fetchTimeoutMs) {
        const message = err instanceof Error ? err.message : String(err)
        throw new FaultlineError('ERR_BACKEND', `faultline: reading ${describePages(pages)} from ${backend.info.name} failed after ${attempt} attempt(s) over ${Math.round(elapsed)} ms: ${message}`, { pages, cause: err })
      }
      stats.add('fetchRetries')
      await new Promise((resolve) => setTimeout(resolve, delay))
      delay = Math.min(delay * 2, RETRY_MAX_MS)
    }
  }
}

async function readOnce(backend: Backend, config: ReadRangeConfig, stats: StatsWriter, pages: number[]): Promise<ReadonlyArray<Uint8Array | undefined>> {
  stats.add('fetchRequests')
  const data = await backend.read(pages)
  if (data.length !== pages.length) {
    throw new FaultlineError('ERR_BAD_PAGE', `faultline: ${backend.info.name} answered ${data.length} pages to a request for ${pages.length}`, { pages })
  }
  data.forEach((bytes, i) => {
    if (bytes !== undefined && bytes.byteLength !== config.pageSize) {
      throw new FaultlineError('ERR_BAD_PAGE', `faultline: ${backend.info.name} returned ${bytes.byteLength} bytes for page ${pages[i]}, expected ${config.pageSize}`, { pages: [pages[i]!] })
    }
    if (bytes !== undefined) stats.add('bytesFetched', bytes.byteLength)
  })
  return data
}
