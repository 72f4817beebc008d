/**
 * The backend contract: what a page store must do for a region.
 *
 * A backend lives inside the pager thread, never on the application's
 * threads: it is built there from a serializable {@link BackendSpec}. Its
 * I/O must not depend on the libuv threadpool, because a pool thread may be
 * the very thread that is asleep in a page fault (e.g. `fs.write` from a
 * region view). Use synchronous syscalls on the pager thread, or sockets.
 */

/** A serializable description of a backend: `{ type, ...options }`. */
export interface BackendSpec {
  /** Which backend: `memory`, `file`, or `module` for a user's own. */
  type: string
  [option: string]: unknown
}

/** What a backend can do and knows about itself. */
export interface BackendInfo {
  /** A short name for messages and stats, without credentials (e.g. `file:/data/x.bin`). */
  readonly name: string
  /** The length in bytes of the data the backend holds, if it knows it (a file's length). */
  readonly size?: number | undefined
  /** True when the backend cannot store pages: regions over it never write back. */
  readonly readOnly: boolean
  /** The most pages worth asking for in one `read` call. */
  readonly maxBatchPages?: number | undefined
  /**
   * The largest readahead window this backend works best with, in bytes,
   * used when the region leaves `readahead.maxBytes` unset. Default 8 MiB.
   */
  readonly readaheadBytes?: number | undefined
  /**
   * True when the backend never writes again to a buffer `read()` resolved
   * to (e.g. a network reply), unless the pager hands it back with
   * {@link Backend.recycle}. The pager may then hand pages fetched ahead to
   * its installer thread, which copies them into the region while the pager
   * parses the next reply, instead of copying them itself. Leave it unset
   * when `read()` reuses buffers on its own (see {@link Backend.read}).
   */
  readonly freshReadBuffers?: boolean | undefined
  /**
   * How many {@link Backend.write} calls a flush may have running at once
   * (each with pages of its own, none in two). A network backend that
   * answers several requests on one connection keeps it busy while an
   * earlier batch is answered instead of waiting a round trip per batch.
   * The flush still resolves only after every write settled. Default 1:
   * one write after another.
   */
  readonly maxWritesInFlight?: number | undefined
  /**
   * True when {@link Backend.write} has taken every byte of its pages by the
   * time it returns its promise (it writes them with synchronous syscalls,
   * as the file backend without a journal does). With synchronous write
   * tracking the pager then hands it views of the region's own memory,
   * write-protected for the length of the call, instead of first copying
   * each page out. Leave it unset when a write keeps references to the
   * bytes past its return (a socket write that may be queued, a journal
   * that holds pages until {@link Backend.sync}).
   */
  readonly synchronousWrites?: boolean | undefined
  /**
   * Which version of the data this is, as far as the backend knows (an
   * HTTP or S3 object's ETag, a file's inode, mtime and size, a page
   * store's creation time), or undefined when it knows none. Regions shared
   * between processes (`openRegion({ shared })`) put it in the name of the
   * shared cache, so two versions are never mixed in one cache.
   */
  readonly version?: string | undefined
}

/** Context handed to a backend factory. */
export interface BackendContext {
  /** The region's page size in bytes: every page read or written is exactly this long. */
  readonly pageSize: number
  /** The region's size if the caller gave one; a backend may use it to size itself. */
  readonly size: number | undefined
  /** True when the region was opened read-only: the backend need not prepare for writes. */
  readonly readOnly: boolean
}

/** One page to store. */
export interface PageWrite {
  readonly index: number
  /** Exactly `pageSize` bytes. The buffer is only valid until the returned promise settles. */
  readonly data: Uint8Array
}

export interface Backend {
  readonly info: BackendInfo
  /**
   * Cheap, synchronous hint that a page holds nothing (a hole of a sparse
   * file, a page never written). The pager then installs a zero page without
   * calling {@link read}. Return false when unsure.
   */
  isAbsent?(index: number): boolean
  /**
   * Reads pages, in one batch. Resolves to one entry per requested index, in
   * order: the page's bytes (exactly `pageSize` long) or `undefined` when the
   * page does not exist (it reads as zeros). Rejects on failure; the pager
   * retries. A returned array is only read until the next call.
   */
  read(indexes: readonly number[]): Promise<ReadonlyArray<Uint8Array | undefined>>
  /**
   * The same as {@link read}, synchronously, for backends whose reads are
   * memory copies or local syscalls (memory, file). The pager then answers a
   * fault inside the callback that received it, with no promise round trip.
   * If it throws, the pager falls back to `read` with its retries. What it
   * returns is only read until the next call of `readSync`, so a backend may
   * reuse one buffer.
   */
  readSync?(indexes: readonly number[]): ReadonlyArray<Uint8Array | undefined>
  /**
   * Hands back a page buffer that {@link read} resolved to, once its bytes
   * are in the region (or copied elsewhere) and the pager will not look at
   * it again, so a backend with `freshReadBuffers` can fill it with a later
   * read: memory already touched is much cheaper to fill than new memory.
   * Called at most once per buffer, and not for every buffer (one the pager
   * dropped is left to the garbage collector); a backend must ignore buffers
   * it did not hand out. A backend that implements it must resolve each page
   * of a read to a buffer of its own.
   */
  recycle?(data: Uint8Array): void
  /**
   * Pages that live in shared memory of this process: page `p` of the first
   * `pages` is always `data[p * pageSize, (p + 1) * pageSize)`, including
   * after {@link write}. `data` must be over a SharedArrayBuffer. Faults on
   * them are then installed by the native watcher straight from `data`,
   * without entering JS. Called once, when the region opens.
   */
  sharedPages?(): { data: Uint8Array; pages: number } | undefined
  /**
   * Pages that are plain bytes of a file this backend holds open and that
   * nothing else it does changes (a read-only file with no journal over it):
   * page `p` is bytes `[p * pageSize, (p + 1) * pageSize)` of `fd`, zeros at
   * or past `length` (with `offset`, page 0 starts at that byte of the file
   * instead). Faults on them are then answered by the native watcher
   * with pread(2), without entering JS. `fd` must stay open until close().
   * Called once, when the region opens.
   */
  filePages?(): { fd: number; length: number; offset?: number } | undefined
  /**
   * Stores whole pages. Resolves when they are stored; durability against a
   * crash may wait for {@link sync}. A page is never stored partially.
   */
  write?(pages: readonly PageWrite[]): Promise<void>
  /**
   * Makes every write that has resolved durable (e.g. fdatasync). Called
   * once at the end of each flush, so per-batch writes can stay cheap.
   * Backends whose writes are durable when they resolve leave it out.
   */
  sync?(): Promise<void>
  /** Releases connections and files. Called once, after the last read/write settled. */
  close(): Promise<void>
}

/** A module that provides a backend: what `{ type: 'module', module }` loads. */
export interface BackendModule {
  createBackend(options: Record<string, unknown>, context: BackendContext): Promise<Backend> | Backend
}
