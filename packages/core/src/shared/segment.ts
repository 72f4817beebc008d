/**
 * One process's attachment to a shared cache (`openRegion({ shared })`):
 * a pages file and a control file in tmpfs, both mapped MAP_SHARED. Runs on
 * the pager thread. See layout.ts for the control file and docs/architecture.md
 * for the protocol.
 *
 * Lifecycle, serialised by flock on the control file: whoever holds the lock
 * and finds no valid segment (no magic, the wrong size, or no live process in
 * any slot: a stale one) initialises it — truncating both files drops any
 * stale pages — and writes the magic last. Each attachment takes a slot (its
 * pid and start time); a dead process's slot is freed, and its claims reset,
 * when the next process attaches. The last to leave unlinks both files.
 */
import { processStartTime } from '../proc.js'
import { closeSync, fstatSync, statfsSync, ftruncateSync, openSync, statSync, unlinkSync, constants as fsConstants } from 'node:fs'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { native } from '@faultline/native'
import { FaultlineError } from '../errors.js'
import { controlBytes, EMPTY, EVICTING, FETCHING, H, LAYOUT_VERSION, MAGIC, OWNER_MASK, PRESENT, S, SLOT_BASE, SLOT_WORDS, SLOTS, STATE_BASE } from './layout.js'

export interface SegmentIdentity {
  /** The backend's name (no credentials) and type. */
  backend: string
  /** BackendInfo.version, when the backend knows one. */
  version: string | undefined
  size: number
  pageSize: number
}

export interface SegmentOptions {
  dir: string
  name: string
  identity: SegmentIdentity
  /** maxResident in pages, or 0. */
  budgetPages: number
}

/** How long a process's liveness is believed before /proc is read again. */
const LIVENESS_MS = 50

export class SharedSegment {
  readonly cells: Int32Array
  readonly pageCount: number
  /** FETCHING | slot: this attachment's claim. */
  readonly fetching: number
  private readonly evicting: number
  private readonly liveness = new Map<number, { alive: boolean; at: number }>()
  private left = false

  private constructor(
    readonly ctlPath: string,
    readonly pagesPath: string,
    private readonly ctlFd: number,
    readonly pagesFd: number,
    readonly ctlAddress: number,
    readonly ctlLength: number,
    readonly slot: number,
    private readonly pageSize: number,
  ) {
    this.cells = new Int32Array(native.externalBuffer(ctlAddress, ctlLength))
    this.pageCount = this.cells[H.pageCount]!
    this.fetching = FETCHING | slot
    this.evicting = EVICTING | slot
  }

  static open(o: SegmentOptions): SharedSegment {
    const { size, pageSize } = o.identity
    const pageCount = size / pageSize
    const hash = createHash('sha256').update(JSON.stringify([LAYOUT_VERSION, o.identity.backend, o.identity.version ?? null, size, pageSize])).digest('hex').slice(0, 32)
    const base = join(o.dir, `${o.name}-${hash}`)
    const ctlPath = `${base}.ctl`
    const pagesPath = `${base}.pages`
    const ctlLength = controlBytes(pageCount)
    checkDir(o.dir)
    for (let attempt = 0; attempt < 100; attempt++) {
      const ctlFd = openControl(ctlPath)
      if (ctlFd < 0) continue // unlinked between our attempts: try again
      let pagesFd = -1
      let ctlAddress = 0
      try {
        native.flock(ctlFd, true)
        if (!stillLinked(ctlFd, ctlPath)) {
          closeSync(ctlFd) // closing drops the lock
          continue
        }
        const fresh = fstatSync(ctlFd).size !== ctlLength
        if (fresh) {
          ftruncateSync(ctlFd, 0)
          ftruncateSync(ctlFd, ctlLength)
        }
        ctlAddress = native.mapSharedFile(ctlFd, ctlLength, true)
        const cells = new Int32Array(native.externalBuffer(ctlAddress, ctlLength))
        const valid = !fresh && Atomics.load(cells, H.magic) === MAGIC && cells[H.version] === LAYOUT_VERSION && cells[H.pageSize] === pageSize && cells[H.pageCount] === pageCount
        const probe = new Liveness()
        if (!valid || !anyLive(cells, probe)) {
          // New, or stale (its creator died before the magic, or everyone attached is gone).
          pagesFd = openSync(pagesPath, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600)
          ftruncateSync(pagesFd, 0)
          ftruncateSync(pagesFd, size)
          Atomics.store(cells, H.magic, 0)
          cells.fill(0)
          cells[H.version] = LAYOUT_VERSION
          cells[H.pageSize] = pageSize
          cells[H.pageCount] = pageCount
          cells[H.slots] = SLOTS
          Atomics.store(cells, H.magic, MAGIC)
        } else {
          pagesFd = openPages(pagesPath, size)
          if (pagesFd < 0) {
            // The pages file is gone (removed by hand): start over with a fresh one.
            Atomics.store(cells, H.magic, 0)
            closeSync(ctlFd)
            native.retireMapping(ctlAddress)
            continue
          }
        }
        const slot = takeSlot(cells, probe, pagesFd, pageSize, pageCount)
        if (slot < 0) throw new FaultlineError('ERR_INVALID_OPTION', `faultline: the shared cache ${pagesPath} already has ${SLOTS} regions attached; no slot is free`, { option: 'shared' })
        lowerBudget(cells, o.budgetPages)
        native.detachBuffer(cells.buffer as ArrayBuffer)
        native.flock(ctlFd, false)
        return new SharedSegment(ctlPath, pagesPath, ctlFd, pagesFd, ctlAddress, ctlLength, slot, pageSize)
      } catch (err) {
        if (pagesFd >= 0) closeSync(pagesFd)
        closeSync(ctlFd)
        if (ctlAddress !== 0) native.retireMapping(ctlAddress)
        throw err
      }
    }
    throw new FaultlineError('ERR_INVALID_OPTION', `faultline: could not attach to the shared cache ${pagesPath}: it kept being removed while opening`, { option: 'shared' })
  }

