/**
 * The Redis backend's options, and their validation into one plain config.
 * Messages name the option and never echo a password.
 */
import { checkKnownOptions, optionError } from '../spec.js'

export interface RedisBackendOptions {
  type: 'redis'
  /**
   * Where the region lives: `redis://[user:password@]host[:port]/namespace`
   * (`rediss://` for TLS). The path is the namespace; `?db=N` selects a
   * database and `?cluster` (or `?cluster=true`) treats the host as a seed
   * node of a Redis Cluster. Port defaults to 6379.
   */
  url: string
  /** The region's name in Redis; overrides the URL's path. No `{` or `}`: they would pin every page to one cluster slot. */
  namespace?: string
  /**
   * Use Redis Cluster. `true`: the URL's host is a seed node. `{ nodes }`:
   * seed nodes as `"host:port"` strings or `{ host, port }`, tried in order
   * (the URL's host is added to them). Default: standalone, unless the URL says `?cluster`.
   */
  cluster?: boolean | { nodes: Array<string | { host: string; port: number }> }
  /** ACL user name; overrides the URL's. */
  username?: string
  /** Password (AUTH); overrides the URL's. Never shown in messages or stats. */
  password?: string
  /**
   * TLS: `true`, or options for `tls.connect` (`ca`, `cert`, `key`,
   * `servername`, `rejectUnauthorized`, …; structured-cloneable values only).
   * Default: on for `rediss://`, off otherwise.
   */
  tls?: boolean | Record<string, unknown>
  /** Database number (standalone only; a cluster has only database 0). Overrides the URL's `?db=`. Default 0. */
  db?: number
  /** Prepended to every key. No `{` or `}`. Default `"faultline:"`. */
  keyPrefix?: string
  /**
   * How long the writer's lease on the namespace lives without renewal, in
   * ms. A read-write region renews it every third of this; if the process
   * dies, another writer may take the namespace this long after. Default 15000.
   */
  leaseMs?: number
  /**
   * Give up a connection attempt after this many ms (at open, and on each
   * reconnect). A Cluster must be ready (cluster_state:ok) within twice
   * this at open. Also how long an outage may last before flushes fail
   * (after that, each new flush still waits up to 2.5 s for a reconnect).
   * Default 5000.
   */
  connectTimeoutMs?: number
  /**
   * Fail a command that has no reply after this many ms, so a hung server
   * surfaces as an error the pager retries instead of a fault that waits
   * for ever. Default 10000.
   */
  commandTimeoutMs?: number
  /**
   * Replicas that must confirm a flush's writes before the flush resolves
   * (Redis `WAIT` at the end of each flush, on every master written to).
   * 0 (default) trusts the master's reply: a master that dies before it
   * replicated may take the last writes with it when its replica takes over.
   * With 1 or more, a flush resolves only once that many replicas hold its
   * pages; if fewer confirm within `commandTimeoutMs` the flush rejects and
   * its pages stay dirty (so a master without enough replicas fails every flush).
   */
  waitReplicas?: number
  /** Bytes of pages per MGET/MSET command; a batch is split into commands of about this size, sent together. Default 1 MiB. */
  commandBytes?: number
  /**
   * Read pages over a second connection of the backend's own, whose replies
   * are parsed straight into reused page buffers, instead of through ioredis
   * (which builds a new buffer for every value): on a fast network this is
   * the pager's largest cost (docs/tuning.md). A standalone read-write
   * region (without `waitReplicas`) also writes pages over a third
   * connection of its own, which sends them without copying them into a
   * command buffer. The lease and metadata stay on ioredis. On a Cluster,
   * one read connection per master (writes stay on ioredis); a redirection
   * goes through ioredis. Not with TLS. Default: true without TLS; false
   * puts every command on ioredis's connections.
   */
  pageReadConnection?: boolean
}

export interface Endpoint {
  host: string
  port: number
}

/** Options after validation: what the backend works with. */
export interface RedisConfig {
  endpoints: Endpoint[]
  cluster: boolean
  namespace: string
  keyPrefix: string
  username: string | undefined
  password: string | undefined
  tls: Record<string, unknown> | undefined
  db: number
  leaseMs: number
  connectTimeoutMs: number
  commandTimeoutMs: number
  commandBytes: number
  waitReplicas: number
  pageReadConnection: boolean
  /** For messages and stats: scheme, first host, namespace; no credentials. */
  name: string
}

const KNOWN = ['url', 'namespace', 'cluster', 'username', 'password', 'tls', 'db', 'keyPrefix', 'leaseMs', 'connectTimeoutMs', 'commandTimeoutMs', 'commandBytes', 'waitReplicas', 'pageReadConnection'] as const

