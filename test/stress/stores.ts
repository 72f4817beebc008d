/**
 * The backends a bounce run goes over, each with a way to read back what it
 * holds from outside the run's region: the shared buffer itself for the
 * memory and slow backends, and for file and Redis a fresh process that
 * opens its own region.
 */
import { execFile } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { BackendSpec } from '@faultline/core'
import { dropNamespace, standaloneClient, uniqueNamespace } from '../helpers/redis.js'

export type StoreKind = 'memory' | 'file' | 'redis' | 'slow'
export const STORE_KINDS: readonly StoreKind[] = ['memory', 'file', 'redis']
/**
 * The long run adds `slow`, a module backend whose reads take 0-3 ms and
 * come back in fresh buffers: fetches stay in flight (and go through the
 * installer thread) while pages are faulted, written and evicted around them.
 */
export const LONG_STORE_KINDS: readonly StoreKind[] = [...STORE_KINDS, 'slow']

export interface Store {
  spec: BackendSpec
  /** Everything the backend holds, read after the run's region is closed. */
  readBack(): Promise<Uint8Array>
  /** Removes what the run stored. */
  remove(): Promise<void>
}

export interface StoreContext {
  /** A directory for files; removed by the caller. */
  dir: string
  /** `redis://host:port` of a server the run may use. */
  redisUrl: string
}

const slow = fileURLToPath(new URL('../fixtures/slow-backend.mjs', import.meta.url))
const dump = fileURLToPath(new URL('../fixtures/region-dump.mjs', import.meta.url))
const run = promisify(execFile)

async function freshProcessCopy(spec: BackendSpec, size: number, pageSize: number, out: string): Promise<Uint8Array> {
  try {
    await run(process.execPath, [dump, JSON.stringify(spec), String(size), String(pageSize), out], { timeout: 60_000 })
    return readFileSync(out)
  } finally {
    rmSync(out, { force: true })
  }
}

export function openStore(kind: StoreKind, name: string, size: number, pageSize: number, context: StoreContext): Store {
  if (kind === 'memory') {
    const data = new Uint8Array(new SharedArrayBuffer(size))
    return { spec: { type: 'memory', data }, readBack: async () => data.slice(), remove: async () => undefined }
  }
  if (kind === 'slow') {
    const store = new SharedArrayBuffer(size)
    return { spec: { type: 'module', module: slow, options: { store, seed: size } }, readBack: async () => new Uint8Array(store).slice(), remove: async () => undefined }
  }
  if (kind === 'file') {
    const path = join(context.dir, `${name}.bin`)
    // No fdatasync per flush: the run is about consistency, not crash durability.
    const spec = { type: 'file', path, sync: false }
    return { spec, readBack: () => freshProcessCopy(spec, size, pageSize, `${path}.copy`), remove: async () => rmSync(path, { force: true }) }
  }
  const spec = { type: 'redis', url: `${context.redisUrl}/${uniqueNamespace(name)}` }
  return {
    spec,
    readBack: () => freshProcessCopy(spec, size, pageSize, join(context.dir, `${name}.copy`)),
    remove: async () => {
      const client = standaloneClient(context.redisUrl)
      try {
        await dropNamespace(client, spec)
      } finally {
        client.disconnect()
      }
    },
  }
}
