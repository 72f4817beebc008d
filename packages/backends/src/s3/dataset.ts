/**
 * S3 dataset mode: one existing object, read-only, by ranged GETs. The
 * object's ETag is pinned at open and compared with the ETag of every
 * ranged response: If-Match is not relied on, since S3-compatible stores
 * (s3rver among them) do not all honour conditional requests.
 */
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { Agents } from '../net/agents.js'
import type { PageSink } from '../remote/page-sink.js'
import type { RangeSource } from '../remote/range-backend.js'
import { ObjectChanged, type ObjectVersion } from '../remote/version.js'
import { isNotFound, s3Error, statusOf } from './errors.js'
import type { S3Config } from './options.js'

export class S3RangeSource implements RangeSource {
  readonly name: string

  constructor(
    private readonly config: S3Config,
    private readonly client: S3Client,
    private readonly agents: Agents,
  ) {
    this.name = config.name
  }

  /** The object's current version, or undefined when there is no such object. */
  async head(): Promise<ObjectVersion | undefined> {
    let head
    try {
      head = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.config.key }))
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw s3Error(this.name, 'HeadObject', err)
    }
    // No length is not length 0: every page would read as zeros. Past 2^53 − 1 a JS number cannot hold it exactly.
    const size = head.ContentLength
    if (size === undefined || !Number.isSafeInteger(size) || size < 0) {
      throw s3Error(this.name, 'HeadObject', new Error(`the reply has no usable Content-Length (${String(size)}), so the object's length is unknown`))
    }
    return { etag: head.ETag || undefined, lastModified: head.LastModified?.toUTCString(), size }
  }

  async fetch(start: number, end: number, into: PageSink, check: (seen: ObjectVersion) => void): Promise<void> {
    const what = `bytes ${start}-${end - 1}`
    let res
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: this.config.key, Range: `bytes=${start}-${end - 1}` }))
    } catch (err) {
      if (isNotFound(err)) throw new ObjectChanged('it was deleted')
      if (statusOf(err) === 416) throw new ObjectChanged(`${what} is no longer in it (InvalidRange)`)
      throw s3Error(this.name, `GetObject ${what}`, err)
    }
    const body = res.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.ContentRange ?? '')
    // Only a 206 is a range: a 200 (or any other success) with a Content-Range contradicts itself.
    const status = res.$metadata.httpStatusCode
    if (body === undefined || status !== 206 || range === null || Number(range[1]) !== start || Number(range[2]) !== end - 1) {
      body?.destroy?.()
      throw s3Error(this.name, `GetObject ${what}`, new Error(`the response is not that range (HTTP ${String(status)}, Content-Range ${JSON.stringify(res.ContentRange ?? null)})`))
    }
    try {
      check({ etag: res.ETag || undefined, lastModified: res.LastModified?.toUTCString(), size: Number(range[3]) })
    } catch (err) {
      // A changed object's bytes are not worth reading.
      body.destroy?.()
      throw err
    }
    try {
      for await (const chunk of body) into.write(chunk)
      into.end()
    } catch (err) {
      body.destroy?.()
      throw s3Error(this.name, `GetObject ${what}`, err)
    }
  }

  async close(): Promise<void> {
    this.client.destroy()
    this.agents.destroy()
  }
}
