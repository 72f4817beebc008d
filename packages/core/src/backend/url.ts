import { invalidOption, FaultlineError } from '../errors.js'
import type { BackendSpec } from '@faultline/contract'

/**
 * Turns a backend URL into a spec: `memory:`, `file:///abs/path`,
 * `s3://bucket/key?endpoint=…&region=…&pathStyle=true&mode=pages&writerLease=best-effort&leaseMs=…`,
 * `http(s)://host/file` (its query belongs to the file: kept in `url`).
 */
export function parseBackendUrl(url: string): BackendSpec {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw invalidOption('backend', `is not a valid backend URL: ${JSON.stringify(redact(url))} (expected e.g. "memory:" or "file:///abs/path")`)
  }
  switch (parsed.protocol) {
    case 'memory:':
      return { type: 'memory' }
    case 'file:': {
      if (parsed.host !== '') throw invalidOption('backend', `file URL must be absolute with no host, like file:///data/x.bin (got ${JSON.stringify(url)})`)
      return { type: 'file', path: decodeURIComponent(parsed.pathname) }
    }
    case 's3:':
      return parseS3Url(parsed)
    case 'redis:':
    case 'rediss:':
    case 'http:':
    case 'https:':
      return { type: parsed.protocol.slice(0, -1).replace(/^rediss$/, 'redis').replace(/^https?$/, 'http'), url }
    default:
      throw new FaultlineError('ERR_UNKNOWN_BACKEND', `faultline: unknown backend URL scheme ${JSON.stringify(parsed.protocol)} (known: memory:, file:, redis:, rediss:, s3:, http:, https:)`, { option: 'backend' })
  }
}

/** The S3 URL's query holds backend options; the rest is the object or prefix. */
function parseS3Url(parsed: URL): BackendSpec {
  if (parsed.username !== '' || parsed.password !== '') throw invalidOption('backend', 's3 URL must not hold credentials: use the AWS environment or the backend option `credentials`')
  const spec: BackendSpec = { type: 's3', url: `s3://${parsed.host}${parsed.pathname}` }
  for (const [name, value] of parsed.searchParams) {
    switch (name) {
      case 'endpoint':
      case 'region':
      case 'mode':
      case 'writerLease':
        spec[name] = value
        break
      case 'leaseMs':
        // A number the backend validates; a non-number stays a string and is refused there, by name.
        spec.leaseMs = /^\d+$/.test(value) ? Number(value) : value
        break
      case 'pathStyle':
        if (value !== 'true' && value !== 'false') throw invalidOption('backend', `s3 URL parameter pathStyle must be true or false (got ${JSON.stringify(value)})`)
        spec.pathStyle = value === 'true'
        break
      default:
        throw invalidOption('backend', `s3 URL parameter ${JSON.stringify(name)} is not known (known: endpoint, region, pathStyle, mode, writerLease, leaseMs)`)
    }
  }
  return spec
}

/** A URL with any password replaced, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@')
  }
}