  state(page: number): number {
    return Atomics.load(this.cells, STATE_BASE + page)
  }

  /** EMPTY → FETCHING(me): this process fetches the page. */
  tryClaim(page: number): boolean {
    return Atomics.compareExchange(this.cells, STATE_BASE + page, EMPTY, this.fetching) === EMPTY
  }

  /** A claim of a dead owner (FETCHING or EVICTING) becomes ours; true if it did. */
  takeOver(page: number, seen: number): boolean {
    if ((seen & ~OWNER_MASK) === EVICTING) {
      // It died between its CAS and its punch (or after): punch again, then the page is EMPTY.
      if (Atomics.compareExchange(this.cells, STATE_BASE + page, seen, this.evicting) !== seen) return false
      native.punchHole(this.pagesFd, page * this.pageSize, this.pageSize)
      Atomics.store(this.cells, STATE_BASE + page, EMPTY)
      Atomics.add(this.cells, H.takenOver, 1)
      return this.tryClaim(page)
    }
    if (Atomics.compareExchange(this.cells, STATE_BASE + page, seen, this.fetching) !== seen) return false
    Atomics.add(this.cells, H.takenOver, 1)
    return true
  }

  /** Installed by us: FETCHING(me) or EMPTY (a held page) → PRESENT. Returns whether the cache grew. */
  markPresent(page: number): boolean {
    const i = STATE_BASE + page
    const moved = Atomics.compareExchange(this.cells, i, this.fetching, PRESENT) === this.fetching || Atomics.compareExchange(this.cells, i, EMPTY, PRESENT) === EMPTY
    if (moved) Atomics.add(this.cells, H.resident, 1)
    return moved
  }

  /** Pages this process read from the backend (as its stats' pagesFetched counts them). */
  countFetched(pages: number): void {
    Atomics.add(this.cells, H.fetched, pages)
    Atomics.add(this.cells, this.slotCell(S.fetched), pages)
  }

  /** Our claim ends without an install (the fetch failed, or the page is held back): EMPTY again. */
  release(page: number): void {
    Atomics.compareExchange(this.cells, STATE_BASE + page, this.fetching, EMPTY)
  }

  /** A PRESENT page that keeps faulting is not in the cache after all (punched behind our back): EMPTY. */
  repair(page: number): void {
    if (Atomics.compareExchange(this.cells, STATE_BASE + page, PRESENT, EMPTY) === PRESENT) Atomics.sub(this.cells, H.resident, 1)
  }

  servedByOthers(count: number): void {
    Atomics.add(this.cells, this.slotCell(S.servedByOthers), count)
  }

