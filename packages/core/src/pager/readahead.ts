/**
 * Sequential readahead, after the kernel's own (mm/readahead.c).
 *
 * A miss that continues the previous one (or the first page of the region)
 * starts a stream: the pager fetches a window of pages ahead of the reader,
 * with the faulting page, in as few backend requests as the batch limit
 * allows. Pages fetched ahead do not fault when the reader reaches them, so
 * the pager would not learn how far it got; one page in the middle of each
 * window is therefore fetched but *held* back (the kernel's PG_readahead
 * marker). When the reader touches it, the pager installs it at once from
 * memory and starts the next window, which doubles up to the maximum — so
 * the next window is in flight while the reader consumes the rest of this one.
 * A miss that does not continue the stream ends it: random access fetches
 * nothing it did not ask for.
 */

export interface ReadaheadPlan {
  /** First page to fetch ahead. */
  first: number
  count: number
  /** The page to hold back as the trigger for the next window, or -1. */
  marker: number
}

export class SequentialReadahead {
  private lastMiss = -2
  private window = 0
  /** First page not yet requested by the stream. */
  private end = -1

  constructor(
    private readonly minPages: number,
    private readonly maxPages: number,
    private readonly pageCount: number,
  ) {}

  /** A page faulted that nobody fetched: continue, start or end a stream. */
  onMiss(page: number): ReadaheadPlan | undefined {
    const sequential = page === this.lastMiss + 1 || page === this.end || page === 0
    this.lastMiss = page
    if (!sequential) {
      this.window = 0
      this.end = -1
      return undefined
    }
    this.grow()
    return this.plan(page + 1)
  }

  /** The reader reached the held marker of the current window. */
  onMarker(page: number): ReadaheadPlan | undefined {
    this.lastMiss = page
    this.grow()
    return this.plan(Math.max(this.end, page + 1))
  }

  private grow(): void {
    this.window = this.window === 0 ? this.minPages : Math.min(this.window * 2, this.maxPages)
  }

  private plan(first: number): ReadaheadPlan | undefined {
    const count = Math.min(this.window, this.pageCount - first)
    if (count <= 0) return undefined
    this.end = first + count
    return { first, count, marker: count >= 4 ? first + (count >> 1) : -1 }
  }
}
