/**
 * `faultline serve`: a userfaultfd handler for other processes. Peers
 * connect to a Unix socket and pass their userfaultfd with a description of
 * the range they registered (Firecracker's protocol); each range is then
 * served from the backend by a pager thread of its own, with readahead,
 * coalescing and stats as for a region.
 */
import { existsSync, unlinkSync } from 'node:fs'
import { connect } from 'node:net'
import { constants, FEATURE_BITS, native } from '@faultline/native'
import type { BackendSpec } from '@faultline/contract'
import { FaultlineError, invalidOption } from '../errors.js'
import { DEFAULT_PAGE_SIZE, describe, normalizeOptions, type NormalizedOptions, type ReadaheadOptions } from '../options.js'
import type { PagerEvent } from '../pager/protocol.js'
import { redact } from '../backend/url.js'
import { Conversation, type ConversationHost } from './conversation.js'
import { servedPageSize, type PeerHello } from './handshake.js'
import { closeQuietly, PeerSession, processAlive, type PeerStatus } from './session.js'
import { RefusedPeer } from './refused.js'
import { inspectFd, UFFD_KIND } from './uffd-info.js'

/** Options of {@link serve}. */
export interface ServeOptions {
  /**
   * Path of the Unix socket to listen on. A socket file nobody listens on
   * any more (a server that crashed) is replaced; one with a live server
   * behind it is an error.
   */
  socket: string
  /** Where the peers' pages come from: a spec or URL, as for openRegion. Byte 0 of the object is offset 0 of a peer's mapping. */
  backend: BackendSpec | string
  /**
   * The fault unit for ranges aligned to it (address, size and offset);
   * other ranges are served in the system page size. Default 65536.
   */
  pageSize?: number
  /** Readahead per peer range, as for openRegion. */
  readahead?: ReadaheadOptions
  /** How long a fault may wait on a failing backend before the peer's access gets SIGBUS. Default 30000 ms. */
  fetchTimeoutMs?: number
  /** Most pages per backend request, as for openRegion. */
  maxBatchPages?: number
  /** Told of each peer that attaches, leaves or fails, one line each. Default: nothing. */
  log?: (line: string) => void
}

/** What `faultline serve --status` shows. */
export interface ServerStatus {
  socket: string
  backend: string
  /** Milliseconds since the server started listening. */
  uptimeMs: number
  /** Peers attached since the start, and handshakes refused. */
  attached: number
  refused: number
  peers: PeerStatus[]
}

/** How often a peer that closed its socket but still runs is checked for its exit. */
const EXIT_CHECK_MS = 500

export class FaultlineServer {
  private readonly sessions = new Map<number, PeerSession>()
  private readonly conversations = new Set<Conversation>()
  private readonly refusedPeers = new Set<RefusedPeer>()
  /** Attaches whose pager is still starting: close() waits for them, or their threads would outlive it. */
  private readonly attaching = new Set<Promise<unknown>>()
  private readonly listener: { stop(): void }
  private readonly started = Date.now()
  private nextId = 1
  private attached = 0
  private refused = 0
  private closing: Promise<void> | undefined

  private constructor(
    readonly socket: string,
    private readonly listenFd: number,
    private readonly options: ServeOptions,
    private readonly base: NormalizedOptions,
  ) {
    this.listener = native.pollFd(listenFd, () => this.acceptAll())
  }

  /** Starts listening on `options.socket`. */
  static async listen(options: ServeOptions): Promise<FaultlineServer> {
    const base = normalizeServeOptions(options)
    await reclaimStaleSocket(options.socket)
    const fd = native.unixListen(options.socket)
    return new FaultlineServer(options.socket, fd, options, base)
  }

  status(): ServerStatus {
    return {
      socket: this.socket,
      backend: typeof this.options.backend === 'string' ? redact(this.options.backend) : this.options.backend.type,
      uptimeMs: Date.now() - this.started,
      attached: this.attached,
      refused: this.refused,
      peers: [...this.sessions.values()].map((s) => s.status()),
    }
  }

  /** Writes every write-back peer's dirty pages to the backend; rejects with the first failure after trying all. */
  async flush(): Promise<void> {
    const results = await Promise.allSettled([...this.sessions.values()].map((s) => s.flush()))
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
  }

