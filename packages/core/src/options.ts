import { invalidOption, FaultlineError } from './errors.js'
import type { BackendSpec } from '@faultline/contract'
import { parseBackendUrl } from './backend/url.js'
import { ResidentPool } from './pool.js'

/** Options of {@link openRegion}. */
export interface RegionOptions {
  /**
   * Bytes of address space to map. Rounded up to a whole number of pages.
   * May be left out when the backend knows its length (a file's size);
   * nothing is resident until touched, so it may far exceed RAM.
   */
  size?: number
  /**
   * The fault unit in bytes: a power of two, a multiple of the system page
   * size (4096). Larger pages mean fewer faults and larger backend requests
   * for sequential access; smaller pages waste less on random access.
   * Default 65536; with `hugePages`, the huge page size (and only that).
   */
  pageSize?: number
  /**
   * Back the region with hugetlb pages of this size (`'2M'`, or `'1G'`
   * where the CPU and kernel offer it) instead of 4 KiB pages: each fault
   * installs one huge page with one UFFDIO_COPY, and the TLB covers it with
   * one entry. `pageSize` is then the huge page size (leave it out, or give
   * exactly that), and `size` a whole number of huge pages. The pages come
   * from the kernel's hugetlb pool and are all reserved when the region
   * opens: a pool with too few free pages fails the open with
   * `ERR_HUGE_PAGES`, whose message says how to reserve more (as root:
   * `echo N > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`).
   * Write tracking and eviction work as with small pages (counting huge
   * pages); readahead is off by default for the memory and file backends;
   * the rest that differs is in docs/tuning.md and docs/limits.md.
   * Default `false`.
   */
  hugePages?: '2M' | '1G' | false
  /**
   * Where pages come from: a spec object `{ type, ...options }` or a URL
   * string (`memory:`, `file:///abs/path`). See docs/backends.md.
   */
  backend: BackendSpec | string
  /**
   * `read-write` (default when the backend can store pages) tracks writes and
   * writes dirty pages back on `flush()` and `close()`. `read-only` never
   * sends anything to the backend; writes to views stay private to this
   * process (copy-on-write, like MAP_PRIVATE).
   */
  access?: 'read-only' | 'read-write'
  /**
   * How long a fault may wait on a failing backend, retrying with backoff,
   * before the access is failed with SIGBUS (the mmap convention for an
   * unreadable page). `Infinity` waits for ever. Default 30000 ms.
   */
  fetchTimeoutMs?: number
  /**
   * Most pages asked of the backend in one request for faults that arrive
   * together (and for `prefetch()`); each batch is installed as soon as it
   * arrives, so smaller batches let a reader start sooner. Readahead starts
   * with requests this size near the reader and grows them further ahead,
   * up to the backend's own limit (see docs/tuning.md). Default: 1 MiB worth
   * of pages, at most 64 (64 at 4 KiB pages, 16 at 64 KiB).
   */
  maxBatchPages?: number
  /**
   * How writes are noticed in a read-write region (see docs/writes.md):
   * - `sync`: userfaultfd write-protect faults; the first write to a clean
   *   page costs one round trip to the pager, and flush snapshots are atomic
   *   against concurrent writers.
   * - `async`: the kernel's asynchronous write-protect (Linux 6.7+,
   *   `UFFD_FEATURE_WP_ASYNC`) with `PAGEMAP_SCAN`; writes never stop, flush
   *   finds written pages by scanning.
   * - `auto` (default): `async` where the kernel offers it, else `sync`.
   */
  writeTracking?: 'auto' | 'sync' | 'async'
  /** Background write-back of dirty pages; `close()` and `flush()` always write back. */
  writeBack?: WriteBackOptions
  /**
   * Sequential readahead: when misses follow each other, pages ahead of the
   * reader are fetched, at most as far ahead as the stream has read so far
   * and never more than `maxBytes`, so a reader that stops wastes at most
   * what it read (see docs/tuning.md). Random access fetches nothing extra;
   * `region.advise()` can say `sequential` or `random` per range. `false`
   * turns it off. Default `{ maxBytes: 8 MiB }`, or the backend's own
   * preference (`BackendInfo.readaheadBytes`; HTTP and S3 objects: 64 MiB,
   * Redis: 4 MiB). With `hugePages` and a backend without a preference
   * (memory, file) it is off unless `maxBytes` is given: see docs/tuning.md.
   */
  readahead?: false | ReadaheadOptions
  /**
   * Most bytes of the region kept resident. Past it, the oldest pages are
   * evicted (clean ones at once, dirty ones after write-back) and fetched
   * again when touched. In read-write regions it needs `sync` write tracking
   * (chosen by `auto`): with async tracking a write racing an eviction could
   * be lost. At least 16 pages. Default: unbounded.
   */
  maxResident?: number
  /**
   * Bytes of evicted clean pages to keep in the pager's heap (an LRU), so a
   * refault is answered without the backend. Needs `maxResident` or
   * `residentPool`. Default 0.
   */
  secondTierBytes?: number
  /**
   * A budget shared with other regions (`createResidentPool({ maxBytes })`):
   * a bound on the resident memory of all of them together, e.g. of the
   * whole process. Pass the same pool to every region it should cover; on
   * another thread, `ResidentPool.attach(pool.handle)`. Works with or
   * without `maxResident`, and like it needs `sync` write tracking in
   * read-write regions. Default: none.
   */
  residentPool?: ResidentPool
  /**
   * One cache for every process on the machine (see docs/architecture.md,
   * "Regions shared between processes"): regions over the same backend
   * object — same backend name, same version (`BackendInfo.version`: ETag,
   * file mtime and size…), same size and page size — in different processes
   * map the same tmpfs file `MAP_SHARED`, so the object is read from the
   * backend about once and held in RAM once, however many processes scan it.
   * `true`, or `{ name, dir }`: `name` prefixes the files (default
   * `faultline`; letters, digits, `.`, `_`, `-`), `dir` is where they live
   * (default `/dev/shm`; must be tmpfs). Read-only only: it needs
   * `access: 'read-only'` over a writable backend, and views of a shared
   * region are mapped `PROT_READ` (a write is a SIGSEGV). `maxResident`
   * then bounds the shared cache as a whole (the smallest of the attached
   * regions' values). Not with `residentPool`, `secondTierBytes` or
   * `writeBack`, nor with the memory backend. Default: not shared.
   */
  shared?: boolean | SharedOptions
  /**
   * Which pager thread serves the region's faults (see docs/architecture.md):
   * - `shared` (default): one of the process's pager threads (at most one per
   *   core), which may serve other regions too. Opening costs a message and
   *   the region's syscalls (~1 ms), not a thread start (~50 ms).
   * - `own`: a thread started for this region alone, ended with it. For a
   *   region whose pager must not wait on another region's work, whose
   *   failure must not reach other regions (a `module` backend of your own
   *   with a bug that kills its thread), or whose backend reads another
   *   region's memory (on a shared thread that could wait on itself).
   */
  pagerThread?: 'shared' | 'own'
}

