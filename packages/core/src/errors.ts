import { FaultlineError, type FaultlineErrorCode } from '@faultline/contract'

export { FaultlineError, type FaultlineErrorCode }

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
