// The crash-consistency loop of test/helpers/crash.ts over the Redis and S3
// page stores: a writer SIGKILLed at random moments of its flushes must never
// leave a page torn, older than the last resolved flush or newer than the one
// in flight. Unlike the file journal, neither promises a flush whole across
// pages: after a kill, pages may come from the last resolved flush and the one
// in flight at once (each Redis MSET and each S3 PUT lands or does not).
import { describe, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { redisKeys } from '@faultline/backends'
import { crashLoop, crashTimeoutMs, type CrashStore } from '../helpers/crash.js'
import { dropAfterSuite, standaloneClient, standaloneSpec, uniqueNamespace } from '../helpers/redis.js'
import { deleteObject, s3Spec, uniqueKey } from '../helpers/remote.js'

const redis = standaloneClient()
const track = dropAfterSuite(redis)

/**
 * One of the page stores under test. Its dead writers' leases are dropped
 * instead of waited out (their expiry is tested in redis.test.ts and
 * s3-pages.test.ts).
 */
function pageStore(label: string, backend: BackendSpec, pages: number, dropLease: () => Promise<unknown>): CrashStore {
  const pageSize = 64 * 1024
  return {
    label,
    backend,
    pageSize,
    pages,
    prepare: async (initial) => {
      const region = await openRegion({ size: initial.byteLength, pageSize, backend })
      region.view().set(initial)
      await region.close()
    },
    afterKill: async () => void (await dropLease()),
    wholeFlushes: false,
    viaViews: false,
  }
}

describe('page stores: flushes interrupted by SIGKILL', () => {
  it('redis: never leaves a torn page, nor one older than the last resolved flush', async () => {
    const backend = track(standaloneSpec(uniqueNamespace('crash')))
    await crashLoop(pageStore('redis', backend, 512, () => redis.del(redisKeys(backend).lease)))
  }, crashTimeoutMs)

  it('s3: never leaves a torn page, nor one older than the last resolved flush, and the metadata stays whole', async () => {
    const prefix = uniqueKey('crash')
    // s3rver takes one PUT per page: fewer pages keep flushes, and so kills, quick.
    await crashLoop(pageStore('s3', s3Spec(prefix), 128, () => deleteObject(`${prefix}/faultline.lease`)))
  }, crashTimeoutMs)
})
