// BackendInfo.version, which names the cache of regions shared between
// processes: it must change when the data does, and only then.
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { builtinBackends } from '@faultline/backends'
import type { BackendSpec } from '@faultline/core'

const context = { pageSize: 4096, size: undefined, readOnly: true }
async function versionOf(spec: BackendSpec): Promise<string | undefined> {
  const backend = await builtinBackends[spec.type]!(spec, context)
  try {
    return backend.info.version
  } finally {
    await backend.close()
  }
}

describe('BackendInfo.version', () => {
  const dir = mkdtempSync(join(tmpdir(), 'faultline-version-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('file: the same while the file is unchanged, another after a write', async () => {
    const path = join(dir, 'data.bin')
    writeFileSync(path, Buffer.alloc(8192, 1))
    const spec = { type: 'file', path }
    const first = await versionOf(spec)
    expect(first).toMatch(/^file:/)
    expect(await versionOf(spec)).toBe(first)
    writeFileSync(path, Buffer.alloc(8192, 2))
    utimesSync(path, new Date(), new Date(Date.now() + 5000))
    expect(await versionOf(spec)).not.toBe(first)
  })

  it('http: the ETag (or Last-Modified) and the length', async () => {
    writeFileSync(join(inject('httpDir'), 'version.bin'), Buffer.alloc(8192, 3))
    const spec = { type: 'http', url: `${inject('httpBase')}/version.bin` }
    const first = await versionOf(spec)
    expect(first).toMatch(/^(etag|modified):.*:8192$/)
    writeFileSync(join(inject('httpDir'), 'version.bin'), Buffer.alloc(12288, 4))
    expect(await versionOf(spec)).not.toBe(first)
  })
})
