/**
 * Keeping a region's resident memory under `maxResident`.
 *
 * Policy: FIFO by install time — CLOCK without reference bits, since a hit on
 * a resident page is invisible to a userfaultfd pager (no fault, and
 * PAGEMAP_SCAN has no accessed category). A page that is used again after
 * eviction simply faults back in and goes to the tail. When residency passes
 * the limit, pages are evicted from the head down to the low watermark:
 * clean pages at once (MADV_DONTNEED; the next touch MISSING-faults and the
 * page is fetched again), dirty pages only after a write-back — the evictor
 * starts a flush and comes back to them when it is done.
 *
 * A region in a resident pool (see pool.ts) also counts its pages there. An
 * install that takes the pool past its bound makes this region evict its
 * share of the excess (in proportion to what it holds) and, if the pool is
 * still over, wakes the other members to evict theirs: the bound holds for
 * the whole pool once they have run, which is why it can overshoot briefly.
 *
 * Only with sync write tracking: a write racing the eviction then blocks in
 * a write-protect fault until the page is gone, and refaults on a fresh copy
 * from the backend. With async tracking such a write would vanish.
 */
import { native, constants } from '@faultline/native'
import type { StatsWriter } from '../stats.js'
import { runs } from './describe.js'
import { PageSet } from './pageset.js'
import type { PoolMember } from '../pool.js'

export interface EvictionHost {
  isResident(page: number): boolean
  /** Forgets a page the evictor dropped. */
  dropResident(page: number): void
  isDirty(page: number): boolean
  /** The page's copy into the region is still queued (installer thread): not there to drop yet. */
  isInstalling?(page: number): boolean
  /** Starts (or joins) a write-back of every dirty page. */
  flush(): Promise<void>
  /** Called for each clean page just before it is dropped (it is still resident). */
  beforeDrop?(page: number): void
}

/** Evict down to this share of the limit, so eviction runs in batches. */
const LOW_WATERMARK = 0.9

export class Evictor {
  private queue: number[] = []
  private stamps: number[] = []
  private head = 0
  private readonly installStamp: Uint32Array
  private counter = 0
  private flushing: Promise<void> | undefined
  private residentCount = 0
  /** Pages evicted at least once, to count refetches. */
  private readonly evicted: PageSet

  /**
   * @param limitPages the region's own bound (`maxResident` in pages), or Infinity
   * @param pool the resident pool the region is a member of, if any
   */
  constructor(
    private readonly limitPages: number,
    private readonly address: number,
    private readonly pageSize: number,
    pageCount: number,
    private readonly host: EvictionHost,
    private readonly stats: StatsWriter,
    private readonly onError: (err: unknown) => void,
    private readonly pool?: PoolMember,
  ) {
    this.installStamp = new Uint32Array(pageCount)
    this.evicted = new PageSet(pageCount)
  }

  /** Counts a refetch before the install wakes anyone (who may read stats at once). */
  beforeInstall(page: number): void {
    if (this.evicted.delete(page)) this.stats.add('refetchedPages')
  }

  onInstalled(page: number): void {
    this.counter = (this.counter + 1) >>> 0 || 1
    this.installStamp[page] = this.counter
    this.queue.push(page)
    this.stamps.push(this.counter)
    this.residentCount++
    this.pool?.add(1)
    if (this.residentCount > this.limitPages) this.evict(Math.floor(this.limitPages * LOW_WATERMARK))
    else if (this.pool?.isOver()) {
      // Everyone gives back a share, this region first.
      this.onPoolPressure()
      this.pool.raise()
    }
  }

  /** Pages it had to skip may be droppable now (their copies were reported): back under the bound if over. */
  recheck(): void {
    if (this.residentCount > this.limitPages) this.evict(Math.floor(this.limitPages * LOW_WATERMARK))
    else if (this.pool?.isOver()) this.onPoolPressure()
  }

  /** The pool is over its bound: drop this region's share of the excess. */
  onPoolPressure(): void {
    const share = this.pool?.shareOfExcess(this.residentCount, LOW_WATERMARK) ?? 0
    if (share > 0) this.evict(this.residentCount - share)
  }

  /** The region is closing: its pages leave the pool with it. */
  release(): void {
    this.pool?.leave(this.residentCount)
    this.residentCount = 0
  }

  private evict(target: number): void {
    const victims: number[] = []
    const kept: Array<[number, number]> = []
    let sawDirty = false
    while (this.residentCount - victims.length > target && this.head < this.queue.length) {
      const page = this.queue[this.head]!
      const stamp = this.stamps[this.head]!
      this.head++
      if (this.installStamp[page] !== stamp || !this.host.isResident(page)) continue // stale entry
      if (this.host.isInstalling?.(page)) {
        // Kept at the head; the next eviction takes it, once it is there.
        kept.push([page, stamp])
        continue
      }
      if (this.host.isDirty(page)) {
        sawDirty = true
        kept.push([page, stamp])
        continue
      }
      victims.push(page)
    }
    // Dirty pages wait at the head for their write-back, pages being copied for the copy.
    if (kept.length > 0) {
      this.queue.splice(this.head, 0, ...kept.map(([p]) => p))
      this.stamps.splice(this.head, 0, ...kept.map(([, s]) => s))
    }
    this.drop(victims)
    this.compact()
    if (sawDirty && this.residentCount > target) this.flushThenEvict()
  }

  private drop(pages: number[]): void {
    if (pages.length === 0) return
    pages.sort((a, b) => a - b)
    for (const page of pages) {
      this.host.beforeDrop?.(page)
      this.host.dropResident(page)
      this.installStamp[page] = 0
      this.evicted.add(page)
    }
    for (const [first, count] of runs(pages)) {
      native.madvise(this.address + first * this.pageSize, count * this.pageSize, constants.MADV_DONTNEED)
    }
    this.residentCount -= pages.length
    this.pool?.remove(pages.length)
    this.stats.add('evictedPages', pages.length)
    this.stats.add('residentPages', -pages.length)
  }

  private flushThenEvict(): void {
    if (this.flushing !== undefined) return
    this.flushing = this.host
      .flush()
      .then(
        () => undefined,
        (err: unknown) => this.onError(err),
      )
      .finally(() => {
        this.flushing = undefined
        if (this.residentCount > this.limitPages) this.evict(Math.floor(this.limitPages * LOW_WATERMARK))
        else if (this.pool?.isOver()) this.onPoolPressure()
      })
  }

  private compact(): void {
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.stamps = this.stamps.slice(this.head)
      this.head = 0
    }
  }

  /** A page left residency some other way (refetch of a zapped page). */
  forget(page: number): void {
    if (this.installStamp[page] !== 0) {
      this.installStamp[page] = 0
      this.residentCount--
      this.pool?.remove(1)
    }
  }
}
