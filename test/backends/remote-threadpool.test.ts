/**
 * The fault path of the s3 and http backends never needs the libuv
 * threadpool, not even to resolve a host name: with the process's only pool
 * thread blocked, faults on both kinds of region are still served.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, inject, it } from 'vitest'
import { fillPattern } from '@faultline/core/pattern'
import { tempDir } from '../helpers/tmp.js'
import { putObject, uniqueKey } from '../helpers/remote.js'

const fixture = fileURLToPath(new URL('../fixtures/faults-without-threadpool.mjs', import.meta.url))
const dir = tempDir()

it('serves faults through s3 and http with the only threadpool thread blocked, resolving `localhost` without it', async () => {
  const data = new Uint8Array(8 * 2 ** 20)
  fillPattern(data, 0)
  const sha = createHash('sha256').update(data).digest('hex')
  const key = uniqueKey('pool')
  await putObject(key, data)
  const name = `${key}.bin`
  writeFileSync(join(inject('httpDir'), name), data)

  const r = spawnSync(process.execPath, [fixture, inject('s3Endpoint'), inject('s3Bucket'), key, `${inject('httpBase')}/${name}`, join(dir, 'fifo')], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, UV_THREADPOOL_SIZE: '1', AWS_ACCESS_KEY_ID: inject('s3AccessKeyId'), AWS_SECRET_ACCESS_KEY: inject('s3SecretAccessKey'), AWS_REGION: 'us-east-1' },
  })
  // The control: the pool really was stuck, or this test could not fail.
  expect(r.stdout).toMatch(/pool stuck: true/)
  expect(r.stdout).toMatch(new RegExp(`s3 ${sha} fetched ${data.length}`))
  expect(r.stdout).toMatch(new RegExp(`http ${sha} fetched ${data.length}`))
  expect(r.stdout).toMatch(/done/)
  expect(r.status).toBe(0)
})
