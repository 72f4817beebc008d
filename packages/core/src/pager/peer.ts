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

/** One range of a peer, as the pager thread is given it. */
export interface PeerAttach {
  /** The peer's userfaultfd, received over the socket; this thread owns it. */
  uffd: number
  pid: number
  /** Start of the range in the peer's address space. */
  address: number
  size: number
  /** Byte offset of the range's first page in the backend object (a multiple of the page size). */
  offset: number
  /** The peer registered write-protect too and wants its writes stored. */
  writeBack: boolean
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
    const n = native.readPeerMemory(this.peer.pid, this.peer.address + offset, out)
    if (n !== length) throw new Error(`process_vm_readv read ${n} of ${length} bytes at 0x${(this.peer.address + offset).toString(16)} in process ${this.peer.pid}`)
    return out
  }
}

/**
 * The backend seen from a range whose first page is page `first` of the
 * object. Pages the peer gave back (UFFD_EVENT_REMOVE, e.g. a balloon
 * inflating) read as zeros from then on, as Firecracker's handlers do.
 */
export function offsetBackend(backend: Backend, first: number, pageSize: number, removed: PageSet): Backend {
  const shift = (indexes: readonly number[]): number[] => indexes.map((p) => p + first)
  const size = backend.info.size === undefined ? undefined : Math.max(0, backend.info.size - first * pageSize)
  const shifted: Backend = {
    info: { ...backend.info, size },
    isAbsent: (p) => removed.has(p) || (backend.isAbsent?.(p + first) ?? false),
    read: (indexes) => backend.read(shift(indexes)),
    close: () => backend.close(),
  }
  if (backend.readSync !== undefined) shifted.readSync = (indexes) => backend.readSync!(shift(indexes))
  if (backend.recycle !== undefined) shifted.recycle = (data) => backend.recycle!(data)
  if (backend.write !== undefined) shifted.write = (pages) => backend.write!(pages.map((w) => ({ index: w.index + first, data: w.data })))
  if (backend.sync !== undefined) shifted.sync = () => backend.sync!()
  // The native watcher drops file sources at the first REMOVE it reads, so removed pages still read as zeros.
  if (backend.filePages !== undefined) {
    shifted.filePages = () => {
      const f = backend.filePages!()
      return f === undefined ? undefined : { fd: f.fd, length: f.length, offset: (f.offset ?? 0) + first * pageSize }
    }
  }
  // sharedPages is left out: its page 0 is the object's, not the range's.
  return shifted
}

/**
 * Messages the pager cannot take as they come from a peer: a fault outside
 * the range it declared is answered with SIGBUS (UFFDIO_POISON) instead of
 * leaving the thread asleep for ever, and REMOVE events mark pages removed
 * (dropped from the books by `onRemoved`). Returns the messages left, in place.
 */
export function screenPeerMessages(peer: PeerAttach, pageSize: number, count: number, messages: Float64Array, removed: PageSet, onRemoved: (page: number) => void, warn: (message: string) => void): number {
  let kept = 0
  for (let m = 0; m < count; m++) {
    const event = messages[m * 4]!
    const a = messages[m * 4 + 1]!
    const b = messages[m * 4 + 2]!
    if (event === constants.UFFD_EVENT_REMOVE) {
      // [event, start, end]: every whole page in it now reads as zeros.
      const first = Math.ceil((a - peer.address) / pageSize)
      const end = Math.floor((Math.min(b, peer.address + peer.size) - peer.address) / pageSize)
      for (let p = Math.max(0, first); p < end; p++) {
        removed.add(p)
        onRemoved(p)
      }
      continue
    }
    if ((event === constants.UFFD_EVENT_PAGEFAULT || event === constants.WATCH_SERVED) && (b < peer.address || b >= peer.address + peer.size)) {
      warn(`faultline serve: process ${peer.pid} faulted at 0x${b.toString(16)}, outside the range it attached [0x${peer.address.toString(16)}, 0x${(peer.address + peer.size).toString(16)}): answered with SIGBUS`)
      const sysPage = constants.SYSTEM_PAGE_SIZE!
      try {
        native.uffdPoison(peer.uffd, Math.floor(b / sysPage) * sysPage, sysPage, 0)
      } catch {
        // The peer is gone or the address is not registered on this descriptor: nobody waits.
      }
      continue
    }
    if (kept !== m) for (let k = 0; k < 4; k++) messages[kept * 4 + k] = messages[m * 4 + k]!
    kept++
  }
  return kept
}
