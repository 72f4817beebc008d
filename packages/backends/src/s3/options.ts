/** Options of the S3 backend, validated, with the AWS environment applied. */
import { isIP } from 'node:net'
import { FaultlineError } from '@faultline/contract'
import { checkKnownOptions, optionError } from '../spec.js'
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_RANGE_BYTES, DEFAULT_MAX_SOCKETS, DEFAULT_REQUEST_TIMEOUT_MS, describeValue, optionalBoolean, optionalString, positiveInteger } from '../remote/options.js'

/** Static credentials; see {@link S3BackendOptions.credentials}. */
export interface S3Credentials {
  /** The access key id (`AKIA…`). */
  accessKeyId: string
  /** The secret access key. */
  secretAccessKey: string
  /** For temporary credentials. */
  sessionToken?: string
}

export interface S3BackendOptions {
  type: 's3'
  /** `s3://bucket/key`: the object to map (dataset mode) or the key prefix of a page store (pages mode). No query string: give the other options as options. */
  url: string
  /**
   * - `dataset`: map one existing object, read-only, by ranged GETs.
   * - `pages`: a read-write page store, one object per page under the prefix
   *   plus a `faultline.json` metadata object.
   * - `auto` (default): `dataset` if an object exists at the key, else
   *   `pages` if a page store exists under it, else a new page store (only
   *   when the region is read-write and `size` is given).
   */
  mode?: 'auto' | 'dataset' | 'pages'
  /**
   * Endpoint of an S3-compatible store (MinIO, Ceph, R2, s3rver), e.g.
   * `http://127.0.0.1:9000`. Default: `AWS_ENDPOINT_URL_S3`, then
   * `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`),
   * else AWS itself.
   */
  endpoint?: string
  /** AWS region. Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, the shared config profile; `us-east-1` with a custom endpoint. */
  region?: string
  /** Path-style addressing (`endpoint/bucket/key`). Default: true when the endpoint's host is an IP address or localhost, else false (virtual-hosted). */
  pathStyle?: boolean
  /**
   * Static credentials. Default: the SDK's standard chain (environment
   * `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, shared files and
   * `AWS_PROFILE`, SSO, web identity, ECS/EC2 metadata). Never shown in
   * names, messages or stats.
   */
  credentials?: S3Credentials
  /** Most requests in flight at once, and keep-alive sockets kept. Default 16. */
  maxSockets?: number
  /** Largest ranged GET in dataset mode, in bytes; longer runs of pages are split across connections. Default 8 MiB. */
  maxRangeBytes?: number
  /** Milliseconds to establish a connection before a request fails. Default 5000. */
  connectTimeoutMs?: number
  /** Milliseconds a request may wait for its response, or go without receiving a byte, before it fails. Default 30000. */
  requestTimeoutMs?: number
  /** Attempts per request, the first included, with the SDK's standard backoff; the pager retries failed reads on top, until fetchTimeoutMs. Default 3. */
  maxAttempts?: number
  /**
   * How a read-write page store makes sure it has one writer at a time
   * (the lease object `<prefix>/faultline.lease`; docs/backends.md).
   *
   * - `conditional` (default): the lease is created with `If-None-Match: *`
   *   and renewed with `If-Match: <etag>`, so two writers of one store can
   *   never both hold it. A service that ignores conditional writes (found
   *   by a probe on a throwaway key at open) is refused with `ERR_BACKEND`
   *   rather than given a lease that only looks safe.
   * - `best-effort`: conditional writes where the service has them; where it
   *   ignores them (s3rver, some S3-compatible stores), a lease object
   *   written unconditionally and read back. That refuses a second writer
   *   that opens while the first holds the lease, but two opens racing
   *   within a round trip can both succeed; the loser finds out at its next
   *   renewal (within `leaseMs / 3`) and its writes are refused from then on,
   *   but what it wrote until then has landed.
   *
   * Read-only regions take no lease. Unused in dataset mode.
   */
  writerLease?: 'conditional' | 'best-effort'
  /**
   * How long the writer's lease lives without renewal, in milliseconds
   * (renewed every `leaseMs / 3`). A writer that died without closing keeps
   * others out for up to `leaseMs` plus 1–2 s (the lease's age is taken from
   * the server's one-second timestamps). Default 15000, at least 1000.
   */
  leaseMs?: number
}

