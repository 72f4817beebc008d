/**
 * Page-sized buffers for backend replies, reused once the pager hands them
 * back (`Backend.recycle`), so that a scan fills memory this process has
 * already touched instead of new memory on every page. On a VM that returns
 * freed memory to its host, new memory costs a host fault per 4 KiB: here
 * ~190 µs per 64 KiB against ~12 µs for memory just used (docs/benchmarks.md,
 * "Fresh memory on this VM").
 */
export class ReadBufferPool {
  private readonly free: Buffer[] = []
  /** Memory this pool handed out: only these come back into it. */
  private readonly issued = new WeakSet<ArrayBufferLike>()
  /** Memory in `free`: a second recycle of the same buffer is ignored, not handed out twice. */
  private readonly idle = new WeakSet<ArrayBufferLike>()
  private takenSinceTrim = false

  /**
   * @param pageSize bytes per buffer.
   * @param maxFree buffers kept for reuse at most; more are left to the GC.
   */
  constructor(
    readonly pageSize: number,
    private readonly maxFree: number,
  ) {}

  /** A buffer of `pageSize` bytes, contents undefined. */
  take(): Buffer {
    this.takenSinceTrim = true
    const reused = this.free.pop()
    if (reused !== undefined) {
      this.idle.delete(reused.buffer)
      return reused
    }
    // Its own ArrayBuffer, so that the buffer is the unit of reuse.
    const made = Buffer.allocUnsafeSlow(this.pageSize)
    this.issued.add(made.buffer)
    return made
  }

  /** Takes back a buffer from {@link take} that nobody reads any more; anything else is ignored. */
  recycle(data: Uint8Array): void {
    const memory = data.buffer
    if (!this.issued.has(memory) || this.idle.has(memory) || data.byteOffset !== 0 || data.byteLength !== this.pageSize) return
    if (this.free.length >= this.maxFree) return
    this.idle.add(memory)
    this.free.push(Buffer.from(memory, 0, this.pageSize))
  }

  /**
   * Lets the free buffers go if none was taken since the last call, so a
   * region that stopped reading does not keep its pool: call it now and then.
   */
  trimIfIdle(): void {
    if (!this.takenSinceTrim) this.free.length = 0
    this.takenSinceTrim = false
  }

  /** Buffers waiting to be reused. */
  get freeCount(): number {
    return this.free.length
  }
}