  /** Stops listening and closes every peer's pager (live peers are written back first). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.listener.stop()
      closeQuietly(this.listenFd)
      if (existsSync(this.socket)) unlinkSync(this.socket)
      for (const c of [...this.conversations]) c.close()
      for (const r of this.refusedPeers) r.close()
      await Promise.allSettled([...this.attaching])
      await Promise.allSettled([...this.sessions.values()].map((s) => s.close(!processAlive(s.peer.pid))))
      this.sessions.clear()
    })()
    return this.closing
  }

  private log(line: string): void {
    this.options.log?.(line)
  }

  private acceptAll(): void {
    for (;;) {
      const peer = native.unixAccept(this.listenFd)
      if (peer === null) return
      this.open(peer.fd, peer.pid)
    }
  }

  private open(fd: number, pid: number): void {
    this.conversations.add(new Conversation(fd, pid, this.conversationHost))
  }

  private readonly conversationHost: ConversationHost = {
    attach: (pid, hello, fds) => this.attach(pid, hello, fds),
    status: () => this.status(),
    refused: (pid, error) => {
      this.refused++
      this.log(`refused process ${pid}: ${error.message}`)
    },
    keepRefused: (uffd, pid) => this.keepRefused(uffd, pid),
    retire: (session, gone) => this.retire(session, gone),
    whenGone: (session) => this.whenGone(session),
    ended: (conversation) => this.conversations.delete(conversation),
  }

  private async attach(pid: number, hello: Extract<PeerHello, { kind: 'attach' }>, fds: number[]): Promise<PeerSession> {
    const [uffd, ...extra] = fds
    for (const fd of extra) closeQuietly(fd)
    if (uffd === undefined) throw new FaultlineError('ERR_PEER', 'faultline serve: the attach message came without a descriptor: pass the userfaultfd as SCM_RIGHTS with it')
    const passed = inspectFd(uffd)
    if (passed.kind !== UFFD_KIND) {
      closeQuietly(uffd)
      throw new FaultlineError('ERR_PEER', `faultline serve: the descriptor passed is not a userfaultfd but ${passed.kind}: pass the one the range is registered on`)
    }
    try {
      if (hello.writeBack && passed.features !== undefined && (passed.features & FEATURE_BITS.PAGEFAULT_FLAG_WP) === 0) {
        throw new FaultlineError('ERR_PEER', 'faultline serve: write_back needs a userfaultfd with write-protect faults: enable UFFD_FEATURE_PAGEFAULT_FLAG_WP in UFFDIO_API and register the range with UFFDIO_REGISTER_MODE_WP')
      }
      if (hello.writeBack && passed.features !== undefined && (passed.features & FEATURE_BITS.WP_ASYNC) !== 0) {
        throw new FaultlineError('ERR_PEER', 'faultline serve: write_back cannot track a userfaultfd with UFFD_FEATURE_WP_ASYNC (its writes raise no fault): leave that feature off')
      }
      const several = hello.mappings.length > 1
      if (several && hello.writeBack) {
        throw new FaultlineError('ERR_PEER', `faultline serve: write_back is served for one mapping per userfaultfd; ${hello.mappings.length} came: attach each written range with a userfaultfd of its own`)
      }
      const m = hello.mappings[0]!
      // One page size for all of them: the preferred one only if every range is aligned to it.
      const sizes = hello.mappings.map((r) => servedPageSize(r, this.base.pageSize, constants.SYSTEM_PAGE_SIZE!))
      const pageSize = Math.min(...sizes)
      const total = hello.mappings.reduce((sum, r) => sum + r.size, 0)
      const options: NormalizedOptions = { ...this.base, pageSize, size: total, access: hello.writeBack ? 'read-write' : 'read-only', maxBatchPages: Math.min(this.base.maxBatchPages, Math.floor((1 << 20) / pageSize) || 1) }
      const id = this.nextId++
      const onEvent = (e: PagerEvent): void => this.log(`peer ${id} (process ${pid}): ${e.type}: ${e.message}`)
      const ranges = several ? hello.mappings.map((r) => ({ address: r.address, size: r.size, offset: r.offset })) : undefined
      const starting = PeerSession.start(id, options, { uffd, pid, address: m.address, size: total, offset: m.offset, writeBack: hello.writeBack, ranges }, onEvent)
      this.attaching.add(starting)
      // Registered before close() can look: it waits for `starting` first.
      const session = await starting.finally(() => this.attaching.delete(starting))
      this.sessions.set(id, session)
      this.attached++
      const what = hello.mappings.map((r) => `0x${r.address.toString(16)} + ${r.size} bytes at offset ${r.offset}`).join(', ')
      this.log(`peer ${id}: process ${pid} attached ${what}${hello.writeBack ? ', write-back' : ''}`)
      return session
    } catch (err) {
      // A pager thread that failed to start leaves the descriptor to us.
      this.keepRefused(uffd, pid)
      throw err
    }
  }

  /** Faults of a refused peer get SIGBUS until it exits (see RefusedPeer). */
  private keepRefused(uffd: number, pid: number): void {
    // Anything but a userfaultfd cannot be poisoned (nor watched): just close it.
    if (!processAlive(pid) || this.closing !== undefined || inspectFd(uffd).kind !== UFFD_KIND) {
      closeQuietly(uffd)
      return
    }
    try {
      const r = new RefusedPeer(uffd, pid, () => this.refusedPeers.delete(r))
      this.refusedPeers.add(r)
    } catch (err) {
      this.log(`refused process ${pid}: its userfaultfd cannot be watched (${(err as Error).message}); closed`)
      closeQuietly(uffd)
    }
  }