  /** Whether the owner of a FETCHING or EVICTING state still runs (cached for LIVENESS_MS). */
  ownerAlive(state: number): boolean {
    const owner = state & OWNER_MASK
    const now = performance.now()
    const known = this.liveness.get(owner)
    if (known !== undefined && now - known.at < LIVENESS_MS) return known.alive
    const alive = slotAlive(this.cells, owner, new Liveness())
    this.liveness.set(owner, { alive, at: now })
    return alive
  }

  /**
   * Keeps the cache under its budget: past it, PRESENT pages are dropped
   * (PRESENT → EVICTING(me), punch, EMPTY) down to 90%, in the order of a
   * clock hand sweeping the pages (shared by every process). Returns the
   * pages this call dropped.
   */
  evictIfOver(): number[] {
    const budget = Atomics.load(this.cells, H.budget)
    if (budget === 0 || Atomics.load(this.cells, H.resident) <= budget) return []
    const target = Math.floor(budget * 0.9)
    const dropped: number[] = []
    for (let looked = 0; looked < 2 * this.pageCount && Atomics.load(this.cells, H.resident) > target; looked++) {
      const page = (Atomics.add(this.cells, H.hand, 1) >>> 0) % this.pageCount
      const i = STATE_BASE + page
      if (Atomics.compareExchange(this.cells, i, PRESENT, this.evicting) !== PRESENT) continue
      Atomics.sub(this.cells, H.resident, 1)
      dropped.push(page)
    }
    dropped.sort((a, b) => a - b)
    for (let k = 0; k < dropped.length; ) {
      let end = k + 1
      while (end < dropped.length && dropped[end] === dropped[end - 1]! + 1) end++
      native.punchHole(this.pagesFd, dropped[k]! * this.pageSize, (end - k) * this.pageSize)
      k = end
    }
    for (const page of dropped) Atomics.store(this.cells, STATE_BASE + page, EMPTY)
    Atomics.add(this.cells, H.evicted, dropped.length)
    return dropped
  }

  /**
   * Frees this slot (and any claim it still holds); the last attachment to
   * leave unlinks both files. Call after the region's mapping is retired.
   */
  leave(): void {
    if (this.left) return
    this.left = true
    native.flock(this.ctlFd, true)
    try {
      resetClaims(this.cells, this.slot, this.pagesFd, this.pageSize, this.pageCount)
      const base = SLOT_BASE + this.slot * SLOT_WORDS
      for (let w = 0; w < SLOT_WORDS; w++) Atomics.store(this.cells, base + w, 0)
      if (!anyLive(this.cells, new Liveness())) {
        Atomics.store(this.cells, H.magic, 0)
        unlinkQuietly(this.pagesPath)
        unlinkQuietly(this.ctlPath)
      }
    } finally {
      native.flock(this.ctlFd, false)
      native.detachBuffer(this.cells.buffer as ArrayBuffer)
      closeSync(this.pagesFd)
      closeSync(this.ctlFd)
      native.retireMapping(this.ctlAddress)
    }
  }

  /**
   * The pager thread is dying of a bug while its process lives on: its
   * claims would look alive for ever, so they are reset (and the slot freed)
   * at once, without the lock. The files stay for the others.
   */
  abandon(): void {
    if (this.left) return
    this.left = true
    resetClaims(this.cells, this.slot, this.pagesFd, this.pageSize, this.pageCount)
    Atomics.store(this.cells, SLOT_BASE + this.slot * SLOT_WORDS + S.pid, 0)
  }

  private slotCell(field: number): number {
    return SLOT_BASE + this.slot * SLOT_WORDS + field
  }
}

const TMPFS_MAGIC = 0x01021994

/** userfaultfd MISSING mode works on shmem (and hugetlbfs), not on disk filesystems. */
function checkDir(dir: string): void {
  let type: number
  try {
    type = statfsSync(dir).type
  } catch (cause) {
    throw new FaultlineError('ERR_INVALID_OPTION', `faultline: option \`shared.dir\` ${JSON.stringify(dir)} cannot be used: ${(cause as Error).message}`, { option: 'shared.dir', cause })
  }
  if (type !== TMPFS_MAGIC) {
    throw new FaultlineError('ERR_INVALID_OPTION', `faultline: option \`shared.dir\` ${JSON.stringify(dir)} is not on tmpfs (filesystem type 0x${type.toString(16)}): a shared cache needs shared memory (e.g. /dev/shm), which userfaultfd can serve`, { option: 'shared.dir' })
  }
}

