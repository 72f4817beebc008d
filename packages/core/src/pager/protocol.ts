/** Messages between a region (any thread) and its pager thread. */
import type { SerializedError } from '../errors.js'
import type { NormalizedOptions } from '../options.js'
import type { WriteTrackingMode } from '../stats.js'
import type { Advice } from '../advice.js'
import type { PeerAttach } from './peer.js'

export interface PagerStartData {
  options: NormalizedOptions
  stats: SharedArrayBuffer
  /** Set when the pager serves another process's range (faultline serve) instead of a region of its own. */
  peer?: PeerAttach | undefined
}

export interface PagerReady {
  kind: 'ready'
  /** The pager thread's worker_threads id. */
  threadId: number
  address: number
  size: number
  /** Bytes of real data (a file's length); the tail of the last page reads as zeros. */
  dataSize: number
  pageSize: number
  /** True when the region is backed by hugetlb pages of pageSize bytes. */
  hugePages: boolean
  readOnly: boolean
  writeTracking: WriteTrackingMode
  backendName: string
  /** uffd features the pager enabled, by name. */
  features: string[]
  /** True when the kernel only allowed user-mode faults: kernel accesses (read(2) into a view) fail with EFAULT. */
  userModeOnly: boolean
  /** Set for a shared region: its control file's mapping in this process, for stats().shared. */
  shared?: { ctlAddress: number; ctlLength: number; slot: number; path: string } | undefined
}

export interface PagerFailed {
  kind: 'failed'
  error: SerializedError
}

export type PagerRequest =
  | { id: number; op: 'prefetch'; offset: number; length: number }
  | { id: number; op: 'advise'; offset: number; length: number; advice: Advice }
  /** Bytes straight from the backend, not the mapping: region.read(). */
  | { id: number; op: 'read'; offset: number; length: number }
  | { id: number; op: 'flush' }
  /** `discard`: a gone peer's dirty pages cannot be read any more; close without writing them. */
  | { id: number; op: 'close'; discard?: boolean }

export interface PagerReply {
  kind: 'reply'
  id: number
  error?: SerializedError
  /** The answer to a `read` request. */
  bytes?: Uint8Array
  /** With the answer to `close`: this thread ends now (its backend did not finish closing), do not hand it another region. */
  retiring?: boolean
}

/** Something the pager wants the application to know about, out of band. */
export type PagerEvent =
  | { kind: 'event'; type: 'fetch-error'; pages: number[]; message: string }
  | { kind: 'event'; type: 'fetch-retry'; pages: number[]; attempt: number; message: string }
  | { kind: 'event'; type: 'writeback-error'; pages: number[]; message: string }
  | { kind: 'event'; type: 'pager-stalled'; message: string }

export type PagerToHost = PagerReady | PagerFailed | PagerReply | PagerEvent
