import type { Backend, BackendContext, BackendSpec } from '@faultline/core/backend'
import { createFileBackend } from './file.js'
import { createMemoryBackend } from './memory.js'

export { MemoryBackend, type MemoryBackendOptions } from './memory.js'
export { FileBackend, type FileBackendOptions } from './file.js'
export { Extents } from './extents.js'
export { redisKeys, type RedisKeys } from './redis/keys.js'
export type { RedisBackendOptions } from './redis/options.js'
export type { S3BackendOptions, S3Credentials } from './s3/options.js'
export type { HttpBackendOptions } from './http/options.js'

/** The backends `openRegion` knows by `type`, built inside the pager thread. */
export const builtinBackends: Readonly<Record<string, (spec: BackendSpec, context: BackendContext) => Promise<Backend>>> = {
  memory: createMemoryBackend,
  file: createFileBackend,
  redis: async (spec, context) => (await import('./redis/backend.js')).createRedisBackend(spec, context),
  // Loaded on first use: the AWS SDK takes a while to load, and most pager threads never need it.
  s3: async (spec, context) => (await import('./s3/index.js')).createS3Backend(spec, context),
  http: async (spec, context) => (await import('./http/index.js')).createHttpBackend(spec, context),
}
