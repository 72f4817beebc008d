/**
 * The control file of a region shared between processes (`openRegion({
 * shared })`): Int32 words in a tmpfs file every attached process maps
 * MAP_SHARED, read and written with Atomics only.
 *
 * ```
 * word 0   magic 'FLSH' (written last by whoever initialises the file)
 *      1   layout version
 *      2   pageSize            3  pageCount          4  slot count
 *      5   budget (pages; 0: unbounded) — the smallest maxResident attached
 *      6   pages in the cache   7  pages fetched by all (installed from a backend read)
 *      8   clock hand (next page the evictor looks at)
 *      9   pages evicted        10 claims taken over from dead owners
 *      11–15 reserved
 * 16 …     slots: SLOTS × [pid, start time, pages fetched, faults served by another's fetch]
 * then     one state per page (see below)
 * ```
 *
 * Page states: EMPTY (0), PRESENT (1), FETCHING | slot, EVICTING | slot.
 * The owner slot of a FETCHING or EVICTING page is the attachment that made
 * the transition; when its process is gone (no /proc/<pid>, a zombie, or
 * another process's start time), others take the claim over.
 */
export const MAGIC = 0x48534c46
export const LAYOUT_VERSION = 1
export const SLOTS = 64

export const H = {
  magic: 0,
  version: 1,
  pageSize: 2,
  pageCount: 3,
  slots: 4,
  budget: 5,
  resident: 6,
  fetched: 7,
  hand: 8,
  evicted: 9,
  takenOver: 10,
} as const

const HEADER_WORDS = 16
export const SLOT_WORDS = 4
export const SLOT_BASE = HEADER_WORDS
export const S = { pid: 0, start: 1, fetched: 2, servedByOthers: 3 } as const
export const STATE_BASE = HEADER_WORDS + SLOTS * SLOT_WORDS

export const EMPTY = 0
export const PRESENT = 1
export const FETCHING = 0x10000
export const EVICTING = 0x20000
export const OWNER_MASK = 0xffff

export function controlBytes(pageCount: number): number {
  return Math.ceil(((STATE_BASE + pageCount) * 4) / 4096) * 4096
}

/** `region.stats().shared`: the machine-wide cache a shared region is part of. */
export interface SharedStats {
  /** The pages file (the control file is beside it, `.ctl` instead of `.pages`). */
  path: string
  /** Pages in the shared cache now, installed by any process. */
  residentPages: number
  /** The cache's bound in pages (the smallest `maxResident` of the attached regions), or undefined. */
  budgetPages: number | undefined
  /** Pages installed from backend reads by all processes since the cache was created. */
  pagesFetched: number
  /** Pages dropped from the cache to stay under the budget. */
  evictedPages: number
  /** Claims of processes that died mid-fetch, taken over by others. */
  takenOver: number
  /** Faults of this region answered by another process's fetch (waited for, or found installed). */
  faultsServedByOthers: number
  /** Every attached region (one per slot), this one included. */
  processes: Array<{ pid: number; pagesFetched: number; faultsServedByOthers: number }>
}

export function readSharedStats(cells: Int32Array, slot: number, path: string): SharedStats {
  const processes: SharedStats['processes'] = []
  for (let s = 0; s < SLOTS; s++) {
    const base = SLOT_BASE + s * SLOT_WORDS
    const pid = Atomics.load(cells, base + S.pid)
    if (pid !== 0) processes.push({ pid, pagesFetched: Atomics.load(cells, base + S.fetched), faultsServedByOthers: Atomics.load(cells, base + S.servedByOthers) })
  }
  const budget = Atomics.load(cells, H.budget)
  return {
    path,
    residentPages: Atomics.load(cells, H.resident),
    budgetPages: budget === 0 ? undefined : budget,
    pagesFetched: Atomics.load(cells, H.fetched),
    evictedPages: Atomics.load(cells, H.evicted),
    takenOver: Atomics.load(cells, H.takenOver),
    faultsServedByOthers: Atomics.load(cells, SLOT_BASE + slot * SLOT_WORDS + S.servedByOthers),
    processes,
  }
}
