/**
 * `faultline import` then `faultline export` through real stores gives back
 * the identical file, and what import wrote maps as a region with the file's
 * bytes. Runs the built CLI in a child process, as a user would.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, inject, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { fillPattern } from '@faultline/core/pattern'
import { tempDir } from '../helpers/tmp.js'
import { s3Spec, uniqueKey } from '../helpers/remote.js'
import { standaloneSpec, uniqueNamespace } from '../helpers/redis.js'

const cli = fileURLToPath(new URL('../../packages/core/dist/cli/main.js', import.meta.url))
const dir = tempDir()
const PAGE = 65536

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    // Credentials from the standard AWS environment, as a user would give them.
    env: { ...process.env, AWS_ACCESS_KEY_ID: inject('s3AccessKeyId'), AWS_SECRET_ACCESS_KEY: inject('s3SecretAccessKey'), AWS_REGION: 'us-east-1' },
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** 12 MiB + 1234 bytes: the pattern, with a run of zero pages in the middle and a partial last page. */
function dataset(): { path: string; bytes: Buffer } {
  const bytes = Buffer.alloc(12 * 2 ** 20 + 1234)
  fillPattern(bytes.subarray(0, bytes.length & ~3), 0)
  bytes.fill(0, 4 * 2 ** 20, 6 * 2 ** 20)
  bytes[bytes.length - 1] = 0x5a
  const path = join(dir, `${uniqueKey('in')}.bin`)
  writeFileSync(path, bytes)
  return { path, bytes }
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

const stores: Array<[string, () => { url: string; spec: BackendSpec }]> = [
  [
    's3',
    () => {
      const key = uniqueKey('import')
      return { url: `s3://${inject('s3Bucket')}/${key}?endpoint=${encodeURIComponent(inject('s3Endpoint'))}&writerLease=best-effort`, spec: s3Spec(key) }
    },
  ],
  [
    'redis',
    () => {
      const ns = uniqueNamespace('import')
      return { url: `${inject('redisUrl')}/${ns}`, spec: standaloneSpec(ns) }
    },
  ],
]

describe.each(stores)('import then export through %s', (_kind, store) => {
  it('gives back the identical file, and the store maps as a region of the file', async () => {
    const { path, bytes } = dataset()
    const { url, spec } = store()
    const imported = run('import', path, url)
    expect(imported.stderr).toBe('')
    expect(imported.status).toBe(0)
    expect(imported.stdout).toMatch(/imported .* 193 pages of 64\.0 KiB/)
    // Credentials came from the environment and appear nowhere.
    expect(imported.stdout).not.toMatch(new RegExp(inject('s3SecretAccessKey')))

    const out = join(dir, `${uniqueKey('out')}.bin`)
    const exported = run('export', url, out)
    expect(exported.stderr).toBe('')
    expect(exported.status).toBe(0)
    const back = readFileSync(out)
    expect(back.length).toBe(bytes.length)
    expect(sha(back)).toBe(sha(bytes))

    // The layout is the region's: it opens with no size and reads the file's bytes.
    const region = await openRegion({ backend: spec, pageSize: PAGE, access: 'read-only' })
    try {
      expect(region.dataSize).toBe(bytes.length)
      expect(sha(region.view(0, bytes.length))).toBe(sha(bytes))
    } finally {
      await region.close()
    }
  })
})

describe('import and export refuse what they cannot do, with clear errors', () => {
  it('import into a read-only backend (an HTTP file) fails with ERR_READ_ONLY', () => {
    const { path } = dataset()
    const name = `${uniqueKey('ro')}.bin`
    writeFileSync(join(inject('httpDir'), name), 'x'.repeat(5000))
    const r = run('import', path, `${inject('httpBase')}/${name}`)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/cannot store pages/)
  })

  it('export of a page store with another page size names the page size to use', () => {
    const { path } = dataset()
    const url = `s3://${inject('s3Bucket')}/${uniqueKey('geo')}?endpoint=${encodeURIComponent(inject('s3Endpoint'))}&writerLease=best-effort`
    expect(run('import', path, url, '--page-size', '16K').status).toBe(0)
    const r = run('export', url, join(dir, 'never.bin'))
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/pageSize: 16384/)
    const ok = run('export', url, join(dir, 'geo.bin'), '--page-size', '16K')
    expect(ok.status).toBe(0)
    expect(sha(readFileSync(join(dir, 'geo.bin')))).toBe(sha(readFileSync(path)))
  })

  it('usage errors exit with status 2 and say what is wrong', () => {
    expect(run('import', 'only-one-argument')).toMatchObject({ status: 2, stderr: expect.stringMatching(/import takes <file> <backend-url>/) })
    expect(run('export', 's3://b/k', 'x', '--page-size', '3000')).toMatchObject({ status: 2, stderr: expect.stringMatching(/power of two/) })
  })
})
