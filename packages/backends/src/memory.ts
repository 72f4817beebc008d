/**
 * The memory backend: pages held in the pager thread's heap, or in a
 * SharedArrayBuffer the application passes in (then both sides see the same
 * bytes, which makes it the backend of choice for tests and demos).
 */
import type { Backend, BackendContext, BackendSpec, PageWrite } from '@faultline/contract'
import { checkKnownOptions, optionError } from './spec.js'

export interface MemoryBackendOptions {
  type: 'memory'
  /**
   * Initial contents. A Uint8Array over a SharedArrayBuffer is shared with
   * the pager (writes back land in it); any other is copied. Pages past its
   * end read as zeros until written.
   */
  data?: Uint8Array
  /** The length the backend reports, so `size` can be left out of openRegion. Default: `data`'s length. */
  size?: number
}

export class MemoryBackend implements Backend {
  readonly info
  private readonly pages = new Map<number, Uint8Array>()
  private readonly data: Uint8Array | undefined

  constructor(options: MemoryBackendOptions, private readonly context: BackendContext) {
    checkKnownOptions('memory', options as unknown as Record<string, unknown>, ['data', 'size'])
    if (options.data !== undefined && !(options.data instanceof Uint8Array)) {
      throw optionError('memory', 'data', 'must be a Uint8Array (over a SharedArrayBuffer to share it)')
    }
    if (options.size !== undefined && !(Number.isSafeInteger(options.size) && options.size >= 0)) {
      throw optionError('memory', 'size', `must be a whole number of bytes (got ${String(options.size)})`)
    }
    const data = options.data
    this.data = data === undefined || data.buffer instanceof SharedArrayBuffer ? data : copyToShared(data)
    this.info = { name: 'memory', size: options.size ?? this.data?.byteLength, readOnly: false, maxBatchPages: 1024 }
  }

  isAbsent(index: number): boolean {
    return !this.pages.has(index) && (this.data === undefined || index * this.context.pageSize >= this.data.byteLength)
  }

  /** Whole pages of `data`: the watcher installs them itself, with no call into read(). */
  sharedPages(): { data: Uint8Array; pages: number } | undefined {
    if (this.data === undefined) return undefined
    return { data: this.data, pages: Math.floor(this.data.byteLength / this.context.pageSize) }
  }

  async read(indexes: readonly number[]): Promise<Array<Uint8Array | undefined>> {
    return this.readSync(indexes)
  }

  readSync(indexes: readonly number[]): Array<Uint8Array | undefined> {
    const { pageSize } = this.context
    return indexes.map((index) => {
      const stored = this.pages.get(index)
      if (stored !== undefined) return stored
      const data = this.data
      const start = index * pageSize
      if (data === undefined || start >= data.byteLength) return undefined
      if (start + pageSize <= data.byteLength) return data.subarray(start, start + pageSize)
      const page = new Uint8Array(pageSize)
      page.set(data.subarray(start))
      return page
    })
  }

  async write(pages: readonly PageWrite[]): Promise<void> {
    const { pageSize } = this.context
    for (const { index, data: bytes } of pages) {
      const start = index * pageSize
      const data = this.data
      if (data !== undefined && start + pageSize <= data.byteLength) {
        data.set(bytes, start)
      } else {
        this.pages.set(index, bytes.slice())
      }
    }
  }

  async close(): Promise<void> {
    this.pages.clear()
  }
}

/** A private copy, in shared memory so the watcher can install pages from it. */
function copyToShared(data: Uint8Array): Uint8Array {
  const copy = new Uint8Array(new SharedArrayBuffer(data.byteLength))
  copy.set(data)
  return copy
}

export async function createMemoryBackend(spec: BackendSpec, context: BackendContext): Promise<Backend> {
  return new MemoryBackend(spec as unknown as MemoryBackendOptions, context)
}
