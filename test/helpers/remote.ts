/** Helpers for suites that talk to the s3rver and static HTTP servers of test/setup/s3http.ts. */
import { createReadStream, statSync } from 'node:fs'
import { get } from 'node:http'
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { inject } from 'vitest'
import type { BackendSpec } from '@faultline/core'
import type { LoggedRequest } from '../setup/s3http.js'

// The SDK's notice about Node 20 would repeat in every suite's output; it is about the SDK's future, not these tests.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

let client: S3Client | undefined

/** An SDK client for s3rver, for seeding and replacing objects behind a backend's back. */
export function s3(): S3Client {
  client ??= new S3Client({
    region: 'us-east-1',
    endpoint: inject('s3Endpoint'),
    forcePathStyle: true,
    credentials: { accessKeyId: inject('s3AccessKeyId'), secretAccessKey: inject('s3SecretAccessKey') },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
  return client
}

/** A unique key per call, so suites running side by side never share objects. */
let n = 0
export function uniqueKey(label: string): string {
  return `${label}-${process.pid}-${Date.now().toString(36)}-${n++}`
}

/**
 * The spec of an s3 backend on s3rver, with credentials given as options.
 * s3rver ignores conditional writes, so page stores take the weaker lease
 * (`writerLease: 'best-effort'`) unless `extra` says otherwise.
 */
export function s3Spec(key: string, extra: Record<string, unknown> = {}): BackendSpec {
  return {
    type: 's3',
    url: `s3://${inject('s3Bucket')}/${key}`,
    endpoint: inject('s3Endpoint'),
    credentials: { accessKeyId: inject('s3AccessKeyId'), secretAccessKey: inject('s3SecretAccessKey') },
    writerLease: 'best-effort',
    ...extra,
  }
}

export async function putObject(key: string, body: Uint8Array | string): Promise<void> {
  await s3().send(new PutObjectCommand({ Bucket: inject('s3Bucket'), Key: key, Body: body }))
}

/** Uploads a file in one streamed PUT. */
export async function putFile(key: string, path: string): Promise<void> {
  await s3().send(new PutObjectCommand({ Bucket: inject('s3Bucket'), Key: key, Body: createReadStream(path), ContentLength: statSync(path).size }))
}

export async function deleteObject(key: string): Promise<void> {
  await s3().send(new DeleteObjectCommand({ Bucket: inject('s3Bucket'), Key: key }))
}

/** The requests a test server received for a path (`/bucket/key` for s3rver, `/name` for HTTP). */
export async function requestLog(server: 's3' | 'http', path: string): Promise<LoggedRequest[]> {
  // A fresh connection each time (agent: false): a kept-alive one may have been closed by the
  // server while this thread sat in page faults, and a request written to it would fail.
  const body = await new Promise<string>((resolve, reject) => {
    get(`${inject('httpBase')}/__faultline/log?server=${server}&path=${encodeURIComponent(path)}`, { agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => resolve(text))
      res.on('error', reject)
    }).on('error', reject)
  })
  return JSON.parse(body) as LoggedRequest[]
}

/** Byte counts of the ranged GETs in a log. */
export function rangeSizes(log: LoggedRequest[]): number[] {
  return log
    .filter((r) => r.method === 'GET' && r.range !== undefined)
    .map((r) => {
      const m = /bytes=(\d+)-(\d+)/.exec(r.range!)
      return m ? Number(m[2]) - Number(m[1]) + 1 : 0
    })
}
