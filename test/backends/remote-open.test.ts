/**
 * Opening S3 objects and HTTP files: geometry from the object, options and
 * URLs validated with errors that name them, servers that ignore Range
 * refused at open, and credentials kept out of every name and message.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, inject, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { putObject, requestLog, s3Spec, uniqueKey } from '../helpers/remote.js'
import { rejection } from '../helpers/errors.js'

const PAGE = 65536

/** 3 pages and 100 bytes of a byte pattern that differs per page. */
function odd(): Uint8Array {
  const data = new Uint8Array(3 * PAGE + 100)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 16)) & 0xff
  return data
}

function serve(data: Uint8Array): string {
  const name = `${uniqueKey('open')}.bin`
  writeFileSync(join(inject('httpDir'), name), data)
  return name
}

describe('an object that is not a whole number of pages', () => {
  const cases: Array<[string, (data: Uint8Array) => Promise<BackendSpec | string>]> = [
    [
      's3',
      async (data) => {
        const key = uniqueKey('odd')
        await putObject(key, data)
        return s3Spec(key)
      },
    ],
    ['http', async (data) => `${inject('httpBase')}/${serve(data)}`],
  ]
  it.each(cases)('%s: maps with its true length as dataSize and a zero-filled tail', async (_kind, make) => {
    const data = odd()
    const region = await openRegion({ backend: await make(data), pageSize: PAGE })
    try {
      expect(region.dataSize).toBe(data.length)
      expect(region.size).toBe(4 * PAGE)
      const v = region.view()
      expect(Buffer.from(v.subarray(0, data.length)).equals(Buffer.from(data))).toBe(true)
      expect(v.subarray(data.length).every((b) => b === 0)).toBe(true)
      const tail = await region.read(3 * PAGE, PAGE)
      expect(Buffer.from(tail.subarray(0, 100)).equals(Buffer.from(data.subarray(3 * PAGE)))).toBe(true)
      expect(tail.subarray(100).every((b) => b === 0)).toBe(true)
    } finally {
      await region.close()
    }
  })
})

describe('http backend errors', () => {
  it('refuses at open a server that ignores Range, saying so', async () => {
    const name = serve(odd())
    const err = await rejection(openRegion({ backend: `${inject('httpBase')}/norange/${name}`, pageSize: PAGE }))
    expect(err.code).toBe('ERR_BACKEND')
    expect(err.message).toMatch(/ignores Range requests \(it answered 200 with the whole file\)/)
  })

  it('reports a missing file with its status', async () => {
    const err = await rejection(openRegion({ backend: `${inject('httpBase')}/${uniqueKey('missing')}.bin`, pageSize: PAGE }))
    expect(err.code).toBe('ERR_BACKEND')
    expect(err.message).toMatch(/HTTP 404/)
  })

  it('reports a server that is not there, naming the URL', async () => {
    const err = await rejection(openRegion({ backend: { type: 'http', url: 'http://127.0.0.1:1/x.bin', connectTimeoutMs: 1000 }, pageSize: PAGE }))
    expect(err.code).toBe('ERR_BACKEND')
    expect(err.message).toMatch(/http:\/\/127\.0\.0\.1:1\/x\.bin: opening it failed: .*ECONNREFUSED/)
  })

  it('keeps URL credentials and query strings out of names and messages', async () => {
    const name = serve(odd())
    const base = new URL(inject('httpBase'))
    const url = `http://alice:hunter2@${base.host}/${name}?token=sekrit-42`
    const region = await openRegion({ backend: url, pageSize: PAGE })
    try {
      expect(region.backendName).toBe(`${base.origin}/${name}?…`)
      expect(region.view()[1]).toBe(7)
    } finally {
      await region.close()
    }
    const missing = await rejection(openRegion({ backend: `http://alice:hunter2@${base.host}/nope-${name}?token=sekrit-42`, pageSize: PAGE }))
    for (const text of [missing.message, String(missing.cause ?? '')]) {
      expect(text).not.toMatch(/hunter2|sekrit|alice/)
    }
  })

  it('validates its options, naming them', async () => {
    const unknown = await rejection(openRegion({ backend: { type: 'http', url: `${inject('httpBase')}/x`, rangeSize: 5 }, pageSize: PAGE }))
    expect(unknown).toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'backend.rangeSize' })
    const sockets = await rejection(openRegion({ backend: { type: 'http', url: `${inject('httpBase')}/x`, maxSockets: 0 }, pageSize: PAGE }))
    expect(sockets).toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'backend.maxSockets' })
    const range = await rejection(openRegion({ backend: { type: 'http', url: `${inject('httpBase')}/x`, headers: { Range: 'bytes=0-' } }, pageSize: PAGE }))
    expect(range).toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'backend.headers.range' })
  })
})

