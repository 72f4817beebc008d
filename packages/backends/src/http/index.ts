/**
 * The HTTP(S) range backend: a read-only region over any file served by a
 * server that honours `Range`, with the file's ETag / Last-Modified pinned
 * at open and checked on every response.
 */
import type { Backend, BackendContext, BackendSpec } from '@faultline/contract'
import { createAgents } from '../net/agents.js'
import { RangeBackend } from '../remote/range-backend.js'
import { parseHttpOptions } from './options.js'
import { HttpRangeSource } from './source.js'

export type { HttpBackendOptions } from './options.js'

export async function createHttpBackend(spec: BackendSpec, context: BackendContext): Promise<Backend> {
  const config = parseHttpOptions(spec)
  const agents = createAgents(config.maxSockets)
  const source = new HttpRangeSource(config, agents)
  try {
    const version = await source.probe()
    return new RangeBackend(source, version, context, { maxRangeBytes: config.maxRangeBytes, concurrency: config.maxSockets })
  } catch (err) {
    await source.close()
    throw err
  }
}
