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

export function invalidOption(option: string, message: string): FaultlineError {
  return new FaultlineError('ERR_INVALID_OPTION', `faultline: option \`${option}\` ${message}`, { option })
}

export function outOfRange(option: string, message: string): FaultlineError {
  return new FaultlineError('ERR_OUT_OF_RANGE', `faultline: \`${option}\` ${message}`, { option })
}

export function regionClosed(what: string): FaultlineError {
  return new FaultlineError('ERR_REGION_CLOSED', `faultline: ${what}: the region is closed`)
}

/** Plain-object form of an error, to cross a worker boundary without losing code/option/pages. */
export interface SerializedError {
  code: FaultlineErrorCode
  message: string
  option?: string | undefined
  pages?: readonly number[] | undefined
  causeMessage?: string | undefined
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof FaultlineError) {
    const cause = err.cause instanceof Error ? err.cause.message : undefined
    return { code: err.code, message: err.message, option: err.option, pages: err.pages, causeMessage: cause }
  }
  const message = err instanceof Error ? err.message : String(err)
  return { code: 'ERR_PAGER_FAILED', message: `faultline: pager failed: ${message}` }
}

export function deserializeError(e: SerializedError): FaultlineError {
  const cause = e.causeMessage === undefined ? undefined : new Error(e.causeMessage)
  const extra: { option?: string; pages?: readonly number[]; cause?: unknown } = {}
  if (e.option !== undefined) extra.option = e.option
  if (e.pages !== undefined) extra.pages = e.pages
  if (cause !== undefined) extra.cause = cause
  return new FaultlineError(e.code, e.message, extra)
}
