/**
 * Reading pages from a backend, checked and retried: shared by the fault
 * path and `region.read()`.
 *
 * A backend answer is checked before anything uses it: one entry per page
 * asked for, each exactly `pageSize` bytes or `undefined` (absent). Anything
 * else is ERR_BAD_PAGE and is never installed truncated or padded. Failures
 * are retried with exponential backoff (10 ms doubling to 1 s) until
 * `fetchTimeoutMs`; errors that another attempt cannot fix (a bad page, a
 * source that changed under the region) are not retried. A read that never
 * settles counts as failed when the deadline passes: the fault is then
 * failed by the same policy instead of waiting for ever.
 */
import type { Backend } from '@faultline/contract'
import { FaultlineError, type FaultlineErrorCode } from '../errors.js'
import { describePages } from './describe.js'

const RETRY_FIRST_MS = 10
const RETRY_MAX_MS = 1000
const PERMANENT: ReadonlySet<FaultlineErrorCode> = new Set(['ERR_BAD_PAGE', 'ERR_SOURCE_CHANGED'])

export type PageData = ReadonlyArray<Uint8Array | undefined>

export interface RetryHooks {
  /** A failed attempt that will be retried. */
  onRetry?(attempt: number, err: unknown): void
  /** True when retrying should stop early (the region is closing). */
  stopped?(): boolean
}

export class PageFetcher {
  constructor(
    private readonly backend: Backend,
    private readonly pageSize: number,
    private readonly fetchTimeoutMs: number,
  ) {}

  /** Throws ERR_BAD_PAGE unless `read` has one page of the right length (or undefined) per index. */
  check(pages: readonly number[], read: PageData): PageData {
    const name = this.backend.info.name
    if (read.length !== pages.length) {
      throw new FaultlineError('ERR_BAD_PAGE', `faultline: ${name} answered ${read.length} pages to a request for ${pages.length}`, { pages })
    }
    for (let i = 0; i < pages.length; i++) {
      const page = read[i]
      if (page !== undefined && page.byteLength !== this.pageSize) {
        throw new FaultlineError('ERR_BAD_PAGE', `faultline: ${name} returned ${page.byteLength} bytes for page ${pages[i]}, expected ${this.pageSize}; it is not installed`, { pages: [pages[i]!] })
      }
    }
    return read
  }

  /** `backend.read`, checked, retried with backoff until the deadline. */
  async readWithRetry(pages: readonly number[], hooks: RetryHooks = {}): Promise<PageData> {
    const started = performance.now()
    let delay = RETRY_FIRST_MS
    for (let attempt = 1; ; attempt++) {
      try {
        const remaining = this.fetchTimeoutMs - (performance.now() - started)
        return this.check(pages, await settleWithin(this.backend.read(pages), remaining, this.backend.info.name))
      } catch (err) {
        if (err instanceof FaultlineError && PERMANENT.has(err.code)) {
          throw err.pages !== undefined ? err : new FaultlineError(err.code, err.message, { pages: [...pages], cause: err.cause ?? err })
        }
        const elapsed = performance.now() - started
        if (hooks.stopped?.() === true || elapsed + delay > this.fetchTimeoutMs) {
          const message = err instanceof Error ? err.message : String(err)
          throw new FaultlineError('ERR_BACKEND', `faultline: reading ${describePages(pages)} from ${this.backend.info.name} failed after ${attempt} attempt(s) over ${Math.round(elapsed)} ms: ${message}`, { pages: [...pages], cause: err })
        }
        hooks.onRetry?.(attempt, err)
        await new Promise((resolve) => setTimeout(resolve, delay))
        delay = Math.min(delay * 2, RETRY_MAX_MS)
      }
    }
  }
}

/** A read in flight with a deadline: rejected by the sweep once `at` (performance.now()) has passed. */
interface Deadline {
  at: number
  expire(): void
}

/**
 * The deadlines of every read in flight on this thread, on one timer. A read
 * of its own setTimeout + clearTimeout pair was a measurable part of a
 * single-page fault over Redis (docs/experiments/redis-random-faults.md);
 * here a read only joins and leaves a set. The timer is armed for the
 * earliest deadline and is not cleared when that read settles: it fires
 * then, expires what is due and is armed again for the earliest left, so a
 * steady stream of reads costs one timer per `fetchTimeoutMs`. It is unref'd:
 * the pager's uffd watch keeps its thread alive, and a deadline must not.
 */
class Deadlines {
  private readonly pending = new Set<Deadline>()
  private timer: NodeJS.Timeout | undefined
  private timerAt = Infinity

  add(d: Deadline): void {
    this.pending.add(d)
    if (d.at < this.timerAt) this.arm(d.at)
  }

  delete(d: Deadline): void {
    this.pending.delete(d)
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timerAt = at
    // A timer may fire a little before performance.now() reaches `at` (the loop's clock is cached): the sweep then arms again.
    this.timer = setTimeout(() => this.sweep(), Math.max(1, Math.ceil(at - performance.now())))
    this.timer.unref()
  }

  private sweep(): void {
    this.timer = undefined
    this.timerAt = Infinity
    const now = performance.now()
    let next = Infinity
    for (const d of this.pending) {
      if (d.at <= now) {
        this.pending.delete(d)
        d.expire()
      } else if (d.at < next) next = d.at
    }
    if (next < Infinity) this.arm(next)
  }
}

const deadlines = new Deadlines()

/** `promise`, or a rejection once `ms` have passed without it settling. */
export function settleWithin<T>(promise: Promise<T>, ms: number, name: string): Promise<T> {
  if (!Number.isFinite(ms)) return promise
  return new Promise<T>((resolve, reject) => {
    const d: Deadline = { at: performance.now() + Math.max(0, ms), expire: () => reject(new Error(`${name} did not answer within ${Math.round(ms)} ms`)) }
    deadlines.add(d)
    promise.then(
      (value) => {
        deadlines.delete(d)
        resolve(value)
      },
      (err: unknown) => {
        deadlines.delete(d)
        reject(err)
      },
    )
  })
}
