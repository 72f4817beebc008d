/**
 * A bounded local copy of evicted clean pages (lru-cache, sized in bytes),
 * so that a page evicted under `maxResident` and touched again is installed
 * from the pager's memory instead of crossing the network. Entries are
 * removed when used: a page is either resident or in the tier, never both,
 * and a page written after it comes back is written back as usual.
 */
import { LRUCache } from 'lru-cache'

export class SecondTier {
  private readonly cache: LRUCache<number, Uint8Array>

  constructor(maxBytes: number) {
    this.cache = new LRUCache<number, Uint8Array>({ maxSize: maxBytes, sizeCalculation: (page) => page.byteLength })
  }

  /** Keeps a copy of an evicted clean page. */
  keep(page: number, bytes: Uint8Array): void {
    this.cache.set(page, bytes.slice())
  }

  /** The page's bytes if the tier has them; the entry is taken out. */
  take(page: number): Uint8Array | undefined {
    const bytes = this.cache.get(page)
    if (bytes !== undefined) this.cache.delete(page)
    return bytes
  }
}