export interface SharedOptions {
  /** Prefix of the cache's two files: `<dir>/<name>-<hash>.pages` and `.ctl`. Default `faultline`. */
  name?: string
  /** A tmpfs directory for them. Default `/dev/shm`. */
  dir?: string
}

export interface ReadaheadOptions {
  /** The largest window fetched ahead of a sequential reader, in bytes. Default 8 MiB, or the backend's preference. */
  maxBytes?: number
}

export interface WriteBackOptions {
  /** Flush dirty pages every this many milliseconds. Default: no periodic flush. */
  intervalMs?: number
  /**
   * Start a flush when this many bytes are dirty. Checked as writes fault,
   * so it applies to `sync` tracking only: `async` tracking learns of writes
   * when it scans (use `intervalMs`). Default: no threshold.
   */
  maxDirtyBytes?: number
}

/** RegionOptions after validation, with defaults filled in. Serializable. */
export interface NormalizedOptions {
  size: number | undefined
  pageSize: number
  /** Bytes of a hugetlb page (2 MiB, 1 GiB), equal to pageSize; 0 for ordinary pages. */
  hugePageSize: number
  backend: BackendSpec
  access: 'read-only' | 'read-write' | undefined
  fetchTimeoutMs: number
  maxBatchPages: number
  writeTracking: 'auto' | 'sync' | 'async'
  writeBack: { intervalMs: number | undefined; maxDirtyBytes: number | undefined }
  /** Largest readahead window in bytes; 0 when off; undefined: the backend's preference, else the default. */
  readaheadBytes: number | undefined
  maxResident: number | undefined
  secondTierBytes: number
  /** The pool's SharedArrayBuffer: it crosses to the pager thread as is. */
  residentPool: SharedArrayBuffer | undefined
  /** Set for a region shared between processes. */
  shared: { name: string; dir: string } | undefined
  pagerThread: 'shared' | 'own'
}

