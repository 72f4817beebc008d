/**
 * A remote object replaced under a mapped region: the next fetch fails with
 * the change error (never bytes of the new version next to the old), through
 * region.read() and prefetch() as a rejection, and for a faulting access as
 * SIGBUS in a child process.
 */
import { spawnSync } from 'node:child_process'
import { utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, inject, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { putObject, s3Spec, uniqueKey } from '../helpers/remote.js'

const PAGE = 65536
const SIZE = 16 * PAGE
const touchChanged = fileURLToPath(new URL('../fixtures/touch-changed-object.mjs', import.meta.url))

function version(fill: number): Uint8Array {
  return new Uint8Array(SIZE).fill(fill)
}

interface Target {
  create(data: Uint8Array): Promise<BackendSpec>
  replace(data: Uint8Array): Promise<void>
}

function httpTarget(): Target {
  const name = `${uniqueKey('change')}.bin`
  const path = join(inject('httpDir'), name)
  return {
    async create(data) {
      writeFileSync(path, data)
      return { type: 'http', url: `${inject('httpBase')}/${name}` }
    },
    async replace(data) {
      writeFileSync(path, data)
      utimesSync(path, new Date(), new Date(Date.now() + 60_000))
    },
  }
}

function s3Target(): Target {
  const key = uniqueKey('change')
  return {
    async create(data) {
      await putObject(key, data)
      return s3Spec(key)
    },
    replace: (data) => putObject(key, data),
  }
}

describe.each([
  ['s3', s3Target],
  ['http', httpTarget],
])('%s: the object changes under a mapped region', (_kind, makeTarget) => {
  it('the next read() and prefetch() reject with the change error; resident pages keep the old version', async () => {
    const target = makeTarget()
    const region = await openRegion({ backend: await target.create(version(1)), pageSize: PAGE, fetchTimeoutMs: 300, readahead: false })
    try {
      const v = region.view()
      expect(v[0]).toBe(1)
      expect(Array.from(await region.read(PAGE, 4))).toEqual([1, 1, 1, 1])
      await target.replace(version(2))
      const readError = await region.read(5 * PAGE, PAGE).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(readError).toMatchObject({ code: 'ERR_SOURCE_CHANGED', pages: [5] })
      expect((readError as Error).message).toMatch(/changed since the region was opened/)
      expect((readError as Error).message).toMatch(/ETag/)
      await expect(region.prefetch(6 * PAGE, PAGE)).rejects.toMatchObject({ code: 'ERR_SOURCE_CHANGED', message: expect.stringMatching(/changed since the region was opened/) })
      // Nothing of the new version was installed; what was resident stays as it was.
      expect(region.stats().residentPages).toBe(1)
      expect(v[0]).toBe(1)
    } finally {
      await region.close()
    }
    // A new region maps the new version.
    const again = await openRegion({ backend: await target.create(version(3)), pageSize: PAGE, readahead: false })
    try {
      expect(again.view()[7 * PAGE]).toBe(3)
    } finally {
      await again.close()
    }
  })

  it('a shorter replacement fails the read of a range that is gone', async () => {
    const target = makeTarget()
    const region = await openRegion({ backend: await target.create(version(1)), pageSize: PAGE, fetchTimeoutMs: 300, readahead: false })
    try {
      await target.replace(new Uint8Array(2 * PAGE).fill(2))
      await expect(region.read(10 * PAGE, PAGE)).rejects.toMatchObject({ code: 'ERR_SOURCE_CHANGED', message: expect.stringMatching(/changed since the region was opened/) })
    } finally {
      await region.close()
    }
  })

  it('a faulting access after the change gets SIGBUS, after the pager says why', async () => {
    const target = makeTarget()
    const spec = await target.create(version(1))
    const args = spec.type === 'http' ? [spec.url as string, join(inject('httpDir'), new URL(spec.url as string).pathname.slice(1))] : [inject('s3Endpoint'), inject('s3Bucket'), new URL(spec.url as string).pathname.slice(1)]
    const r = spawnSync(process.execPath, [touchChanged, spec.type, ...args], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, AWS_ACCESS_KEY_ID: inject('s3AccessKeyId'), AWS_SECRET_ACCESS_KEY: inject('s3SecretAccessKey'), AWS_REGION: 'us-east-1' },
    })
    expect(r.stdout).toMatch(/first 1/)
    expect(r.stdout).toMatch(/replaced/)
    expect(r.stdout).not.toMatch(/value/)
    expect(r.signal).toBe('SIGBUS')
    expect(r.stderr).toMatch(/changed since the region was opened/)
    expect(r.stderr).toMatch(/page 8 gets SIGBUS/)
  })
})
