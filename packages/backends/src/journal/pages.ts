/**
 * Pages held in a journal file: where the newest copy of each lies, so they
 * can be read over the data file's bytes, or copied into it.
 */
import { readFully, writeFully } from './io.js'

/** Bytes copied from the journal to the data file per read/write pair. */
const COPY_CHUNK = 8 * 2 ** 20

export class JournalPages {
  /** Page index → byte offset of its data in the journal. */
  private readonly at = new Map<number, number>()

  constructor(
    /** The journal's file descriptor, open for reading. */
    readonly fd: number,
    /** The page size the journal's records were written with (which may not be the reader's). */
    readonly pageSize: number,
  ) {}

  get size(): number {
    return this.at.size
  }

  /** Records that page `index`'s newest copy is at `offset` in the journal. */
  set(index: number, offset: number): void {
    this.at.set(index, offset)
  }

  clear(): void {
    this.at.clear()
  }

  /** Byte length the data file has once every page here is in it (0 when empty). */
  end(): number {
    let last = -1
    for (const index of this.at.keys()) last = Math.max(last, index)
    return (last + 1) * this.pageSize
  }

  /** True when a page here overlaps data-file bytes [start, end). */
  covers(start: number, end: number): boolean {
    let found = false
    this.forEachOverlapping(start, end, () => (found = true))
    return found
  }

  /** Replaces the bytes of `buffer`, which holds data-file bytes from `start`, with those of pages here. */
  overlay(buffer: Uint8Array, start: number): void {
    this.forEachOverlapping(start, start + buffer.byteLength, (from, to, offset) => {
      if (readFully(this.fd, buffer, from - start, to - from, offset) !== to - from) {
        throw new Error(`the journal is shorter than its records said when it was read: it was reset since (by another region over the same file?)`)
      }
    })
  }

  /** Writes every page here into the data file, in place, in index order. */
  copyTo(dataFd: number): void {
    const { pageSize } = this
    const entries = [...this.at].sort((a, b) => a[0] - b[0])
    let scratch: Buffer | undefined
    for (let i = 0; i < entries.length; ) {
      const [first, from] = entries[i]!
      // Consecutive pages of one record lie one after another in the journal too: one copy.
      let n = 1
      while (i + n < entries.length && entries[i + n]![0] === first + n && entries[i + n]![1] === from + n * pageSize) n++
      const bytes = n * pageSize
      scratch ??= Buffer.allocUnsafeSlow(Math.min(COPY_CHUNK, entries.length * pageSize))
      for (let done = 0; done < bytes; ) {
        const length = Math.min(scratch.byteLength, bytes - done)
        if (readFully(this.fd, scratch, 0, length, from + done) !== length) throw new Error('the journal ended before its last page')
        writeFully(dataFd, [scratch.subarray(0, length)], first * pageSize + done)
        done += length
      }
      i += n
    }
  }

  /** Calls `visit(from, to, journalOffset)` for each page's overlap [from, to) with data-file bytes [start, end). */
  private forEachOverlapping(start: number, end: number, visit: (from: number, to: number, journalOffset: number) => void): void {
    if (this.at.size === 0 || end <= start) return
    const { pageSize } = this
    const visitPage = (index: number, offset: number): void => {
      const pageStart = index * pageSize
      const from = Math.max(start, pageStart)
      const to = Math.min(end, pageStart + pageSize)
      if (from < to) visit(from, to, offset + (from - pageStart))
    }
    const first = Math.floor(start / pageSize)
    const last = Math.ceil(end / pageSize)
    // Look each page of the range up, or go through the map when it is the smaller.
    if (last - first <= this.at.size) {
      for (let index = first; index < last; index++) {
        const offset = this.at.get(index)
        if (offset !== undefined) visitPage(index, offset)
      }
    } else {
      for (const [index, offset] of this.at) visitPage(index, offset)
    }
  }
}
