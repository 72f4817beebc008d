/**
 * One writer per namespace: a read-write region holds a lease key
 * (SET NX PX), renews it from the pager thread's loop, and deletes it on
 * close. If the process dies the key expires, and the namespace can be
 * opened read-write again `leaseMs` later. The value names the holder as
 * pid@hostname (plus a random token only the holder knows) so a refused
 * open can say who holds it.
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { FaultlineError } from '@faultline/contract'
import type { RedisClient } from './client.js'

// Extend our own lease; take it back if it expired while renewals could not
// get through and nobody else took it; otherwise return the new holder. 0:
// the metadata is gone, so the server lost the namespace (restarted empty,
// flushed): writing pages into it now would leave the rest reading as zeros.
const RENEW = `if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return v`
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`

export class Lease {
  private readonly timer: NodeJS.Timeout
  private lostTo: string | undefined
  private dataLost = false
  private renewing: Promise<void> | undefined

  private constructor(
    private readonly client: RedisClient,
    private readonly key: string,
    private readonly metaKey: string,
    private readonly value: string,
    private readonly leaseMs: number,
    private readonly name: string,
  ) {
    this.timer = setInterval(() => void this.renew().catch(() => undefined), Math.max(50, Math.floor(leaseMs / 3)))
    this.timer.unref()
  }

  static async acquire(client: RedisClient, key: string, metaKey: string, leaseMs: number, name: string): Promise<Lease> {
    const holder = `${process.pid}@${hostname()}`
    const value = `${holder} ${randomUUID()}`
    if ((await client.set(key, value, 'PX', leaseMs, 'NX')) === 'OK') return new Lease(client, key, metaKey, value, leaseMs, name)
    const [other, ttl] = await Promise.all([client.get(key), client.pttl(key)])
    throw new FaultlineError(
      'ERR_LOCKED',
      `faultline: ${name} is already open read-write by ${holderOf(other)}; one writer per namespace. Open it with access: 'read-only', or close the other region (a dead holder's lease expires within ${ttl > 0 ? ttl : leaseMs} ms)`,
      { option: 'access' },
    )
  }

  /**
   * Throws unless the lease is still ours and the namespace still exists.
   * Checked before every write (one round trip per batch), so nothing is
   * written after the lease was lost or into a namespace the server lost.
   */
  async ensure(): Promise<void> {
    if (this.lostTo === undefined) await this.renew()
    if (this.dataLost) throw lostData(this.name)
    if (this.lostTo !== undefined) {
      throw new FaultlineError('ERR_LOCKED', `faultline: ${this.name}: this region's writer lease expired and was taken by ${this.lostTo}; its writes are refused (the pages stay dirty)`)
    }
  }

  private renew(): Promise<void> {
    this.renewing ??= (async () => {
      try {
        const r = (await this.client.eval(RENEW, 2, this.key, this.metaKey, this.value, String(this.leaseMs))) as number | string
        // Not final: writes resume if the namespace is restored.
        this.dataLost = r === 0
        if (r !== 0 && r !== 1) this.lostTo = holderOf(String(r))
      } finally {
        this.renewing = undefined
      }
    })()
    return this.renewing
  }

  /** Stops renewing and deletes the key if it is still ours. */
  async release(): Promise<void> {
    clearInterval(this.timer)
    await this.renewing?.catch(() => undefined)
    if (this.lostTo === undefined) await this.client.eval(RELEASE, 1, this.key, this.value)
  }
}

/** The namespace's metadata vanished while the region was open: the server lost (some of) its data. */
export function lostData(name: string): FaultlineError {
  return new FaultlineError(
    'ERR_BACKEND',
    `faultline: ${name}: the region's metadata key is gone, so Redis lost this namespace's data (restarted without persistence, flushed, or evicted keys); its pages are not read as zeros nor written into the emptied namespace`,
  )
}

function holderOf(value: string | null): string {
  return value === null ? 'another process (whose lease just expired)' : (value.split(' ')[0] ?? 'another process')
}
