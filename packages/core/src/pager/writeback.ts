/**
 * Write-back: which pages were written, and getting them to the backend
 * without losing or tearing any.
 *
 * The protocol (sync tracking):
 *   1. write-protect the page,
 *   2. copy its bytes out (writers now block in a WP fault, so the copy is a
 *      consistent snapshot),
 *   3. write the copy to the backend, and only once that is durable forget
 *      the snapshot.
 * A write after step 1 faults; the fault handler marks the page dirty again
 * before it lifts the protection, so the next flush catches it. A page is in
 * `dirty` (written since its last snapshot) or `flushing` (snapshot in
 * flight) or both; a failed write puts its pages back into `dirty`.
 *
 * With async tracking the kernel lifts protection itself and PAGEMAP_SCAN
 * reports (and re-protects, atomically) the pages written since the last scan.
 */
import { constants } from '@faultline/native'
import type { Backend, PageWrite } from '@faultline/contract'
import { writeProtect } from './busy.js'
import { FaultlineError } from '../errors.js'
import type { StatsWriter, WriteTrackingMode } from '../stats.js'
import type { ViewSet } from '../views.js'
import { describePages, runs } from './describe.js'
import { PageSet } from './pageset.js'
import type { PagerEvent } from './protocol.js'

export interface WriteBackConfig {
  fd: number
  address: number
  size: number
  pageSize: number
  mode: Exclude<WriteTrackingMode, 'none'>
  /** Pages per backend write call. */
  batchPages: number
  intervalMs: number | undefined
  maxDirtyBytes: number | undefined
  /** Async tracking: returns (and re-protects) the pages written since the last call. */
  scanWritten?: (() => number[]) | undefined
}

/** Where a lane of a flush copies each batch before writing it. */
interface Staging {
  bytes: Uint8Array
}

