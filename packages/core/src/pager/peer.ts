/**
 * The pager thread's side of serving another process's memory (faultline
 * serve): the peer mapped the range and registered it on a userfaultfd it
 * handed over, so this thread maps nothing; it installs pages into the
 * peer's address space through that descriptor, and reads the peer's dirty
 * pages with process_vm_readv for write-back.
 */
import { constants, native } from '@faultline/native'
import type { Backend } from '@faultline/contract'
import { PageSet } from './pageset.js'
import { FaultlineError } from '../errors.js'

/** One range of a peer, as the pager thread is given it. */
export interface PeerAttach {
  /** The peer's userfaultfd, received over the socket; this thread owns it. */
  uffd: number
  pid: number
  /** Start of the range in the peer's address space (of the first, when there are several). */
  address: number
  /** Bytes of all its ranges. */
  size: number
  /** Byte offset of the range's first page in the backend object (a multiple of the page size). */
  offset: number
  /** The peer registered write-protect too and wants its writes stored. */
  writeBack: boolean
  /**
   * Set when the peer attached several ranges on this descriptor (a
   * Firecracker VM with memory above and below the 32-bit gap): the pager
   * serves them as one run of pages, range after range (see PeerLayout).
   */
  ranges?: PeerRange[] | undefined
}

export interface PeerRange {
  address: number
  size: number
  offset: number
}

/**
 * A peer's ranges as one run of pages for the pager: page p of range k is
 * page firstPage[k] + p. Addresses in messages are rewritten to that run
 * (based at the first range's address), installs go back to the real one.
 */
export class PeerLayout {
  readonly ranges: readonly PeerRange[]
  private readonly firstPage: number[] = []

  constructor(
    peer: PeerAttach,
    private readonly pageSize: number,
  ) {
    this.ranges = peer.ranges ?? [{ address: peer.address, size: peer.size, offset: peer.offset }]
    let first = 0
    for (const r of this.ranges) {
      this.firstPage.push(first)
      first += r.size / pageSize
    }
  }

  get several(): boolean {
    return this.ranges.length > 1
  }

  /** The address in the pager's run for a real one, or undefined outside every range. */
  toRun(address: number): number | undefined {
    for (const [k, r] of this.ranges.entries()) {
      if (address >= r.address && address < r.address + r.size) return this.ranges[0]!.address + this.firstPage[k]! * this.pageSize + (address - r.address)
    }
    return undefined
  }

  /** The real address of page `page` of the run. */
  addressOf(page: number): number {
    const k = this.rangeOf(page)
    return this.ranges[k]!.address + (page - this.firstPage[k]!) * this.pageSize
  }

  /** The backend object's page for page `page` of the run. */
  objectPage(page: number): number {
    const k = this.rangeOf(page)
    return this.ranges[k]!.offset / this.pageSize + (page - this.firstPage[k]!)
  }

  /** Pages of the run [first, end) a real byte range [start, end) touches, and whether each is covered whole. */
  *pagesIn(start: number, end: number): Generator<{ page: number; whole: boolean }> {
    for (const [k, r] of this.ranges.entries()) {
      const a = Math.max(start, r.address) - r.address
      const b = Math.min(end, r.address + r.size) - r.address
      for (let p = Math.floor(a / this.pageSize); p * this.pageSize < b; p++) {
        yield { page: this.firstPage[k]! + p, whole: p * this.pageSize >= a && (p + 1) * this.pageSize <= b }
      }
    }
  }

  describe(): string {
    return this.ranges.map((r) => `[0x${r.address.toString(16)}, 0x${(r.address + r.size).toString(16)})`).join(', ')
  }

  private rangeOf(page: number): number {
    let k = this.firstPage.length - 1
    while (k > 0 && this.firstPage[k]! > page) k--
    return k
  }
}

/**
 * The peer's memory as write-back reads it: `view()` copies the bytes out
 * of the peer into one scratch buffer, valid until the next call (write-back
 * copies each page out at once).
 */
export class PeerMemory {
  private scratch = new Uint8Array(0)

  constructor(private readonly peer: PeerAttach) {}

  view(offset: number, length: number): Uint8Array {
    if (this.scratch.length < length) this.scratch = new Uint8Array(length)
    const out = this.scratch.subarray(0, length)
    const at = this.peer.address + offset
    let n: number
    try {
      n = native.readPeerMemory(this.peer.pid, at, out)
    } catch (cause) {
      const code = (cause as { code?: string }).code
      const why =
        code === 'EPERM' || code === 'EACCES'
          ? 'the server may not read its memory: it needs the right to ptrace it (the same user with kernel.yama.ptrace_scope ≤ 1, CAP_SYS_PTRACE, or root)'
          : code === 'ESRCH'
            ? 'it has exited'
            : String((cause as Error).message)
      throw new FaultlineError('ERR_PEER', `faultline serve: writing back process ${this.peer.pid}'s pages failed: ${why}`, { cause })
    }
    if (n !== length) throw new FaultlineError('ERR_PEER', `faultline serve: process ${this.peer.pid} no longer maps 0x${at.toString(16)} (read ${n} of ${length} bytes): it unmapped part of its range`)
    return out
  }
}

