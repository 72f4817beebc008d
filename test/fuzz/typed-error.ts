/** The fuzzers' test of a failure: a FaultlineError whose code is one of the closed union's. */
import { FaultlineError, type FaultlineErrorCode } from '@faultline/core'

const CODES = [
  'ERR_INVALID_OPTION',
  'ERR_OUT_OF_RANGE',
  'ERR_REGION_CLOSED',
  'ERR_UNKNOWN_BACKEND',
  'ERR_BACKEND_UNAVAILABLE',
  'ERR_BACKEND',
  'ERR_BAD_PAGE',
  'ERR_SOURCE_CHANGED',
  'ERR_UFFD_UNAVAILABLE',
  'ERR_PAGER_FAILED',
  'ERR_READ_ONLY',
  'ERR_LOCKED',
  'ERR_GEOMETRY',
  'ERR_PEER',
  'ERR_HUGE_PAGES',
] as const satisfies readonly FaultlineErrorCode[]

// Fails to compile when the union gains a code this list lacks.
const complete: Exclude<FaultlineErrorCode, (typeof CODES)[number]> extends never ? true : never = true
void complete

const known: ReadonlySet<string> = new Set(CODES)

/** Throws unless `err` is a FaultlineError with a known code; returns the code. */
export function typedCode(err: unknown, what: string): FaultlineErrorCode {
  if (!(err instanceof FaultlineError)) {
    const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    throw new Error(`${what} failed with something other than a FaultlineError: ${detail}`, { cause: err })
  }
  if (!known.has(err.code)) throw new Error(`${what} failed with a code outside the union: ${String(err.code)}`, { cause: err })
  return err.code
}
