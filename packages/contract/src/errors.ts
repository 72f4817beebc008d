/**
 * Every error faultline raises is a FaultlineError with a `code` from this
 * closed union, so callers can switch on it exhaustively.
 */
export type FaultlineErrorCode =
  /** An option passed to openRegion (or another public call) is invalid; `option` names it. */
  | 'ERR_INVALID_OPTION'
  /** An offset/length lies outside the region or a window; `option` names the argument. */
  | 'ERR_OUT_OF_RANGE'
  /** The region (or attachment) was closed; nothing can be done with it any more. */
  | 'ERR_REGION_CLOSED'
  /** The backend `type` or URL scheme is not known. */
  | 'ERR_UNKNOWN_BACKEND'
  /** The backend is known but needs an optional package that is not installed; the message names it and how to install it. */
  | 'ERR_BACKEND_UNAVAILABLE'
  /** The backend failed (I/O, protocol, bad data); `cause` holds the original error. */
  | 'ERR_BACKEND'
  /** The backend returned a page of the wrong length: it is never installed truncated or padded. */
  | 'ERR_BAD_PAGE'
  /** The object or file behind a read-only region changed since it was opened; pages of two versions are never mixed. */
  | 'ERR_SOURCE_CHANGED'
  /** userfaultfd cannot be used here (kernel, permissions); the message says how to enable it. */
  | 'ERR_UFFD_UNAVAILABLE'
  /** The pager thread failed or exited; the region can no longer serve faults. */
  | 'ERR_PAGER_FAILED'
  /** A write was requested of a read-only backend or region. */
  | 'ERR_READ_ONLY'
  /** Another region holds the store's single-writer lease (or took it after ours expired); the message names the holder. */
  | 'ERR_LOCKED'
  /** Size/page size disagree with what the backend holds or cannot be determined. */
  | 'ERR_GEOMETRY'
  /** A process served by `faultline serve` sent a handshake or command that cannot be served, or went away; the message says which. */
  | 'ERR_PEER'
  /** `hugePages` cannot be served: the pool has too few free huge pages (the message says how many and how to reserve them), or the kernel lacks that size or hugetlb userfaultfd. */
  | 'ERR_HUGE_PAGES'

export class FaultlineError extends Error {
  override name = 'FaultlineError'
  readonly code: FaultlineErrorCode
  /** The option or argument at fault, when there is one (e.g. `pageSize`). */
  readonly option: string | undefined
  /** Page indexes concerned, when the error is about pages. */
  readonly pages: readonly number[] | undefined

  constructor(code: FaultlineErrorCode, message: string, extra: { option?: string; pages?: readonly number[]; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause })
    this.code = code
    this.option = extra.option
    this.pages = extra.pages
  }
}
