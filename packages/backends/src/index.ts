import type { Backend, BackendContext, BackendSpec } from '@faultline/contract'
import { createFileBackend } from './file.js'
import { createMemoryBackend } from './memory.js'
import { withPeer } from './optional-peer.js'

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
  // Loaded on first use: their clients are optional peer dependencies, and
  // the AWS SDK takes a while to load even where it is installed.
  redis: async (spec, context) => (await withPeer('redis://', 'ioredis', () => import('./redis/backend.js'))).createRedisBackend(spec, context),
  s3: async (spec, context) => (await withPeer('s3://', '@aws-sdk/client-s3', () => import('./s3/index.js'))).createS3Backend(spec, context),
  http: async (spec, context) => (await import('./http/index.js')).createHttpBackend(spec, context),
}
