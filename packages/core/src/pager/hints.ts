/**
 * The lasting access hints of a region (`region.advise` with `sequential`,
 * `random` or `normal`), by page range, like the kernel's per-VMA
 * VM_SEQ_READ / VM_RAND_READ: a later hint over a range replaces what was
 * there. Ranges are few (one per call at most), kept sorted and disjoint.
 */
import type { AccessHint } from './readahead.js'

interface HintRange {
  first: number
  /** Last page, inclusive. */
  last: number
  hint: Exclude<AccessHint, 'normal'>
}

export class AccessHints {
  private ranges: HintRange[] = []

  set(first: number, last: number, hint: AccessHint): void {
    const kept: HintRange[] = []
    for (const r of this.ranges) {
      if (r.last < first || r.first > last) kept.push(r)
      else {
        if (r.first < first) kept.push({ first: r.first, last: first - 1, hint: r.hint })
        if (r.last > last) kept.push({ first: last + 1, last: r.last, hint: r.hint })
      }
    }
    if (hint !== 'normal') kept.push({ first, last, hint })
    this.ranges = kept.sort((a, b) => a.first - b.first)
  }

  at(page: number): AccessHint {
    const { ranges } = this
    let lo = 0
    let hi = ranges.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const r = ranges[mid]!
      if (page < r.first) hi = mid - 1
      else if (page > r.last) lo = mid + 1
      else return r.hint
    }
    return 'normal'
  }
}
