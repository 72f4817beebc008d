/**
 * Region metadata stored beside the pages: the geometry the pages were
 * written with, so a later open cannot read them with another page size or
 * size, and can leave `size` out.
 */
import type { BackendContext } from '@faultline/contract'
import { FaultlineError } from '@faultline/contract'
import type { RedisClient } from './client.js'
import { FORMAT_VERSION } from './keys.js'

export interface RegionMeta {
  /** The key layout version (see keys.ts). */
  format: number
  pageSize: number
  /** The region's size in bytes, as first opened. */
  size: number
  /** ISO 8601 time the namespace was created. */
  createdAt: string
}

export async function readMeta(client: RedisClient, key: string, name: string): Promise<RegionMeta | undefined> {
  const raw = await client.get(key)
  if (raw === null) return undefined
  let meta: Partial<RegionMeta>
  try {
    meta = JSON.parse(raw) as Partial<RegionMeta>
  } catch {
    meta = {}
  }
  if (typeof meta.format !== 'number' || typeof meta.pageSize !== 'number' || typeof meta.size !== 'number') {
    throw new FaultlineError('ERR_BACKEND', `faultline: ${name}: key ${JSON.stringify(key)} holds no faultline region metadata; pick another namespace or keyPrefix`, { option: 'backend.namespace' })
  }
  if (meta.format !== FORMAT_VERSION) {
    throw new FaultlineError('ERR_BACKEND', `faultline: ${name} was written in storage format ${meta.format}; this version reads format ${FORMAT_VERSION}`, { option: 'backend.namespace' })
  }
  return meta as RegionMeta
}

/** Throws ERR_GEOMETRY naming the option when the region asks for another geometry than the stored one. */
export function checkGeometry(meta: RegionMeta, context: BackendContext, name: string): void {
  if (meta.pageSize !== context.pageSize) {
    throw new FaultlineError('ERR_GEOMETRY', `faultline: ${name} holds a region with pageSize ${meta.pageSize}; \`pageSize\` ${context.pageSize} differs (pages cannot be re-cut): open it with pageSize: ${meta.pageSize}, or use another namespace`, { option: 'pageSize' })
  }
  if (context.size !== undefined && meta.size !== context.size) {
    throw new FaultlineError('ERR_GEOMETRY', `faultline: ${name} holds a region of ${meta.size} bytes; \`size\` ${context.size} differs: leave size out to adopt the stored one, or use another namespace`, { option: 'size' })
  }
}

/** Stores the metadata unless someone already did; returns what is stored. */
export async function createMeta(client: RedisClient, key: string, meta: RegionMeta, name: string): Promise<RegionMeta> {
  const created = await client.set(key, JSON.stringify(meta), 'NX')
  if (created === 'OK') return meta
  const stored = await readMeta(client, key, name)
  if (stored === undefined) throw new FaultlineError('ERR_BACKEND', `faultline: ${name}: the metadata key ${JSON.stringify(key)} vanished while the region was being created`)
  return stored
}
