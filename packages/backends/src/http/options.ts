/** Options of the HTTP(S) range backend, validated. */
import { checkKnownOptions, optionError } from '../spec.js'
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_RANGE_BYTES, DEFAULT_MAX_SOCKETS, DEFAULT_REQUEST_TIMEOUT_MS, positiveInteger } from '../remote/options.js'

export interface HttpBackendOptions {
  type: 'http'
  /**
   * `http://` or `https://` URL of a file on a server that honours `Range`
   * requests. A query string is kept (signed URLs work) but never shown in
   * names or messages; `user:password@` becomes Basic authorization.
   */
  url: string
  /** Extra request headers (e.g. `Authorization`). Sent only to the URL's origin, never shown in names or messages. */
  headers?: Record<string, string>
  /** Most requests in flight at once, and keep-alive sockets kept. Default 16. */
  maxSockets?: number
  /** Largest single range request in bytes; longer runs of pages are split across connections. Default 8 MiB. */
  maxRangeBytes?: number
  /** Milliseconds to establish a TCP connection before the request fails (the pager then retries). Default 5000. */
  connectTimeoutMs?: number
  /** Milliseconds a request may go without progress (no headers, no body bytes) before it fails. Default 30000. */
  requestTimeoutMs?: number
}

export interface HttpConfig {
  url: URL
  /** For messages and info.name: origin and path, no credentials, no query. */
  name: string
  headers: Record<string, string>
  maxSockets: number
  maxRangeBytes: number
  connectTimeoutMs: number
  requestTimeoutMs: number
}

const KNOWN = ['url', 'headers', 'maxSockets', 'maxRangeBytes', 'connectTimeoutMs', 'requestTimeoutMs']

export function parseHttpOptions(spec: Record<string, unknown>): HttpConfig {
  checkKnownOptions('http', spec, KNOWN)
  const raw = spec.url
  let url: URL
  try {
    if (typeof raw !== 'string') throw new Error('not a string')
    url = new URL(raw)
  } catch {
    throw optionError('http', 'url', `must be an http:// or https:// URL (got ${typeof raw === 'string' ? 'an unparsable string' : typeof raw})`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw optionError('http', 'url', `must be an http:// or https:// URL (got a ${url.protocol} URL)`)
  const headers: Record<string, string> = {}
  if (spec.headers !== undefined) {
    if (spec.headers === null || typeof spec.headers !== 'object' || Array.isArray(spec.headers)) throw optionError('http', 'headers', 'must be an object of header names to string values')
    for (const [key, value] of Object.entries(spec.headers as Record<string, unknown>)) {
      if (typeof value !== 'string') throw optionError('http', `headers.${key}`, 'must be a string')
      headers[key.toLowerCase()] = value
    }
  }
  if (url.username !== '' || url.password !== '') {
    headers.authorization ??= `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`
    url.username = ''
    url.password = ''
  }
  for (const reserved of ['range', 'accept-encoding', 'host']) {
    if (reserved in headers) throw optionError('http', `headers.${reserved}`, 'is set by the backend itself')
  }
  return {
    url,
    name: `${url.origin}${url.pathname}${url.search === '' ? '' : '?…'}`,
    headers,
    maxSockets: positiveInteger('http', spec, 'maxSockets', DEFAULT_MAX_SOCKETS, 1024),
    maxRangeBytes: positiveInteger('http', spec, 'maxRangeBytes', DEFAULT_MAX_RANGE_BYTES, 2 ** 30),
    connectTimeoutMs: positiveInteger('http', spec, 'connectTimeoutMs', DEFAULT_CONNECT_TIMEOUT_MS),
    requestTimeoutMs: positiveInteger('http', spec, 'requestTimeoutMs', DEFAULT_REQUEST_TIMEOUT_MS),
  }
}
