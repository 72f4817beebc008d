/**
 * S3 pages mode: a read-write page store. One object per page (not per group
 * of pages: a write-back hands the backend single dirty pages, and a group
 * object would need a read-modify-write, doubling traffic and racing other
 * writers of the group), so every PUT replaces exactly one whole page and a
 * page is never torn. A page of zeros is stored as no object at all: absent
 * objects read as zero pages.
 *
 *   <prefix>/faultline.json          geometry (see metadata.ts)
 *   <prefix>/faultline.lease         the writer's lease (see lease.ts)
 *   <prefix>/pages/<index, 10 hex>   page bytes, exactly pageSize long
 */
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { Backend, BackendContext, BackendInfo, PageWrite } from '@faultline/contract'
import { FaultlineError } from '@faultline/contract'
import type { Agents } from '../net/agents.js'
import { createLimiter, type Limiter } from '../net/limit.js'
import { settleWithin } from '../redis/io.js'
import { isNotFound, s3Error } from './errors.js'
import { S3Lease } from './lease.js'
import { checkGeometry, newMetadata, parseMetadata, type PageStoreMetadata } from './metadata.js'
import type { S3Config } from './options.js'

export function storeKeys(key: string): { metadata: string; lease: string; page: (index: number) => string; pagesPrefix: string } {
  const base = key === '' ? '' : `${key}/`
  return { metadata: `${base}faultline.json`, lease: `${base}faultline.lease`, pagesPrefix: `${base}pages/`, page: (index) => `${base}pages/${index.toString(16).padStart(10, '0')}` }
}

/** Reads the store's metadata; undefined when there is none. */
export async function readMetadata(config: S3Config, client: S3Client): Promise<PageStoreMetadata | undefined> {
  const keys = storeKeys(config.key)
  try {
    const res = await client.send(new GetObjectCommand({ Bucket: config.bucket, Key: keys.metadata }))
    return parseMetadata(await res.Body!.transformToString(), config.name)
  } catch (err) {
    if (isNotFound(err)) return undefined
    if (err instanceof FaultlineError) throw err
    throw s3Error(config.name, 'reading the page-store metadata (GetObject faultline.json)', err)
  }
}

export class S3PagesBackend implements Backend {
  readonly info: BackendInfo
  private readonly keys: ReturnType<typeof storeKeys>
  private readonly limit: Limiter
  private readonly zeroPage: Buffer

  private constructor(
    private readonly config: S3Config,
    private readonly client: S3Client,
    private readonly agents: Agents,
    private readonly context: BackendContext,
    meta: PageStoreMetadata,
    /** Pages holding data, when known (a store this open created): the rest are absent with no GET. */
    private readonly present: Set<number> | undefined,
    /** Held by a read-write region. */
    private readonly lease: S3Lease | undefined,
  ) {
    this.keys = storeKeys(config.key)
    this.limit = createLimiter(config.maxSockets)
    this.zeroPage = Buffer.alloc(context.pageSize)
    this.info = { name: config.name, size: meta.size, readOnly: context.readOnly, maxBatchPages: 64, freshReadBuffers: true, version: meta.createdAt === '' ? undefined : `created:${meta.createdAt}:${meta.size}:${meta.pageSize}` }
  }

  /** Opens the store at the config's prefix, creating it (read-write, with a size) when there is none. */
  static async open(config: S3Config, client: S3Client, agents: Agents, context: BackendContext, existing: PageStoreMetadata | undefined): Promise<S3PagesBackend> {
    if (context.readOnly) {
      if (existing === undefined) {
        throw new FaultlineError('ERR_BACKEND', `faultline: there is no page store at ${config.name} (no ${storeKeys(config.key).metadata}), and a read-only region cannot create one`, { option: 'backend.url' })
      }
      checkGeometry(existing, context, config.name)
      return new S3PagesBackend(config, client, agents, context, existing, undefined, undefined)
    }
    if (existing !== undefined) checkGeometry(existing, context, config.name)
    else if (context.size === undefined) {
      throw new FaultlineError('ERR_GEOMETRY', `faultline: there is no page store at ${config.name} yet: give \`size\` to create one`, { option: 'size' })
    }
    // The lease before anything is written, the metadata included.
    const lease = await S3Lease.acquire(config, client, storeKeys(config.key).lease)
    try {
      // Another writer may have created the store between our first look and the lease.
      const meta = existing ?? (await readMetadata(config, client))
      if (meta !== undefined) {
        checkGeometry(meta, context, config.name)
        return new S3PagesBackend(config, client, agents, context, meta, undefined, lease)
      }
      return await S3PagesBackend.create(config, client, agents, context, lease)
    } catch (err) {
      await lease.release().catch(() => undefined)
      throw err
    }
  }

