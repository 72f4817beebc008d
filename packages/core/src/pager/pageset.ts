/** A fixed-size set of page indexes, one bit each. */
export class PageSet {
  private readonly words: Uint32Array
  private count = 0

  constructor(readonly capacity: number) {
    this.words = new Uint32Array(Math.ceil(capacity / 32))
  }

  get size(): number {
    return this.count
  }

  has(page: number): boolean {
    return (this.words[page >>> 5]! & (1 << (page & 31))) !== 0
  }

  /** Adds a page; returns false if it was already there. */
  add(page: number): boolean {
    const i = page >>> 5
    const bit = 1 << (page & 31)
    const w = this.words[i]!
    if ((w & bit) !== 0) return false
    this.words[i] = w | bit
    this.count++
    return true
  }

  /** Removes a page; returns false if it was not there. */
  delete(page: number): boolean {
    const i = page >>> 5
    const bit = 1 << (page & 31)
    const w = this.words[i]!
    if ((w & bit) === 0) return false
    this.words[i] = w & ~bit
    this.count--
    return true
  }

  /** Calls `fn` for every page in the set, in increasing order. */
  forEach(fn: (page: number) => void): void {
    const words = this.words
    for (let i = 0; i < words.length; i++) {
      let w = words[i]!
      while (w !== 0) {
        const bit = 31 - Math.clz32(w & -w)
        fn(i * 32 + bit)
        w &= w - 1
      }
    }
  }
}