export const DEFAULT_PAGE_SIZE = 65536
const SYSTEM_PAGE = 4096
/** x86_64 user space is 128 TiB; no region can be larger. */
const MAX_REGION_BYTES = 2 ** 46

function isPositiveInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0
}

export function normalizeOptions(options: unknown): NormalizedOptions {
  if (options === null || typeof options !== 'object') {
    throw invalidOption('options', `must be an object like { size, pageSize, backend } (got ${describe(options)})`)
  }
  const o = options as Record<string, unknown>
  const known = new Set(['size', 'pageSize', 'backend', 'access', 'fetchTimeoutMs', 'maxBatchPages', 'writeTracking', 'writeBack', 'readahead', 'maxResident', 'secondTierBytes', 'residentPool', 'hugePages', 'shared', 'pagerThread'])
  for (const key of Object.keys(o)) {
    if (!known.has(key)) throw invalidOption(key, `is not an option of openRegion (known: ${[...known].join(', ')})`)
  }

  const hugePageSize = normalizeHugePages(o.hugePages)
  if (hugePageSize !== 0 && o.pageSize !== undefined && o.pageSize !== hugePageSize) {
    throw invalidOption('pageSize', `must be left out or be ${hugePageSize} with hugePages ${describe(o.hugePages)}: the fault unit is the huge page (got ${describe(o.pageSize)})`)
  }
  const pageSize = o.pageSize ?? (hugePageSize || DEFAULT_PAGE_SIZE)
  if (!isPositiveInteger(pageSize) || pageSize % SYSTEM_PAGE !== 0 || (pageSize & (pageSize - 1)) !== 0 || pageSize > 2 ** 30) {
    throw invalidOption('pageSize', `must be a power of two, a multiple of ${SYSTEM_PAGE} and at most 1 GiB (got ${describe(o.pageSize)})`)
  }

  let size: number | undefined
  if (o.size !== undefined) {
    if (!isPositiveInteger(o.size)) throw invalidOption('size', `must be a positive whole number of bytes (got ${describe(o.size)})`)
    if (o.size > MAX_REGION_BYTES) throw invalidOption('size', `must be at most 64 TiB (got ${o.size})`)
    if (hugePageSize !== 0 && o.size % hugePageSize !== 0) {
      const up = Math.ceil(o.size / hugePageSize) * hugePageSize
      throw invalidOption('size', `must be a whole number of ${formatHuge(hugePageSize)} huge pages with hugePages ${describe(o.hugePages)}, each reserved from the pool (got ${o.size}; ${up} is the next)`)
    }
    size = o.size
  }

  if (o.backend === undefined) throw invalidOption('backend', 'is required: a spec like { type: "file", path } or a URL like "memory:"')
  let backend: BackendSpec
  if (typeof o.backend === 'string') backend = parseBackendUrl(o.backend)
  else if (o.backend !== null && typeof o.backend === 'object' && typeof (o.backend as { type?: unknown }).type === 'string') {
    backend = o.backend as BackendSpec
  } else {
    throw invalidOption('backend', `must be a URL string or an object with a string \`type\` (got ${describe(o.backend)})`)
  }

  const access = o.access
  if (access !== undefined && access !== 'read-only' && access !== 'read-write') {
    throw invalidOption('access', `must be "read-only" or "read-write" (got ${describe(access)})`)
  }

  const fetchTimeoutMs = o.fetchTimeoutMs ?? 30_000
  if (typeof fetchTimeoutMs !== 'number' || !(fetchTimeoutMs >= 0)) {
    throw invalidOption('fetchTimeoutMs', `must be a number of milliseconds ≥ 0, or Infinity (got ${describe(o.fetchTimeoutMs)})`)
  }

  const maxBatchPages = o.maxBatchPages ?? defaultBatchPages(pageSize)
  if (!isPositiveInteger(maxBatchPages) || maxBatchPages > 4096) {
    throw invalidOption('maxBatchPages', `must be a whole number from 1 to 4096 (got ${describe(o.maxBatchPages)})`)
  }

  const writeTracking = o.writeTracking ?? 'auto'
  if (writeTracking !== 'auto' && writeTracking !== 'sync' && writeTracking !== 'async') {
    throw invalidOption('writeTracking', `must be "auto", "sync" or "async" (got ${describe(o.writeTracking)})`)
  }

  const pagerThread = o.pagerThread ?? 'shared'
  if (pagerThread !== 'shared' && pagerThread !== 'own') {
    throw invalidOption('pagerThread', `must be "shared" or "own" (got ${describe(o.pagerThread)})`)
  }

  return {
    size,
    pageSize,
    hugePageSize,
    backend,
    access: access as NormalizedOptions['access'],
    fetchTimeoutMs,
    maxBatchPages,
    writeTracking,
    writeBack: normalizeWriteBack(o.writeBack),
    readaheadBytes: normalizeReadahead(o.readahead),
    maxResident: normalizeMaxResident(o.maxResident, pageSize, writeTracking),
    secondTierBytes: normalizeSecondTier(o.secondTierBytes, o.maxResident ?? o.residentPool),
    residentPool: normalizeResidentPool(o.residentPool, writeTracking),
    shared: normalizeShared(o, backend),
    pagerThread,
  }
}

