/**
 * Where the body of one range request goes: page buffers, one after another.
 * Each page is then handed to the pager on its own and can come back on its
 * own (`Backend.recycle`), so a scan refills memory it already touched
 * instead of allocating the range anew: a fresh buffer per range was 256 MiB
 * of new external memory per 256 MiB scanned, and the garbage collector's
 * marking and sweeping were 14% of a scan's CPU profile (7% with the pool).
 */
export class PageSink {
  private page = 0
  private at = 0
  private written = 0

  /**
   * @param pages buffers of the range's pages, in order.
   * @param length the range's bytes: all of the pages, or less at the object's end.
   */
  constructor(
    private readonly pages: readonly Uint8Array[],
    readonly length: number,
  ) {}

  /** Copies the next bytes of the body in; throws if the body runs past the range. */
  write(chunk: Uint8Array): void {
    if (this.written + chunk.byteLength > this.length) throw new Error(`the body is longer than the ${this.length} bytes asked for`)
    let from = 0
    while (from < chunk.byteLength) {
      const page = this.pages[this.page]!
      const n = Math.min(page.byteLength - this.at, chunk.byteLength - from)
      page.set(chunk.subarray(from, from + n), this.at)
      from += n
      this.at += n
      if (this.at === page.byteLength) {
        this.page++
        this.at = 0
      }
    }
    this.written += chunk.byteLength
  }

  /** Throws unless the body was the whole range; zeroes the rest of a last page the range ends inside. */
  end(): void {
    if (this.written !== this.length) throw new Error(`the body ended after ${this.written} of ${this.length} bytes`)
    if (this.at > 0) this.pages[this.page]!.fill(0, this.at)
  }
}