export class WriteBack {
  private readonly dirty: PageSet
  private readonly flushing: PageSet
  private running: Promise<void> = Promise.resolve()
  private queued: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly config: WriteBackConfig,
    private readonly backend: Backend,
    private readonly memory: Pick<ViewSet, 'view'>,
    private readonly stats: StatsWriter,
    private readonly emit: (event: PagerEvent) => void,
  ) {
    const pages = config.size / config.pageSize
    this.dirty = new PageSet(pages)
    this.flushing = new PageSet(pages)
    if (config.intervalMs !== undefined) {
      this.timer = setInterval(() => this.background(), config.intervalMs)
    }
  }

  /**
   * UFFDIO_COPY mode for a page being installed: protected, unless a thread
   * is waiting to write it — then it is dirty at once and a protected install
   * would only cost a second fault (sync) or a silent unprotect (async).
   */
  installMode(forWrite: boolean): number {
    return forWrite ? 0 : constants.UFFDIO_COPY_MODE_WP
  }

  /**
   * A page is being installed unprotected for a write: dirty from the start.
   * (In async tracking the scan would report it too; marking it keeps
   * dirtyPages right before the next scan.)
   */
  onInstalledForWrite(page: number): void {
    this.markDirty(page)
  }

  /** A write-protect fault (sync tracking): mark dirty first, then let the writer go. */
  onWriteFault(page: number): void {
    this.stats.add('writeFaults')
    this.markDirty(page)
    writeProtect(this.config.fd, this.config.address + page * this.config.pageSize, this.config.pageSize, false, this.onBusy)
  }

  private markDirty(page: number): void {
    if (this.dirty.add(page)) {
      if (this.flushing.has(page)) this.inBoth++
      this.updateDirtyStat()
    }
    const limit = this.config.maxDirtyBytes
    if (limit !== undefined && this.dirty.size * this.config.pageSize >= limit && this.queued === undefined) this.background()
  }

  /** Pages rewritten while their snapshot is in flight: in both sets, counted once. */
  private inBoth = 0

  private updateDirtyStat(): void {
    this.stats.set('dirtyPages', this.dirty.size + this.flushing.size - this.inBoth)
  }

  /**
   * Writes back every page written before the call. Flushes run one after
   * another: a flush asked for while one runs waits for it, then takes its
   * own snapshot (a page snapshotted by the running flush may have been
   * written again since).
   */
  flush(): Promise<void> {
    if (this.queued !== undefined) return this.queued
    const next = this.running.catch(() => undefined).then(() => {
      this.queued = undefined
      return this.flushNow()
    })
    this.queued = next
    this.running = next
    return next
  }

  private background(): void {
    this.flush().catch((err: FaultlineError) => {
      this.emit({ kind: 'event', type: 'writeback-error', pages: [...(err.pages ?? [])], message: err.message })
    })
  }

  /** Reads a peer's queued events when a write-protect ioctl says EAGAIN (busy.ts). */
  onBusy: (() => void) | undefined

  /** Called before each flush collects its pages: writes the pager learned of late (a watchdog takeover). */
  beforeCollect: (() => void) | undefined

  private async flushNow(): Promise<void> {
    const started = performance.now()
    this.beforeCollect?.()
    const pages = this.collect()
    const failed: number[] = []
    let firstError: unknown
    const { batchPages } = this.config
    const most = this.backend.info.maxWritesInFlight
    const inFlight = most !== undefined && most >= 1 ? Math.floor(most) : 1
    const writeBatch = async (batch: number[], batchWrites: PageWrite[]): Promise<void> => {
      try {
        await this.backend.write!(batchWrites)
        this.stats.add('writeRequests')
        this.stats.add('pagesWritten', batch.length)
        this.stats.add('bytesWritten', batch.length * this.config.pageSize)
      } catch (err) {
        this.stats.add('writeErrors')
        firstError ??= err
        failed.push(...batch)
        for (const p of batch) if (this.dirty.add(p)) this.inBoth++
      }
      for (const p of batch) {
        this.flushing.delete(p)
        if (this.dirty.has(p)) this.inBoth--
      }
      this.updateDirtyStat()
    }
    // Up to `inFlight` lanes, each writing a batch at a time. A batch is
    // snapshot just before it is written, into its lane's staging buffer,
    // which the lane reuses only once that write has settled: the copy is
    // still in the cache when the backend reads it (a 16 MiB snapshot taken
    // ahead was read back from memory, and the copy was a fifth of a file flush).
    let next = 0
    const lane = async (staging: Staging): Promise<void> => {
      while (next < pages.length) {
        const batch = pages.slice(next, next + batchPages)
        next += batchPages
        await writeBatch(batch, this.snapshot(batch, staging))
      }
    }
    const lanes = Math.min(inFlight, Math.ceil(pages.length / batchPages))
    while (this.stagings.length < lanes) this.stagings.push({ bytes: new Uint8Array(0) })
    await Promise.all(this.stagings.slice(0, lanes).map(lane))
    if (failed.length < pages.length && this.backend.sync) {
      try {
        await this.backend.sync()
      } catch (err) {
        // Not durable: every page of this flush is dirty again.
        for (const p of pages) this.dirty.add(p)
        this.updateDirtyStat()
        this.stats.add('writeErrors')
        throw new FaultlineError('ERR_BACKEND', `faultline: making ${describePages(pages)} durable in ${this.backend.info.name} failed: ${err instanceof Error ? err.message : String(err)}; they stay dirty`, { pages, cause: err })
      }
    }
    if (failed.length > 0) {
      // Batches in flight fail in the order they settle; name the pages in order.
      failed.sort((a, b) => a - b)
      const cause = firstError instanceof Error ? firstError.message : String(firstError)
      // A lost writer lease stays ERR_LOCKED: retrying will not help, and the caller should know why.
      const code = firstError instanceof FaultlineError && firstError.code === 'ERR_LOCKED' ? 'ERR_LOCKED' : 'ERR_BACKEND'
      throw new FaultlineError(code, `faultline: writing ${describePages(failed)} to ${this.backend.info.name} failed: ${cause}; they stay dirty and the next flush retries them`, { pages: failed, cause: firstError })
    }
    const ms = performance.now() - started
    this.stats.add('flushes')
    this.stats.add('flushMsTotal', ms)
    this.stats.set('lastFlushMs', ms)
  }

  /** Moves every written page into `flushing` and returns them, sorted. */
  private collect(): number[] {
    const set = new Set<number>()
    if (this.config.scanWritten) for (const p of this.config.scanWritten()) set.add(p)
    this.dirty.forEach((p) => set.add(p))
    const pages = [...set].sort((a, b) => a - b)
    // Flushes are serialized, so `flushing` is empty here and nothing is in both sets.
    for (const p of pages) {
      this.dirty.delete(p)
      this.flushing.add(p)
    }
    this.inBoth = 0
    this.updateDirtyStat()
    return pages
  }

  /**
   * Protects the pages (sync tracking; the scan already did it in async) and
   * copies them out, in one turn of the loop: a writer's fault on any of them
   * waits until every copy is taken. One ioctl covers the whole sorted span:
   * protecting the clean and missing pages between costs the kernel a page
   * table walk, far less than an ioctl per scattered page; a page written
   * since the flush began is dirty already, and its next write faults again.
   *
   * A backend that has written the pages by the time its write() returns
   * (`synchronousWrites`) gets the pages' own memory instead, which saves a
   * tenth of a file flush: a writer waits in its fault until this thread,
   * busy in that write, serves it after the bytes are out. Only a watchdog
   * takeover lets a writer in meanwhile; its write is counted dirty
   * (beforeCollect), so the next flush writes the page whole again.
   */
  private snapshot(chunk: number[], staging: Staging): PageWrite[] {
    const { pageSize, fd, address } = this.config
    const syncTracking = this.config.mode === 'sync-wp'
    if (syncTracking && chunk.length > 0) {
      const first = chunk[0]!
      writeProtect(fd, address + first * pageSize, (chunk[chunk.length - 1]! - first + 1) * pageSize, true, this.onBusy)
    }
    const inPlace = syncTracking && this.backend.info.synchronousWrites === true
    // Reused from flush to flush: fresh memory would cost a kernel fault per page.
    if (!inPlace && staging.bytes.length < chunk.length * pageSize) staging.bytes = new Uint8Array(chunk.length * pageSize)
    const out: PageWrite[] = new Array(chunk.length)
    let i = 0
    for (const [first, count] of runs(chunk)) {
      const bytes = count * pageSize
      let run = this.memory.view(first * pageSize, bytes)
      if (!inPlace) {
        const copy = staging.bytes.subarray(i * pageSize, i * pageSize + bytes)
        copy.set(run)
        run = copy
      }
      for (let k = 0; k < count; k++) out[i + k] = { index: first + k, data: run.subarray(k * pageSize, (k + 1) * pageSize) }
      i += count
    }
    return out
  }

  /** One staging buffer per lane of writes in flight. */
  private readonly stagings: Staging[] = []

  /** The page is gone from the memory it was written in: nothing of it is left to write. */
  forget(page: number): void {
    if (!this.dirty.delete(page)) return
    if (this.flushing.has(page)) this.inBoth--
    this.updateDirtyStat()
  }

  /** Written since its last snapshot, or its snapshot is still being written. */
  isDirty(page: number): boolean {
    return this.dirty.has(page) || this.flushing.has(page)
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }
}

