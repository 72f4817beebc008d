/**
 * One writer per S3 page store, like the Redis lease: a read-write region
 * holds the object `<prefix>/faultline.lease`, renews it every `leaseMs / 3`
 * from the pager thread's loop and deletes it on close. A lease nobody renewed
 * for `leaseMs` is expired and may be taken over (a writer that died).
 *
 * Expiry is judged on the server's clock alone: the object's Last-Modified
 * against the Date of the response that read it, both whole seconds, so a
 * lease counts as expired only once that difference exceeds `leaseMs` + 1 s
 * (the holder's `leaseMs`, stored in the object). Client clocks never enter.
 *
 * Two protocols (see S3BackendOptions.writerLease):
 * - conditional: create with `If-None-Match: *`, renew and take over an
 *   expired lease with `If-Match: <etag>`; of two writers racing, the
 *   service lets exactly one through (412 for the other).
 * - unconditional (services that ignore conditional writes, found by a
 *   probe): read, write, read back. Every renewal reads first and stops at a
 *   foreign token, so a writer that lost a race is refused within a renewal
 *   period, but two opens within one round trip can both think they won.
 *
 * The holder refuses writes once it has not renewed for `leaseMs / 2`, well
 * before another writer may take the lease over. A write already sent is not
 * fenced: a PUT that the network holds for longer than that can still land
 * after a takeover.
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { FaultlineError } from '@faultline/contract'
import { isNotFound, s3Error, statusOf } from './errors.js'
import type { S3Config } from './options.js'

interface LeaseBody {
  format: 'faultline-lease'
  /** pid@hostname, for messages. */
  holder: string
  /** Random, known to the holder only. */
  token: string
  leaseMs: number
  /** Changes at every renewal, so every renewal changes the ETag. */
  renewal: number
}

interface Observed {
  body: LeaseBody | undefined
  etag: string
  /** Server time since the last write, in ms, from whole-second timestamps (±1 s). */
  ageMs: number
}

/** Whole-second timestamps: the true age may be up to a second more than measured. */
const CLOCK_SLACK_MS = 1000

export class S3Lease {
  private readonly timer: NodeJS.Timeout
  private lostTo: string | undefined
  /** performance.now() when the last successful renewal (or the acquiring write) was sent. */
  private renewedAt: number
  private renewal = 0
  private renewing: Promise<void> | undefined

  private constructor(
    private readonly config: S3Config,
    private readonly client: S3Client,
    private readonly key: string,
    private readonly holder: string,
    private readonly token: string,
    /** The ETag of our last write; undefined in the unconditional protocol. */
    private etag: string | undefined,
    sentAt: number,
    readonly conditional: boolean,
  ) {
    this.renewedAt = sentAt
    this.timer = setInterval(() => void this.renew().catch(() => undefined), Math.floor(config.leaseMs / 3))
    this.timer.unref()
  }

  static async acquire(config: S3Config, client: S3Client, key: string): Promise<S3Lease> {
    const conditional = await supportsConditionalWrites(config, client, `${key}-probe-${randomUUID()}`)
    if (!conditional && config.writerLease === 'conditional') {
      throw new FaultlineError(
        'ERR_BACKEND',
        `faultline: ${config.name}: the S3 service${config.endpoint === undefined ? '' : ` at ${config.endpoint}`} ignores conditional writes (a PUT with If-None-Match: * over an existing object succeeded), so it cannot guarantee one writer per page store. Use a service that honours them (AWS S3, MinIO, Cloudflare R2), open the region read-only, or accept a weaker lease with the backend option writerLease: 'best-effort' (docs/backends.md says what it does not guarantee)`,
        { option: 'backend.writerLease' },
      )
    }
    const holder = `${process.pid}@${hostname()}`
    const token = randomUUID()
    const body = (): string => JSON.stringify({ format: 'faultline-lease', holder, token, leaseMs: config.leaseMs, renewal: 0 } satisfies LeaseBody)
    const put = (condition: { IfNoneMatch?: string; IfMatch?: string }): Promise<string | undefined> =>
      client.send(new PutObjectCommand({ Bucket: config.bucket, Key: key, Body: body(), ContentType: 'application/json', ...condition })).then((r) => r.ETag)
    // A few rounds: the lease may be released or taken between our steps.
    for (let attempt = 0; attempt < 3; attempt++) {
      const sentAt = performance.now()
      if (conditional) {
        try {
          const etag = await put({ IfNoneMatch: '*' })
          return new S3Lease(config, client, key, holder, token, etag, sentAt, true)
        } catch (err) {
          if (!isPreconditionFailed(err)) throw s3Error(config.name, 'creating the writer lease (PutObject faultline.lease, If-None-Match: *)', err)
        }
      }
      const seen = await observe(config, client, key)
      if (seen !== undefined && !isExpired(seen)) throw locked(config, seen)
      if (!conditional) {
        try {
          await put({})
        } catch (err) {
          throw s3Error(config.name, 'writing the writer lease (PutObject faultline.lease)', err)
        }
        // Read back: of two writers that raced, the one whose write landed last wins.
        const after = await observe(config, client, key)
        if (after?.body?.token === token) return new S3Lease(config, client, key, holder, token, undefined, sentAt, false)
        if (after !== undefined) throw locked(config, after)
        continue
      }
      if (seen === undefined) continue // released since our If-None-Match: create it again
      try {
        const etag = await put({ IfMatch: seen.etag })
        return new S3Lease(config, client, key, holder, token, etag, sentAt, true)
      } catch (err) {
        if (!isPreconditionFailed(err)) throw s3Error(config.name, 'taking over an expired writer lease (PutObject faultline.lease, If-Match)', err)
      }
    }
    const last = await observe(config, client, key)
    throw last === undefined ? new FaultlineError('ERR_LOCKED', `faultline: ${config.name}: the writer lease changed hands three times while this region tried to take it; try again`, { option: 'access' }) : locked(config, last)
  }

