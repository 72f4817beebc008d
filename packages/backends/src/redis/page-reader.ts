/**
 * A second connection to a server (on a Cluster, one per master), for page
 * reads only (MGET). Its replies are parsed by resp-parser.ts from one reused
 * socket buffer into pooled page buffers, so a page costs one copy into
 * memory already touched. Through ioredis the same page costs a
 * concatenation into a new buffer on each reply, which a CPU profile put at
 * most of the pager's time in a loopback scan (docs/benchmarks.md).
 * A standalone read-write region has a third, of the same class, for page
 * writes (MSET, sent with writev: ioredis copies every value into a new
 * command buffer first, the largest cost of a flush in a CPU profile).
 * Everything else — the lease, metadata, WAIT, redirections, TLS — stays
 * on ioredis.
 *
 * Redis runs commands of all connections in the order they arrive, so a read
 * sent after a write's reply came back sees that write on either connection.
 */
import net from 'node:net'
import { RespParser, RedisReplyError, type RespReply } from './resp-parser.js'

export interface PageReaderOptions {
  /** An IP address (resolve.ts): net.connect would look names up on the threadpool. */
  host: string
  port: number
  username: string | undefined
  password: string | undefined
  db: number
  connectTimeoutMs: number
  commandTimeoutMs: number
  /** A buffer for each bulk value of `length` bytes. */
  allocate: (length: number) => Buffer
  /** The longest value taken from the server (default 512 MiB); a longer length breaks the connection. */
  maxValueLength?: number
  /** The connection's name in CLIENT LIST. Default `faultline-pages`. */
  name?: string
  /** Bytes the kernel hands over per read. Default 256 KiB (4 pages of 64 KiB); a connection that only writes gets back little more than `+OK`s. */
  readBufferBytes?: number
}

interface Pending {
  resolve(reply: RespReply): void
  reject(err: Error): void
  /** performance.now() by which its reply must have come. */
  due: number
}

/** A page-read connection lost sooner than this after it was made counts as a failed attempt (backoff grows). */
const SHORT_LIFE_MS = 5_000

/** Bytes the kernel hands over per read: 4 pages of 64 KiB. */
const READ_BUFFER_BYTES = 256 * 1024

export class PageReader {
  private readonly pending: Pending[] = []
  private readonly parser: RespParser
  private socket: net.Socket | undefined
  private failure: Error | undefined
  /**
   * commandTimeoutMs for every command in flight, on one timer: replies come
   * in order, so the oldest command is the one due first. The timer is not
   * cleared when a reply comes (a setTimeout + clearTimeout per page read was
   * a measurable part of a fault: docs/experiments/redis-random-faults.md);
   * it fires when the command it was armed for was due and, if an older one
   * is still waiting by then, fails the connection, else is armed again for
   * the oldest left.
   */
  private timer: NodeJS.Timeout | undefined

  private constructor(private readonly options: PageReaderOptions) {
    this.parser = new RespParser(
      options.allocate,
      (reply) => {
        const next = this.pending.shift()
        if (next !== undefined) next.resolve(reply)
        else this.fail(new Error('Redis sent a reply to no command: the connection is out of step'))
      },
      { maxBulkLength: options.maxValueLength },
    )
  }

  /**
   * Connects, authenticates and selects the database; rejects if any of
   * that fails, or when `signal` aborts (the connection is then closed).
   */
  static async connect(options: PageReaderOptions, signal?: AbortSignal): Promise<PageReader> {
    const reader = new PageReader(options)
    const abort = (): void => reader.fail(new Error('the page-read connection was closed while connecting'))
    signal?.addEventListener('abort', abort)
    try {
      if (signal?.aborted === true) abort()
      await reader.open()
      if (options.password !== undefined) {
        await reader.command(options.username === undefined ? ['AUTH', options.password] : ['AUTH', options.username, options.password])
      }
      if (options.db !== 0) await reader.command(['SELECT', String(options.db)])
      // A name shows up in CLIENT LIST. A proxy or an ACL that refuses CLIENT
      // is no reason to go without; any other error (maxclients, DENIED) is.
      await reader.command(['CLIENT', 'SETNAME', options.name ?? 'faultline-pages']).catch((err: unknown) => {
        if (!(err instanceof RedisReplyError && /unknown (sub)?command|NOPERM/i.test(err.message))) throw err
      })
    } catch (err) {
      reader.close()
      throw err
    } finally {
      signal?.removeEventListener('abort', abort)
    }
    return reader
  }

