/**
 * The Redis backend: pages as binary values under a namespace, on one
 * server or a Redis Cluster. Built inside the pager thread; all its I/O is
 * sockets on that thread's loop (see resolve.ts for host names).
 */
import type { Backend, BackendContext, BackendInfo, BackendSpec, PageWrite } from '@faultline/contract'
import { FaultlineError } from '@faultline/contract'
import { Cluster, type Redis } from 'ioredis'
import { Readiness, connect, disconnect, type RedisClient } from './client.js'
import { ClusterIo } from './cluster.js'
import { settleWithin, type PageIo } from './io.js'
import { FORMAT_VERSION, RedisKeys } from './keys.js'
import { refuseEvictingServers } from './eviction.js'
import { Lease, lostData } from './lease.js'
import { checkGeometry, createMeta, readMeta, type RegionMeta } from './metadata.js'
import { parseRedisOptions, type RedisBackendOptions, type RedisConfig } from './options.js'
import { StandaloneIo } from './standalone.js'
import { PageReader, PageReaderSlot, PageReaderSlots } from './page-reader.js'
import { DEFAULT_MAX_BULK_LENGTH } from './resp-parser.js'
import { resolveHost } from './resolve.js'
import { ReadBufferPool } from '../read-buffers.js'

/** Page buffers kept for reuse: a few readahead windows in flight and being installed. */
const POOL_BYTES = 32 * 2 ** 20
/**
 * Write batches a flush keeps in flight: MSETs pipelined on one connection
 * keep the server busy while the pager snapshots and sends the next ones
 * (one at a time, a flush of scattered 4 KiB pages ran at 0.35-0.5 of a
 * hand-written MSET pipeline: bench/redis.mjs).
 */
const WRITES_IN_FLIGHT = 8
/** CLIENT SETNAME of the page-write connection. */
const WRITES_NAME = 'faultline-writes'
/** A pool nobody took from for this long is emptied. */
const POOL_IDLE_MS = 10_000

export class RedisBackend implements Backend {
  private readonly readiness: Readiness
  private readonly poolTrimmer: NodeJS.Timeout | undefined

  private constructor(
    readonly info: BackendInfo,
    private readonly config: RedisConfig,
    private readonly client: RedisClient,
    private readonly io: PageIo,
    private readonly keys: RedisKeys,
    private readonly lease: Lease | undefined,
    /** The namespace had metadata at open: its disappearance means Redis lost the data. */
    private readonly metaExpected: boolean,
    private readonly pool: ReadBufferPool | undefined,
    private readonly pageReads: { close(): void } | undefined,
  ) {
    this.readiness = new Readiness(client, config.connectTimeoutMs)
    if (pool !== undefined) this.poolTrimmer = setInterval(() => pool.trimIfIdle(), POOL_IDLE_MS).unref()
  }