  /** Peers attached or refused but still running: stopping the server now would leave their missing pages reading as zeros. */
  livePeers(): number {
    return [...this.sessions.values()].filter((s) => processAlive(s.peer.pid)).length + this.refusedPeers.size
  }

  /** The peer closed its socket: serve it until its process has exited. */
  private whenGone(session: PeerSession): void {
    // retire() logs its own failure; nobody else is waiting for it.
    const retireGone = (): void => void this.retire(session, true).catch(() => undefined)
    if (!processAlive(session.peer.pid)) {
      retireGone()
      return
    }
    const timer = setInterval(() => {
      if (processAlive(session.peer.pid) && this.closing === undefined) return
      clearInterval(timer)
      retireGone()
    }, EXIT_CHECK_MS)
  }

  private async retire(session: PeerSession, gone: boolean): Promise<void> {
    const dirty = session.stats().dirtyPages
    try {
      await session.close(gone)
      this.log(`peer ${session.id}: process ${session.peer.pid} ${gone ? 'exited' : 'detached'}${gone && dirty > 0 ? `; ${dirty} pages written since its last flush were lost with it` : ''}`)
    } catch (err) {
      this.log(`peer ${session.id}: closing its pager failed: ${(err as Error).message}`)
      throw err
    } finally {
      this.sessions.delete(session.id)
    }
  }
}

/** Starts a `faultline serve` handler in this process. */
export function serve(options: ServeOptions): Promise<FaultlineServer> {
  return FaultlineServer.listen(options)
}

function normalizeServeOptions(options: ServeOptions): NormalizedOptions {
  if (options === null || typeof options !== 'object') throw invalidOption('options', `must be an object like { socket, backend } (got ${describe(options)})`)
  const known = new Set(['socket', 'backend', 'pageSize', 'readahead', 'fetchTimeoutMs', 'maxBatchPages', 'log'])
  for (const key of Object.keys(options)) if (!known.has(key)) throw invalidOption(key, `is not an option of serve (known: ${[...known].join(', ')})`)
  if (typeof options.socket !== 'string' || options.socket === '') throw invalidOption('socket', `must be the path of a Unix socket (got ${describe(options.socket)})`)
  if (Buffer.byteLength(options.socket) > 107) throw invalidOption('socket', `must be at most 107 bytes long, the limit of a Unix socket address (got ${Buffer.byteLength(options.socket)})`)
  if (options.log !== undefined && typeof options.log !== 'function') throw invalidOption('log', `must be a function of one line (got ${describe(options.log)})`)
  const { backend, pageSize, readahead, fetchTimeoutMs, maxBatchPages } = options
  const spec: Record<string, unknown> = { backend, pageSize: pageSize ?? DEFAULT_PAGE_SIZE, readahead, fetchTimeoutMs, maxBatchPages }
  for (const k of Object.keys(spec)) if (spec[k] === undefined) delete spec[k]
  return normalizeOptions(spec)
}

/** Removes a socket file left by a server that is gone; refuses to take over a live one. */
async function reclaimStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
  if (live) throw invalidOption('socket', `${path} has a server listening already: stop it, or choose another path`)
  unlinkSync(path)
}