  /** False once the connection failed or was closed: make a new reader. */
  get usable(): boolean {
    return this.failure === undefined
  }

  /** MGET: the values of `keys` in order, null where a key is absent. */
  async mget(keys: readonly string[]): Promise<Array<Buffer | null>> {
    const reply = await this.command(['MGET', ...keys])
    if (!Array.isArray(reply) || reply.length !== keys.length || reply.some((v) => v !== null && !Buffer.isBuffer(v))) {
      const error = new Error('MGET got a reply that is not one value per key')
      this.fail(error)
      throw error
    }
    return reply as Array<Buffer | null>
  }

  /**
   * MSET of whole values, sent with one writev: the values go from the
   * caller's buffers to the kernel without being copied into a command
   * buffer first (ioredis concatenates every argument into a new one). The
   * buffers must stay unchanged until the promise settles. Redis runs a
   * command it received whole, or (the connection cut short) not at all.
   */
  async mset(entries: ReadonlyArray<readonly [key: string, value: Buffer]>): Promise<void> {
    const reply = await this.request((socket) => {
      socket.cork()
      let head = `*${2 * entries.length + 1}\r\n$4\r\nMSET\r\n`
      for (const [key, value] of entries) {
        socket.write(`${head}$${Buffer.byteLength(key)}\r\n${key}\r\n$${value.length}\r\n`)
        socket.write(value)
        head = '\r\n'
      }
      socket.write(head)
      socket.uncork()
    })
    if (reply !== 'OK') {
      const error = new Error(`MSET got ${JSON.stringify(String(reply))} instead of OK`)
      this.fail(error)
      throw error
    }
  }

  close(): void {
    this.fail(new Error('the page-read connection was closed'))
  }

  private open(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    const { host, port, connectTimeoutMs } = this.options
    // One buffer for every read: the kernel copies into memory that stays warm.
    const buffer = Buffer.allocUnsafe(this.options.readBufferBytes ?? READ_BUFFER_BYTES)
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true, onread: { buffer, callback: (bytes) => this.onData(bytes, buffer) } })
      this.socket = socket
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`connecting to ${host}:${port} took longer than connectTimeoutMs (${connectTimeoutMs} ms)`))
      }, connectTimeoutMs)
      socket.once('connect', () => {
        clearTimeout(timer)
        resolve()
      })
      socket.on('error', (err) => {
        clearTimeout(timer)
        reject(err)
        this.fail(err)
      })
      socket.on('close', () => {
        clearTimeout(timer)
        reject(this.failure ?? new Error('the connection to Redis was closed while connecting'))
        this.fail(new Error('the connection to Redis was lost'))
      })
    })
  }

  private command(args: readonly string[]): Promise<RespReply> {
    return this.request((socket) => socket.write(encode(args)))
  }

  /** Sends one command (`send` writes it to the socket) and resolves with its reply; an error reply rejects. */
  private request(send: (socket: net.Socket) => void): Promise<RespReply> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      this.pending.push({
        resolve: (reply) => {
          if (reply instanceof RedisReplyError) reject(reply)
          else resolve(reply)
        },
        reject,
        due: performance.now() + this.options.commandTimeoutMs,
      })
      if (this.timer === undefined) this.armTimer(this.options.commandTimeoutMs)
      send(this.socket!)
    })
  }

  private armTimer(ms: number): void {
    this.timer = setTimeout(() => this.onTimer(), Math.max(1, Math.ceil(ms)))
    // The socket keeps the thread alive while commands are in flight; this timer must not once they are answered.
    this.timer.unref()
  }

  private onTimer(): void {
    this.timer = undefined
    const oldest = this.pending[0]
    if (oldest === undefined || this.failure !== undefined) return
    const left = oldest.due - performance.now()
    if (left <= 0) this.fail(new Error(`Redis did not answer in time (commandTimeoutMs, ${this.options.commandTimeoutMs} ms)`))
    else this.armTimer(left)
  }

  /** Always true: returning false would pause the socket. */
  private onData(bytes: number, buffer: Buffer): boolean {
    if (this.failure !== undefined) return true
    try {
      this.parser.feed(buffer, bytes)
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)))
    }
    return true
  }

  /** Fails every command in flight and the connection for good: replies after a failure cannot be matched up. */
  private fail(err: Error): void {
    if (this.failure !== undefined) return
    this.failure = err
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.socket?.destroy()
    for (const p of this.pending.splice(0)) p.reject(err)
  }
}