export function parseRedisOptions(raw: Record<string, unknown>): RedisConfig {
  checkKnownOptions('redis', raw, KNOWN)
  const o = raw as Partial<RedisBackendOptions>
  if (typeof o.url !== 'string') {
    throw optionError('redis', 'url', `is required: a URL like "redis://host:6379/my-region" (got ${typeof o.url})`)
  }
  let url: URL
  try {
    url = new URL(o.url)
  } catch {
    throw optionError('redis', 'url', 'is not a valid URL; expected "redis://[user:password@]host[:port]/namespace"')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw optionError('redis', 'url', `must start with redis:// or rediss:// (got ${JSON.stringify(url.protocol)})`)
  }
  if (url.hostname === '') throw optionError('redis', 'url', 'has no host; expected "redis://host[:port]/namespace"')
  const query = url.searchParams
  for (const key of query.keys()) {
    if (key !== 'db' && key !== 'cluster') throw optionError('redis', 'url', `has an unknown query parameter ${JSON.stringify(key)} (known: db, cluster)`)
  }

  const namespace = o.namespace ?? decodeURIComponent(url.pathname.replace(/^\//, ''))
  if (typeof namespace !== 'string' || namespace === '') {
    throw optionError('redis', 'namespace', 'is required: give it as the URL path (redis://host:6379/my-region) or as `namespace`')
  }
  checkKeyPart('namespace', namespace)
  const keyPrefix = o.keyPrefix ?? 'faultline:'
  if (typeof keyPrefix !== 'string') throw optionError('redis', 'keyPrefix', `must be a string (got ${typeof keyPrefix})`)
  checkKeyPart('keyPrefix', keyPrefix)

  const urlCluster = query.has('cluster') ? query.get('cluster') !== 'false' && query.get('cluster') !== '0' : false
  const first: Endpoint = { host: stripBrackets(url.hostname), port: url.port === '' ? 6379 : Number(url.port) }
  const endpoints: Endpoint[] = [first]
  let cluster = urlCluster
  if (o.cluster !== undefined) {
    if (typeof o.cluster === 'boolean') cluster = o.cluster
    else if (o.cluster !== null && typeof o.cluster === 'object' && Array.isArray(o.cluster.nodes)) {
      cluster = true
      for (const node of o.cluster.nodes) endpoints.push(parseNode(node))
    } else {
      throw optionError('redis', 'cluster', 'must be true, false or { nodes: ["host:port", …] }')
    }
  }

  let db = 0
  const dbRaw = o.db ?? (query.has('db') ? Number(query.get('db')) : 0)
  if (!Number.isSafeInteger(dbRaw) || dbRaw < 0) throw optionError('redis', 'db', `must be a whole number ≥ 0 (got ${String(o.db ?? query.get('db'))})`)
  db = dbRaw
  if (cluster && db !== 0) throw optionError('redis', 'db', `must be 0 with Redis Cluster, which has only database 0 (got ${db})`)

  const username = o.username ?? (url.username === '' ? undefined : decodeURIComponent(url.username))
  const password = o.password ?? (url.password === '' ? undefined : decodeURIComponent(url.password))
  if (username !== undefined && typeof username !== 'string') throw optionError('redis', 'username', 'must be a string')
  if (password !== undefined && typeof password !== 'string') throw optionError('redis', 'password', 'must be a string')

  let tls: Record<string, unknown> | undefined = url.protocol === 'rediss:' ? {} : undefined
  if (o.tls !== undefined) {
    if (o.tls === false) tls = undefined
    else if (o.tls === true) tls = {}
    else if (o.tls !== null && typeof o.tls === 'object' && !Array.isArray(o.tls)) tls = { ...o.tls }
    else throw optionError('redis', 'tls', 'must be true, false or an object of tls.connect options')
  }

  const leaseMs = wholeNumber('leaseMs', o.leaseMs, 15_000, 100)
  const connectTimeoutMs = wholeNumber('connectTimeoutMs', o.connectTimeoutMs, 5_000, 1)
  const commandTimeoutMs = wholeNumber('commandTimeoutMs', o.commandTimeoutMs, 10_000, 1)
  const commandBytes = wholeNumber('commandBytes', o.commandBytes, 1 << 20, 1)
  const waitReplicas = wholeNumber('waitReplicas', o.waitReplicas, 0, 0)
  if (o.pageReadConnection !== undefined && typeof o.pageReadConnection !== 'boolean') {
    throw optionError('redis', 'pageReadConnection', `must be true or false (got ${JSON.stringify(o.pageReadConnection)})`)
  }
  if (o.pageReadConnection === true && tls !== undefined) {
    throw optionError('redis', 'pageReadConnection', 'works without TLS only; leave it unset with TLS')
  }
  const pageReadConnection = o.pageReadConnection ?? tls === undefined

  const scheme = `${url.protocol.slice(0, -1)}${cluster ? '+cluster' : ''}`
  const hostPart = first.host.includes(':') ? `[${first.host}]` : first.host
  const name = `${scheme}://${hostPart}:${first.port}${db === 0 ? '' : `/db${db}`}/${namespace}`
  return { endpoints, cluster, namespace, keyPrefix, username, password, tls, db, leaseMs, connectTimeoutMs, commandTimeoutMs, commandBytes, waitReplicas, pageReadConnection, name }
}

function checkKeyPart(option: string, value: string): void {
  if (/[{}]/.test(value)) {
    throw optionError('redis', option, `must not contain "{" or "}" (a hash tag would put every page of the region in one cluster slot); got ${JSON.stringify(value)}`)
  }
}

function wholeNumber(option: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw optionError('redis', option, `must be a whole number ≥ ${min} (got ${JSON.stringify(value)})`)
  }
  return value
}

function parseNode(node: unknown): Endpoint {
  if (typeof node === 'string') {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(node)
    if (m !== null) return { host: m[1]!, port: Number(m[2]) }
  } else if (node !== null && typeof node === 'object') {
    const { host, port } = node as { host?: unknown; port?: unknown }
    if (typeof host === 'string' && host !== '' && typeof port === 'number' && Number.isSafeInteger(port)) return { host, port }
  }
  throw optionError('redis', 'cluster.nodes', `entries must be "host:port" or { host, port } (got ${JSON.stringify(node)})`)
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}
