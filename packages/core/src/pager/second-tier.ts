/**
 * A bounded local copy of evicted clean pages, so that a page evicted under
 * `maxResident` and touched again is installed from this process's memory
 * instead of crossing the network. The policy (lru-cache, sized in bytes)
 * lives here; the bytes live in the watcher's native stage, which installs a
 * page on its fault without waking JS. Entries are removed when used: a page
 * is either resident or in the tier, never both, and a page written after it
 * comes back is written back as usual.
 */
import { LRUCache } from 'lru-cache'
import type { PageStage } from './pager.js'

export class SecondTier {
  private readonly cache: LRUCache<number, number>

  constructor(maxBytes: number, private readonly pageSize: number, private readonly stage: PageStage) {
    this.cache = new LRUCache<number, number>({
      maxSize: maxBytes,
      sizeCalculation: (bytes) => bytes,
      // Evicted from the tier (or taken): its staged bytes go too.
      dispose: (_bytes, page) => void stage.unstage(page),
    })
  }

  /** Keeps a copy of an evicted clean page. */
  keep(page: number, bytes: Uint8Array): void {
    // set() first: replacing an entry disposes (unstages) the old one.
    this.cache.set(page, bytes.byteLength)
    if (this.cache.has(page)) this.stage.stage(page, bytes)
  }

  /** The page's bytes if the tier has them; the entry is taken out. */
  take(page: number): Uint8Array | undefined {
    if (!this.cache.has(page)) return undefined
    const bytes = new Uint8Array(this.pageSize)
    const had = this.stage.unstage(page, bytes)
    this.cache.delete(page)
    return had ? bytes : undefined
  }

  /** The watcher installed the page from the stage: drop the entry. True if the tier had it. */
  consumed(page: number): boolean {
    return this.cache.delete(page)
  }
}
