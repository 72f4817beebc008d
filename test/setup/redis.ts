/**
 * Real redis-server processes for the Redis suites, on ephemeral loopback
 * ports: one standalone server and a 3-master cluster with one replica each.
 * Suites that kill, restart or reshard a server start their own (see
 * test/helpers/redis-server.ts) and leave these alone.
 */
import type { Provide } from './global.js'
import { RedisCluster, RedisServer, ensureRedisInstalled } from '../helpers/redis-server.js'

declare module 'vitest' {
  interface ProvidedContext {
    /** The shared standalone server, `redis://127.0.0.1:PORT` (no namespace). */
    redisUrl: string
    /** Every node of the shared cluster, `127.0.0.1:PORT` (masters first). */
    redisClusterNodes: string[]
  }
}

// Shared by suites that run in parallel on two busy cores: a node starved for a
// moment must not be failed over under them (suites that test failover start their own).
const SHARED_NODE_TIMEOUT_MS = 10_000

export async function start(provide: Provide): Promise<() => Promise<void>> {
  ensureRedisInstalled()
  const [standalone, cluster] = await Promise.allSettled([RedisServer.start(), RedisCluster.start(3, 1)])
  const stop = async (): Promise<void> => {
    await Promise.all([standalone.status === 'fulfilled' && standalone.value.stop(), cluster.status === 'fulfilled' && cluster.value.stop()])
  }
  if (standalone.status === 'rejected' || cluster.status === 'rejected') {
    await stop()
    throw standalone.status === 'rejected' ? standalone.reason : (cluster as PromiseRejectedResult).reason
  }
  try {
    await cluster.value.setNodeTimeout(SHARED_NODE_TIMEOUT_MS)
  } catch (err) {
    await stop()
    throw err
  }
  provide('redisUrl', standalone.value.url)
  provide('redisClusterNodes', cluster.value.nodes)
  return stop
}
