/**
 * Where a sparse file holds data, found with lseek(SEEK_DATA/SEEK_HOLE).
 * Pages that fall entirely in a hole are absent: the pager installs zeros
 * without reading them.
 */
import { native } from '@faultline/native'

export class Extents {
  /** Sorted, non-overlapping [start, end) byte ranges that hold data. */
  private readonly starts: number[] = []
  private readonly ends: number[] = []

  static scan(fd: number, length: number): Extents {
    const extents = new Extents()
    let offset = 0
    while (offset < length) {
      const data = native.seekData(fd, offset)
      if (data < 0 || data >= length) break
      const hole = native.seekHole(fd, data)
      const end = hole < 0 ? length : Math.min(hole, length)
      extents.starts.push(data)
      extents.ends.push(end)
      offset = end
    }
    return extents
  }

  /** True when [start, end) overlaps no data range. */
  isHole(start: number, end: number): boolean {
    // first range whose end is past `start`
    let lo = 0
    let hi = this.ends.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.ends[mid]! <= start) lo = mid + 1
      else hi = mid
    }
    return lo >= this.starts.length || this.starts[lo]! >= end
  }
}