  static async open(options: RedisBackendOptions, context: BackendContext): Promise<RedisBackend> {
    const config = parseRedisOptions(options as unknown as Record<string, unknown>)
    const { name } = config
    let client: RedisClient
    try {
      client = await connect(config)
    } catch (cause) {
      throw new FaultlineError('ERR_BACKEND', `faultline: cannot connect to ${name}: ${message(cause)}`, { option: 'backend.url', cause })
    }
    let lease: Lease | undefined
    try {
      await refuseEvictingServers(client, name)
      const keys = new RedisKeys(config.keyPrefix, config.namespace)
      let meta = await readMeta(client, keys.meta, name)
      if (meta !== undefined) checkGeometry(meta, context, name)
      else if (context.size === undefined) {
        throw new FaultlineError('ERR_GEOMETRY', `faultline: ${name} holds no region yet: give \`size\` to create it (or check the namespace)`, { option: 'size' })
      }
      if (!context.readOnly) {
        // Metadata first (SET NX: safe without the lease): renewing the lease checks that it exists.
        if (meta === undefined) {
          const fresh: RegionMeta = { format: FORMAT_VERSION, pageSize: context.pageSize, size: context.size!, createdAt: new Date().toISOString() }
          meta = await createMeta(client, keys.meta, fresh, name)
          checkGeometry(meta, context, name)
        }
        lease = await Lease.acquire(client, keys.lease, keys.meta, config.leaseMs, name)
      }
      const keysPerCommand = Math.max(1, Math.floor(config.commandBytes / context.pageSize))
      const pool = config.pageReadConnection ? new ReadBufferPool(context.pageSize, Math.max(16, Math.ceil(POOL_BYTES / context.pageSize))) : undefined
      let io: PageIo
      let pageReads: { close(): void } | undefined
      if (client instanceof Cluster) {
        const slots = pool === undefined ? undefined : await startClusterPageReads(config, pool, client)
        io = new ClusterIo(client, keysPerCommand, config.commandTimeoutMs, slots)
        pageReads = slots
      } else {
        const slot = pool === undefined ? undefined : await startPageReads(config, pool, client)
        // Page writes get a connection of their own too (not the reads': a fault must not wait behind a
        // flush's bytes). Not with waitReplicas: WAIT covers the writes of the connection it is sent on.
        const writes = pool === undefined || context.readOnly || config.waitReplicas > 0 ? undefined : await startPageReads(config, pool, client, WRITES_NAME)
        io = new StandaloneIo(client, keysPerCommand, slot, writes)
        pageReads = writes === undefined ? slot : { close: () => (slot?.close(), writes.close()) }
      }
      // A read-only open of a namespace nobody created yet reads as zeros, at the size asked for.
      // 4 MiB windows: against a server close by (loopback), bytes in flight
      // cost memory and CPU the server shares; 8 MiB was slower there and no
      // faster across a 2 ms round trip (docs/tuning.md).
      const info: BackendInfo = { name, size: meta?.size ?? context.size, readOnly: context.readOnly, maxBatchPages: 1024, readaheadBytes: 4 * 2 ** 20, freshReadBuffers: true, maxWritesInFlight: WRITES_IN_FLIGHT, version: meta === undefined ? undefined : `created:${meta.createdAt}:${meta.size}:${meta.pageSize}` }
      return new RedisBackend(info, config, client, io, keys, lease, meta !== undefined, pool, pageReads)
    } catch (err) {
      await lease?.release().catch(() => undefined)
      await disconnect(client, config.connectTimeoutMs)
      throw err instanceof FaultlineError ? err : new FaultlineError('ERR_BACKEND', `faultline: opening ${name} failed: ${message(err)}`, { cause: err })
    }
  }

  async read(indexes: readonly number[]): Promise<Array<Uint8Array | undefined>> {
    const keys = indexes.map((i) => this.keys.page(i))
    // Read with the pages, the metadata tells an absent page (zeros) from a server that lost everything.
    if (this.metaExpected) keys.push(this.keys.meta)
    let values: Array<Buffer | null>
    try {
      values = await this.io.get(keys)
    } catch (cause) {
      throw this.failure(`reading ${indexes.length} page(s)`, cause, indexes)
    }
    if (this.metaExpected && values.pop() === null) throw lostData(this.info.name)
    return values.map((v) => v ?? undefined)
  }

  recycle(data: Uint8Array): void {
    this.pool?.recycle(data)
  }