/** A command in RESP: an array of bulk strings. */
function encode(args: readonly string[]): string {
  let out = `*${args.length}\r\n`
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`
  return out
}

/**
 * The page-read connection over the backend's life: made at open, and made
 * again in the background after it fails, with backoff. Until it is up,
 * page reads take the ioredis connection.
 */
export class PageReaderSlot {
  private reader: PageReader | undefined
  private connectedAt = 0
  /** Aborts the connect under way, if any. */
  private connecting: AbortController | undefined
  private closed = false
  private retryAt = 0
  private backoffMs = 0

  constructor(private readonly connectOne: (signal: AbortSignal) => Promise<PageReader>) {}

  /** The first connection; if it fails, reads start on ioredis and this retries later. */
  start(): Promise<void> {
    return this.attempt()
  }

  /** The reader if it is up; otherwise undefined, and a reconnect is under way unless one failed just now. */
  current(): PageReader | undefined {
    if (this.reader?.usable === true) return this.reader
    if (this.reader !== undefined) {
      this.reader = undefined
      // A connection that dies soon after it was made (a server at maxclients
      // that accepts, then drops) must not be remade at once, again and again.
      if (performance.now() - this.connectedAt < SHORT_LIFE_MS) this.backOff()
      else this.backoffMs = 0
    }
    if (this.connecting === undefined && !this.closed && performance.now() >= this.retryAt) void this.attempt()
    return undefined
  }

  close(): void {
    this.closed = true
    this.connecting?.abort()
    this.reader?.close()
    this.reader = undefined
  }

  private async attempt(): Promise<void> {
    const connecting = new AbortController()
    this.connecting = connecting
    try {
      const reader = await this.connectOne(connecting.signal)
      if (this.closed) reader.close()
      else {
        this.reader = reader
        this.connectedAt = performance.now()
      }
    } catch {
      this.backOff()
    } finally {
      this.connecting = undefined
    }
  }

  private backOff(): void {
    this.backoffMs = Math.min(Math.max(2 * this.backoffMs, 500), 30_000)
    this.retryAt = performance.now() + this.backoffMs
  }
}

/**
 * One page-read connection per server ("host:port"), for a Cluster's
 * masters: a slot's reads go to the master the slot map names.
 */
export class PageReaderSlots {
  private readonly slots = new Map<string, PageReaderSlot>()
  private closed = false

  constructor(private readonly connectTo: (host: string, port: number, signal: AbortSignal) => Promise<PageReader>) {}

  /** Connects to these servers now; a failure leaves their reads on ioredis for a while. */
  async start(addresses: readonly string[]): Promise<void> {
    await Promise.all(addresses.map((address) => this.slot(address).start()))
  }

  /** The reader for `address` if it is up; otherwise undefined, and it is being connected. */
  current(address: string): PageReader | undefined {
    if (this.closed) return undefined
    return this.slot(address).current()
  }

  close(): void {
    this.closed = true
    for (const slot of this.slots.values()) slot.close()
  }

  private slot(address: string): PageReaderSlot {
    let slot = this.slots.get(address)
    if (slot === undefined) {
      const colon = address.lastIndexOf(':')
      const host = address.slice(0, colon).replace(/^\[|\]$/g, '')
      const port = Number(address.slice(colon + 1))
      slot = new PageReaderSlot((signal) => this.connectTo(host, port, signal))
      this.slots.set(address, slot)
    }
    return slot
  }
}
