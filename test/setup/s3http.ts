/**
 * s3rver (a real S3 protocol server) and a static HTTP server with Range
 * support (serve-static on node:http), both on ephemeral loopback ports,
 * each over its own temporary directory. The HTTP server also answers
 * `GET /__faultline/log?server=s3|http&path=/…` with the requests either
 * server received for that path (method and Range), so suites can check how
 * a backend talked to it, not only what the pager counted.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import S3rver from 's3rver'
import serveStatic from 'serve-static'
import type { Provide } from './global.js'

/** One request a test server received. */
export interface LoggedRequest {
  method: string
  /** The Range header, if any. */
  range: string | undefined
}

declare module 'vitest' {
  interface ProvidedContext {
    /** s3rver's endpoint, `http://127.0.0.1:PORT` (path-style). */
    s3Endpoint: string
    /** A bucket that exists on it. */
    s3Bucket: string
    /** Credentials s3rver accepts. */
    s3AccessKeyId: string
    s3SecretAccessKey: string
    /** The static server's base URL, `http://127.0.0.1:PORT`: `/<name>` serves `<httpDir>/<name>` with Range support. */
    httpBase: string
    /** The directory the static server serves; suites write their files here. Also served, ignoring Range, under `/norange/`. */
    httpDir: string
  }
}

const BUCKET = 'faultline'
const KEEP_ALIVE_MS = 5_000

function listen(server: Server): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server.address() as AddressInfo))
  })
}

function pathOf(req: IncomingMessage): string {
  return decodeURIComponent((req.url ?? '/').split('?')[0]!)
}

export async function start(provide: Provide): Promise<() => Promise<void>> {
  const s3Dir = mkdtempSync(join(tmpdir(), 'faultline-s3rver-'))
  const httpDir = mkdtempSync(join(tmpdir(), 'faultline-http-'))
  const log = { s3: new Map<string, LoggedRequest[]>(), http: new Map<string, LoggedRequest[]>() }
  const record = (which: 's3' | 'http', req: IncomingMessage): void => {
    const path = pathOf(req)
    const list = log[which].get(path) ?? []
    list.push({ method: req.method ?? '', range: req.headers.range })
    log[which].set(path, list)
  }

  const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3Dir, resetOnClose: true, configureBuckets: [{ name: BUCKET }] })
  let s3Running = false
  const files = serveStatic(httpDir, { acceptRanges: true, cacheControl: false, index: false, dotfiles: 'deny' })
  const noRanges = serveStatic(httpDir, { acceptRanges: false, cacheControl: false, index: false, dotfiles: 'deny' })
  const http = createServer((req, res) => {
    const path = pathOf(req)
    if (path === '/__faultline/log') {
      const query = new URL(req.url ?? '/', 'http://x').searchParams
      const which = query.get('server') === 's3' ? 's3' : 'http'
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify(log[which].get(query.get('path') ?? '') ?? []))
      return
    }
    record('http', req)
    // serve-static hands over what it does not answer itself: 404s, and errors such as 416 with their status.
    const notFound = (err?: { status?: number }): void => {
      res.statusCode = err?.status ?? 404
      res.end()
    }
    if (path.startsWith('/norange/')) {
      req.url = req.url!.slice('/norange'.length)
      noRanges(req, res, notFound)
    } else files(req, res, notFound)
  })

  const stop = async (): Promise<void> => {
    if (s3Running) await s3.close().catch(() => undefined)
    if (http.listening) {
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
    }
    rmSync(s3Dir, { recursive: true, force: true })
    rmSync(httpDir, { recursive: true, force: true })
  }
  try {
    const s3Address = await s3.run()
    s3Running = true
    s3.httpServer!.on('request', (req: IncomingMessage) => record('s3', req))
    // Idle connections close after 5 s (Node's default, made explicit: the threadpool suite waits it out).
    s3.httpServer!.keepAliveTimeout = KEEP_ALIVE_MS
    http.keepAliveTimeout = KEEP_ALIVE_MS
    const httpAddress = await listen(http)
    provide('s3Endpoint', `http://127.0.0.1:${s3Address.port}`)
    provide('s3Bucket', BUCKET)
    provide('s3AccessKeyId', 'S3RVER')
    provide('s3SecretAccessKey', 'S3RVER')
    provide('httpBase', `http://127.0.0.1:${httpAddress.port}`)
    provide('httpDir', httpDir)
  } catch (err) {
    await stop()
    throw err
  }
  return stop
}