describe('s3 backend errors', () => {
  it('keeps credentials out of names and messages, even when they are refused', async () => {
    const key = uniqueKey('creds')
    await putObject(key, odd())
    // s3rver checks the access key id but not v4 signatures: an unknown key is what it refuses.
    const secret = 'not-the-secret-0123456789abcdef'
    const err = await rejection(openRegion({ backend: s3Spec(key, { credentials: { accessKeyId: 'AKIAUNKNOWNKEY', secretAccessKey: secret } }), pageSize: PAGE }))
    expect(err.code).toBe('ERR_BACKEND')
    expect(err.message).toMatch(/HeadObject failed: .*HTTP 403/)
    expect(`${err.message} ${String(err.cause ?? '')}`).not.toMatch(new RegExp(secret))
    const region = await openRegion({ backend: s3Spec(key), pageSize: PAGE })
    try {
      expect(region.backendName).toBe(`s3://${inject('s3Bucket')}/${key}`)
      expect(JSON.stringify(region.stats())).not.toMatch(new RegExp(inject('s3SecretAccessKey')))
    } finally {
      await region.close()
    }
  })

  it('validates options and URLs, naming what is wrong', async () => {
    const cases: Array<[BackendSpec | string, string, RegExp]> = [
      [s3Spec('k', { mode: 'both' }), 'backend.mode', /"auto", "dataset" or "pages"/],
      [s3Spec('k', { endpoint: 'ftp://127.0.0.1' }), 'backend.endpoint', /http:\/\/ or https:\/\//],
      [s3Spec('k', { credentials: { accessKeyId: 'a' } }), 'backend.credentials.secretAccessKey', /non-empty string/],
      [s3Spec('k', { url: 's3://bucket/k?endpoint=x' }), 'backend.url', /no query/],
      [`s3://${inject('s3Bucket')}/k?colour=blue`, 'backend', /"colour" is not known/],
      [`s3://${inject('s3Bucket')}/k?pathStyle=maybe`, 'backend', /pathStyle must be true or false/],
      [s3Spec('', { mode: 'dataset' }), 'backend.url', /must name an object/],
    ]
    for (const [backend, option, message] of cases) {
      const err = await rejection(openRegion({ backend, pageSize: PAGE }))
      expect(err.code, `${JSON.stringify(backend)}`).toBe('ERR_INVALID_OPTION')
      expect(err.option).toBe(option)
      expect(err.message).toMatch(message)
    }
  })

  it('dataset mode: a missing object is reported as such', async () => {
    const key = uniqueKey('absent')
    const err = await rejection(openRegion({ backend: s3Spec(key, { mode: 'dataset' }), pageSize: PAGE }))
    expect(err).toMatchObject({ code: 'ERR_BACKEND', option: 'backend.url' })
    expect(err.message).toMatch(new RegExp(`there is no object s3://${inject('s3Bucket')}/${key}$`))
  })

  it('a read-write open of a dataset object is refused: objects are mapped read-only', async () => {
    const key = uniqueKey('rw')
    await putObject(key, odd())
    const err = await rejection(openRegion({ backend: s3Spec(key), pageSize: PAGE, access: 'read-write' }))
    expect(err).toMatchObject({ code: 'ERR_READ_ONLY', option: 'access' })
    // It opened with a HEAD, not a GET of the object.
    const log = await requestLog('s3', `/${inject('s3Bucket')}/${key}`)
    expect(log.filter((r) => r.method !== 'PUT').map((r) => r.method)).toEqual(['HEAD'])
  })
})
