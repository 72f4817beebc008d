/**
 * A read-only backend over one remote object read by byte ranges: the S3
 * dataset mode and the HTTP backend differ only in how one range is fetched
 * (their RangeSource). Runs of neighbouring pages in a batch become one
 * request; several requests are in flight at once; every response must come
 * from the version pinned at open.
 */
import type { Backend, BackendContext, BackendInfo } from '@faultline/contract'
import { createLimiter, type Limiter } from '../net/limit.js'
import { planRanges, type PageRange } from './ranges.js'
import { ObjectChanged, PinnedVersion, type ObjectVersion } from './version.js'

export interface RangeSource {
  /** Name for messages, without credentials. */
  readonly name: string
  /**
   * Fetches bytes [start, end) of the object into `into` (exactly end − start
   * long). Calls `check` with the version the response comes from before
   * reading its body (it throws if that is not the pinned version). Rejects
   * on any failure, including a short body or a response that is not that
   * range; throws ObjectChanged when the range is no longer there.
   */
  fetch(start: number, end: number, into: Uint8Array, check: (seen: ObjectVersion) => void): Promise<void>
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

export class RangeBackend implements Backend {
  readonly info: BackendInfo
  private readonly pinned: PinnedVersion
  private readonly limit: Limiter
  private readonly size: number

  constructor(
    private readonly source: RangeSource,
    version: ObjectVersion,
    private readonly context: BackendContext,
    private readonly options: RangeBackendOptions,
  ) {
    this.size = version.size
    this.pinned = new PinnedVersion(source.name, version)
    this.limit = createLimiter(options.concurrency)
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
    // The part past the object's end stays zero: the last page is zero-padded.
    const buffer = new Uint8Array(range.count * pageSize)
    try {
      await this.source.fetch(start, end, buffer.subarray(0, end - start), (seen) => this.pinned.check(seen))
    } catch (err) {
      if (err instanceof ObjectChanged) this.pinned.markChanged(err.what)
      throw err
    }
    range.slots.forEach((slot, i) => {
      out[slot] = start + i * pageSize < this.size ? buffer.subarray(i * pageSize, (i + 1) * pageSize) : undefined
    })
  }

  async close(): Promise<void> {
    await this.source.close()
  }
}

/** The object's version as BackendInfo.version: its ETag, else its Last-Modified, with its length. */
function versionString(version: ObjectVersion): string | undefined {
  if (version.etag !== undefined) return `etag:${version.etag}:${version.size}`
  if (version.lastModified !== undefined) return `modified:${version.lastModified}:${version.size}`
  return undefined
}
