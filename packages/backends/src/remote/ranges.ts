/**
 * Turns a batch of page indexes into byte ranges of a remote object: runs of
 * consecutive pages become one request (the pager sorts each batch, so pages
 * that faulted or were prefetched together arrive together), cut at
 * `maxBytes` so one huge run still spreads over several connections.
 */

/** One request: `count` pages from `first`, answering the batch slots in `slots`. */
export interface PageRange {
  first: number
  count: number
  /** slots[i] is the position in the batch of page first + i. */
  slots: number[]
}

export function planRanges(indexes: readonly number[], pageSize: number, maxBytes: number): PageRange[] {
  const order = indexes.map((index, slot) => ({ index, slot })).sort((a, b) => a.index - b.index)
  const maxPages = Math.max(1, Math.floor(maxBytes / pageSize))
  const ranges: PageRange[] = []
  let current: PageRange | undefined
  for (const { index, slot } of order) {
    if (current !== undefined && index === current.first + current.count && current.count < maxPages) {
      current.count++
      current.slots.push(slot)
    } else {
      current = { first: index, count: 1, slots: [slot] }
      ranges.push(current)
    }
  }
  return ranges
}