export interface S3Config {
  bucket: string
  /** The object key (dataset) or prefix (pages), without a trailing slash. */
  key: string
  /** `s3://bucket/key`, for messages: never credentials. */
  name: string
  mode: 'auto' | 'dataset' | 'pages'
  endpoint: string | undefined
  region: string | undefined
  pathStyle: boolean
  credentials: S3Credentials | undefined
  maxSockets: number
  maxRangeBytes: number
  connectTimeoutMs: number
  requestTimeoutMs: number
  maxAttempts: number
  writerLease: 'conditional' | 'best-effort'
  leaseMs: number
}

const KNOWN = ['url', 'mode', 'endpoint', 'region', 'pathStyle', 'credentials', 'maxSockets', 'maxRangeBytes', 'connectTimeoutMs', 'requestTimeoutMs', 'maxAttempts', 'writerLease', 'leaseMs']

export function parseS3Options(spec: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): S3Config {
  checkKnownOptions('s3', spec, KNOWN)
  const { bucket, key } = parseS3Url(spec.url)
  const mode = spec.mode ?? 'auto'
  if (mode !== 'auto' && mode !== 'dataset' && mode !== 'pages') throw optionError('s3', 'mode', `must be "auto", "dataset" or "pages" (got ${describeValue(mode)})`)
  if (mode === 'dataset' && key === '') throw optionError('s3', 'url', `must name an object (s3://bucket/key) in dataset mode (got s3://${bucket}/)`)
  const endpoint = parseEndpoint(spec.endpoint, env)
  const pathStyle = optionalBoolean('s3', spec, 'pathStyle') ?? (endpoint !== undefined && isLocalHost(new URL(endpoint).hostname))
  const writerLease = spec.writerLease ?? 'conditional'
  if (writerLease !== 'conditional' && writerLease !== 'best-effort') {
    throw optionError('s3', 'writerLease', `must be "conditional" (the default: refuse a service without conditional writes) or "best-effort" (a weaker lease there) (got ${describeValue(writerLease)})`)
  }
  const leaseMs = spec.leaseMs ?? 15_000
  if (typeof leaseMs !== 'number' || !Number.isSafeInteger(leaseMs) || leaseMs < 1000) {
    throw optionError('s3', 'leaseMs', `must be a whole number of milliseconds ≥ 1000: the lease's age is measured in the server's whole-second timestamps (got ${describeValue(leaseMs)})`)
  }
  const region = optionalString('s3', spec, 'region') ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (endpoint !== undefined ? 'us-east-1' : undefined)
  return {
    bucket,
    key,
    name: `s3://${bucket}/${key}`,
    mode,
    endpoint,
    region,
    pathStyle,
    credentials: parseCredentials(spec.credentials),
    maxSockets: positiveInteger('s3', spec, 'maxSockets', DEFAULT_MAX_SOCKETS, 1024),
    maxRangeBytes: positiveInteger('s3', spec, 'maxRangeBytes', DEFAULT_MAX_RANGE_BYTES, 2 ** 30),
    connectTimeoutMs: positiveInteger('s3', spec, 'connectTimeoutMs', DEFAULT_CONNECT_TIMEOUT_MS),
    requestTimeoutMs: positiveInteger('s3', spec, 'requestTimeoutMs', DEFAULT_REQUEST_TIMEOUT_MS),
    maxAttempts: positiveInteger('s3', spec, 'maxAttempts', 3, 20),
    writerLease,
    leaseMs,
  }
}