  /**
   * Throws unless the lease is still ours and was renewed within
   * `leaseMs / 2`, renewing first if it is due; called before every write.
   */
  async ensure(): Promise<void> {
    if (this.lostTo === undefined && this.sinceRenewal() > this.config.leaseMs / 3) await this.renew().catch(() => undefined)
    if (this.lostTo !== undefined) {
      throw new FaultlineError('ERR_LOCKED', `faultline: ${this.config.name}: this region's writer lease expired and was taken by ${this.lostTo}; its writes are refused (the pages stay dirty)`)
    }
    const since = this.sinceRenewal()
    if (since > this.config.leaseMs / 2) {
      throw new FaultlineError(
        'ERR_LOCKED',
        `faultline: ${this.config.name}: this region could not renew its writer lease for ${Math.round(since)} ms (leaseMs ${this.config.leaseMs}); writes are refused until it can, so they never race a writer that takes the expired lease over (the pages stay dirty)`,
      )
    }
  }

  private sinceRenewal(): number {
    return performance.now() - this.renewedAt
  }

  private renew(): Promise<void> {
    this.renewing ??= this.renewOnce().finally(() => {
      this.renewing = undefined
    })
    return this.renewing
  }

  /** `adopted`: the ETag was just taken from a read of our own lease; a second 412 then means the service cannot match it. */
  private async renewOnce(adopted = false): Promise<void> {
    if (this.lostTo !== undefined) return
    const sentAt = performance.now()
    const Body = JSON.stringify({ format: 'faultline-lease', holder: this.holder, token: this.token, leaseMs: this.config.leaseMs, renewal: ++this.renewal } satisfies LeaseBody)
    if (this.conditional) {
      try {
        const res = await this.client.send(new PutObjectCommand({ Bucket: this.config.bucket, Key: this.key, Body, ContentType: 'application/json', IfMatch: this.etag }))
        this.etag = res.ETag
        this.renewedAt = sentAt
        return
      } catch (err) {
        if (!isPreconditionFailed(err)) throw err
      }
      // Someone else wrote it, or a renewal of ours landed after its request timed out.
      const seen = await observe(this.config, this.client, this.key)
      if (seen?.body?.token === this.token) {
        // Not renewed (so writes stop at leaseMs / 2) if even the stored ETag does not match.
        if (adopted) throw new Error(`the service refused If-Match with the lease's own ETag ${seen.etag}`)
        this.etag = seen.etag
        return this.renewOnce(true)
      }
      this.lostTo = seen?.body?.holder ?? 'another process (the lease object was deleted)'
      return
    }
    const seen = await observe(this.config, this.client, this.key)
    // A vanished lease object is lost too: writing it again would race a writer that found none and took it.
    if (seen === undefined || seen.body?.token !== this.token) {
      this.lostTo = seen === undefined ? 'another process (the lease object was deleted)' : (seen.body?.holder ?? 'another process')
      return
    }
    await this.client.send(new PutObjectCommand({ Bucket: this.config.bucket, Key: this.key, Body, ContentType: 'application/json' }))
    this.renewedAt = sentAt
  }

