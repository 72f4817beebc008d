/**
 * `faultline import` and `faultline export`: copy a local file into any
 * backend in the region layout (page i holds bytes i × pageSize …), or a
 * backend's data out to a file. Both go through the Backend interface, so
 * every backend URL works, and the result opens as a region with the same
 * pageSize. The CLI never faults on a region, so unlike a pager thread it
 * may use the threadpool; it still uses the same backend code.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs'
import { createBackend } from '../backend/load.js'
import type { Backend, BackendSpec, PageWrite } from '@faultline/contract'
import { parseBackendUrl } from '../backend/url.js'
import { FaultlineError } from '../errors.js'
import { describePages } from '../pager/describe.js'
import { formatBytes, Progress } from './progress.js'

export interface TransferOptions {
  /** Page size of the layout: the region that later maps the data must use the same. */
  pageSize: number
  /** Pages per backend call. */
  batchPages: number
  /** Backend calls in flight at once. */
  concurrency: number
  /** Export only: bytes to write when the backend does not know its length. */
  size?: number | undefined
}

// A CLI user did not choose the AWS SDK: its notice about future Node versions is not theirs to act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

/** A backend spec from a CLI URL. An S3 URL without `mode` means a page store: import writes the region layout. */
function specFor(url: string): BackendSpec {
  const spec = parseBackendUrl(url)
  if (spec.type === 's3' && spec.mode === undefined) spec.mode = 'pages'
  return spec
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight; the first failure stops new ones. */
async function forEachBatch(count: number, concurrency: number, task: (batch: number) => Promise<void>): Promise<void> {
  let next = 0
  let failed = false
  const lane = async (): Promise<void> => {
    while (!failed && next < count) {
      const batch = next++
      try {
        await task(batch)
      } catch (err) {
        failed = true
        throw err
      }
    }
  }
  const results = await Promise.allSettled(Array.from({ length: Math.min(concurrency, count) }, lane))
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failure !== undefined) throw failure.reason
}

function isZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.byteLength; i++) if (bytes[i] !== 0) return false
  return true
}

export async function importFile(file: string, url: string, opts: TransferOptions, out: (line: string) => void): Promise<void> {
  const fd = openSync(file, 'r')
  let backend: Backend | undefined
  try {
    const size = fstatSync(fd).size
    if (size === 0) throw new FaultlineError('ERR_GEOMETRY', `faultline: ${file} is empty: there is nothing to import`, { option: 'file' })
    const { pageSize, batchPages } = opts
    backend = await createBackend(specFor(url), { pageSize, size, readOnly: false })
    const store = backend
    if (store.info.readOnly || store.write === undefined) {
      throw new FaultlineError('ERR_READ_ONLY', `faultline: ${store.info.name} cannot store pages, so nothing can be imported into it`, { option: 'backend' })
    }
    const pages = Math.ceil(size / pageSize)
    const batches = Math.ceil(pages / batchPages)
    const progress = new Progress('import', size)
    const started = performance.now()
    let done = 0
    let skipped = 0
    await forEachBatch(batches, opts.concurrency, async (b) => {
      const first = b * batchPages
      const count = Math.min(batchPages, pages - first)
      // Zero-filled: the last page is padded with zeros past the file's end.
      const buffer = Buffer.alloc(count * pageSize)
      const want = Math.min(buffer.byteLength, size - first * pageSize)
      for (let got = 0; got < want; ) {
        const n = readSync(fd, buffer, got, want - got, first * pageSize + got)
        if (n === 0) throw new FaultlineError('ERR_BACKEND', `faultline: ${file} shrank while it was being imported`, { option: 'file' })
        got += n
      }
      const writes: PageWrite[] = []
      for (let i = 0; i < count; i++) {
        const data = buffer.subarray(i * pageSize, (i + 1) * pageSize)
        // A zero page over a page the store holds nothing for is already right.
        if (store.isAbsent?.(first + i) && isZero(data)) skipped++
        else writes.push({ index: first + i, data })
      }
      if (writes.length > 0) await store.write!(writes)
      done += want
      progress.update(done)
    })
    await store.sync?.()
    progress.done()
    const seconds = (performance.now() - started) / 1000
    out(`imported ${file} into ${store.info.name}: ${formatBytes(size)} as ${pages} pages of ${formatBytes(pageSize)}${skipped > 0 ? ` (${skipped} zero pages left absent)` : ''} in ${seconds.toFixed(1)} s (${formatBytes(size / Math.max(seconds, 1e-3))}/s)`)
  } finally {
    closeSync(fd)
    await backend?.close()
  }
}

export async function exportFile(url: string, file: string, opts: TransferOptions, out: (line: string) => void): Promise<void> {
  const { pageSize, batchPages } = opts
  // No size for the backend: a store checks a given size against its own; --size only trims the output.
  const backend = await createBackend(specFor(url), { pageSize, size: undefined, readOnly: true })
  // Written beside the target and renamed at the end: a failed export leaves no half file under its name.
  const partial = `${file}.partial-${process.pid}`
  let fd = -1
  try {
    const size = opts.size ?? backend.info.size
    if (size === undefined || size === 0) {
      throw new FaultlineError('ERR_GEOMETRY', `faultline: ${backend.info.name} does not know its length: give --size`, { option: 'size' })
    }
    fd = openSync(partial, 'w')
    // Pages the backend holds nothing for stay holes: they read as zeros.
    ftruncateSync(fd, size)
    const pages = Math.ceil(size / pageSize)
    const batches = Math.ceil(pages / batchPages)
    const progress = new Progress('export', size)
    const started = performance.now()
    let done = 0
    await forEachBatch(batches, opts.concurrency, async (b) => {
      const first = b * batchPages
      const indexes: number[] = []
      for (let p = first; p < Math.min(first + batchPages, pages); p++) if (!backend.isAbsent?.(p)) indexes.push(p)
      const data = indexes.length === 0 ? [] : await backend.read(indexes)
      if (data.length !== indexes.length) {
        throw new FaultlineError('ERR_BAD_PAGE', `faultline: ${backend.info.name} answered ${data.length} pages to a request for ${indexes.length}`, { pages: indexes })
      }
      indexes.forEach((index, i) => {
        const page = data[i]
        if (page === undefined) return
        if (page.byteLength !== pageSize) {
          throw new FaultlineError('ERR_BAD_PAGE', `faultline: ${backend.info.name} returned ${page.byteLength} bytes for ${describePages([index])}, expected ${pageSize}`, { pages: [index] })
        }
        const start = index * pageSize
        const length = Math.min(pageSize, size - start)
        for (let put = 0; put < length; ) put += writeSync(fd, page, put, length - put, start + put)
      })
      done += Math.min(batchPages * pageSize, size - first * pageSize)
      progress.update(done)
    })
    fsyncSync(fd)
    closeSync(fd)
    fd = -1
    renameSync(partial, file)
    progress.done()
    const seconds = (performance.now() - started) / 1000
    out(`exported ${backend.info.name} to ${file}: ${formatBytes(size)} (${pages} pages of ${formatBytes(pageSize)}) in ${seconds.toFixed(1)} s (${formatBytes(size / Math.max(seconds, 1e-3))}/s)`)
  } catch (err) {
    if (fd >= 0) closeSync(fd)
    rmSync(partial, { force: true })
    throw err
  } finally {
    await backend.close()
  }
}
