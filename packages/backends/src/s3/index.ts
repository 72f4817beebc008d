/**
 * The S3 backend: `s3://bucket/key` in dataset mode (one existing object,
 * read-only, ranged GETs) or pages mode (a read-write page store under a
 * prefix). See docs/backends.md for how the mode is chosen.
 */
import type { Backend, BackendContext, BackendSpec } from '@faultline/contract'
import { FaultlineError } from '@faultline/contract'
import { createAgents } from '../net/agents.js'
import { RangeBackend } from '../remote/range-backend.js'
import { createS3Client } from './client.js'
import { S3RangeSource } from './dataset.js'
import { parseS3Options } from './options.js'
import { readMetadata, S3PagesBackend, storeKeys } from './pages.js'

export type { S3BackendOptions, S3Credentials } from './options.js'

export async function createS3Backend(spec: BackendSpec, context: BackendContext): Promise<Backend> {
  const config = parseS3Options(spec)
  const agents = createAgents(config.maxSockets)
  const client = createS3Client(config, agents)
  try {
    // Every request here also settles the SDK's lazily loaded configuration
    // (shared config files are read with fs.promises, on the threadpool)
    // before the region exists, so no fault ever waits on it.
    if (config.mode !== 'pages' && config.key !== '') {
      const source = new S3RangeSource(config, client, agents)
      const version = await source.head()
      if (version !== undefined) {
        return new RangeBackend(source, version, context, { maxRangeBytes: config.maxRangeBytes, concurrency: config.maxSockets })
      }
    }
    const meta = await readMetadata(config, client)
    if (config.mode === 'dataset') {
      const hint = meta === undefined ? '' : ` (a page store is there: open it with mode: 'pages', or ?mode=pages in the URL)`
      throw new FaultlineError('ERR_BACKEND', `faultline: there is no object ${config.name}${hint}`, { option: 'backend.url' })
    }
    if (meta === undefined && config.mode === 'auto' && (context.readOnly || context.size === undefined)) {
      const create = context.readOnly ? '' : '; to create a page store there, give `size`'
      throw new FaultlineError('ERR_BACKEND', `faultline: there is nothing at ${config.name}: no object, and no page store (${storeKeys(config.key).metadata})${create}`, { option: 'backend.url' })
    }
    return await S3PagesBackend.open(config, client, agents, context, meta)
  } catch (err) {
    client.destroy()
    agents.destroy()
    throw err
  }
}
