/**
 * The metadata object of an S3 page store, `<prefix>/faultline.json`: what
 * geometry the pages were written with, so a later open cannot read them
 * with another page size, and can leave `size` out.
 */
import { FaultlineError, type BackendContext } from '@faultline/contract'

export const FORMAT = 'faultline-pages'
export const FORMAT_VERSION = 1

export interface PageStoreMetadata {
  format: typeof FORMAT
  version: number
  /** The region's size in bytes as first given (not rounded up to pages). */
  size: number
  pageSize: number
  /** ISO 8601 time the store was created. */
  createdAt: string
}

export function newMetadata(size: number, pageSize: number): PageStoreMetadata {
  return { format: FORMAT, version: FORMAT_VERSION, size, pageSize, createdAt: new Date().toISOString() }
}

export function parseMetadata(text: string, name: string): PageStoreMetadata {
  const bad = (why: string): FaultlineError => new FaultlineError('ERR_BACKEND', `faultline: ${name}/faultline.json is not faultline page-store metadata (${why})`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw bad('not JSON')
  }
  const m = value as Partial<PageStoreMetadata> | null
  if (m === null || typeof m !== 'object' || m.format !== FORMAT) throw bad(`format is not "${FORMAT}"`)
  if (typeof m.version !== 'number' || m.version > FORMAT_VERSION) {
    throw new FaultlineError('ERR_BACKEND', `faultline: ${name} was written in page-store format version ${String(m.version)}; this faultline reads version ${FORMAT_VERSION}: upgrade faultline`)
  }
  if (!Number.isSafeInteger(m.size) || (m.size as number) <= 0 || !Number.isSafeInteger(m.pageSize) || (m.pageSize as number) <= 0) throw bad('size or pageSize is not a positive whole number')
  return { format: FORMAT, version: m.version, size: m.size as number, pageSize: m.pageSize as number, createdAt: String(m.createdAt ?? '') }
}

/** The stored geometry must be the region's: ERR_GEOMETRY names the option to change. */
export function checkGeometry(meta: PageStoreMetadata, context: BackendContext, name: string): void {
  if (meta.pageSize !== context.pageSize) {
    throw new FaultlineError('ERR_GEOMETRY', `faultline: ${name} holds pages of ${meta.pageSize} bytes, but the region's pageSize is ${context.pageSize}: open it with pageSize: ${meta.pageSize}`, { option: 'pageSize' })
  }
  if (context.size !== undefined && context.size !== meta.size) {
    throw new FaultlineError('ERR_GEOMETRY', `faultline: ${name} holds a region of ${meta.size} bytes, but size ${context.size} was given: leave size out to adopt the stored one`, { option: 'size' })
  }
}
