/**
 * A read-only backend over one remote object read by byte ranges: the S3
 * dataset mode and the HTTP backend differ only in how one range is fetched
 * (their RangeSource). Runs of neighbouring pages in a batch become one
 * request; several requests are in flight at once; every response must come
 * from the version pinned at open.
 */
import type { Backend, BackendContext, BackendInfo } from '@faultline/contract'
import { createLimiter, type Limiter } from '../net/limit.js'
import { ReadBufferPool } from '../read-buffers.js'
import { PageSink } from './page-sink.js'
import { planRanges, type PageRange } from './ranges.js'
import { ObjectChanged, PinnedVersion, type ObjectVersion } from './version.js'

export interface RangeSource {
  /** Name for messages, without credentials. */
  readonly name: string
  /**
   * Fetches bytes [start, end) of the object into `into` (a sink of
   * end − start bytes, whose end() checks the length). Calls `check` with
   * the version the response comes from before
   * reading its body (it throws if that is not the pinned version). Rejects
   * on any failure, including a short body or a response that is not that
   * range; throws ObjectChanged when the range is no longer there.
   */
  fetch(start: number, end: number, into: PageSink, check: (seen: ObjectVersion) => void): Promise<void>
  close(): Promise<void>
}

export interface RangeBackendOptions {
  /** Largest single range request, in bytes. */
  maxRangeBytes: number
  /** Requests in flight at once. */
  concurrency: number
}

/**
 * A request's first byte comes a round trip after it is sent, and a stream's
 * requests are sent as the reader moves: to keep the link busy the lookahead
 * must be several times bandwidth × round trip. At 20 ms and ~0.35 GB/s (s3rver
 * here) 32 MiB ran at 0.28–0.31 GB/s with `advise('sequential')`, 64 MiB at
 * 0.34–0.41, 256 MiB no faster.
 */
const REMOTE_READAHEAD_BYTES = 64 * 2 ** 20
/** A pool kept by a region that read nothing for this long is let go. */
const POOL_IDLE_MS = 10_000

export class RangeBackend implements Backend {
  readonly info: BackendInfo
  private readonly pinned: PinnedVersion
  private readonly limit: Limiter
  private readonly size: number
  /** As many pages as a stream keeps in flight, reused once installed. */
  private readonly pool: ReadBufferPool
  private readonly poolTrimmer: NodeJS.Timeout

  constructor(
    private readonly source: RangeSource,
    version: ObjectVersion,
    private readonly context: BackendContext,
    private readonly options: RangeBackendOptions,
  ) {
    this.size = version.size
    this.pinned = new PinnedVersion(source.name, version)
    this.limit = createLimiter(options.concurrency)
    this.pool = new ReadBufferPool(context.pageSize, Math.max(16, Math.ceil(REMOTE_READAHEAD_BYTES / context.pageSize)))
    this.poolTrimmer = setInterval(() => this.pool.trimIfIdle(), POOL_IDLE_MS).unref()
    // Remote stores are far away: a long stream keeps 64 MiB ahead (eight 8 MiB requests once ramped up).
    this.info = { name: source.name, size: version.size, readOnly: true, freshReadBuffers: true, readaheadBytes: REMOTE_READAHEAD_BYTES, version: versionString(version) }
  }

  /** Pages wholly past the end of the object read as zeros (a region larger than the object). */
  isAbsent(index: number): boolean {
    return index * this.context.pageSize >= this.size
  }

  async read(indexes: readonly number[]): Promise<Array<Uint8Array | undefined>> {
    this.pinned.assertUnchanged()
    const out: Array<Uint8Array | undefined> = new Array(indexes.length).fill(undefined)
    const ranges = planRanges(indexes, this.context.pageSize, this.options.maxRangeBytes).filter((r) => r.first * this.context.pageSize < this.size)
    await Promise.all(ranges.map((range) => this.limit(() => this.readRange(range, out))))
    return out
  }

  private async readRange(range: PageRange, out: Array<Uint8Array | undefined>): Promise<void> {
    const { pageSize } = this.context
    const start = range.first * pageSize
    const end = Math.min(start + range.count * pageSize, this.size)
    // Pages wholly past the object's end are not fetched: they read as zeros.
    const pages = Array.from({ length: Math.ceil((end - start) / pageSize) }, () => this.pool.take())
    try {
      // The sink zero-pads the last page past the object's end.
      await this.source.fetch(start, end, new PageSink(pages, end - start), (seen) => this.pinned.check(seen))
    } catch (err) {
      for (const page of pages) this.pool.recycle(page)
      if (err instanceof ObjectChanged) this.pinned.markChanged(err.what)
      throw err
    }
    range.slots.forEach((slot, i) => {
      out[slot] = pages[i]
    })
  }

  recycle(data: Uint8Array): void {
    this.pool.recycle(data)
  }

  async close(): Promise<void> {
    clearInterval(this.poolTrimmer)
    await this.source.close()
  }
}

/** The object's version as BackendInfo.version: its ETag, else its Last-Modified, with its length. */
function versionString(version: ObjectVersion): string | undefined {
  if (version.etag !== undefined) return `etag:${version.etag}:${version.size}`
  if (version.lastModified !== undefined) return `modified:${version.lastModified}:${version.size}`
  return undefined
}