/** The huge page sizes `hugePages` takes, in bytes. */
export const HUGE_PAGE_SIZES = { '2M': 2 ** 21, '1G': 2 ** 30 } as const

function normalizeHugePages(value: unknown): number {
  if (value === undefined || value === false) return 0
  if (value === '2M' || value === '1G') return HUGE_PAGE_SIZES[value]
  throw invalidOption('hugePages', `must be "2M", "1G" or false (got ${describe(value)})`)
}

/** 2 MiB, 1 GiB. */
export function formatHuge(bytes: number): string {
  return bytes >= 2 ** 30 ? `${bytes / 2 ** 30} GiB` : `${bytes / 2 ** 20} MiB`
}

function normalizeShared(o: Record<string, unknown>, backend: BackendSpec): NormalizedOptions['shared'] {
  const value = o.shared
  if (value === undefined || value === false) return undefined
  let name = 'faultline'
  let dir = '/dev/shm'
  if (value !== true) {
    if (value === null || typeof value !== 'object') throw invalidOption('shared', `must be true, false or an object like { name, dir } (got ${describe(value)})`)
    const s = value as Record<string, unknown>
    for (const key of Object.keys(s)) {
      if (key !== 'name' && key !== 'dir') throw invalidOption(`shared.${key}`, 'is not a shared option (known: name, dir)')
    }
    if (s.name !== undefined) {
      if (typeof s.name !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(s.name)) throw invalidOption('shared.name', `must be 1 to 64 letters, digits, ".", "_" or "-" (got ${describe(s.name)})`)
      name = s.name
    }
    if (s.dir !== undefined) {
      if (typeof s.dir !== 'string' || !s.dir.startsWith('/')) throw invalidOption('shared.dir', `must be an absolute path to a tmpfs directory (got ${describe(s.dir)})`)
      dir = s.dir
    }
  }
  if (o.access === 'read-write') {
    throw invalidOption('shared', "needs access: 'read-only': a cache shared between processes holds the backend's pages as they are, and cannot take one process's writes")
  }
  if (backend.type === 'memory') throw invalidOption('shared', "cannot be used with the memory backend: its pages are this process's own, not an object other processes can open")
  if (o.residentPool !== undefined) throw invalidOption('shared', 'cannot be combined with residentPool: a shared region is bounded by maxResident, for the whole machine')
  if (o.secondTierBytes !== undefined && o.secondTierBytes !== 0) throw invalidOption('shared', 'cannot be combined with secondTierBytes: pages evicted from the shared cache are fetched again')
  if (o.writeBack !== undefined) throw invalidOption('shared', "cannot be combined with writeBack: a shared region is read-only")
  if (o.hugePages !== undefined && o.hugePages !== false) throw invalidOption('shared', 'cannot be combined with hugePages: the shared cache is a tmpfs file of small pages')
  return { name, dir }
}

/**
 * About 1 MiB per request. Sequential scans at 64 KiB pages, 16- against
 * 64-page batches in interleaved runs: Redis median 0.19 against 0.175 GB/s
 * (best 0.37 against 0.25), HTTP 0.14–0.20 against 0.12–0.13, S3 the same:
 * with 4 MiB batches the reader waits for a whole batch before its first
 * page is installed.
 */
function defaultBatchPages(pageSize: number): number {
  return Math.max(1, Math.min(64, Math.floor(2 ** 20 / pageSize)))
}

