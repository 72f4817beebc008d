/**
 * Page I/O against one Redis server: a batch becomes MGETs/MSETs of about
 * `commandBytes` each, all sent at once on the one connection (Redis answers
 * them in order; the socket stays busy while earlier replies are parsed).
 */
import type { Redis } from 'ioredis'
import { chunks, settleAll, waitOn, type PageIo } from './io.js'

export class StandaloneIo implements PageIo {
  constructor(
    private readonly client: Redis,
    private readonly keysPerCommand: number,
  ) {}

  async get(keys: readonly string[]): Promise<Array<Buffer | null>> {
    const parts = await settleAll(chunks(keys, this.keysPerCommand).map((part) => this.client.mgetBuffer(...part)))
    return parts.flat()
  }

  async set(entries: ReadonlyArray<readonly [string, Buffer]>): Promise<void> {
    await settleAll(chunks(entries, this.keysPerCommand).map((part) => this.client.mset(...part.flat())))
  }

  waitReplicas(replicas: number, timeoutMs: number): Promise<void> {
    return waitOn(this.client, 'the server', replicas, timeoutMs)
  }
}
