/**
 * The Redis backend on Redis Cluster: the slot layout on the shared cluster,
 * and, on a cluster of this suite's own, reads and writes that stay correct
 * through a slot migration, a manual failover and the death of a master.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRegion, type BackendSpec, type Region } from '@faultline/core'
import { redisKeys } from '@faultline/backends'
import { keySlot } from '../../packages/backends/src/redis/slot.js'
import { RedisCluster, RedisServer, run } from '../helpers/redis-server.js'
import { clusterClient, clusterSpec, dropAfterSuite, pageKeys, uniqueNamespace } from '../helpers/redis.js'

describe('redis cluster: layout', () => {
  const client = clusterClient()
  const track = dropAfterSuite(client)

  it('computes the slot of a key as the server does', async () => {
    const keys = ['', 'a', 'foo', '{user1000}.following', 'a{}b{c}', '{}x', 'x{y', 'x}y{z}', 'ünïcødé{€}', ...Array.from({ length: 100 }, (_, i) => redisKeys({ type: 'redis', url: 'redis://h/ns' }).page(i * 7))]
    for (const key of keys) expect(keySlot(key), key).toBe(Number(await client.call('CLUSTER', 'KEYSLOT', key)))
  })

  it('spreads a region over every master, 16 consecutive pages per slot', async () => {
    const spec = track(clusterSpec(uniqueNamespace('spread')))
    const pages = 1024
    const region = await openRegion({ size: pages * 4096, pageSize: 4096, backend: spec })
    const v = region.view()
    for (let p = 0; p < pages; p++) v[p * 4096] = 1
    await region.close()
    const keys = redisKeys(spec)
    const slots = Array.from({ length: pages }, (_, p) => keySlot(keys.page(p)))
    for (let p = 0; p < pages; p++) expect(slots[p]).toBe(slots[p - (p % 16)])
    // 64 groups: 64 slots for 99.4% of namespaces. CRC16 is linear, so when
    // groups collide they do so 4 or 8 at once (in 20000 random namespaces the
    // fewest was 54 slots); 48 still spreads the region over every master.
    expect(new Set(slots).size).toBeGreaterThanOrEqual(48)
    const masters = client.nodes('master')
    expect(masters).toHaveLength(3)
    const perMaster = await Promise.all(masters.map(async (m) => (await m.keys(keys.pagePattern)).length))
    expect(perMaster.reduce((a, b) => a + b)).toBe(pages)
    for (const n of perMaster) expect(n).toBeGreaterThan(pages / 10)
    expect((await pageKeys(client, spec)).length).toBe(pages)
  })
})

describe('redis cluster: slot migration and failover', () => {
  let cluster: RedisCluster
  beforeAll(async () => {
    cluster = await RedisCluster.start(3, 1)
  })
  afterAll(async () => cluster?.stop())

  const size = 8 << 20
  const pageSize = 16 << 10
  const pages = size / pageSize

  /**
   * What the store may hold: `confirmed` as of the last successful flush,
   * or, for a page written since, any value written since (a flush that
   * failed part-way may have stored some of its pages).
   */
  interface Model {
    current: Uint8Array
    confirmed: Uint8Array
    since: Map<number, Buffer[]>
  }

  /** Random writes, a flush, and reads of random pages from the backend, checked against the model. */
  async function churn(region: Region, model: Model, flushMustSucceed: boolean): Promise<void> {
    const view = region.view()
    for (let i = 0; i < 16; i++) {
      const p = Math.floor(Math.random() * pages)
      const bytes = randomBytes(pageSize)
      view.set(bytes, p * pageSize)
      model.current.set(bytes, p * pageSize)
      model.since.set(p, [...(model.since.get(p) ?? []), bytes])
    }
    try {
      await region.flush()
      model.confirmed = model.current.slice()
      model.since.clear()
    } catch (err) {
      // Only while a master is down or has no replica: the pages stay dirty and a later flush retries them.
      if (flushMustSucceed) throw err
    }
    for (let i = 0; i < 16; i++) {
      const p = Math.floor(Math.random() * pages)
      // region.read goes to the backend (with the pager's retries), not to the mapping.
      const got = Buffer.from(await region.read(p * pageSize, pageSize))
      const allowed = [Buffer.from(model.confirmed.subarray(p * pageSize, (p + 1) * pageSize)), ...(model.since.get(p) ?? [])]
      expect(allowed.some((a) => a.equals(got)), `page ${p}`).toBe(true)
    }
  }

  async function nodesTable(): Promise<string[][]> {
    for (const s of cluster.servers) {
      try {
        const c = s.client({ retryStrategy: () => null })
        try {
          return ((await c.call('CLUSTER', 'NODES')) as string).trim().split('\n').map((l) => l.split(' '))
        } finally {
          c.disconnect()
        }
      } catch {
        // that node is down: ask the next
      }
    }
    throw new Error('no cluster node answers')
  }

  async function untilTrue(what: string, check: () => Promise<boolean>, during: () => Promise<void>, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await during()
    }
  }

  /** A namespace on this suite's cluster holding `size` random bytes, written without page-read connections. */
  async function seeded(label: string): Promise<{ spec: BackendSpec; data: Buffer }> {
    const spec = clusterSpec(uniqueNamespace(label), {}, cluster.nodes)
    const writer = await openRegion({ size, pageSize, backend: { ...spec, pageReadConnection: false } })
    const data = randomBytes(size)
    writer.view().set(data)
    await writer.close()
    return { spec, data }
  }

  it('reads pages over one page-read connection per master, and none with pageReadConnection false', async () => {
    const { spec, data } = await seeded('pagereads')
    const masters = (await nodesTable()).filter((f) => f[2]!.includes('master')).map((f) => cluster.server(f[1]!.split('@')[0]!))
    expect(masters).toHaveLength(3)
    const pageConnections = () =>
      Promise.all(
        masters.map(async (m) => {
          const c = m.client()
          try {
            return String(await c.call('CLIENT', 'LIST')).split('\n').filter((l) => / name=faultline-pages /.test(l)).length
          } finally {
            c.disconnect()
          }
        }),
      )
    for (const enabled of [true, false]) {
      const region = await openRegion({ pageSize, backend: { ...spec, pageReadConnection: enabled }, access: 'read-only' })
      try {
        expect(Buffer.from(region.view()).equals(data)).toBe(true)
        expect(await pageConnections()).toEqual(enabled ? [1, 1, 1] : [0, 0, 0])
      } finally {
        await region.close()
      }
    }
    expect(await pageConnections()).toEqual([0, 0, 0])
  })

  it('a slot in migration (ASK) is read through ioredis, which follows the redirection; then MOVED, the same', async () => {
    const { spec, data } = await seeded('ask')
    const keys = redisKeys(spec)
    // Pages 0-15 share one slot (keys.ts).
    const slot = keySlot(keys.page(0))
    const table = await nodesTable()
    const owns = (f: string[]) => f.slice(8).some((r) => !r.startsWith('[') && (r.includes('-') ? Number(r.split('-')[0]) <= slot && slot <= Number(r.split('-')[1]) : Number(r) === slot))
    const source = table.find((f) => f[2]!.includes('master') && owns(f))!
    const target = table.find((f) => f[2]!.includes('master') && f[0] !== source[0])!
    const sourceServer = cluster.server(source[1]!.split('@')[0]!)
    const targetServer = cluster.server(target[1]!.split('@')[0]!)
    const src = sourceServer.client()
    const dst = targetServer.client()
    const redirections = async (kind: string) => Number(new RegExp(`errorstat_${kind}:count=(\\d+)`).exec(String(await src.info('errorstats')))?.[1] ?? 0)
    const region = await openRegion({ pageSize, backend: spec, access: 'read-only' })
    try {
      // Every key of the slot moves, but the slot map still names the source: MGET there answers ASK.
      await dst.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source[0]!)
      await src.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target[0]!)
      await src.call('MIGRATE', '127.0.0.1', String(targetServer.port), '', '0', '5000', 'KEYS', ...Array.from({ length: 16 }, (_, p) => keys.page(p)))
      const asks = await redirections('ASK')
      expect(Buffer.from(await region.read(0, 16 * pageSize)).equals(data.subarray(0, 16 * pageSize))).toBe(true)
      // One ASK for the page-read connection's MGET, one for ioredis's before it followed.
      expect((await redirections('ASK')) - asks).toBeGreaterThanOrEqual(2)
      // The slot is the target's now; the region's slot map does not know yet.
      for (const server of [sourceServer, targetServer]) {
        const c = server.client()
        await c.call('CLUSTER', 'SETSLOT', slot, 'NODE', target[0]!)
        c.disconnect()
      }
      expect(Buffer.from(await region.read(0, 16 * pageSize)).equals(data.subarray(0, 16 * pageSize))).toBe(true)
      expect(Buffer.from(region.view()).equals(data)).toBe(true)
      expect(region.stats().fetchErrors).toBe(0)
    } finally {
      await region.close()
      src.disconnect()
      dst.disconnect()
    }
  })

  it('keeps reads and writes correct through resharding, a manual failover and a killed master', async () => {
    // waitReplicas 1: a flush resolves only once a replica holds its pages, so killing a master loses nothing acknowledged.
    const spec = clusterSpec(uniqueNamespace('migrate'), { commandTimeoutMs: 5000, waitReplicas: 1 }, cluster.nodes)
    const region = await openRegion({ size, pageSize, maxBatchPages: 32, backend: spec })
    const initial = randomBytes(size)
    const model: Model = { current: new Uint8Array(initial), confirmed: new Uint8Array(initial), since: new Map() }
    try {
      region.view().set(initial)
      await region.flush()

      // 1. Move 1000 slots, with their keys, from one master to another while writing and reading.
      const [from, to] = await cluster.masters()
      const slotsOf = (table: string[][], id: string) => table.find((f) => f[0] === id)!.slice(8).reduce((n, r) => n + (r.includes('-') ? Number(r.split('-')[1]) - Number(r.split('-')[0]) + 1 : 1), 0)
      const before = await nodesTable()
      const reshard = run('redis-cli', ['--cluster', 'reshard', from!.address, '--cluster-from', from!.id, '--cluster-to', to!.id, '--cluster-slots', '1000', '--cluster-yes'])
      let resharded: { code: number | null; output: string } | undefined
      void reshard.then((r) => (resharded = r))
      let rounds = 0
      while (resharded === undefined || rounds < 3) {
        await churn(region, model, true)
        rounds++
      }
      expect(resharded.code, resharded.output.slice(-2000)).toBe(0)
      const table = await nodesTable()
      expect(slotsOf(table, from!.id)).toBe(slotsOf(before, from!.id) - 1000)
      expect(slotsOf(table, to!.id)).toBe(slotsOf(before, to!.id) + 1000)

      // 2. A manual failover: a replica takes over its master's slots.
      const master = (await cluster.masters())[2]!
      const replicaId = table.find((f) => f[3] === master.id)![0]!
      const replica = cluster.server(table.find((f) => f[0] === replicaId)![1]!.split('@')[0]!)
      const rc = replica.client()
      await rc.call('CLUSTER', 'FAILOVER')
      rc.disconnect()
      await untilTrue('the replica to become a master', async () => (await nodesTable()).some((f) => f[0] === replicaId && /master/.test(f[2]!)), () => churn(region, model, true))
      for (let i = 0; i < 3; i++) await churn(region, model, true)

      // 3. A master dies (SIGKILL); its replica is promoted once the others agree it failed.
      // Until the dead node is back as the new master's replica, flushes cannot be confirmed.
      const victim = (await cluster.masters()).find((m) => m.id !== replicaId)!
      const victimReplica = (await nodesTable()).find((f) => f[3] === victim.id)![0]!
      const victimServer = cluster.server(victim.address)
      await victimServer.kill('SIGKILL')
      await untilTrue('the dead master to be replaced', async () => (await nodesTable()).some((f) => f[0] === victimReplica && /master/.test(f[2]!)), () => churn(region, model, false))
      await victimServer.launch()
      await untilTrue(
        'the restarted node to replicate the new master',
        async () => {
          const c = victimServer.client({ retryStrategy: () => null })
          try {
            return /master_link_status:up/.test(await c.info('replication')) && (await nodesTable()).some((f) => f[0] === victim.id && f[3] === victimReplica)
          } catch {
            return false
          } finally {
            c.disconnect()
          }
        },
        () => churn(region, model, false),
      )
      for (let i = 0; i < 3; i++) await churn(region, model, true)
      expect(region.stats().dirtyPages).toBe(0)
    } finally {
      await region.close()
    }

    const again = await openRegion({ size, pageSize, backend: spec, access: 'read-only' })
    try {
      expect(Buffer.from(await again.read(0, size)).equals(Buffer.from(model.current))).toBe(true)
    } finally {
      await again.close()
    }
  })
})

describe('redis cluster: a cluster that is not ok', () => {
  it('fails the open within twice connectTimeoutMs instead of hanging', async () => {
    // A cluster node with no slots assigned: cluster_state:fail, so ioredis's ready check keeps failing.
    const lone = await RedisServer.start({ cluster: true })
    try {
      const started = Date.now()
      const open = openRegion({ size: 1 << 20, backend: clusterSpec(uniqueNamespace('down'), { connectTimeoutMs: 1000 }, [lone.address]) })
      await expect(open).rejects.toMatchObject({ code: 'ERR_BACKEND', option: 'backend.url' })
      await expect(open).rejects.toThrow(/the cluster was not ready .* within 2000 ms/)
      expect(Date.now() - started).toBeLessThan(15_000)
    } finally {
      await lone.stop()
    }
  })
})
