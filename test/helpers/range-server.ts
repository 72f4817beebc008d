/**
 * A small HTTP server with Range support over bytes in memory, whose ETag and
 * reply delay a test controls: a slowed backend (requests stay in flight)
 * and an object replaced under its URL (a new version).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface RangeServer {
  url: string
  /** Bytes served and their ETag from now on. */
  replace(data: Uint8Array, etag: string): void
  delayMs: number
  /** While set, replies to ranges starting at or past this offset wait (in flight) until it is cleared. */
  holdFrom: number | undefined
  /** Bytes sent in ranged replies so far. */
  bytesServed: number
  close(): Promise<void>
}

export async function startRangeServer(data: Uint8Array, etag: string, delayMs = 0): Promise<RangeServer> {
  let body = data
  let tag = etag
  const state: RangeServer = {
    url: '',
    delayMs,
    holdFrom: undefined,
    bytesServed: 0,
    replace(next, nextTag) {
      body = next
      tag = nextTag
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
  const server: Server = createServer((req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    const reply = (): void => {
      if (m !== null && state.holdFrom !== undefined && Number(m[1]) >= state.holdFrom) {
        setTimeout(reply, 10)
        return
      }
      if (res.destroyed) return
      if (m === null) {
        res.writeHead(200, { 'content-length': body.byteLength, etag: tag })
        res.end(body)
        return
      }
      const start = Number(m[1])
      const end = Math.min(Number(m[2]), body.byteLength - 1)
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${body.byteLength}`, 'content-length': end - start + 1, etag: tag })
      state.bytesServed += end - start + 1
      res.end(body.subarray(start, end + 1))
    }
    if (state.delayMs > 0) setTimeout(reply, state.delayMs)
    else reply()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/object.bin`
  return state
}
