/**
 * A server that evicts any key under memory pressure (maxmemory-policy
 * allkeys-*) would silently drop pages, which would then read as zeros.
 * faultline refuses such a server at open. volatile-* policies evict only
 * keys with a TTL, and faultline's keys have none.
 */
import { Cluster } from 'ioredis'
import { FaultlineError } from '@faultline/contract'
import type { RedisClient } from './client.js'

export async function refuseEvictingServers(client: RedisClient, name: string): Promise<void> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client]
  for (const node of nodes) {
    let info: string
    try {
      info = await node.info('memory')
    } catch {
      continue // INFO not permitted to this user: nothing to check
    }
    const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1]
    if (policy?.startsWith('allkeys-')) {
      const where = client instanceof Cluster ? ` (node ${node.options.host}:${node.options.port})` : ''
      throw new FaultlineError(
        'ERR_BACKEND',
        `faultline: ${name}${where} evicts keys under memory pressure (maxmemory-policy ${policy}): pages could vanish and read as zeros. Use noeviction, or a volatile-* policy (faultline's keys have no TTL)`,
        { option: 'backend.url' },
      )
    }
  }
}
