/** The public Region: a mapped range of memory whose pages come from a backend. */
import { EventEmitter } from 'node:events'
import { BroadcastChannel } from 'node:worker_threads'
import { randomUUID } from 'node:crypto'
import { ADVICE, isAdvice, type Advice } from './advice.js'
import { FaultlineError, invalidOption, outOfRange, regionClosed } from './errors.js'
import { describe, normalizeOptions, type RegionOptions } from './options.js'
import { PagerHost } from './pager/host.js'
import type { PagerEvent } from './pager/protocol.js'
import { readStats, STATS_BYTES, type RegionStats, type WriteTrackingMode } from './stats.js'
import { ViewSet } from './views.js'
import { closedChannelName, type RegionHandle } from './handle.js'
import { native } from '@faultline/native'
import { readSharedStats } from './shared/layout.js'

/** Events a region emits, as a closed union keyed by name. */
export interface RegionEvents {
  /** A backend read failed for good; the faulting accesses got SIGBUS (the process usually dies). */
  'fetch-error': [{ pages: number[]; message: string }]
  /** A backend read failed and will be retried. */
  'fetch-retry': [{ pages: number[]; attempt: number; message: string }]
  /** A background write-back failed; the pages stay dirty and are retried by the next flush. */
  'writeback-error': [{ pages: number[]; message: string }]
  /**
   * The pager thread stopped answering faults for `fetchTimeoutMs` (at least
   * 5 s): a backend call blocked it. Its watchdog failed the waiting faults
   * and fails every later fault on a page that is not resident (SIGBUS, or
   * EFAULT for a kernel access). Emitted once the pager runs again; resident
   * and dirty pages are kept, and `flush()` and `close()` still write back.
   */
  'pager-stalled': [{ message: string }]
}

/** Largest region.read(): one allocation, copied across threads. */
const MAX_READ_BYTES = 2 ** 30

export class Region extends EventEmitter<RegionEvents> {
  /** Bytes mapped: the requested or backend size rounded up to whole pages. */
  readonly size: number
  /** Bytes of real data; beyond it, up to `size`, the region reads as zeros. */
  readonly dataSize: number
  readonly pageSize: number
  /** True when the region is backed by hugetlb pages (`hugePages`): `pageSize` is the huge page size. */
  readonly hugePages: boolean
  /** True when writes stay private to this process and never reach the backend. */
  readonly readOnly: boolean
  /** The backend's name, without credentials. */
  readonly backendName: string
  /** userfaultfd features the pager runs with. */
  readonly features: readonly string[]
  /** How writes are tracked: `none` for a read-only region. */
  readonly writeTracking: WriteTrackingMode
  /**
   * The `worker_threads` id of the thread that serves this region's faults
   * (for diagnostics). Regions share pager threads (at most one per core)
   * unless opened with `pagerThread: 'own'`.
   */
  readonly pagerThreadId: number
  private readonly views: ViewSet
  private readonly id = randomUUID()
  private closing: Promise<void> | undefined
  /** A shared region's control file, mapped by the pager: read for stats().shared. */
  private readonly sharedCells: Int32Array | undefined

  private constructor(
    private readonly host: PagerHost,
    private readonly statsBuffer: SharedArrayBuffer,
  ) {
    super()
    const r = host.ready
    this.size = r.size
    this.dataSize = r.dataSize
    this.pageSize = r.pageSize
    this.hugePages = r.hugePages
    this.readOnly = r.readOnly
    this.backendName = r.backendName
    this.features = r.features
    this.writeTracking = r.writeTracking
    this.pagerThreadId = r.threadId
    this.views = new ViewSet(r.address, r.size, 'region')
    if (r.shared !== undefined) this.sharedCells = new Int32Array(native.externalBuffer(r.shared.ctlAddress, r.shared.ctlLength))
  }

  /** @internal use {@link openRegion} */
  static async open(options: RegionOptions): Promise<Region> {
    const normalized = normalizeOptions(options)
    const statsBuffer = new SharedArrayBuffer(STATS_BYTES)
    let region: Region | undefined
    const host = await PagerHost.start(normalized, statsBuffer, (event) => region?.dispatch(event))
    region = new Region(host, statsBuffer)
    return region
  }

  private dispatch(event: PagerEvent): void {
    switch (event.type) {
      case 'fetch-error':
        this.emit('fetch-error', { pages: event.pages, message: event.message })
        return
      case 'fetch-retry':
        this.emit('fetch-retry', { pages: event.pages, attempt: event.attempt, message: event.message })
        return
      case 'writeback-error':
        // An unhandled 'error'-like event must not crash the app: the pages stay dirty.
        this.emit('writeback-error', { pages: event.pages, message: event.message })
        return
      case 'pager-stalled':
        this.emit('pager-stalled', { message: event.message })
        return
    }
  }

  /**
   * A Uint8Array over `[offset, offset + length)`. Touching it faults pages in
   * from the backend. Views of more than 4 GiB are not possible on Node 20;
   * views of more than 2 GiB must not cross a 4 GiB window (see docs/limits.md).
   * All views are detached (length 0) when the region closes.
   */
  view(offset?: number, length?: number): Uint8Array {
    return this.views.view(offset, length)
  }

  /** Fetches and installs the pages covering `[offset, offset + length)` ahead of use. */
  async prefetch(offset = 0, length = this.size - offset): Promise<void> {
    this.assertOpen('prefetch()')
    this.assertRange(offset, length)
    await this.host.request({ op: 'prefetch', offset, length })
  }

