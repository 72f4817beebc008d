/**
 * One attached peer range, served by a pager thread of its own: a peer that
 * misbehaves (or a backend that fails under it) takes down only its thread.
 */
import { processStartTime } from '../proc.js'
import { native } from '@faultline/native'
import type { NormalizedOptions } from '../options.js'
import { PagerHost } from '../pager/host.js'
import type { PagerEvent } from '../pager/protocol.js'
import type { PeerAttach } from '../pager/peer.js'
import { readStats, STATS_BYTES, type RegionStats } from '../stats.js'

/** What `faultline serve --status` lists for each peer. */
export interface PeerStatus {
  /** Numbered from 1 in the order peers attached. */
  id: number
  pid: number
  /** Start of the range in the peer, as hex. */
  address: string
  size: number
  /** Byte offset of the range in the backend object. */
  offset: number
  pageSize: number
  writeBack: boolean
  /** Milliseconds since the peer attached. */
  attachedMs: number
  /** `gone`: the peer exited and its pager is closing. */
  state: 'serving' | 'gone'
  stats: RegionStats
}

export class PeerSession {
  private readonly started = Date.now()
  private gone = false
  private closing: Promise<void> | undefined

  private constructor(
    readonly id: number,
    readonly peer: PeerAttach,
    private readonly host: PagerHost,
    private readonly statsBuffer: SharedArrayBuffer,
  ) {
    // Closed once the pager is done with it: closed, or dead of a bug (then
    // nobody else would, and a poisoner keeps a copy until the peer exits).
    // Closing the last descriptor unregisters the range and wakes its waiters.
    void host.exited().then(() => closeQuietly(peer.uffd))
  }

  /** Starts the pager thread, which serves `peer.uffd` once started; the session closes it (if it fails to start, the caller does). */
  static async start(id: number, options: NormalizedOptions, peer: PeerAttach, onEvent: (event: PagerEvent) => void): Promise<PeerSession> {
    const stats = new SharedArrayBuffer(STATS_BYTES)
    const host = await PagerHost.start(options, stats, onEvent, peer)
    return new PeerSession(id, peer, host, stats)
  }

  get pageSize(): number {
    return this.host.ready.pageSize
  }

  stats(): RegionStats {
    return readStats(this.statsBuffer, this.host.ready.writeTracking)
  }

  status(): PeerStatus {
    const p = this.peer
    return { id: this.id, pid: p.pid, address: `0x${p.address.toString(16)}`, size: p.size, offset: p.offset, pageSize: this.pageSize, writeBack: p.writeBack, attachedMs: Date.now() - this.started, state: this.gone ? 'gone' : 'serving', stats: this.stats() }
  }

  /** Writes the peer's dirty pages to the backend (resolves at once without write-back). */
  flush(): Promise<void> {
    return this.host.request({ op: 'flush' })
  }

  /**
   * Stops serving. A live peer's dirty pages are written back first; a gone
   * peer's cannot be read any more. Closing the descriptor unregisters the
   * range, so a live peer's later touches of pages never served read zeros:
   * detach at the end of use.
   */
  close(peerGone: boolean): Promise<void> {
    this.gone ||= peerGone
    this.closing ??= this.host.request({ op: 'close', discard: peerGone }).then(() => this.host.exited())
    return this.closing
  }
}

/** Whether the process is still running (not gone, not a zombie). */
export function processAlive(pid: number): boolean {
  return processStartTime(pid) !== undefined
}

/** Closes a received descriptor nobody will own. */
export function closeQuietly(fd: number): void {
  try {
    native.closeFd(fd)
  } catch {
    // Already closed: nothing leaks.
  }
}