  private static async create(config: S3Config, client: S3Client, agents: Agents, context: BackendContext, lease: S3Lease): Promise<S3PagesBackend> {
    const keys = storeKeys(config.key)
    let leftovers: boolean
    try {
      const list = await client.send(new ListObjectsV2Command({ Bucket: config.bucket, Prefix: keys.pagesPrefix, MaxKeys: 1 }))
      leftovers = (list.KeyCount ?? list.Contents?.length ?? 0) > 0
    } catch (err) {
      throw s3Error(config.name, 'ListObjectsV2', err)
    }
    const meta = newMetadata(context.size!, context.pageSize)
    try {
      await client.send(new PutObjectCommand({ Bucket: config.bucket, Key: keys.metadata, Body: JSON.stringify(meta), ContentType: 'application/json' }))
    } catch (err) {
      throw s3Error(config.name, 'creating the page-store metadata (PutObject faultline.json)', err)
    }
    // Page objects left under the prefix without metadata are read, never assumed absent.
    return new S3PagesBackend(config, client, agents, context, meta, leftovers ? undefined : new Set(), lease)
  }

  isAbsent(index: number): boolean {
    return this.present !== undefined && !this.present.has(index)
  }

  async read(indexes: readonly number[]): Promise<Array<Uint8Array | undefined>> {
    return Promise.all(indexes.map((index) => this.limit(() => this.readPage(index))))
  }

  private async readPage(index: number): Promise<Uint8Array | undefined> {
    let res
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: this.keys.page(index) }))
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw s3Error(this.config.name, `GetObject page ${index}`, err)
    }
    const body = res.Body as (NonNullable<typeof res.Body> & { destroy?: () => void }) | undefined
    if (body === undefined || res.ContentLength !== this.context.pageSize) {
      // Not read at all: it could be any size, and it is refused whatever it holds.
      body?.destroy?.()
      throw new FaultlineError('ERR_BAD_PAGE', `faultline: ${this.config.name}: page ${index} is stored as ${String(res.ContentLength)} bytes, expected ${this.context.pageSize}; it is not installed`, { pages: [index] })
    }
    try {
      return await body.transformToByteArray()
    } catch (err) {
      throw s3Error(this.config.name, `GetObject page ${index}`, err)
    }
  }

  async write(pages: readonly PageWrite[]): Promise<void> {
    if (this.info.readOnly) throw new FaultlineError('ERR_READ_ONLY', `faultline: ${this.info.name} is opened read-only`)
    await this.lease!.ensure()
    await Promise.all(pages.map((page) => this.limit(() => this.writePage(page))))
  }

  private async writePage({ index, data }: PageWrite): Promise<void> {
    const Key = this.keys.page(index)
    const zero = Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(this.zeroPage)
    try {
      if (zero) await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key }))
      else await this.client.send(new PutObjectCommand({ Bucket: this.config.bucket, Key, Body: data, ContentLength: data.byteLength }))
    } catch (err) {
      throw s3Error(this.config.name, `${zero ? 'DeleteObject' : 'PutObject'} page ${index}`, err)
    }
    if (zero) this.present?.delete(index)
    else this.present?.add(index)
  }

  async close(): Promise<void> {
    // Bounded, failures ignored: the lease expires by itself within leaseMs.
    if (this.lease !== undefined) await settleWithin(this.lease.release(), this.config.requestTimeoutMs)
    this.client.destroy()
    this.agents.destroy()
  }
}
