/**
 * One ranged GET with node:http(s), on the backend's own keep-alive agents.
 * Chosen over the global fetch (undici) because undici resolves host names
 * with dns.lookup, i.e. on the libuv threadpool, unless given a custom
 * dispatcher, and because node:http gives direct control of sockets,
 * connect and idle timeouts, and redirects.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Agents } from '../net/agents.js'
import type { PageSink } from '../remote/page-sink.js'
import type { HttpConfig } from './options.js'

const REDIRECTS = new Set([301, 302, 303, 307, 308])
const MAX_REDIRECTS = 5

function getOnce(url: URL, headers: Record<string, string>, config: HttpConfig, agents: Agents): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const https = url.protocol === 'https:'
    const req = (https ? httpsRequest : httpRequest)(url, { method: 'GET', headers, agent: https ? agents.https : agents.http, timeout: config.requestTimeoutMs })
    // The socket timeout covers waiting for headers and every gap between body chunks.
    req.on('timeout', () => req.destroy(new Error(`no progress for ${config.requestTimeoutMs} ms (requestTimeoutMs)`)))
    req.on('socket', (socket) => {
      if (!socket.connecting) return
      const timer = setTimeout(() => req.destroy(new Error(`no connection within ${config.connectTimeoutMs} ms (connectTimeoutMs)`)), config.connectTimeoutMs)
      const clear = (): void => clearTimeout(timer)
      socket.once('connect', clear)
      socket.once('close', clear)
    })
    req.on('response', resolve)
    req.on('error', (err: NodeJS.ErrnoException) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })))
    req.end()
  })
}

/**
 * A kept-alive socket the server closed while idle fails the next request
 * written to it; that request never reached the server and is safe to send
 * again on a new socket (Node's documented pattern).
 */
async function getFresh(url: URL, headers: Record<string, string>, config: HttpConfig, agents: Agents): Promise<IncomingMessage> {
  try {
    return await getOnce(url, headers, config, agents)
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { reusedSocket?: boolean }
    if (e.reusedSocket === true && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) return getOnce(url, headers, config, agents)
    throw err
  }
}

/** GET with a Range header, following redirects; the caller reads or discards the body. */
export async function rangeGet(config: HttpConfig, agents: Agents, range: string): Promise<IncomingMessage> {
  const base = { range, 'accept-encoding': 'identity', 'user-agent': 'faultline' }
  let url = config.url
  let headers: Record<string, string> = { ...config.headers, ...base }
  for (let hop = 0; ; hop++) {
    const res = await getFresh(url, headers, config, agents)
    const location = res.headers.location
    if (!REDIRECTS.has(res.statusCode ?? 0) || location === undefined) return res
    res.resume()
    if (hop === MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`)
    const next = new URL(location, url)
    // Credentials stay with the origin they were given for.
    if (next.origin !== config.url.origin) headers = { ...base }
    url = next
  }
}

/** Reads a body that must be exactly `into.length` bytes into `into`. */
export async function readBodyInto(res: IncomingMessage, into: PageSink): Promise<void> {
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) into.write(chunk)
  } catch (err) {
    res.destroy()
    throw err
  }
  into.end()
}

/**
 * Why a 206's body is not the range's bytes as they are in the file, if it
 * is not: a Content-Encoding (its Content-Range counts encoded bytes), a
 * transfer coding node:http does not undo, or a multipart body.
 */
export function notPlainBytes(res: IncomingMessage): string | undefined {
  const encoding = res.headers['content-encoding']?.trim().toLowerCase()
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity') return `its body is encoded (Content-Encoding: ${encoding}), although identity was asked for`
  const transfer = res.headers['transfer-encoding']
  if (transfer !== undefined && transfer.split(',').some((c) => !['chunked', 'identity', ''].includes(c.trim().toLowerCase()))) return `its body has a transfer coding other than chunked (Transfer-Encoding: ${transfer})`
  if (/^\s*multipart\//i.test(res.headers['content-type'] ?? '')) return `its body is multipart (Content-Type: ${res.headers['content-type']}), not the bytes of one range`
  return undefined
}

// Content-Range "bytes a-b/total" (total may be "*"), or "bytes */total" on
// a 416. Undefined when it is malformed: a number past 2^53 − 1 (as a JS
// number it could equal its neighbour), or a range that is backwards or
// does not fit in its total.
export function parseContentRange(value: string | undefined): { start: number; end: number; total: number | undefined } | { unsatisfied: number } | undefined {
  if (value === undefined) return undefined
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(value.trim())
  if (m) {
    const [start, end] = [Number(m[1]), Number(m[2])]
    const total = m[3] === '*' ? undefined : Number(m[3])
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || (total !== undefined && !Number.isSafeInteger(total))) return undefined
    if (end < start || (total !== undefined && end >= total)) return undefined
    return { start, end, total }
  }
  const u = /^bytes\s+\*\/(\d+)$/i.exec(value.trim())
  return u && Number.isSafeInteger(Number(u[1])) ? { unsatisfied: Number(u[1]) } : undefined
}
