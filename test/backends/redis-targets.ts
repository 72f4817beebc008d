/** Conformance targets of the Redis backend, standalone and Cluster, on the servers of test/setup/redis.ts. */
import type { BackendSpec } from '@faultline/core'
import { redisKeys } from '@faultline/backends'
import type { ConformanceTarget } from './conformance.js'
import { clientFor, clusterSpec, dropNamespace, standaloneSpec, uniqueNamespace } from '../helpers/redis.js'

function redisTarget(makeSpec: (namespace: string) => BackendSpec): ConformanceTarget {
  const used: BackendSpec[] = []
  return {
    spec: () => {
      const spec = makeSpec(uniqueNamespace('conf'))
      used.push(spec)
      return spec
    },
    async corrupt(spec, index, bytes) {
      // Straight into the store with a plain client: the backend itself only stores whole pages.
      const client = clientFor(spec)
      try {
        await client.set(redisKeys(spec).page(index), Buffer.from(bytes))
      } finally {
        client.disconnect()
      }
    },
    async cleanup() {
      const first = used[0]
      if (first === undefined) return
      const client = clientFor(first)
      try {
        for (const spec of used) await dropNamespace(client, spec)
      } finally {
        client.disconnect()
      }
    },
  }
}

export const redisStandaloneTarget = (): ConformanceTarget => redisTarget((ns) => standaloneSpec(ns))
export const redisClusterTarget = (): ConformanceTarget => redisTarget((ns) => clusterSpec(ns))
