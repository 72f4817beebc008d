/**
 * Page I/O against one Redis server: a batch becomes MGETs/MSETs of about
 * `commandBytes` each, all sent at once on the one connection (Redis answers
 * them in order; the socket stays busy while earlier replies are parsed).
 */
import type { Redis } from 'ioredis'
import { chunks, settleAll, waitOn, type PageIo } from './io.js'
import type { PageReaderSlot } from './page-reader.js'

export class StandaloneIo implements PageIo {
  constructor(
    private readonly client: Redis,
    private readonly keysPerCommand: number,
    /** Page reads' own connection (page-reader.ts), when enabled; ioredis while it is down. */
    private readonly pageReads: PageReaderSlot | undefined,
    /** Page writes' own connection (a PageReader too), when enabled; ioredis while it is down. */
    private readonly pageWrites: PageReaderSlot | undefined = undefined,
  ) {}

  async get(keys: readonly string[]): Promise<Array<Buffer | null>> {
    const reader = this.pageReads?.current()
    const mget = reader !== undefined ? (part: readonly string[]) => reader.mget(part) : (part: readonly string[]) => this.client.mgetBuffer(...part)
    // One command (a fault's read): no allSettled and flat() to wait through.
    if (keys.length <= this.keysPerCommand) return mget(keys)
    const parts = await settleAll(chunks(keys, this.keysPerCommand).map(mget))
    return parts.flat()
  }

  async set(entries: ReadonlyArray<readonly [string, Buffer]>): Promise<void> {
    const writer = this.pageWrites?.current()
    type Part = ReadonlyArray<readonly [string, Buffer]>
    const mset = writer !== undefined ? (part: Part): Promise<unknown> => writer.mset(part) : (part: Part): Promise<unknown> => this.client.mset(...part.flat())
    await settleAll(chunks(entries, this.keysPerCommand).map(mset))
  }

  waitReplicas(replicas: number, timeoutMs: number): Promise<void> {
    return waitOn(this.client, 'the server', replicas, timeoutMs)
  }
}
