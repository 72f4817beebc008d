/**
 * Using a region from other threads of the same process. A region's pager
 * serves faults from every thread; another thread only needs its own
 * ArrayBuffers over the mapping, which `attachRegion` makes from a handle.
 */
import { BroadcastChannel } from 'node:worker_threads'
import { invalidOption } from './errors.js'
import { readStats, type RegionStats, type WriteTrackingMode } from './stats.js'
import { ViewSet } from './views.js'

/** What `region.handle()` returns: plain data, safe to postMessage to a Worker. */
export interface RegionHandle {
  kind: 'faultline-region'
  id: string
  address: number
  size: number
  dataSize: number
  pageSize: number
  readOnly: boolean
  writeTracking: WriteTrackingMode
  stats: SharedArrayBuffer
}

export function closedChannelName(id: string): string {
  return `faultline:region-closed:${id}`
}

/** A region as seen from another thread: views and stats, no ownership. */
export class RegionAttachment {
  readonly size: number
  readonly dataSize: number
  readonly pageSize: number
  readonly readOnly: boolean
  private readonly views: ViewSet
  private readonly channel: BroadcastChannel

  constructor(private readonly handle: RegionHandle) {
    this.size = handle.size
    this.dataSize = handle.dataSize
    this.pageSize = handle.pageSize
    this.readOnly = handle.readOnly
    this.views = new ViewSet(handle.address, handle.size, 'attached region')
    this.channel = new BroadcastChannel(closedChannelName(handle.id))
    // Listening must not keep this thread alive.
    this.channel.unref()
    this.channel.onmessage = () => this.detach()
  }

  /** Same contract as `Region.view`. */
  view(offset?: number, length?: number): Uint8Array {
    return this.views.view(offset, length)
  }

  stats(): RegionStats {
    return readStats(this.handle.stats, this.handle.writeTracking)
  }

  /** True once detached, by this thread or because the region closed. */
  get closed(): boolean {
    return this.views.isClosed
  }

  /** Detaches this thread's views. The region stays open for the others. */
  detach(): void {
    if (this.views.isClosed) return
    this.views.close()
    this.channel.close()
  }
}

/** Makes views of a region owned by another thread, from its `handle()`. */
export function attachRegion(handle: RegionHandle): RegionAttachment {
  if (handle === null || typeof handle !== 'object' || handle.kind !== 'faultline-region' || !(handle.stats instanceof SharedArrayBuffer)) {
    throw invalidOption('handle', 'must be the value of region.handle(), passed through postMessage')
  }
  return new RegionAttachment(handle)
}