  async write(pages: readonly PageWrite[]): Promise<void> {
    if (this.info.readOnly) throw new FaultlineError('ERR_READ_ONLY', `faultline: ${this.info.name} is opened read-only`)
    const indexes = pages.map((p) => p.index)
    try {
      // Unlike a read, a flush is not retried by the pager: ride out a reconnect of up to connectTimeoutMs.
      await this.readiness.wait()
      await this.lease!.ensure()
      await this.io.set(pages.map((p) => [this.keys.page(p.index), Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength)] as const))
    } catch (cause) {
      if (cause instanceof FaultlineError) throw cause
      throw this.failure(`writing ${pages.length} page(s)`, cause, indexes)
    }
  }

  async sync(): Promise<void> {
    if (this.config.waitReplicas === 0) return
    try {
      await this.io.waitReplicas(this.config.waitReplicas, this.config.commandTimeoutMs)
    } catch (cause) {
      throw new FaultlineError('ERR_BACKEND', `faultline: ${this.info.name}: ${message(cause)} (waitReplicas)`, { cause })
    }
  }

  async close(): Promise<void> {
    // Bounded, failures ignored: a release that fails or never comes back (a
    // cluster in failover) must not hold close() up; the lease expires by
    // itself within leaseMs.
    if (this.lease !== undefined) await settleWithin(this.lease.release(), this.config.commandTimeoutMs)
    this.pageReads?.close()
    clearInterval(this.poolTrimmer)
    await disconnect(this.client, this.config.connectTimeoutMs)
  }

  private failure(what: string, cause: unknown, pages: readonly number[]): FaultlineError {
    return new FaultlineError('ERR_BACKEND', `faultline: ${this.info.name}: ${what} failed: ${message(cause)}`, { pages, cause })
  }
}

/** ioredis's messages, in words a user can act on. */
function message(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  if (/enableOfflineQueue/.test(text)) return 'not connected to Redis (reconnecting in the background)'
  if (/MaxRetriesPerRequest|Connection is closed/i.test(text)) return 'the connection to Redis was lost'
  if (/Command timed out/.test(text)) return `Redis did not answer in time (commandTimeoutMs)`
  return text
}

/** A page-read connection to host:port, with the backend's credentials, database and timeouts. */
async function connectPageReader(config: RedisConfig, pool: ReadBufferPool, host: string, port: number, signal: AbortSignal, name?: string): Promise<PageReader> {
  return PageReader.connect({
    name,
    // The write connection reads replies of a few bytes (+OK, or an error).
    readBufferBytes: name === WRITES_NAME ? 16 * 1024 : undefined,
    host: await resolveHost(host, config.connectTimeoutMs),
    port,
    username: config.username,
    password: config.password,
    db: config.db,
    connectTimeoutMs: config.connectTimeoutMs,
    commandTimeoutMs: config.commandTimeoutMs,
    allocate: (length) => (length === pool.pageSize ? pool.take() : Buffer.allocUnsafe(length)),
    // Pages of up to 1 GiB need a server with proto-max-bulk-len raised; a value of another length is refused as ERR_BAD_PAGE later.
    maxValueLength: Math.max(DEFAULT_MAX_BULK_LENGTH, pool.pageSize),
  }, signal)
}

/**
 * The page-read connection, up at open if it can be: reads fall back to
 * ioredis while it is not. It dials the address ioredis dialled, not the
 * host name again: a name with several addresses (round-robin DNS, a
 * headless service) could otherwise put reads and writes on different servers.
 */
async function startPageReads(config: RedisConfig, pool: ReadBufferPool, client: Redis, name?: string): Promise<PageReaderSlot> {
  const { host, port } = client.options
  if (host === undefined || port === undefined) throw new Error('the ioredis client has no address')
  const slot = new PageReaderSlot((signal) => connectPageReader(config, pool, host, port, signal, name))
  await slot.start()
  return slot
}

/** A page-read connection to every master the Cluster client knows, made at open; others when a slot map names them. */
async function startClusterPageReads(config: RedisConfig, pool: ReadBufferPool, cluster: Cluster): Promise<PageReaderSlots> {
  const slots = new PageReaderSlots((host, port, signal) => connectPageReader(config, pool, host, port, signal))
  await slots.start(cluster.nodes('master').map((node) => `${node.options.host}:${node.options.port}`))
  return slots
}

export async function createRedisBackend(spec: BackendSpec, context: BackendContext): Promise<Backend> {
  return RedisBackend.open(spec as unknown as RedisBackendOptions, context)
}
