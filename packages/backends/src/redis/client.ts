/**
 * Opening the ioredis connection (standalone or Cluster) inside the pager
 * thread, configured so that an outage surfaces as errors rather than as a
 * fault that waits for ever or a queue that grows without bound:
 * - no offline queue: a command sent while disconnected fails at once;
 * - maxRetriesPerRequest 0: commands in flight when the link drops fail;
 * - commandTimeout: a server that stops answering fails the command;
 * - reconnect for ever in the background, so the pager's retries (reads) or
 *   the next flush (writes) succeed once Redis is back.
 */
import { isIP } from 'node:net'
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { RedisConfig } from './options.js'
import { clusterLookup, resolveHost } from './resolve.js'

export type RedisClient = Redis | Cluster

const noop = (): void => undefined

export async function connect(config: RedisConfig): Promise<RedisClient> {
  const client = config.cluster ? await createCluster(config) : await createStandalone(config)
  // Failures reach callers through their commands; without a listener ioredis
  // would print each reconnect error to the console. The last one explains a
  // failed connect better than ioredis's "Connection is closed".
  let lastError: Error | undefined
  const remember = (err: Error): void => void (lastError = err)
  client.on('error', remember)
  client.on('node error', remember)
  try {
    if (client instanceof Cluster) await clusterReady(client, 2 * config.connectTimeoutMs)
    else await client.connect()
    if (client instanceof Cluster) {
      // Open every master's connection now, not in the middle of the first batch.
      await Promise.all(client.nodes('master').map((node) => node.ping()))
    }
  } catch (err) {
    client.disconnect()
    if (lastError === undefined) throw err
    if (/Connection is closed|None of startup nodes/i.test(String(err))) throw lastError
    throw new Error(`${err instanceof Error ? err.message : String(err)} (last error: ${lastError.message})`)
  } finally {
    client.off('error', remember)
    client.off('node error', remember)
  }
  client.on('error', noop)
  client.on('node error', noop)
  return client
}

/**
 * Cluster.connect()'s promise never settles when its ready check fails (a
 * cluster_state that is not ok, e.g. during a failover): ioredis reconnects
 * and only the 'ready' event says when it worked. So wait for that, bounded.
 */
function clusterReady(cluster: Cluster, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: unknown): void => {
      clearTimeout(timer)
      cluster.off('ready', onReady)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onReady = (): void => done()
    const timer = setTimeout(() => done(new Error(`the cluster was not ready (cluster_state:ok on a reachable node) within ${timeoutMs} ms`)), timeoutMs)
    cluster.once('ready', onReady)
    cluster.connect().catch(done)
  })
}

function nodeOptions(config: RedisConfig, host: string): RedisOptions {
  return {
    username: config.username,
    password: config.password,
    // SNI and certificate checks use the name the user gave, not the address we dialled.
    tls: config.tls === undefined ? undefined : { ...(isIP(host) === 0 ? { servername: host } : {}), ...config.tls },
    connectTimeout: config.connectTimeoutMs,
    commandTimeout: config.commandTimeoutMs,
    maxRetriesPerRequest: 0,
    connectionName: 'faultline',
  }
}

async function createStandalone(config: RedisConfig): Promise<Redis> {
  const endpoint = config.endpoints[0]!
  const address = await resolveHost(endpoint.host, config.connectTimeoutMs)
  return new Redis({
    ...nodeOptions(config, endpoint.host),
    host: address,
    port: endpoint.port,
    db: config.db,
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    autoResubscribe: false,
    retryStrategy: (times) => Math.min(50 * times, 1000),
  })
}

async function createCluster(config: RedisConfig): Promise<Cluster> {
  const nodes = await Promise.all(config.endpoints.map(async (e) => ({ host: await resolveHost(e.host, config.connectTimeoutMs), port: e.port })))
  const options: ClusterOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    scaleReads: 'master',
    maxRedirections: 16,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: config.connectTimeoutMs,
    slotsRefreshInterval: 5000,
    clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    dnsLookup: clusterLookup(config.connectTimeoutMs),
    redisOptions: nodeOptions(config, config.endpoints[0]!.host),
  }
  return new Cluster(nodes, options)
}

/**
 * Lets writes ride out a reconnect without stretching an outage: the whole
 * outage, not each write, gets `timeoutMs`. A flush of many batches during an
 * outage thus fails after one wait instead of one wait per batch.
 *
 * Once an outage has outlasted that, a write that comes well after the last
 * one gave up (a new flush, not the next batch of the same one) still waits
 * for one more reconnect attempt, ≤ RECONNECT_WAIT_MS: the server may be
 * back while the client sleeps in its backoff, and a flush then should not
 * be refused.
 */
/** The longest reconnect backoff (1 s standalone, 2 s Cluster: see below) and some time to connect. */
const RECONNECT_WAIT_MS = 2_500
/** A write this soon after a wait gave up is the next batch of the same flush: it fails at once. */
const SAME_FLUSH_MS = 250

export class Readiness {
  private downSince: number | undefined
  private gaveUpAt = -Infinity

  constructor(
    private readonly client: RedisClient,
    private readonly timeoutMs: number,
  ) {
    client.on('ready', () => (this.downSince = undefined))
    client.on('close', () => (this.downSince ??= performance.now()))
  }

  async wait(): Promise<void> {
    if (this.client.status === 'ready') return
    if (this.client.status === 'end') throw new Error('the connection is closed')
    const now = performance.now()
    const since = this.downSince ?? now
    let left = since + this.timeoutMs - now
    if (left <= 0) {
      if (now - this.gaveUpAt < SAME_FLUSH_MS) throw new Error(`not connected to Redis for ${Math.round(now - since)} ms (${this.client.status})`)
      left = RECONNECT_WAIT_MS
    }
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer)
        this.client.off('ready', onReady)
        if (err === undefined) resolve()
        else {
          this.gaveUpAt = performance.now()
          reject(err)
        }
      }
      const onReady = (): void => done()
      const timer = setTimeout(() => done(new Error(`not connected to Redis for ${Math.round(performance.now() - since)} ms (${this.client.status})`)), left)
      this.client.once('ready', onReady)
    })
  }
}

/** Closes the connection politely if it is up, and for good in any case. */
export async function disconnect(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([client.quit().catch(noop), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))])
    clearTimeout(timer)
  }
  client.disconnect()
}
