/**
 * Typed-array views over a mapped region, one thread's worth.
 *
 * V8 caps a typed array at 4 GiB on Node 20, and two external ArrayBuffers
 * starting at one address can crash it. So the region is cut into windows:
 * window k starts at k × 2 GiB and spans up to 4 GiB. Each window has exactly
 * one ArrayBuffer per thread, made on first use, and views are subarrays of
 * it. Any view of up to 2 GiB fits in the window of its start; larger views
 * fit if they do not cross the end of that window.
 */
import { native } from '@faultline/native'
import { FaultlineError, outOfRange, regionClosed } from './errors.js'

export const WINDOW_STRIDE = 2 ** 31
export const WINDOW_SPAN = 2 ** 32

export class ViewSet {
  private readonly windows = new Map<number, ArrayBuffer>()
  private closed = false

  constructor(
    private readonly address: number,
    private readonly size: number,
    private readonly what: string,
  ) {}

  /** A view of `length` bytes at `offset`; by default, up to the region's or the window's end. */
  view(offset = 0, length?: number): Uint8Array {
    if (this.closed) throw regionClosed(`${this.what}.view()`)
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.size) {
      throw outOfRange('offset', `must be a whole number in [0, ${this.size}) (got ${offset})`)
    }
    length ??= Math.min(this.size, Math.floor(offset / WINDOW_STRIDE) * WINDOW_STRIDE + WINDOW_SPAN) - offset
    if (!Number.isSafeInteger(length) || length < 0 || offset + length > this.size) {
      throw outOfRange('length', `must be a whole number with offset + length ≤ ${this.size} (got offset ${offset}, length ${length})`)
    }
    if (length > WINDOW_SPAN) {
      throw outOfRange('length', `must be at most 4 GiB: one typed array cannot span more on Node 20 (got ${length}); take several views`)
    }
    const k = Math.floor(offset / WINDOW_STRIDE)
    const start = k * WINDOW_STRIDE
    if (offset + length > start + WINDOW_SPAN) {
      throw outOfRange(
        'length',
        `a view of more than 2 GiB cannot cross a 4 GiB window (views are windows of 4 GiB starting every 2 GiB); view [${offset}, ${offset + length}) crosses ${start + WINDOW_SPAN}`,
      )
    }
    return new Uint8Array(this.window(k), offset - start, length)
  }

  private window(k: number): ArrayBuffer {
    let buffer = this.windows.get(k)
    if (buffer === undefined) {
      const start = k * WINDOW_STRIDE
      try {
        buffer = native.externalBuffer(this.address + start, Math.min(WINDOW_SPAN, this.size - start))
      } catch (cause) {
        // The mapping was retired: a handle used after its region closed.
        this.close()
        throw new FaultlineError('ERR_REGION_CLOSED', `faultline: ${this.what}.view(): the region is closed`, { cause })
      }
      this.windows.set(k, buffer)
    }
    return buffer
  }

  /** Detaches every window: all views of this thread become length 0. */
  close(): void {
    this.closed = true
    for (const buffer of this.windows.values()) native.detachBuffer(buffer)
    this.windows.clear()
  }

  get isClosed(): boolean {
    return this.closed
  }
}
