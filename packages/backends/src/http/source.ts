/** The HTTP(S) side of the range backend: probe at open, ranged GETs after. */
import type { IncomingMessage } from 'node:http'
import { FaultlineError } from '@faultline/contract'
import type { Agents } from '../net/agents.js'
import type { PageSink } from '../remote/page-sink.js'
import type { RangeSource } from '../remote/range-backend.js'
import { ObjectChanged, type ObjectVersion } from '../remote/version.js'
import type { HttpConfig } from './options.js'
import { notPlainBytes, parseContentRange, rangeGet, readBodyInto } from './request.js'

export class HttpRangeSource implements RangeSource {
  readonly name: string

  constructor(
    private readonly config: HttpConfig,
    private readonly agents: Agents,
  ) {
    this.name = config.name
  }

  /**
   * Asks for the first byte: learns the length and the version to pin, and
   * finds out at open, not at the first fault, whether ranges are honoured.
   */
  async probe(): Promise<ObjectVersion> {
    const res = await this.get('bytes=0-0', 'open')
    const status = res.statusCode ?? 0
    if (status === 206) {
      const range = parseContentRange(res.headers['content-range'])
      res.resume()
      if (range === undefined || !('start' in range) || range.total === undefined) {
        throw this.error(`answered "Range: bytes=0-0" with Content-Range ${JSON.stringify(res.headers['content-range'] ?? null)}: the file's length is unknown, so it cannot be mapped`)
      }
      // Its ranges would count bytes of another representation than the file's.
      const why = notPlainBytes(res)
      if (why !== undefined) throw this.error(`answered "Range: bytes=0-0", but ${why}`)
      return versionOf(res, range.total)
    }
    if (status === 416) {
      // Only an empty file has no first byte.
      const range = parseContentRange(res.headers['content-range'])
      res.resume()
      if (range !== undefined && 'unsatisfied' in range) {
        if (range.unsatisfied === 0) return versionOf(res, 0)
        throw this.error(`answered "Range: bytes=0-0" with 416 and Content-Range ${JSON.stringify(res.headers['content-range'])}: a file of ${range.unsatisfied} bytes has a byte 0, so the reply contradicts itself`)
      }
    }
    res.resume()
    if (status === 200) throw this.ignoresRanges()
    throw this.statusError(status, res, 'open')
  }

  async fetch(start: number, end: number, into: PageSink, check: (seen: ObjectVersion) => void): Promise<void> {
    const what = `bytes ${start}-${end - 1}`
    const res = await this.get(`bytes=${start}-${end - 1}`, what)
    const status = res.statusCode ?? 0
    if (status === 206) {
      const range = parseContentRange(res.headers['content-range'])
      if (range === undefined || !('start' in range) || range.start !== start || range.end !== end - 1 || range.total === undefined) {
        res.destroy()
        throw this.error(`answered a request for ${what} with Content-Range ${JSON.stringify(res.headers['content-range'] ?? null)}`)
      }
      const why = notPlainBytes(res)
      if (why !== undefined) {
        res.destroy()
        throw this.error(`answered a request for ${what}, but ${why}`)
      }
      try {
        check(versionOf(res, range.total))
      } catch (err) {
        // A changed file's bytes are not worth reading.
        res.destroy()
        throw err
      }
      try {
        await readBodyInto(res, into)
      } catch (cause) {
        throw this.error(`GET ${what} failed: ${(cause as Error).message}`, cause)
      }
      return
    }
    res.resume()
    if (status === 416) throw new ObjectChanged(`${what} is no longer in it (HTTP 416)`)
    if (status === 404 || status === 410) throw new ObjectChanged(`it is gone (HTTP ${status})`)
    if (status === 200) throw this.ignoresRanges()
    throw this.statusError(status, res, `GET ${what}`)
  }

  async close(): Promise<void> {
    this.agents.destroy()
  }

  private async get(range: string, what: string): Promise<IncomingMessage> {
    try {
      return await rangeGet(this.config, this.agents, range)
    } catch (cause) {
      throw this.error(`${what === 'open' ? 'opening it' : `GET ${what}`} failed: ${(cause as Error).message}`, cause)
    }
  }

  private ignoresRanges(): FaultlineError {
    return this.error('ignores Range requests (it answered 200 with the whole file); the http backend needs a server that honours Range (HTTP 206)')
  }

  private statusError(status: number, res: IncomingMessage, what: string): FaultlineError {
    return this.error(`${what === 'open' ? 'opening it' : what}: HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`)
  }

  private error(message: string, cause?: unknown): FaultlineError {
    return new FaultlineError('ERR_BACKEND', `faultline: ${this.name}: ${message}`, cause === undefined ? {} : { cause })
  }
}

function versionOf(res: IncomingMessage, size: number): ObjectVersion {
  const etag = res.headers.etag
  const lastModified = res.headers['last-modified']
  return { etag: etag === '' ? undefined : etag, lastModified: lastModified === '' ? undefined : lastModified, size }
}
