/** Conformance targets of the S3 (dataset and pages modes) and HTTP backends, on the servers of test/setup/s3http.ts. */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { inject } from 'vitest'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import type { BackendSpec } from '@faultline/core'
import type { ConformanceTarget } from './conformance.js'
import { putObject, s3, s3Spec, uniqueKey } from '../helpers/remote.js'

export function s3DatasetTarget(): ConformanceTarget {
  return {
    spec: () => s3Spec(uniqueKey('conf-ds')),
    readOnly: {
      async seed(data) {
        const key = uniqueKey('conf-ds')
        await putObject(key, data)
        return s3Spec(key)
      },
    },
  }
}

export function s3PagesTarget(): ConformanceTarget {
  return {
    spec: () => s3Spec(uniqueKey('conf-pages'), { mode: 'pages' }),
    async corrupt(spec: BackendSpec, index: number, bytes: Uint8Array) {
      const prefix = new URL(spec.url as string).pathname.slice(1)
      const put = (Key: string, Body: Uint8Array | string) => s3().send(new PutObjectCommand({ Bucket: inject('s3Bucket'), Key, Body }))
      // The store's geometry is the one the conformance suite's corrupt case opens with (4 KiB pages, 1 MiB).
      await put(`${prefix}/faultline.json`, JSON.stringify({ format: 'faultline-pages', version: 1, size: 1 << 20, pageSize: 4096, createdAt: new Date().toISOString() }))
      await put(`${prefix}/pages/${index.toString(16).padStart(10, '0')}`, bytes)
    },
  }
}

export function httpTarget(): ConformanceTarget {
  return {
    spec: () => ({ type: 'http', url: `${inject('httpBase')}/${uniqueKey('conf')}.bin` }),
    readOnly: {
      async seed(data) {
        const name = `${uniqueKey('conf')}.bin`
        writeFileSync(join(inject('httpDir'), name), data)
        return { type: 'http', url: `${inject('httpBase')}/${name}` }
      },
    },
  }
}