  /** Stops renewing and deletes the lease object if it is surely still ours. */
  async release(): Promise<void> {
    clearInterval(this.timer)
    await this.renewing?.catch(() => undefined)
    // Past leaseMs / 2 another writer may be about to take it over: leave it to expire.
    if (this.lostTo !== undefined || this.sinceRenewal() > this.config.leaseMs / 2) return
    if (!this.conditional) {
      const seen = await observe(this.config, this.client, this.key)
      if (seen?.body?.token !== this.token) return
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: this.key }))
  }
}

/**
 * Whether the service refuses a PUT with `If-None-Match: *` over an existing
 * object, and one with `If-Match` and a wrong ETag: one throwaway object,
 * written three times and deleted.
 */
async function supportsConditionalWrites(config: S3Config, client: S3Client, Key: string): Promise<boolean> {
  const put = (condition: { IfNoneMatch?: string; IfMatch?: string }): Promise<unknown> => client.send(new PutObjectCommand({ Bucket: config.bucket, Key, Body: 'faultline conditional-write probe', ...condition }))
  const refused = async (condition: { IfNoneMatch?: string; IfMatch?: string }): Promise<boolean> => {
    try {
      await put(condition)
      return false
    } catch (err) {
      if (isPreconditionFailed(err)) return true
      // Services that do not know the header may say so instead of ignoring it.
      if (statusOf(err) === 501 || statusOf(err) === 400) return false
      throw s3Error(config.name, 'probing for conditional writes (PutObject on a throwaway key)', err)
    }
  }
  try {
    await put({})
  } catch (err) {
    throw s3Error(config.name, 'probing for conditional writes (PutObject on a throwaway key)', err)
  }
  try {
    return (await refused({ IfNoneMatch: '*' })) && (await refused({ IfMatch: '"faultline-probe-no-such-etag"' }))
  } finally {
    await client.send(new DeleteObjectCommand({ Bucket: config.bucket, Key })).catch(() => undefined)
  }
}

/** The lease object as it is now, or undefined when there is none. */
async function observe(config: S3Config, client: S3Client, Key: string): Promise<Observed | undefined> {
  const command = new GetObjectCommand({ Bucket: config.bucket, Key })
  let date: string | undefined
  command.middlewareStack.add(
    (next) => async (args) => {
      const out = await next(args)
      const headers = (out.response as { headers?: Record<string, string> } | undefined)?.headers
      date = headers?.['date']
      return out
    },
    { step: 'deserialize', name: 'faultlineLeaseDate' },
  )
  let text: string
  let lastModified: Date | undefined
  let etag: string
  try {
    const res = await client.send(command)
    text = await res.Body!.transformToString()
    lastModified = res.LastModified
    etag = res.ETag ?? ''
  } catch (err) {
    if (isNotFound(err)) return undefined
    throw s3Error(config.name, 'reading the writer lease (GetObject faultline.lease)', err)
  }
  const now = date === undefined ? Date.now() : Date.parse(date)
  const ageMs = lastModified === undefined || Number.isNaN(now) ? 0 : now - lastModified.getTime()
  return { body: parseBody(text), etag, ageMs }
}

function parseBody(text: string): LeaseBody | undefined {
  try {
    const b = JSON.parse(text) as Partial<LeaseBody> | null
    if (b?.format === 'faultline-lease' && typeof b.token === 'string' && typeof b.holder === 'string' && Number.isSafeInteger(b.leaseMs)) return b as LeaseBody
  } catch {
    // not ours: treated as a lease of unknown holder
  }
  return undefined
}

function isExpired(seen: Observed): boolean {
  // A lease object we cannot read is held for the longest lease we allow by default.
  const leaseMs = seen.body?.leaseMs ?? 15_000
  return seen.ageMs > leaseMs + CLOCK_SLACK_MS
}

function locked(config: S3Config, seen: Observed): FaultlineError {
  const leaseMs = seen.body?.leaseMs ?? 15_000
  const left = Math.max(0, leaseMs + 2 * CLOCK_SLACK_MS - seen.ageMs)
  return new FaultlineError(
    'ERR_LOCKED',
    `faultline: ${config.name} is already open read-write by ${seen.body?.holder ?? 'another process'}; one writer per page store. Open it with access: 'read-only', or close the other region (a dead holder's lease expires within ${left} ms)`,
    { option: 'access' },
  )
}

function isPreconditionFailed(err: unknown): boolean {
  return statusOf(err) === 412 || (err as { name?: string } | undefined)?.name === 'PreconditionFailed'
}
