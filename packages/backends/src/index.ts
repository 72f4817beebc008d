import type { Backend, BackendContext, BackendSpec } from '@faultline/core/backend'
import { createFileBackend } from './file.js'
import { createMemoryBackend } from './memory.js'

export { MemoryBackend, type MemoryBackendOptions } from './memory.js'
export { FileBackend, type FileBackendOptions } from './file.js'
export { Extents } from './extents.js'

/** The backends `openRegion` knows by `type`, built inside the pager thread. */
export const builtinBackends: Readonly<Record<string, (spec: BackendSpec, context: BackendContext) => Promise<Backend>>> = {
  memory: createMemoryBackend,
  file: createFileBackend,
}