/** O_CREAT, or the existing file; -1 if it vanished between the two opens. */
function openControl(path: string): number {
  const flags = fsConstants.O_RDWR
  try {
    return openSync(path, flags | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  try {
    return openSync(path, flags)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return -1
    throw err
  }
}

function openPages(path: string, size: number): number {
  let fd: number
  try {
    fd = openSync(path, fsConstants.O_RDWR)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return -1
    throw err
  }
  if (fstatSync(fd).size !== size) ftruncateSync(fd, size)
  return fd
}

/** The locked descriptor is still the file at `path` (the last leaver may have unlinked it meanwhile). */
function stillLinked(fd: number, path: string): boolean {
  const held = fstatSync(fd)
  if (held.nlink === 0) return false
  try {
    return statSync(path).ino === held.ino
  } catch {
    return false
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // already gone
  }
}

/** Reads /proc/<pid>/stat once per pid per instance. */
class Liveness {
  private readonly seen = new Map<number, number | undefined>()
  /** The process's start time (clock ticks, mod 2^31), or undefined when it is gone or a zombie. */
  startOf(pid: number): number | undefined {
    if (this.seen.has(pid)) return this.seen.get(pid)
    const start = processStartTime(pid)
    this.seen.set(pid, start)
    return start
  }
}

function slotAlive(cells: Int32Array, slot: number, probe: Liveness): boolean {
  const base = SLOT_BASE + slot * SLOT_WORDS
  const pid = Atomics.load(cells, base + S.pid)
  return pid !== 0 && probe.startOf(pid) === Atomics.load(cells, base + S.start)
}

function anyLive(cells: Int32Array, probe: Liveness): boolean {
  for (let s = 0; s < SLOTS; s++) if (slotAlive(cells, s, probe)) return true
  return false
}

/** Under the lock: frees dead processes' slots (resetting their claims) and takes a free one. */
function takeSlot(cells: Int32Array, probe: Liveness, pagesFd: number, pageSize: number, pageCount: number): number {
  const me = probe.startOf(process.pid)!
  let free = -1
  for (let s = 0; s < SLOTS; s++) {
    const base = SLOT_BASE + s * SLOT_WORDS
    if (Atomics.load(cells, base + S.pid) !== 0 && !slotAlive(cells, s, probe)) {
      // Its claims first: once the slot is someone's again, FETCHING(s) would look alive.
      resetClaims(cells, s, pagesFd, pageSize, pageCount)
      for (let w = 0; w < SLOT_WORDS; w++) Atomics.store(cells, base + w, 0)
    }
    if (free < 0 && Atomics.load(cells, base + S.pid) === 0) free = s
  }
  if (free < 0) return -1
  const base = SLOT_BASE + free * SLOT_WORDS
  Atomics.store(cells, base + S.start, me)
  Atomics.store(cells, base + S.pid, process.pid)
  return free
}

/**
 * A slot's claims end: each FETCHING or EVICTING page is punched, then
 * EMPTY. (A process killed between its copy and its PRESENT leaves a page
 * in the cache under FETCHING: punched, the state is true again.) FETCHING
 * goes through EVICTING, so a waiter taking the claim over meanwhile sees a
 * dead evictor and punches too, never a page it just installed.
 */
function resetClaims(cells: Int32Array, slot: number, pagesFd: number, pageSize: number, pageCount: number): void {
  const fetching = FETCHING | slot
  const evicting = EVICTING | slot
  for (let p = 0; p < pageCount; p++) {
    const i = STATE_BASE + p
    const s = Atomics.load(cells, i)
    if (s !== fetching && s !== evicting) continue
    if (s === fetching && Atomics.compareExchange(cells, i, fetching, evicting) !== fetching) continue
    native.punchHole(pagesFd, p * pageSize, pageSize)
    Atomics.compareExchange(cells, i, evicting, EMPTY)
  }
}

/** The budget is the smallest of the attached regions' maxResident. */
function lowerBudget(cells: Int32Array, pages: number): void {
  if (pages <= 0) return
  for (;;) {
    const current = Atomics.load(cells, H.budget)
    if (current !== 0 && current <= pages) return
    if (Atomics.compareExchange(cells, H.budget, current, pages) === current) return
  }
}