  /**
   * Tells the pager how `[offset, offset + length)` will be used, like
   * `madvise(2)` / `posix_fadvise(2)` (see docs/tuning.md):
   * - `sequential`: read in order; readahead starts at the first miss and
   *   runs its full `readahead.maxBytes` ahead at once.
   * - `random`: no readahead in the range.
   * - `normal`: forget earlier `sequential` / `random` hints on the range.
   * - `willneed`: start fetching the range now; resolves once it is asked
   *   for, not fetched (await `prefetch()` for that). A page that cannot be
   *   fetched is simply fetched again when touched.
   * - `dontneed`: the range's resident pages leave the region (the next
   *   touch fetches them again); dirty pages are written back first. In a
   *   read-write region it needs `writeTracking: 'sync'`, as `maxResident`
   *   does: with async tracking a write racing the drop would be lost. In a
   *   read-only region writes are private, and those to the range are
   *   discarded, as `MADV_DONTNEED` does on a private mapping.
   * Hints cover whole pages: a partial page at either end counts.
   */
  /** ERR_OUT_OF_RANGE unless [offset, offset + length) is a non-empty part of the region. */
  private assertRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.size) throw outOfRange('offset', `must be a whole number in [0, ${this.size}) (got ${offset})`)
    if (!Number.isSafeInteger(length) || length <= 0 || offset + length > this.size) throw outOfRange('length', `must be positive with offset + length ≤ ${this.size} (got ${length})`)
  }

  async advise(offset: number, length: number, advice: Advice): Promise<void> {
    this.assertOpen('advise()')
    this.assertRange(offset, length)
    if (!isAdvice(advice)) throw invalidOption('advice', `must be one of ${ADVICE.map((a) => `'${a}'`).join(', ')} (got ${describe(advice)})`)
    if (advice === 'dontneed' && !this.readOnly && this.writeTracking === 'async-wp') {
      throw invalidOption('advice', "'dontneed' in a read-write region needs writeTracking: 'sync' (with async tracking a write racing the drop would be lost)")
    }
    await this.host.request({ op: 'advise', offset, length, advice })
  }

  /**
   * Reads `[offset, offset + length)` from the backend into a new Uint8Array,
   * bypassing the mapping: nothing is installed, and a page the backend
   * cannot deliver (after retries until `fetchTimeoutMs`) rejects the call
   * with a FaultlineError (`ERR_BACKEND`, `ERR_BAD_PAGE`) instead of failing
   * a memory access with SIGBUS. It returns what the backend holds, so in a
   * read-write region writes not yet flushed are not in it. Counts toward
   * `fetchRequests` and `bytesFetched`. At most 1 GiB per call.
   */
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.assertOpen('read()')
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.size) throw outOfRange('offset', `must be a whole number in [0, ${this.size}) (got ${offset})`)
    if (!Number.isSafeInteger(length) || length <= 0 || offset + length > this.size || length > MAX_READ_BYTES) {
      throw outOfRange('length', `must be positive, at most 1 GiB, with offset + length ≤ ${this.size} (got ${length})`)
    }
    return this.host.read(offset, length)
  }

  /** Resolves when every write made before the call is in the backend (see docs/writes.md). */
  async flush(): Promise<void> {
    this.assertOpen('flush()')
    await this.host.request({ op: 'flush' })
  }

  /** A synchronous snapshot of the region's counters and fault latency. */
  stats(): RegionStats {
    const stats = readStats(this.statsBuffer, this.writeTracking)
    const shared = this.host.ready.shared
    if (shared !== undefined && this.sharedCells !== undefined && this.sharedCells.length > 0) stats.shared = readSharedStats(this.sharedCells, shared.slot, shared.path)
    return stats
  }

  /**
   * A structured-cloneable handle for other threads of this process: send it
   * with postMessage and call {@link attachRegion} there to get views.
   */
  handle(): RegionHandle {
    this.assertOpen('handle()')
    return {
      kind: 'faultline-region',
      id: this.id,
      address: this.host.ready.address,
      size: this.size,
      dataSize: this.dataSize,
      pageSize: this.pageSize,
      readOnly: this.readOnly,
      writeTracking: this.writeTracking,
      stats: this.statsBuffer,
    }
  }

  get closed(): boolean {
    return this.closing !== undefined
  }

  /**
   * Writes back dirty pages, then detaches every view of this thread, tells
   * attached threads to detach theirs, stops the pager and unmaps. If the
   * write-back fails, close() rejects and the region stays open and usable,
   * so nothing is lost: fix the backend and call close() again. Memory a stale
   * view in another thread still points at reads as zeros, never faults, and
   * is unmapped once that view is gone. Idempotent once it has succeeded.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown().catch((err: unknown) => {
      this.closing = undefined
      throw err
    })
    return this.closing
  }

  private async shutdown(): Promise<void> {
    if (!this.views.isClosed) {
      await this.host.request({ op: 'flush' })
      this.views.close()
      const channel = new BroadcastChannel(closedChannelName(this.id))
      channel.postMessage('closed')
      channel.close()
    }
    // The pager flushes again (writes from other threads since) before it unmaps.
    await this.host.request({ op: 'close' })
    if (this.sharedCells !== undefined) native.detachBuffer(this.sharedCells.buffer as ArrayBuffer)
    await this.host.exited()
  }

  private assertOpen(what: string): void {
    if (this.closing !== undefined) throw regionClosed(`region.${what}`)
  }
}

/**
 * Maps a region of `size` bytes whose pages are fetched from `backend` on
 * first touch. See {@link RegionOptions}.
 */
export function openRegion(options: RegionOptions): Promise<Region> {
  return Region.open(options)
}

export { FaultlineError }
