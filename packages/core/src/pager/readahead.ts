/**
 * Sequential readahead, paced by what the reader consumes.
 *
 * Two misses in a row (or a miss on the first page of the region) start a
 * stream. The pager fetches ahead of the reader in parts (one backend
 * request each, installed as it arrives), all in flight at once: small ones
 * near the reader, larger ones further ahead. Pages fetched ahead do not
 * fault when the reader reaches them, so the pager would not learn how far
 * it got: a page every half lookahead (at most a part apart) is therefore
 * fetched but *held* back (the kernel's PG_readahead marker). When the
 * reader touches one, the pager installs it at once from memory and tops
 * the stream up.
 *
 * How far ahead a stream runs grows with what it has consumed: never more
 * than the pages the reader has gone through in it (at least `minPages`, at
 * most `maxPages`). So a stream that stops wastes at most as much as it
 * read, and a long scan soon keeps `maxPages` in flight.
 *
 * Readers of columnar files (Arrow, Parquet) read runs of similar length
 * with gaps between them. The lengths of the last few streams predict the
 * next one's: a stream is not fetched past the longest of them, and the
 * pages just before that point are all markers, so where a stream really
 * ends is learnt to the page. A stream that goes on past its prediction
 * (the reader misses the page after it) grows again from `minPages`.
 *
 * A miss that does not continue the stream ends it: random access fetches
 * nothing it did not ask for. Access hints (`region.advise`) override the
 * guesses: `sequential` starts a stream on the first miss and runs
 * `maxPages` ahead at once, `random` never reads ahead.
 */

export type AccessHint = 'normal' | 'sequential' | 'random'

export interface ReadaheadPlan {
  /** First page to fetch ahead. */
  first: number
  count: number
  /** Pages of the plan to hold back: touching one tops the stream up. */
  markers: number[]
  /** The plan cut into backend requests, in order. */
  parts: PagePart[]
}

export interface PagePart {
  first: number
  count: number
}

export interface ReadaheadConfig {
  minPages: number
  maxPages: number
  pageCount: number
  /** Pages per backend request while the lookahead is small. */
  partPages: number
  /** Most pages per backend request (the backend's own limit). */
  maxPartPages: number
  /** The hint covering a page (`normal` where none was given). */
  hintAt?: (page: number) => AccessHint
}

interface Stream {
  /** First page of the stream. */
  start: number
  /** Furthest page the reader was seen at (a miss or a marker). */
  seen: number
  /** First page not requested yet. */
  end: number
  /** Where consumption is counted from: `start`, or the prediction the stream outran. */
  base: number
  /** Not to be fetched past (the prediction), or Infinity. */
  cap: number
  sequentialHint: boolean
}

/** How many ended streams' lengths predict the next. */
const HISTORY = 4

export class SequentialReadahead {
  private lastMiss = -2
  private stream: Stream | undefined
  private readonly lengths: number[] = []

  constructor(private readonly config: ReadaheadConfig) {}

  /** A page faulted that nobody fetched: continue, start or end a stream. */
  onMiss(page: number): ReadaheadPlan | undefined {
    const previous = this.lastMiss
    this.lastMiss = page
    const s = this.stream
    if (s !== undefined && page > s.seen && page <= s.end) {
      // The reader caught up with the stream, or went past its prediction.
      s.seen = page
      if (page >= s.cap) this.outran(s)
      s.end = Math.max(s.end, page + 1)
      return this.topUp(s)
    }
    this.endStream()
    const hint = this.hint(page)
    if (hint === 'random') return undefined
    if (hint === 'sequential' || page === previous + 1 || page === 0) {
      const start = hint !== 'sequential' && page === previous + 1 ? previous : page
      return this.startStream(start, page, hint === 'sequential')
    }
    return undefined
  }

  /** The reader reached a held marker. */
  onMarker(page: number): ReadaheadPlan | undefined {
    this.lastMiss = page
    const s = this.stream
    if (s !== undefined && page >= s.start && page < s.end) {
      s.seen = Math.max(s.seen, page)
      return this.topUp(s)
    }
    // A marker of a stream given up on: the reader came back to it.
    this.endStream()
    const hint = this.hint(page)
    return hint === 'random' ? undefined : this.startStream(page, page, hint === 'sequential')
  }

  private startStream(start: number, seen: number, sequentialHint: boolean): ReadaheadPlan | undefined {
    const predicted = sequentialHint || this.lengths.length === 0 ? Infinity : Math.max(...this.lengths)
    const s: Stream = { start, seen, end: seen + 1, base: start, cap: start + predicted, sequentialHint }
    this.stream = s
    return this.topUp(s)
  }

  /** Past its prediction: the stream grows again from the minimum, unbounded. */
  private outran(s: Stream): void {
    s.cap = Infinity
    s.base = s.seen + 1
  }

  private endStream(): void {
    const s = this.stream
    if (s === undefined) return
    this.stream = undefined
    this.lengths.push(s.seen - s.start + 1)
    if (this.lengths.length > HISTORY) this.lengths.shift()
  }

  private topUp(s: Stream): ReadaheadPlan | undefined {
    const { minPages, maxPages, pageCount, partPages, maxPartPages } = this.config
    const consumed = s.seen - s.base + 1
    const ahead = s.sequentialHint ? maxPages : Math.min(maxPages, Math.max(minPages, consumed))
    // Markers at most every `step` pages, so the reader is seen again while
    // half the lookahead is still ahead of it; requests grow in whole steps.
    const step = Math.max(1, Math.min(maxPartPages, Math.max(partPages, ahead >> 2), ahead >> 1))
    const bound = Math.min(pageCount, s.cap)
    let target = Math.min(s.seen + 1 + ahead, bound)
    if (target < bound) target = s.end + Math.floor((target - s.end) / step) * step
    if (target <= s.end) return undefined
    const first = s.end
    s.end = target
    // Parts near the reader are small, so their bytes come soon; parts far
    // ahead are large (half their distance from the reader, up to the
    // backend's limit): remote stores answer big ranges at a fraction of the
    // cost per byte, and the reader needs them only later.
    const parts: PagePart[] = []
    const markers: number[] = []
    for (let p = first; p < target; ) {
      let size = Math.min(target - p, Math.max(Math.min(partPages, step), Math.min(maxPartPages, (p - s.seen) >> 1)))
      // No small remainder of its own at the end of the plan.
      if (target - p - size < size) size = Math.min(target - p, maxPartPages)
      parts.push({ first: p, count: size })
      for (let m = p; m < p + size; m += step) markers.push(m)
      p += size
    }
    if (target === s.cap) {
      // Near the predicted end every page tells where the reader stops.
      for (let p = Math.max(first, target - step) + 1; p < target; p++) if (markers.at(-1)! < p) markers.push(p)
    }
    return { first, count: target - first, markers, parts }
  }


  private hint(page: number): AccessHint {
    return this.config.hintAt?.(page) ?? 'normal'
  }
}
