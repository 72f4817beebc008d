/** Option readers shared by the remote backends (S3, HTTP): each error names its option. */
import { optionError } from '../spec.js'

export function positiveInteger(backend: string, spec: Record<string, unknown>, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = spec[name]
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw optionError(backend, name, `must be a whole number from 1 to ${max} (got ${describeValue(value)})`)
  }
  return value
}

export function optionalString(backend: string, spec: Record<string, unknown>, name: string): string | undefined {
  const value = spec[name]
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value === '') throw optionError(backend, name, `must be a non-empty string (got ${describeValue(value)})`)
  return value
}

export function optionalBoolean(backend: string, spec: Record<string, unknown>, name: string): boolean | undefined {
  const value = spec[name]
  if (value === undefined) return undefined
  if (typeof value !== 'boolean') throw optionError(backend, name, `must be true or false (got ${describeValue(value)})`)
  return value
}

/** A value for a message. Strings are shown: call it only for options that cannot hold secrets. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v)
  return Array.isArray(v) ? 'an array' : `a ${typeof v}`
}

/** Shared defaults: enough sockets for several batches in flight, ranges big enough to stream. */
export const DEFAULT_MAX_SOCKETS = 16
export const DEFAULT_MAX_RANGE_BYTES = 8 * 2 ** 20
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
