/**
 * A resident-memory budget shared by several regions: a bound for a whole
 * process (or any group of regions), on top of each region's own
 * `maxResident`. The budget lives in a SharedArrayBuffer, so regions opened
 * on other threads can join it (`ResidentPool.attach(pool.handle)`).
 */
import { FaultlineError } from './errors.js'

/** Accounting unit: the system page, so regions of any page size share one count. */
export const POOL_UNIT = 4096
const LIMIT = 0
const USED = 1
const PRESSURE = 2
const CELLS = 4
const MAGIC = 0x46_4c_50_4c // "FLPL": tells a pool handle from any other SharedArrayBuffer
const MAGIC_CELL = 3

/** Atomics.waitAsync (V8, Node ≥ 16); not in the ES2022 lib this package compiles against. */
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> }
}).waitAsync

export interface ResidentPoolOptions {
  /**
   * Most bytes kept resident by all the pool's regions together. When an
   * install takes the pool past it, every region in the pool evicts its
   * share of the excess (in proportion to what it holds), oldest pages
   * first, clean at once and dirty after write-back. At least 1 MiB; at most
   * 8 TiB.
   */
  maxBytes: number
}

export class ResidentPool {
  private readonly cells: Int32Array

  /**
   * @param handle the pool's shared counters: post it to another thread and
   *   call `ResidentPool.attach(handle)` there to open regions in the same pool
   */
  private constructor(readonly handle: SharedArrayBuffer) {
    this.cells = new Int32Array(handle)
  }

  /** A new, empty pool. */
  static create(options: ResidentPoolOptions): ResidentPool {
    if (options === null || typeof options !== 'object') {
      throw new FaultlineError('ERR_INVALID_OPTION', 'faultline: createResidentPool needs an options object like { maxBytes }', { option: 'maxBytes' })
    }
    const { maxBytes } = options
    if (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes < 2 ** 20 || maxBytes / POOL_UNIT > 2 ** 31 - 1) {
      throw new FaultlineError('ERR_INVALID_OPTION', `faultline: option \`maxBytes\` of a resident pool must be a whole number of bytes from 1 MiB to 8 TiB (got ${String(maxBytes)})`, { option: 'maxBytes' })
    }
    const pool = new ResidentPool(new SharedArrayBuffer(CELLS * 4))
    pool.cells[LIMIT] = Math.floor(maxBytes / POOL_UNIT)
    pool.cells[MAGIC_CELL] = MAGIC
    return pool
  }

  /** The same pool, from its `handle` (posted to another thread). */
  static attach(handle: SharedArrayBuffer): ResidentPool {
    if (!(handle instanceof SharedArrayBuffer) || handle.byteLength !== CELLS * 4 || new Int32Array(handle)[MAGIC_CELL] !== MAGIC) {
      throw new FaultlineError('ERR_INVALID_OPTION', 'faultline: ResidentPool.attach needs the `handle` of a pool made by createResidentPool', { option: 'residentPool' })
    }
    return new ResidentPool(handle)
  }

  /** The bound, in bytes. */
  get maxBytes(): number {
    return Atomics.load(this.cells, LIMIT) * POOL_UNIT
  }

  /** Bytes resident in all the pool's regions now. */
  get residentBytes(): number {
    return Atomics.load(this.cells, USED) * POOL_UNIT
  }
}

/** A new resident-memory budget to pass as `residentPool` to several regions. */
export function createResidentPool(options: ResidentPoolOptions): ResidentPool {
  return ResidentPool.create(options)
}

/**
 * One region's membership, on its pager thread: counts its pages in and
 * out, and hears when another member asks everyone to evict.
 */
export class PoolMember {
  private readonly cells: Int32Array
  private readonly unitsPerPage: number
  private stopped = false

  constructor(handle: SharedArrayBuffer, pageSize: number) {
    this.cells = new Int32Array(handle)
    this.unitsPerPage = pageSize / POOL_UNIT
  }

  get limitPages(): number {
    return Math.floor(Atomics.load(this.cells, LIMIT) / this.unitsPerPage)
  }

  add(pages: number): void {
    Atomics.add(this.cells, USED, pages * this.unitsPerPage)
  }

  remove(pages: number): void {
    Atomics.sub(this.cells, USED, pages * this.unitsPerPage)
  }

  /**
   * Pages this member should drop, holding `mine`, for the pool to get back
   * to `watermark` of its limit: its share of the excess, in proportion to
   * what it holds, so every member gives back alike.
   */
  shareOfExcess(mine: number, watermark: number): number {
    const used = Atomics.load(this.cells, USED)
    const target = Math.floor(Atomics.load(this.cells, LIMIT) * watermark)
    if (used <= target || mine === 0) return 0
    return Math.min(mine, Math.ceil(((used - target) * mine) / used))
  }

  isOver(): boolean {
    return Atomics.load(this.cells, USED) > Atomics.load(this.cells, LIMIT)
  }

  /** The pressure value this member raised last: its own wake-up is not news to it. */
  private ownRaise = -1

  /** Wakes every other member: the pool is over its bound. */
  raise(): void {
    this.ownRaise = Atomics.add(this.cells, PRESSURE, 1) + 1
    Atomics.notify(this.cells, PRESSURE)
  }

  /**
   * Calls `onPressure` each time a member raises. Waits in slices, so a
   * closed region's thread is never kept alive by a pending wait.
   */
  listen(onPressure: () => void): void {
    let seen = Atomics.load(this.cells, PRESSURE)
    const wait = (): void => {
      if (this.stopped) return
      const result = waitAsync(this.cells, PRESSURE, seen, 250)
      const next = (): void => {
        if (this.stopped) return
        const now = Atomics.load(this.cells, PRESSURE)
        if (now !== seen) {
          seen = now
          if (now !== this.ownRaise) onPressure()
        }
        wait()
      }
      if (result.async) void result.value.then(next)
      else setTimeout(next, 0)
    }
    wait()
  }

  /** Leaves the pool, taking `pages` still counted out of it. */
  leave(pages: number): void {
    this.stopped = true
    this.remove(pages)
  }
}