/**
 * The backend seen from a peer's run of pages: page p is the object's page
 * `layout.objectPage(p)`. Pages the peer gave back (UFFD_EVENT_REMOVE, e.g.
 * a balloon inflating) read as zeros from then on, as Firecracker's
 * handlers do.
 */
export function offsetBackend(backend: Backend, layout: PeerLayout, pageSize: number, removed: PageSet): Backend {
  const shift = (indexes: readonly number[]): number[] => indexes.map((p) => layout.objectPage(p))
  const first = layout.objectPage(0)
  const size = backend.info.size === undefined ? undefined : Math.max(0, backend.info.size - first * pageSize)
  const shifted: Backend = {
    info: { ...backend.info, size },
    isAbsent: (p) => removed.has(p) || (backend.isAbsent?.(layout.objectPage(p)) ?? false),
    read: (indexes) => backend.read(shift(indexes)),
    close: () => backend.close(),
  }
  if (backend.readSync !== undefined) shifted.readSync = (indexes) => backend.readSync!(shift(indexes))
  if (backend.recycle !== undefined) shifted.recycle = (data) => backend.recycle!(data)
  if (backend.write !== undefined) shifted.write = (pages) => backend.write!(pages.map((w) => ({ index: layout.objectPage(w.index), data: w.data })))
  if (backend.sync !== undefined) shifted.sync = () => backend.sync!()
  // One range only: the native watcher reads a file at one offset. It drops its file sources at the
  // first REMOVE it reads, so removed pages still read as zeros.
  if (backend.filePages !== undefined && !layout.several) {
    shifted.filePages = () => {
      const f = backend.filePages!()
      return f === undefined ? undefined : { fd: f.fd, length: f.length, offset: (f.offset ?? 0) + first * pageSize }
    }
  }
  // sharedPages is left out: its page 0 is the object's, not the range's.
  return shifted
}

/** Huge page sizes a peer's mapping may use: a poison must cover a whole page of the mapping. */
const POISON_UNITS = [constants.SYSTEM_PAGE_SIZE!, 2 ** 21, 2 ** 30]

/**
 * Answers the fault at `address` on a peer's descriptor with SIGBUS
 * (UFFDIO_POISON) rather than leaving its thread asleep: in the system page
 * size, or a huge page's where the mapping is hugetlb (EINVAL), retrying
 * while an event is pending (EAGAIN). False if it could not.
 */
export function poisonFault(uffd: number, address: number): boolean {
  for (const unit of POISON_UNITS) {
    const start = Math.floor(address / unit) * unit
    try {
      for (let tries = 0; tries < 64; tries++) {
        const r = native.uffdPoison(uffd, start, unit, 0)
        if (r >= 0 || r === -constants.EEXIST) return true
      }
      return false
    } catch (err) {
      // EINVAL: not a page of this mapping's size; anything else: the peer is gone, nobody waits.
      if ((err as { code?: string }).code !== 'EINVAL') return false
    }
  }
  return false
}

/** What screening a peer's messages acts on. */
export interface PeerScreen {
  /** Pages whose whole extent was given back: they read as zeros from then on. */
  removed: PageSet
  /** A page (part of) which was given back. */
  forget(page: number): void
  /** Once per REMOVE: the native watcher must stop answering from the file. */
  onRemove(): void
  warn(message: string): void
}

/**
 * Messages the pager cannot take as they come from a peer: a fault outside
 * the range it declared is answered with SIGBUS (UFFDIO_POISON) instead of
 * leaving the thread asleep for ever, and a REMOVE (a balloon inflating,
 * MADV_DONTNEED) forgets every page it touches and makes the pages it covers
 * read as zeros. Returns the messages left, in place.
 */
export function screenPeerMessages(peer: PeerAttach, layout: PeerLayout, count: number, messages: Float64Array, screen: PeerScreen): number {
  let kept = 0
  for (let m = 0; m < count; m++) {
    const event = messages[m * 4]!
    const a = messages[m * 4 + 1]!
    const b = messages[m * 4 + 2]!
    if (event === constants.UFFD_EVENT_REMOVE) {
      // [event, start, end]: every page it touches is forgotten, those it covers read as zeros.
      screen.onRemove()
      for (const { page, whole } of layout.pagesIn(a, b)) {
        if (whole) screen.removed.add(page)
        screen.forget(page)
      }
      continue
    }
    if (event === constants.UFFD_EVENT_PAGEFAULT || event === constants.WATCH_SERVED) {
      const run = layout.toRun(b)
      if (run === undefined) {
        screen.warn(`faultline serve: process ${peer.pid} faulted at 0x${b.toString(16)}, outside the ranges it attached ${layout.describe()}: answered with SIGBUS`)
        poisonFault(peer.uffd, b)
        continue
      }
      messages[m * 4 + 2] = run
    }
    if (kept !== m) for (let k = 0; k < 4; k++) messages[kept * 4 + k] = messages[m * 4 + k]!
    kept++
  }
  return kept
}