function normalizeSecondTier(value: unknown, maxResident: unknown): number {
  if (value === undefined || value === 0) return 0
  if (!isPositiveInteger(value)) throw invalidOption('secondTierBytes', `must be a whole number of bytes (got ${describe(value)})`)
  if (maxResident === undefined) throw invalidOption('secondTierBytes', 'needs maxResident or residentPool: without eviction nothing is ever put in the second tier')
  return value
}

function normalizeMaxResident(value: unknown, pageSize: number, writeTracking: string): number | undefined {
  if (value === undefined) return undefined
  if (!isPositiveInteger(value) || value < 16 * pageSize) {
    throw invalidOption('maxResident', `must be a whole number of bytes, at least 16 pages (${16 * pageSize}) (got ${describe(value)})`)
  }
  if (writeTracking === 'async') {
    throw invalidOption('maxResident', 'cannot be combined with writeTracking "async": a write racing an eviction could be lost; use "sync" or "auto"')
  }
  return value
}

function normalizeResidentPool(value: unknown, writeTracking: string): SharedArrayBuffer | undefined {
  if (value === undefined) return undefined
  if (!(value instanceof ResidentPool)) {
    throw invalidOption('residentPool', `must be a pool made by createResidentPool() (or ResidentPool.attach(handle) on another thread) (got ${describe(value)})`)
  }
  if (writeTracking === 'async') {
    throw invalidOption('residentPool', 'cannot be combined with writeTracking "async": a write racing an eviction could be lost; use "sync" or "auto"')
  }
  return value.handle
}

export const DEFAULT_READAHEAD_BYTES = 8 * 2 ** 20

function normalizeReadahead(value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (value === false) return 0
  if (value === null || typeof value !== 'object') throw invalidOption('readahead', `must be false or an object like { maxBytes } (got ${describe(value)})`)
  const r = value as Record<string, unknown>
  for (const key of Object.keys(r)) {
    if (key !== 'maxBytes') throw invalidOption(`readahead.${key}`, 'is not a readahead option (known: maxBytes)')
  }
  if (r.maxBytes === undefined) return undefined
  if (typeof r.maxBytes !== 'number' || !Number.isSafeInteger(r.maxBytes) || r.maxBytes < 0) {
    throw invalidOption('readahead.maxBytes', `must be a whole number of bytes ≥ 0 (got ${describe(r.maxBytes)})`)
  }
  return r.maxBytes
}

function normalizeWriteBack(value: unknown): NormalizedOptions['writeBack'] {
  if (value === undefined) return { intervalMs: undefined, maxDirtyBytes: undefined }
  if (value === null || typeof value !== 'object') throw invalidOption('writeBack', `must be an object like { intervalMs, maxDirtyBytes } (got ${describe(value)})`)
  const w = value as Record<string, unknown>
  for (const key of Object.keys(w)) {
    if (key !== 'intervalMs' && key !== 'maxDirtyBytes') throw invalidOption(`writeBack.${key}`, 'is not a write-back option (known: intervalMs, maxDirtyBytes)')
  }
  if (w.intervalMs !== undefined && !(typeof w.intervalMs === 'number' && w.intervalMs >= 1 && Number.isFinite(w.intervalMs))) {
    throw invalidOption('writeBack.intervalMs', `must be a number of milliseconds ≥ 1 (got ${describe(w.intervalMs)})`)
  }
  if (w.maxDirtyBytes !== undefined && !isPositiveInteger(w.maxDirtyBytes)) {
    throw invalidOption('writeBack.maxDirtyBytes', `must be a positive whole number of bytes (got ${describe(w.maxDirtyBytes)})`)
  }
  return { intervalMs: w.intervalMs as number | undefined, maxDirtyBytes: w.maxDirtyBytes as number | undefined }
}

/** Final geometry once the backend has said what it knows. */
export function resolveGeometry(requested: number | undefined, backendSize: number | undefined, pageSize: number): { size: number; dataSize: number } {
  const dataSize = requested ?? backendSize
  if (dataSize === undefined) {
    throw new FaultlineError('ERR_GEOMETRY', 'faultline: option `size` is required: this backend does not know its length', { option: 'size' })
  }
  if (dataSize === 0) {
    throw new FaultlineError('ERR_GEOMETRY', 'faultline: the region would be empty: give `size`, or use a backend that holds data', { option: 'size' })
  }
  return { size: Math.ceil(dataSize / pageSize) * pageSize, dataSize }
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v)
  if (typeof v === 'bigint') return `${v}n`
  return Array.isArray(v) ? 'an array' : `a ${typeof v}`
}