function parseS3Url(raw: unknown): { bucket: string; key: string } {
  if (typeof raw !== 'string') throw optionError('s3', 'url', `must be an s3://bucket/key URL (got ${describeValue(raw)})`)
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw optionError('s3', 'url', `must be an s3://bucket/key URL (got ${JSON.stringify(raw)})`)
  }
  if (url.protocol !== 's3:' || url.hostname === '') throw optionError('s3', 'url', `must be an s3://bucket/key URL (got ${JSON.stringify(raw)})`)
  if (url.username !== '' || url.password !== '') throw optionError('s3', 'url', 'must not hold credentials: use the `credentials` option or the AWS environment')
  if (url.search !== '' || url.hash !== '') {
    throw optionError('s3', 'url', `must be s3://bucket/key with no query: give endpoint, region, pathStyle and mode as options (a URL string passed as \`backend\` may carry them as ?endpoint=…)`)
  }
  const key = decodeURIComponent(url.pathname.replace(/^\//, '')).replace(/\/+$/, '')
  return { bucket: url.hostname, key }
}

function parseEndpoint(value: unknown, env: NodeJS.ProcessEnv): string | undefined {
  const envName = env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS === 'true' ? undefined : env.AWS_ENDPOINT_URL_S3 ? 'AWS_ENDPOINT_URL_S3' : env.AWS_ENDPOINT_URL ? 'AWS_ENDPOINT_URL' : undefined
  const raw = value ?? (envName === undefined ? undefined : env[envName])
  if (raw === undefined) return undefined
  const bad = (why: string): FaultlineError =>
    value === undefined ? new FaultlineError('ERR_INVALID_OPTION', `faultline: the environment variable ${envName} (the s3 endpoint) ${why}`, { option: 'backend.endpoint' }) : optionError('s3', 'endpoint', why)
  let url: URL
  try {
    if (typeof raw !== 'string') throw new Error()
    url = new URL(raw)
  } catch {
    throw bad(`must be an http:// or https:// URL like http://127.0.0.1:9000 (got ${typeof raw === 'string' ? 'an unparsable string' : describeValue(raw)})`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad(`must be an http:// or https:// URL (got a ${url.protocol} URL)`)
  if (url.username !== '' || url.password !== '') throw bad('must not hold credentials: use the `credentials` option or the AWS environment')
  return url.toString().replace(/\/$/, '')
}

/** The SDK's own credential objects carry these too (it adds `$source` to what it is given): accepted, unused. */
const CREDENTIAL_FIELDS = ['accessKeyId', 'secretAccessKey', 'sessionToken', 'expiration', 'credentialScope', 'accountId', '$source']

function parseCredentials(value: unknown): S3Credentials | undefined {
  if (value === undefined) return undefined
  // Messages here never echo a value: these are secrets.
  if (value === null || typeof value !== 'object') throw optionError('s3', 'credentials', 'must be an object { accessKeyId, secretAccessKey, sessionToken? }')
  const c = value as Record<string, unknown>
  for (const k of Object.keys(c)) {
    if (!CREDENTIAL_FIELDS.includes(k)) throw optionError('s3', `credentials.${k}`, 'is not a credentials field (known: accessKeyId, secretAccessKey, sessionToken)')
  }
  for (const k of ['accessKeyId', 'secretAccessKey'] as const) {
    if (typeof c[k] !== 'string' || c[k] === '') throw optionError('s3', `credentials.${k}`, 'must be a non-empty string')
  }
  if (c.sessionToken !== undefined && typeof c.sessionToken !== 'string') throw optionError('s3', 'credentials.sessionToken', 'must be a string')
  const out: S3Credentials = { accessKeyId: c.accessKeyId as string, secretAccessKey: c.secretAccessKey as string }
  if (c.sessionToken !== undefined) out.sessionToken = c.sessionToken as string
  return out
}

function isLocalHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '')
  return isIP(host) !== 0 || host === 'localhost' || host.endsWith('.localhost')
}
