/**
 * The fault service. Runs on the pager thread only: it reads uffd messages,
 * fetches pages from the backend in batches and installs them with
 * UFFDIO_COPY / UFFDIO_ZEROPAGE. It must never touch the region's memory
 * itself: a thread that faults on a registered page sleeps until that page is
 * installed, and the pager is the only thread that can install it.
 */
import { writeSync } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { native, constants } from '@faultline/native'
import type { Backend } from '@faultline/contract'
import { FaultlineError } from '../errors.js'
import type { StatsWriter } from '../stats.js'
import { describePages, runs } from './describe.js'
import { PageFetcher } from './fetcher.js'
import { PageSet } from './pageset.js'
import type { PagerEvent } from './protocol.js'
import type { WriteBack } from './writeback.js'
import { SequentialReadahead, type ReadaheadPlan } from './readahead.js'
import { AccessHints } from './hints.js'
import { BusyRetry, writeProtect } from './busy.js'
import type { Advice } from '../advice.js'
import type { Evictor } from './eviction.js'
import type { SecondTier } from './second-tier.js'
import type { SharedSegment } from '../shared/segment.js'
import { EMPTY, PRESENT } from '../shared/layout.js'

export interface PagerConfig {
  fd: number
  address: number
  size: number
  pageSize: number
  /** The smallest piece the kernel fills: the system page, or the huge page of a hugetlb region. */
  fillUnit: number
  /** Backed by hugetlb pages: no UFFDIO_ZEROPAGE there, absent pages are copies of zeros. */
  hugetlb: boolean
  /**
   * Where page `page` really is, when the pages are not one run from
   * `address` (a peer's several ranges, see peer.ts PeerLayout); messages
   * then carry addresses in the run.
   */
  addressOf?: ((page: number) => number) | undefined
  maxBatchPages: number
  /** Most pages the backend takes in one read (readahead parts grow up to it). */
  maxPartPages: number
  fetchTimeoutMs: number
  /** Most pages fetched ahead of a sequential reader; 0 turns readahead off. */
  readaheadPages: number
}

interface Waiter {
  /** performance.now() of each fault message for this page, for latency. */
  faultTimes: number[]
  prefetch: boolean
  /** A thread is waiting to write it (a missing fault with the WRITE flag). */
  write: boolean
}

interface FetchPlan {
  result: Array<Uint8Array | undefined>
  toRead: number[]
  slots: number[]
}

/**
 * The watcher's native side: a page staged there is installed on its fault
 * before JS runs (see Watcher in @faultline/native).
 */
export interface PageStage {
  stage(page: number, bytes: Uint8Array): void
  unstage(page: number, out?: Uint8Array): boolean
}

/** The native installer thread (see createInstaller in @faultline/native). */
export interface PageInstaller {
  install(address: number, bytes: Uint8Array, mode: number, token: number): void
}

/** Faults on a page believed resident before the pager concludes it was zapped behind its back. */
const ZAPPED_AFTER_DUPLICATES = 4

/** How often pages another process is fetching are looked at (the pager thread never blocks on them). */
const OTHERS_POLL_MS = 1

/** Faults (and prefetches) on pages another process is fetching. */
interface OthersWait {
  faultTimes: number[]
  settled: Array<() => void>
}

