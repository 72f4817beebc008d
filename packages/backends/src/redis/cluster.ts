/**
 * Page I/O against a Redis Cluster. A multi-key command must stay within one
 * slot and a pipeline within one node, so a batch is cut by slot (16
 * consecutive pages share one, see keys.ts) into MGET/MSET commands, and the
 * commands are sent as one pipeline per node, every node at once.
 *
 * ioredis re-sends a pipeline by itself only when all its failures are the
 * same redirection; during a slot migration or a failover a pipeline can come
 * back partly failed (MOVED for some slots, ASK or TRYAGAIN for others). Each
 * failed command is then sent again on its own through the Cluster client,
 * which follows MOVED/ASK, waits out TRYAGAIN/CLUSTERDOWN and refreshes the
 * slot map. Both MGET and MSET of whole pages are idempotent, so a re-send is safe.
 */
import type { Cluster } from 'ioredis'
import { chunks, settleAll, settleWithin, waitOn, type PageIo } from './io.js'
import type { PageReaderSlots } from './page-reader.js'
import { keySlot } from './slot.js'

interface Command {
  slot: number
  /** Positions in the caller's array. */
  positions: number[]
}

export class ClusterIo implements PageIo {
  /** Masters ("host:port") sent writes since the last waitReplicas. */
  private written = new Set<string>()

  /**
   * @param pipelineTimeoutMs how long a pipeline may take before its commands
   *   are sent again one by one (each bounded by the client's commandTimeout).
   */
  constructor(
    private readonly cluster: Cluster,
    private readonly keysPerCommand: number,
    private readonly pipelineTimeoutMs: number,
    /** Page reads' own connections to the masters (page-reader.ts), when enabled. */
    private readonly pageReads: PageReaderSlots | undefined,
  ) {}

  async get(keys: readonly string[]): Promise<Array<Buffer | null>> {
    const out: Array<Buffer | null> = new Array(keys.length).fill(null)
    if (this.pageReads !== undefined) {
      await settleAll(this.commands(keys).map(async (c) => this.getSlot(keys, c, out)))
      return out
    }
    await this.run(
      keys,
      (pipeline, c) => void pipeline.mgetBuffer(...c.positions.map((p) => keys[p]!)),
      (c) => this.cluster.mgetBuffer(...c.positions.map((p) => keys[p]!)),
      (c, values) => {
        const list = values as Array<Buffer | null>
        c.positions.forEach((p, i) => (out[p] = list[i] ?? null))
      },
    )
    return out
  }

  /**
   * One slot's MGET on the page-read connection to the slot's master. Any
   * failure there — a redirection (MOVED, ASK), TRYAGAIN, a lost connection —
   * sends it again through the Cluster client, which knows how to follow it
   * and refreshes the slot map; the next read then goes to the new master.
   */
  private async getSlot(keys: readonly string[], c: Command, out: Array<Buffer | null>): Promise<void> {
    const part = c.positions.map((p) => keys[p]!)
    const master = this.cluster.slots[c.slot]?.[0]
    const reader = master === undefined ? undefined : this.pageReads!.current(master)
    let values: Array<Buffer | null> | undefined
    if (reader !== undefined) values = await reader.mget(part).catch(() => undefined)
    values ??= await this.cluster.mgetBuffer(...part)
    c.positions.forEach((p, i) => (out[p] = values[i] ?? null))
  }

  async set(entries: ReadonlyArray<readonly [string, Buffer]>): Promise<void> {
    const args = (c: Command): Array<string | Buffer> => c.positions.flatMap((p) => [entries[p]![0], entries[p]![1]])
    try {
      await this.run(
        entries.map((e) => e[0]),
        (pipeline, c) => void pipeline.mset(...args(c)),
        (c) => this.cluster.mset(...args(c)),
        () => undefined,
      )
    } finally {
      // Looked up afterwards: a redirection during the write updated the slot map to the master that took it.
      for (const [key] of entries) {
        const master = this.cluster.slots[keySlot(key)]?.[0]
        if (master !== undefined) this.written.add(master)
      }
    }
  }

  async waitReplicas(replicas: number, timeoutMs: number): Promise<void> {
    const masters = [...this.written]
    this.written = new Set()
    const nodes = this.cluster.nodes('all')
    await settleAll(
      masters.map((key) => {
        const node = nodes.find((n) => `${n.options.host}:${n.options.port}` === key)
        if (node === undefined) return Promise.reject(new Error(`no connection to ${key}, which took writes, to confirm them`))
        return waitOn(node, key, replicas, timeoutMs)
      }),
    )
  }

  private async run(
    keys: readonly string[],
    queue: (pipeline: ReturnType<Cluster['pipeline']>, c: Command) => void,
    direct: (c: Command) => Promise<unknown>,
    accept: (c: Command, value: unknown) => void,
  ): Promise<void> {
    const byNode = new Map<string, Command[]>()
    for (const command of this.commands(keys)) {
      // The same grouping ioredis checks a pipeline against: a slot's master and replicas.
      const node = this.cluster.slots[command.slot]?.join(';') ?? ''
      const list = byNode.get(node)
      if (list === undefined) byNode.set(node, [command])
      else list.push(command)
    }
    await settleAll(
      [...byNode.values()].map(async (commands) => {
        let results: Array<[Error | null, unknown]> | null = null
        if (commands.length > 1) {
          const pipeline = this.cluster.pipeline()
          for (const c of commands) queue(pipeline, c)
          // A cluster pipeline waits for a slot map before it is sent, outside the
          // per-command timeout; in loaded test runs a close() of a 512 MiB region
          // stalled for minutes (test/backends/redis-large.test.ts) and such a
          // pipeline was a suspect. On expiry its commands are re-sent one by one
          // (MGET and MSET are idempotent) and a late reply is ignored.
          results = await settleWithin(pipeline.exec(), this.pipelineTimeoutMs)
        }
        await settleAll(
          commands.map(async (c, i) => {
            const result = results?.[i]
            accept(c, result !== undefined && result[0] === null ? result[1] : await direct(c))
          }),
        )
      }),
    )
  }

  /** Keys grouped by slot, in commands of at most keysPerCommand keys. */
  private commands(keys: readonly string[]): Command[] {
    const bySlot = new Map<number, number[]>()
    keys.forEach((key, position) => {
      const slot = keySlot(key)
      const list = bySlot.get(slot)
      if (list === undefined) bySlot.set(slot, [position])
      else list.push(position)
    })
    return [...bySlot].flatMap(([slot, positions]) => chunks(positions, this.keysPerCommand).map((part) => ({ slot, positions: part })))
  }
}
