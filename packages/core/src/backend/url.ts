import { invalidOption, FaultlineError } from '../errors.js'
import type { BackendSpec } from './contract.js'

/**
 * Turns a backend URL into a spec: `memory:`, `file:///abs/path`. Schemes of
 * backends still to come (`redis:`, `s3:`, `https:`) are recognised so the
 * error says so, instead of calling them unknown.
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
    case 'redis:':
    case 'rediss:':
    case 's3:':
    case 'http:':
    case 'https:':
      return { type: parsed.protocol.slice(0, -1).replace(/^rediss$/, 'redis').replace(/^https?$/, 'http'), url }
    default:
      throw new FaultlineError('ERR_UNKNOWN_BACKEND', `faultline: unknown backend URL scheme ${JSON.stringify(parsed.protocol)} (known: memory:, file:)`, { option: 'backend' })
  }
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
