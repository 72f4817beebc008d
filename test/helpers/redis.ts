/**
 * Plain ioredis clients for the Redis suites: seeding, corrupting and
 * inspecting what the backend stored, and removing a test's namespaces from
 * the shared servers afterwards.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, inject } from 'vitest'
import { Cluster, Redis } from 'ioredis'
import type { BackendSpec } from '@faultline/core'
import { redisKeys } from '@faultline/backends'

export type PlainClient = Redis | Cluster

/** A namespace no other test or run uses. */
export function uniqueNamespace(label: string): string {
  return `${label}-${randomUUID().slice(0, 8)}`
}

export function standaloneSpec(namespace: string, extra: Record<string, unknown> = {}): BackendSpec {
  return { type: 'redis', url: `${inject('redisUrl')}/${namespace}`, ...extra }
}

export function clusterSpec(namespace: string, extra: Record<string, unknown> = {}, nodes = inject('redisClusterNodes')): BackendSpec {
  return { type: 'redis', url: `redis://${nodes[0]}/${namespace}`, cluster: { nodes }, ...extra }
}

export function standaloneClient(url = inject('redisUrl')): Redis {
  const u = new URL(url)
  const c = new Redis({ host: u.hostname, port: Number(u.port), maxRetriesPerRequest: 1 })
  c.on('error', () => undefined)
  return c
}

export function clusterClient(nodes = inject('redisClusterNodes')): Cluster {
  const c = new Cluster(nodes.map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) })))
  c.on('error', () => undefined)
  return c
}

/** The client that reaches a spec's data: a Cluster for cluster specs. */
export function clientFor(spec: BackendSpec): PlainClient {
  if (spec.cluster !== undefined && spec.cluster !== false) {
    const nodes = typeof spec.cluster === 'object' && spec.cluster !== null ? (spec.cluster as { nodes: string[] }).nodes : [new URL(spec.url as string).host]
    return clusterClient(nodes)
  }
  const u = new URL(spec.url as string)
  return standaloneClient(`redis://${u.host}`)
}

/** Every page key of a namespace, found by SCAN on every master. */
export async function pageKeys(client: PlainClient, spec: BackendSpec): Promise<string[]> {
  const pattern = redisKeys(spec).pagePattern
  const nodes = client instanceof Cluster ? client.nodes('master') : [client]
  const found: string[] = []
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = next
      found.push(...keys)
    } while (cursor !== '0')
  }
  return found
}

/** Deletes everything a spec's region stored: pages, metadata, lease. */
export async function dropNamespace(client: PlainClient, spec: BackendSpec): Promise<void> {
  const keys = redisKeys(spec)
  const all = [...(await pageKeys(client, spec)), keys.meta, keys.lease]
  // One key per command: in a cluster the keys live in many slots.
  await Promise.all(all.map((k) => client.unlink(k)))
}

/**
 * For a suite that creates namespaces through `client`'s server: returns a
 * function that records a spec, and drops every recorded namespace (then
 * disconnects the client) after the suite. `before` runs first, e.g. to
 * select the suite's database.
 */
export function dropAfterSuite(client: PlainClient, before?: () => Promise<unknown>): (spec: BackendSpec) => BackendSpec {
  const used: BackendSpec[] = []
  afterAll(async () => {
    await before?.()
    for (const spec of used) await dropNamespace(client, spec)
    client.disconnect()
  })
  return (spec) => {
    used.push(spec)
    return spec
  }
}