export class Pager {
  readonly pageCount: number
  private readonly resident: PageSet
  /** Pages being fetched or installed, with who waits for them. */
  private readonly inflight = new Map<number, Waiter>()
  /** Pages that faulted and are queued for the next batch. */
  private queue: number[] = []
  /** Readahead parts waiting for the next drain, each one backend request. */
  private readaheadParts: number[][] = []
  private readonly duplicatesOnResident = new Map<number, number>()
  private scheduled = false
  private closed = false
  private activeBatches = 0
  private readonly idleWaiters: Array<() => void> = []
  private readonly zeroPage: Uint8Array
  /** What touchSource() read, kept so the reads are not optimized away. */
  private touched = 0
  /** Set for read-write regions: tracks written pages and writes them back. */
  writeBack: WriteBack | undefined
  /** Set when the region has a `maxResident` bound. */
  evictor: Evictor | undefined
  /** Evicted clean pages kept locally, when configured. */
  secondTier: SecondTier | undefined
  private readonly readahead: SequentialReadahead | undefined
  /** Readahead markers fetched but not installed: installing one on its fault starts the next window. */
  private readonly held = new Map<number, Uint8Array | undefined>()
  private readonly markers = new Set<number>()
  /** Lasting hints from region.advise(), read by the readahead. */
  private readonly hints = new AccessHints()
  private readonly fetcher: PageFetcher
  /** Set when the watcher serves faults natively: readahead markers are staged there. */
  staging: PageStage | undefined
  /** Pages [0, sharedPages) the watcher serves from the backend's shared memory (Backend.sharedPages). */
  sharedPages = 0
  /**
   * Set when the backend's read buffers are fresh: pages fetched ahead are
   * copied into the region on this native thread while the pager goes on.
   */
  installer: PageInstaller | undefined
  /** Pages handed to the installer, with their bytes: kept alive until it reports the copy. */
  private readonly installing = new Map<number, Uint8Array>()
  /**
   * Set when the watchdog is armed (worker.ts), with the stall it waits
   * for. After a takeover, the write faults it let through are drained from
   * the watcher and counted dirty before each flush.
   */
  watchdog: { stallMs: number; drainTakeover(out: Float64Array): number } | undefined
  /**
   * Set for a peer's range (faultline serve), whose descriptor may carry
   * REMOVE events: called when an install gets EAGAIN, to read the queued
   * messages out of the way (this thread is the one that reads them).
   */
  onBusy: (() => void) | undefined
  private stalled = false
  /**
   * Set for a region shared between processes: the machine-wide page
   * states. A page is claimed (EMPTY → FETCHING(me)) before it is fetched;
   * one another process is fetching is waited for by polling, then woken.
   */
  shared: SharedSegment | undefined
  private readonly othersFetching = new Map<number, OthersWait>()
  private othersTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly config: PagerConfig,
    private readonly backend: Backend,
    private readonly stats: StatsWriter,
    private readonly emit: (event: PagerEvent) => void,
  ) {
    this.pageCount = config.size / config.pageSize
    this.resident = new PageSet(this.pageCount)
    this.zeroPage = new Uint8Array(config.pageSize)
    this.fetcher = new PageFetcher(backend, config.pageSize, config.fetchTimeoutMs)
    if (config.readaheadPages > 0) {
      this.readahead = new SequentialReadahead({
        minPages: Math.min(4, config.readaheadPages),
        maxPages: config.readaheadPages,
        pageCount: this.pageCount,
        partPages: config.maxBatchPages,
        maxPartPages: Math.max(config.maxBatchPages, config.maxPartPages),
        hintAt: (page) => this.hints.at(page),
      })
    }
  }

  /** Called by the uffd watcher with decoded messages: [event, flags, address, arg] × count. */
  onMessages(count: number, messages: Float64Array): void {
    if (count < 0) {
      if (count === -osConstants.errno.ETIMEDOUT && this.watchdog !== undefined) {
        this.onStalled(this.watchdog.stallMs)
        return
      }
      this.fatal(`reading the userfaultfd failed (errno ${-count}); faults can no longer be served`)
      return
    }
    const now = performance.now()
    // Readahead for served pages waits for the whole burst: pages served
    // later in it are resident by then and not fetched again.
    const servedStreams: Array<[number, boolean]> = []
    for (let m = 0; m < count; m++) {
      const event = messages[m * 4]!
      if (event !== constants.UFFD_EVENT_PAGEFAULT && event !== constants.WATCH_SERVED) continue
      const flags = messages[m * 4 + 1]!
      const page = Math.floor((messages[m * 4 + 2]! - this.config.address) / this.config.pageSize)
      if (page < 0 || page >= this.pageCount) continue
      if (event === constants.WATCH_SERVED) {
        if (messages[m * 4 + 3] === 1) servedStreams.push([page, this.onServed(page, (flags & constants.UFFD_PAGEFAULT_FLAG_WRITE) !== 0)])
        else this.onServedPresent(page)
        continue
      }
      // With MISSING|WP registered, a write to a page that is not there arrives
      // as a missing fault with WRITE only; WP is set only for present pages.
      if (flags & constants.UFFD_PAGEFAULT_FLAG_WP) this.onWriteFault(page)
      else this.onFault(page, now, (flags & constants.UFFD_PAGEFAULT_FLAG_WRITE) !== 0)
    }
    for (const [page, marker] of servedStreams) this.readAhead(marker ? this.readahead?.onMarker(page) : this.readahead?.onMiss(page))
    // The whole readable burst is queued: no need to wait for a microtask.
    this.drain()
    // A held page installed here may have been the last one in flight.
    this.notifyIdle()
  }

  /**
   * The watcher installed this page itself (and counted the fault, the fetch
   * and the residency): keep the books as install() would have. Returns
   * whether it was a readahead marker, for the stream.
   */
  private onServed(page: number, write: boolean): boolean {
    const marker = this.held.delete(page)
    if (this.secondTier?.consumed(page)) this.stats.add('secondTierHits')
    this.evictor?.beforeInstall(page)
    this.duplicatesOnResident.delete(page)
    // Dirty before the evictor sees it: it drops clean pages without writing them.
    if (write) this.writeBack?.onInstalledForWrite(page)
    if (this.resident.add(page)) this.evictor?.onInstalled(page)
    else this.stats.add('residentPages', -1) // on the books already: it was dropped behind our back
    if (this.shared !== undefined) {
      // The watcher counted the fetch of this held page (pagesFetched) as it installed it.
      this.shared.countFetched(1)
      this.sharedInstalled(page)
    }
    return marker
  }

  /** The watcher found the page already there (and dropped any bytes staged for it): forget them here too. */
  private onServedPresent(page: number): void {
    this.held.delete(page)
    this.secondTier?.consumed(page)
  }

  private onWriteFault(page: number): void {
    if (!this.resident.has(page)) {
      // Evicted while the writer waited: let it retry; it will miss, and the
      // page comes back from the backend and is counted dirty then.
      native.uffdWake(this.config.fd, this.pageAddress(page), this.config.pageSize)
      return
    }
    if (this.writeBack !== undefined) this.writeBack.onWriteFault(page)
    else writeProtect(this.config.fd, this.pageAddress(page), this.config.pageSize, false, this.onBusy)
  }

  private onFault(page: number, now: number, write: boolean): void {
    this.stats.add('faults')
    if (this.held.has(page)) {
      // The reader reached a readahead marker: its bytes are here already.
      const data = this.takeHeld(page)
      this.inflight.set(page, { faultTimes: [now], prefetch: true, write })
      this.install(page, data)
      this.readAhead(this.readahead?.onMarker(page))
      return
    }
    const waiter = this.inflight.get(page)
    if (waiter !== undefined) {
      this.stats.add('duplicateFaults')
      waiter.faultTimes.push(now)
      waiter.write ||= write
      // The reader reached a marker still on its way: start the next window
      // now, as the kernel does on a PG_readahead page not yet read, rather
      // than a round trip later when the marker arrives.
      if (this.markers.delete(page)) this.readAhead(this.readahead?.onMarker(page))
      return
    }
    if (this.shared !== undefined && this.onSharedFault(page, now)) return
    if (this.resident.has(page)) {
      // A second thread's fault on a page we installed after it queued: the
      // COPY already woke it. Wake again in case it raced, and refetch only
      // if the page keeps faulting (someone dropped it with madvise).
      const n = (this.duplicatesOnResident.get(page) ?? 0) + 1
      this.stats.add('duplicateFaults')
      if (n < ZAPPED_AFTER_DUPLICATES) {
        this.duplicatesOnResident.set(page, n)
        native.uffdWake(this.config.fd, this.pageAddress(page), this.config.pageSize)
        return
      }
      this.duplicatesOnResident.delete(page)
      this.resident.delete(page)
      this.evictor?.forget(page)
      this.stats.add('residentPages', -1)
    }
    this.inflight.set(page, { faultTimes: [now], prefetch: false, write })
    this.queue.push(page)
    this.readAhead(this.readahead?.onMiss(page))
  }

  /**
   * A fault in a shared region on a page not in flight here. Returns false
   * when this process claimed it (the caller fetches it as usual); true when
   * it is installed already (woken) or another process is fetching it.
   */
  private onSharedFault(page: number, now: number): boolean {
    const shared = this.shared!
    if (shared.state(page) === PRESENT) {
      // Installed (by anyone) after this fault was queued: wake. A page that
      // keeps faulting while PRESENT is not in the cache after all: fetch it.
      const n = (this.duplicatesOnResident.get(page) ?? 0) + 1
      if (n < ZAPPED_AFTER_DUPLICATES) {
        this.duplicatesOnResident.set(page, n)
        if (this.resident.has(page)) this.stats.add('duplicateFaults')
        else shared.servedByOthers(1)
        native.uffdWake(this.config.fd, this.pageAddress(page), this.config.pageSize)
        return true
      }
      this.duplicatesOnResident.delete(page)
      shared.repair(page)
    }
    if (shared.tryClaim(page)) {
      // Ours to fetch. If our books had it, another process evicted it since.
      if (this.resident.delete(page)) this.stats.add('residentPages', -1)
      return false
    }
    this.waitForOthers(page, now)
    return true
  }

  /** Waits (by polling) for a page another process is fetching; a fault's time, or a prefetch's resolver. */
  private waitForOthers(page: number, faultTime: number | undefined, settled?: () => void): void {
    let wait = this.othersFetching.get(page)
    if (wait === undefined) {
      wait = { faultTimes: [], settled: [] }
      this.othersFetching.set(page, wait)
    }
    if (faultTime !== undefined) wait.faultTimes.push(faultTime)
    if (settled !== undefined) wait.settled.push(settled)
    this.othersTimer ??= setTimeout(() => this.pollOthers(), OTHERS_POLL_MS)
  }

  /**
   * Pages another process was fetching: PRESENT now → wake our waiters;
   * EMPTY (its fetch failed) → claim and fetch it here; owner dead → take
   * its claim over and fetch it here.
   */
  private pollOthers(): void {
    this.othersTimer = undefined
    const shared = this.shared
    if (shared === undefined || this.closed) return
    for (const [page, wait] of this.othersFetching) {
      const state = shared.state(page)
      if (state === PRESENT) {
        this.othersFetching.delete(page)
        if (wait.faultTimes.length > 0) {
          shared.servedByOthers(wait.faultTimes.length)
          native.uffdWake(this.config.fd, this.pageAddress(page), this.config.pageSize)
          const now = performance.now()
          for (const t of wait.faultTimes) this.stats.recordLatency((now - t) * 1000)
        }
        for (const resolve of wait.settled) resolve()
        continue
      }
      const ours = state === EMPTY ? shared.tryClaim(page) : !shared.ownerAlive(state) && shared.takeOver(page, state)
      if (!ours) continue
      this.othersFetching.delete(page)
      this.inflight.set(page, { faultTimes: wait.faultTimes, prefetch: wait.faultTimes.length === 0, write: false })
      if (wait.settled.length > 0) this.settleWaiters.set(page, [...(this.settleWaiters.get(page) ?? []), ...wait.settled])
      this.queue.push(page)
    }
    this.drain()
    if (this.othersFetching.size > 0) this.othersTimer = setTimeout(() => this.pollOthers(), OTHERS_POLL_MS)
  }

  /** Installed here: the page is PRESENT for every process; past the shared budget, the cache is trimmed. */
  private sharedInstalled(page: number): void {
    const shared = this.shared!
    if (!shared.markPresent(page)) return
    const dropped = shared.evictIfOver()
    if (dropped.length === 0) return
    let ours = 0
    for (const p of dropped) {
      if (this.resident.delete(p)) ours++
      this.duplicatesOnResident.delete(p)
    }
    this.stats.add('residentPages', -ours)
    this.stats.add('evictedPages', dropped.length)
  }

  /** Queues a readahead window, cut into the plan's parts, for the next drain. */
  private readAhead(plan: ReadaheadPlan | undefined): void {
    if (plan === undefined) return
    for (const part of plan.parts) {
      const pages: number[] = []
      for (let p = part.first; p < part.first + part.count; p++) {
        if (this.resident.has(p) || this.inflight.has(p) || this.held.has(p)) continue
        // Shared: only pages nobody else has or is fetching.
        if (this.shared !== undefined && !this.shared.tryClaim(p)) continue
        this.inflight.set(p, { faultTimes: [], prefetch: true, write: false })
        pages.push(p)
      }
      if (pages.length > 0) this.readaheadParts.push(pages)
    }
    for (const marker of plan.markers) if (this.inflight.get(marker)?.faultTimes.length === 0 && !this.installing.has(marker)) this.markers.add(marker)
  }

  /** Fetches and installs pages [first, last] that are not resident, without anyone faulting. */
  async prefetch(first: number, last: number): Promise<void> {
    const pages: number[] = []
    const pending: Array<Promise<void>> = []
    for (let p = first; p <= last; p++) {
      if (this.held.has(p)) {
        const data = this.takeHeld(p)
        this.inflight.set(p, { faultTimes: [], prefetch: true, write: false })
        this.install(p, data)
        continue
      }
      // In flight includes pages the installer has not copied yet (they are resident on the books already).
      if (this.inflight.has(p)) {
        pending.push(this.whenSettled(p))
        continue
      }
      if (this.shared !== undefined && !this.othersFetching.has(p)) {
        if (this.shared.state(p) === PRESENT) continue
        if (!this.shared.tryClaim(p)) {
          pending.push(new Promise((resolve) => this.waitForOthers(p, undefined, resolve)))
          continue
        }
      } else if (this.othersFetching.has(p)) {
        pending.push(new Promise((resolve) => this.waitForOthers(p, undefined, resolve)))
        continue
      } else if (this.resident.has(p)) continue
      this.inflight.set(p, { faultTimes: [], prefetch: true, write: false })
      pages.push(p)
    }
    // Held pages installed above may have been the last ones in flight.
    this.notifyIdle()
    const failures: FaultlineError[] = []
    for (let i = 0; i < pages.length; i += this.config.maxBatchPages) {
      pending.push(this.runBatch(pages.slice(i, i + this.config.maxBatchPages)).catch((e: FaultlineError) => void failures.push(e)))
    }
    await Promise.all(pending)
    // Pages handed to the installer thread (held ones too) are installed once it reports them.
    const copying: Array<Promise<void>> = []
    for (let p = first; p <= last; p++) if (this.installing.has(p)) copying.push(this.whenSettled(p))
    await Promise.all(copying)
    if (failures.length > 0) throw failures[0]
  }

  /** region.advise() over pages [first, last]. */
  async advise(first: number, last: number, advice: Advice): Promise<void> {
    switch (advice) {
      case 'normal':
      case 'sequential':
      case 'random':
        this.hints.set(first, last, advice)
        return
      case 'willneed':
        // Like MADV_WILLNEED, it only starts the reads; a page that fails is fetched again on its fault.
        this.prefetch(first, last).catch(() => undefined)
        return
      case 'dontneed':
        await this.dropRange(first, last)
    }
  }

  /**
   * advise('dontneed'): the range's resident pages leave the region, dirty
   * ones once written back. Pages still in flight stay; a page written again
   * while the write-back ran is dirty again, and stays too.
   */
  private async dropRange(first: number, last: number): Promise<void> {
    const { writeBack } = this
    if (writeBack !== undefined) {
      for (let p = first; p <= last; p++) {
        if (writeBack.isDirty(p)) {
          await writeBack.flush()
          break
        }
      }
    }
    const pages: number[] = []
    for (let p = first; p <= last; p++) {
      if (this.held.has(p)) this.takeHeld(p)
      if (!this.resident.has(p) || this.inflight.has(p) || this.installing.has(p) || writeBack?.isDirty(p)) continue
      pages.push(p)
    }
    for (const p of pages) {
      this.dropResident(p)
      this.evictor?.forget(p)
    }
    for (const [start, count] of runs(pages)) native.madvise(this.pageAddress(start), count * this.config.pageSize, constants.MADV_DONTNEED)
    this.stats.add('residentPages', -pages.length)
    this.stats.add('evictedPages', pages.length)
  }

  private takeHeld(page: number): Uint8Array | undefined {
    const data = this.held.get(page)
    this.held.delete(page)
    this.staging?.unstage(page)
    return data
  }

  private readonly settleWaiters = new Map<number, Array<() => void>>()
  private whenSettled(page: number): Promise<void> {
    return new Promise((resolve) => {
      const list = this.settleWaiters.get(page) ?? []
      list.push(resolve)
      this.settleWaiters.set(page, list)
    })
  }

  private schedule(): void {
    if (this.scheduled || (this.queue.length === 0 && this.readaheadParts.length === 0)) return
    this.scheduled = true
    // Let every message of this readable burst be queued first, so pages that
    // fault together go to the backend together.
    queueMicrotask(() => this.drain())
  }

  /** Sends the queued faults to the backend, sorted and cut into batches, then the readahead parts. */
  private drain(): void {
    this.scheduled = false
    const queue = this.queue
    const parts = this.readaheadParts
    this.queue = []
    this.readaheadParts = []
    queue.sort((a, b) => a - b)
    for (let i = 0; i < queue.length; i += this.config.maxBatchPages) this.startBatch(queue.slice(i, i + this.config.maxBatchPages))
    for (const part of parts) this.startBatch(part)
  }

  private startBatch(pages: number[]): void {
    void this.runBatch(pages).catch(() => {
      // Already reported through poison + event; faulters got SIGBUS.
    })
  }

  /**
   * Fetches one batch and installs it. A backend with `readSync` (memory,
   * file) is asked synchronously first, so a fault is answered within this
   * callback, without promise hops; if that fails, the asynchronous path
   * retries with backoff until the deadline.
   */
  private runBatch(pages: number[]): Promise<void> {
    if (this.backend.readSync !== undefined && !this.closed) {
      let data: ReadonlyArray<Uint8Array | undefined> | undefined
      try {
        const plan = this.plan(pages)
        data = plan.toRead.length === 0 ? plan.result : this.merge(plan, this.fetcher.check(plan.toRead, this.backend.readSync(plan.toRead)))
      } catch {
        data = undefined
      }
      if (data !== undefined) {
        for (let i = 0; i < pages.length; i++) this.install(pages[i]!, data[i])
        this.notifyIdle()
        return Promise.resolve()
      }
    }
    return this.runBatchAsync(pages)
  }

  private async runBatchAsync(pages: number[]): Promise<void> {
    this.activeBatches++
    try {
      const data = await this.fetchWithRetry(pages)
      for (let i = 0; i < pages.length; i++) this.install(pages[i]!, data[i])
    } catch (err) {
      const error = err instanceof FaultlineError ? err : new FaultlineError('ERR_BACKEND', `faultline: backend read failed: ${String(err)}`, { pages, cause: err })
      this.failPages(pages, error)
      throw error
    } finally {
      this.activeBatches--
      this.notifyIdle()
    }
  }

  private notifyIdle(): void {
    if (this.activeBatches === 0 && this.inflight.size === 0) for (const w of this.idleWaiters.splice(0)) w()
  }

  /** The second tier and known-absent pages first; the rest from the backend, with retries. */
  private async fetchWithRetry(pages: number[]): Promise<ReadonlyArray<Uint8Array | undefined>> {
    const plan = this.plan(pages)
    if (plan.toRead.length === 0) return plan.result
    const read = await this.fetcher.readWithRetry(plan.toRead, {
      stopped: () => this.closed,
      onRetry: (attempt, err) => {
        this.stats.add('fetchRetries')
        this.emit({ kind: 'event', type: 'fetch-retry', pages: plan.toRead, attempt, message: errorMessage(err) })
      },
    })
    if (this.backend.recycle !== undefined) for (const data of read) if (data !== undefined) this.recyclable.add(data)
    return this.merge(plan, read)
  }

  /** Which pages need the backend: the rest come from the second tier or are known absent. */
  private plan(pages: number[]): FetchPlan {
    const { backend } = this
    const result: Array<Uint8Array | undefined> = new Array(pages.length)
    const toRead: number[] = []
    const slots: number[] = []
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!
      const kept = this.secondTier?.take(p)
      if (kept !== undefined) {
        this.stats.add('secondTierHits')
        result[i] = kept
      } else if (backend.isAbsent?.(p)) result[i] = undefined
      else {
        toRead.push(p)
        slots.push(i)
      }
    }
    if (toRead.length > 0) this.stats.add('fetchRequests')
    return { result, toRead, slots }
  }

  /** Puts what the backend answered (already checked) in place among the planned pages. */
  private merge(plan: FetchPlan, read: ReadonlyArray<Uint8Array | undefined>): ReadonlyArray<Uint8Array | undefined> {
    for (let i = 0; i < plan.toRead.length; i++) plan.result[plan.slots[i]!] = read[i]
    return plan.result
  }

  private install(page: number, data: Uint8Array | undefined): void {
    const waiter = this.inflight.get(page)
    const faulted = (waiter?.faultTimes.length ?? 0) > 0
    if (this.markers.delete(page)) {
      // A marker the watcher has meanwhile installed from the stage (a
      // second-tier copy, say) is resident already: holding these bytes too
      // would leave a second, aging copy that a later fault could install.
      if (!faulted && !this.resident.has(page)) {
        if (page < this.sharedPages && (data === undefined || !this.recyclable.has(data))) {
          // The watcher answers its fault from the backend's shared memory
          // already: no copy to keep, nothing to stage (on hugetlb, where
          // every readahead page may be a marker, those two copies of each
          // huge page halved a scan's bandwidth).
          this.held.set(page, data)
        } else {
          // Keep a copy: the backend may reuse its buffer after the next call.
          // (Not data.slice(): on a Buffer, which file and Redis reads return, that is a view of the same memory.)
          this.held.set(page, data === undefined ? undefined : new Uint8Array(data))
          // Staged, the reader's fault on it is answered before JS runs.
          if (data !== undefined) {
            this.staging?.stage(page, data)
            this.recycle(data)
          }
        }
        this.inflight.delete(page)
        // Shared: held here, it is nobody's claim; another process that needs it fetches it.
        this.shared?.release(page)
        this.settle(page)
        return
      }
      // The reader got here before the window arrived: keep the stream going.
      if (faulted) {
        queueMicrotask(() => {
          this.readAhead(this.readahead?.onMarker(page))
          this.schedule()
        })
      }
    }
    // Count first: the fill wakes the faulting threads, and one of them may
    // read stats() before this thread gets to run again.
    if (data === undefined) this.stats.add('zeroPages')
    else {
      this.stats.add('pagesFetched')
      this.stats.add('bytesFetched', data.byteLength)
      this.shared?.countFetched(1)
    }
    const wasResident = this.resident.has(page)
    if (!wasResident) {
      this.stats.add('residentPages')
      this.evictor?.beforeInstall(page)
    }
    if (waiter?.prefetch && !faulted) this.stats.add('prefetchedPages')
    if (this.installer !== undefined && waiter !== undefined && !faulted && data !== undefined && !wasResident) {
      // Nobody waits for it yet: the installer thread copies it while this
      // thread goes on. It stays in flight (a fault on it waits, a prefetch
      // of it waits) until the copy is reported. On the books it is resident
      // now, so a write fault once it is there is tracked, and the evictor
      // counts it (it skips it until the copy is reported).
      this.resident.add(page)
      this.installing.set(page, data)
      this.installer.install(this.pageAddress(page), data, this.writeBack?.installMode(false) ?? 0, page)
      this.evictor?.onInstalled(page)
      return
    }
    this.recordLatency(waiter)
    const forWrite = waiter?.write ?? false
    if (forWrite) this.writeBack?.onInstalledForWrite(page)
    // Nobody waits for a page fetched ahead: skip the wake-up. (A fault still
    // unread in the queue is answered with UFFDIO_WAKE when it is read.)
    const dontWake = faulted ? 0 : constants.UFFDIO_COPY_MODE_DONTWAKE
    this.fill(this.pageAddress(page), data, (this.writeBack?.installMode(forWrite) ?? 0) | dontWake)
    if (data !== undefined) this.recycle(data)
    const added = this.resident.add(page)
    this.inflight.delete(page)
    if (this.shared !== undefined) this.sharedInstalled(page)
    this.settle(page)
    if (added) this.evictor?.onInstalled(page)
  }

  private recordLatency(waiter: Waiter | undefined): void {
    if (waiter === undefined || waiter.faultTimes.length === 0) return
    const now = performance.now()
    for (const t of waiter.faultTimes) this.stats.recordLatency((now - t) * 1000)
  }

  /**
   * The installer's results: [page, result] pairs, result 1 (installed), 0
   * (already there) or -errno. A page it could not copy is installed here,
   * where a hard failure takes the usual path (SIGBUS for its waiters).
   */
  onInstallerDone(count: number, results: Float64Array): void {
    for (let k = 0; k < count; k++) {
      const page = results[2 * k]!
      const data = this.installing.get(page)
      if (data === undefined) continue
      this.installing.delete(page)
      this.markers.delete(page)
      const waiter = this.inflight.get(page)
      if (results[2 * k + 1]! < 0) {
        try {
          // Wakes whoever faulted meanwhile; a write fault on it then comes as WP.
          this.fill(this.pageAddress(page), data, this.writeBack?.installMode(false) ?? 0)
        } catch (err) {
          this.resident.delete(page)
          this.evictor?.forget(page)
          this.stats.add('residentPages', -1)
          this.failPages([page], err instanceof FaultlineError ? err : new FaultlineError('ERR_PAGER_FAILED', `faultline: installing a page failed: ${errorMessage(err)}`, { pages: [page], cause: err }))
          continue
        }
      }
      this.recycle(data)
      if (results[2 * k + 1]! === 1) this.stats.add('installedOffThread')
      this.recordLatency(waiter)
      this.inflight.delete(page)
      if (this.shared !== undefined) this.sharedInstalled(page)
      this.settle(page)
    }
    this.evictor?.recheck()
    this.notifyIdle()
  }

  /**
   * Buffers read() resolved to that the backend may have back: the pager
   * also installs bytes of its own (the second tier, held copies), and must
   * hand back each of the backend's buffers once at most.
   */
  private readonly recyclable = new WeakSet<Uint8Array>()

  /** The bytes are in the region now: the backend may fill this buffer again. */
  private recycle(data: Uint8Array): void {
    if (this.recyclable.delete(data)) this.backend.recycle!(data)
  }

  /** The installer has not reported this page's copy yet: it must not be dropped or read. */
  isInstalling(page: number): boolean {
    return this.installing.has(page)
  }

  /**
   * Installs one page. EEXIST means someone installed (part of) it first:
   * that part is kept and waiters are woken. EAGAIN with progress resumes
   * after the part done; without progress (the mm is changing) it retries.
   */
  private fill(address: number, data: Uint8Array | undefined, mode: number): void {
    const { fd, pageSize, fillUnit } = this.config
    // ZEROPAGE has no write-protect mode, and hugetlb has no ZEROPAGE at all:
    // then a zero page is a copy of zeros.
    if (data === undefined && ((mode & constants.UFFDIO_COPY_MODE_WP) !== 0 || this.config.hugetlb)) data = this.zeroPage
    if (data !== undefined && this.config.hugetlb) this.touched ^= touchSource(data)
    let done = 0
    let busy: BusyRetry | undefined
    while (done < pageSize) {
      const r =
        data === undefined
          ? native.uffdZeropage(fd, address + done, pageSize - done, mode & constants.UFFDIO_ZEROPAGE_MODE_DONTWAKE)
          : native.uffdCopy(fd, address + done, data, done, pageSize - done, mode)
      if (r > 0) {
        done += r
      } else if (r === -constants.EEXIST) {
        native.uffdWake(fd, address + done, fillUnit)
        done += fillUnit
      } else if (r === -constants.EAGAIN) {
        ;(busy ??= new BusyRetry(this.onBusy, () => `installing the page at 0x${address.toString(16)}`)).again()
      }
    }
  }

  private failPages(failed: number[], error: FaultlineError): void {
    // A page whose copy is queued was fetched fine: the installer's report settles it.
    const pages = failed.filter((p) => !this.installing.has(p))
    const faulted = pages.filter((p) => (this.inflight.get(p)?.faultTimes.length ?? 0) > 0)
    for (const p of pages) {
      this.inflight.delete(p)
      // Shared: another process may fetch it (and its waiters then see it PRESENT).
      this.shared?.release(p)
      this.settle(p)
    }
    if (faulted.length === 0) return
    this.stats.add('fetchErrors', faulted.length)
    // A memory access cannot throw. Like mmap over a truncated file, the
    // faulting access gets SIGBUS; say why first, synchronously, because the
    // process is about to die and the main thread may be the one asleep.
    const message = `${error.message}\nfaultline: the access to ${describePages(faulted)} gets SIGBUS (see fetchTimeoutMs)\n`
    try {
      writeSync(2, message)
    } catch {
      // stderr closed: nothing more to say
    }
    this.emit({ kind: 'event', type: 'fetch-error', pages: faulted, message: error.message })
    for (const p of faulted) native.uffdPoison(this.config.fd, this.pageAddress(p), this.config.pageSize, 0)
  }

  private settle(page: number): void {
    const list = this.settleWaiters.get(page)
    if (list === undefined) return
    this.settleWaiters.delete(page)
    for (const resolve of list) resolve()
  }

  /** Resolves when nothing is being fetched or installed. */
  idle(): Promise<void> {
    if (this.activeBatches === 0 && this.inflight.size === 0 && this.queue.length === 0 && this.readaheadParts.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  isResident(page: number): boolean {
    return this.resident.has(page)
  }

  /** The evictor dropped the page with MADV_DONTNEED: its next touch is a miss. */
  dropResident(page: number): void {
    this.resident.delete(page)
    this.duplicatesOnResident.delete(page)
  }

  /**
   * A peer gave (part of) the page back (UFFD_EVENT_REMOVE): it is not
   * resident, bytes held back for it are stale, and its writes are gone
   * with it; a flush must not read it (the read would fault into this
   * thread).
   */
  forgetPage(page: number): void {
    this.dropResident(page)
    if (this.held.has(page)) this.takeHeld(page)
    this.writeBack?.forget(page)
  }

  stop(): void {
    this.closed = true
    clearTimeout(this.othersTimer)
    this.othersTimer = undefined
    // Prefetches waiting on another process end; faulting threads are woken by the unregister.
    for (const wait of this.othersFetching.values()) for (const resolve of wait.settled) resolve()
    this.othersFetching.clear()
  }

  private pageAddress(page: number): number {
    if (this.config.addressOf !== undefined) return this.config.addressOf(page)
    return this.config.address + page * this.config.pageSize
  }

  /** The watchdog took the descriptor over while this thread was stuck; it runs again now. */
  private onStalled(stallMs: number): void {
    this.stalled = true
    const message = `faultline: the pager thread of ${this.backend.info.name} did not answer faults for ${stallMs} ms (a backend call blocked it: this region's, or that of a region sharing its pager thread); faults on pages that are not resident now get SIGBUS`
    this.emit({ kind: 'event', type: 'pager-stalled', message })
  }

  /** Counts dirty the pages whose write faults the watchdog's takeover let through. */
  absorbTakeoverWrites(): void {
    if (!this.stalled || this.watchdog === undefined) return
    const out = new Float64Array(4 * 256)
    for (let n = this.watchdog.drainTakeover(out); n > 0; n = this.watchdog.drainTakeover(out)) this.onMessages(n, out)
  }

  private fatal(message: string): void {
    try {
      writeSync(2, `faultline: ${message}\n`)
    } catch {
      // nothing more to do
    }
  }
}

/**
 * Reads a byte of each system page of a hugetlb copy's source. The kernel
 * first copies with page faults disabled; a source page not mapped yet (the
 * untouched zero page, a padded last page) sends it to a fallback that needs
 * a second, unreserved huge page from the pool, and fails with ENOMEM when
 * none is spare. Read, a zero page maps the shared zero page: no memory.
 * The last byte too: a buffer that is not page-aligned (malloc'd) ends in
 * one more page than the stride reaches.
 */
function touchSource(data: Uint8Array): number {
  const step = constants.SYSTEM_PAGE_SIZE
  let sum = data[data.byteLength - 1]!
  for (let i = 0; i < data.byteLength; i += step) sum |= data[i]!
  return sum
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

