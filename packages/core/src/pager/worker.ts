/**
 * Entry point of a pager thread. For each region it serves it owns the
 * backend, the mapping's userfaultfd and the fault service; a thread may
 * serve several regions at once (see threads.ts), each over a message port
 * of its own. Its event loop is its own: the application's threads may all
 * be asleep in page faults while it runs.
 */
import { writeSync } from 'node:fs'
import { parentPort, threadId, type MessagePort } from 'node:worker_threads'
import { native, featureNames, FEATURE_BITS, registerModeBits, systemPageSize, type Installer, type Watcher } from '@faultline/native'
import { createBackend } from '../backend/load.js'
import { readRange } from '../backend/read-range.js'
import type { Backend } from '@faultline/contract'
import { FaultlineError, serializeError } from '../errors.js'
import { DEFAULT_READAHEAD_BYTES, resolveGeometry } from '../options.js'
import { StatsWriter, nativeServeSlots } from '../stats.js'
import { Pager } from './pager.js'
import { PoolMember, ResidentPool } from '../pool.js'
import { ViewSet } from '../views.js'
import type { PagerRequest, PagerStartData, PagerToHost } from './protocol.js'
import type { PeerAttach, PeerLayout, PeerRange } from './peer.js'
import { PageSet } from './pageset.js'
import type { SharedSegment } from '../shared/segment.js'

const thread = parentPort!

/** What the thread must do for a region it serves if the thread dies of a bug. */
interface Served {
  /** Hands the uffd to the native poisoner: faults get SIGBUS instead of hanging. */
  guard?: () => void
  /** A shared region: resets this thread's claims, which would otherwise look alive while the process runs. */
  abandonShared?: () => void
}
/** The regions this thread serves now. */
const served = new Set<Served>()

/** Messages decoded per readable event; the kernel queues one per faulting thread. */
const WATCH_CAPACITY = 512

/** The shortest stall the pager's watchdog takes for a stuck thread. */
const WATCHDOG_FLOOR_MS = 5_000

async function start(data: PagerStartData, port: MessagePort): Promise<void> {
  const { options, stats: statsBuffer, peer } = data
  const post = (msg: PagerToHost): void => port.postMessage(msg)
  const me: Served = {}
  served.add(me)
  let backend: Backend | undefined
  let fd = -1
  let watcher: Watcher | undefined
  let installer: Installer | undefined
  let address = 0
  let segment: SharedSegment | undefined
  try {
    const parts = await loadParts(options, peer)
    backend = peer === undefined ? await createBackend(options.backend, { pageSize: options.pageSize, size: options.size, readOnly: options.access === 'read-only' }) : await openForPeer(peer, options)
    // A peer's range starts at its offset into the object; pages it gives back read as zeros.
    let layout: PeerLayout | undefined
    const removed = new PageSet(peer === undefined ? 0 : peer.size / options.pageSize)
    if (peer !== undefined) {
      const end = backend.info.size
      for (const r of peer.ranges ?? [peer]) {
        if (end !== undefined && r.offset >= end) {
          throw new FaultlineError('ERR_GEOMETRY', `faultline serve: the range's offset ${r.offset} is at or past the end of ${backend.info.name} (${end} bytes)`, { option: 'offset' })
        }
      }
      layout = new parts.peer!.PeerLayout(peer, options.pageSize)
      backend = parts.peer!.offsetBackend(backend, layout, options.pageSize, removed)
    }
    const readOnly = options.access === 'read-only' || backend.info.readOnly
    if (options.access === 'read-write' && backend.info.readOnly) {
      throw new FaultlineError('ERR_READ_ONLY', `faultline: ${backend.info.name} cannot store pages, so the region cannot be opened read-write; open it with access: 'read-only' (writes then stay private to this process)`, { option: 'access' })
    }
    if (!readOnly && backend.write === undefined) {
      throw new FaultlineError('ERR_READ_ONLY', `faultline: ${backend.info.name} says it is writable but has no write(); fix the backend or open the region read-only`, { option: 'backend' })
    }
    if (options.shared !== undefined && !readOnly) {
      throw new FaultlineError('ERR_INVALID_OPTION', `faultline: option \`shared\` needs access: 'read-only': ${backend.info.name} can store pages, and a cache shared between processes cannot take one process's writes`, { option: 'shared' })
    }
    const { size, dataSize } = peerGeometry(peer) ?? resolveGeometry(options.size, backend.info.size, options.pageSize)
    // A shared region's maxResident bounds the machine's cache (the segment's evictor), not this process's.
    if (options.shared !== undefined) {
      segment = parts.shared!.SharedSegment.open({
        dir: options.shared.dir,
        name: options.shared.name,
        identity: { backend: `${options.backend.type} ${backend.info.name}`, version: backend.info.version, size, pageSize: options.pageSize },
        budgetPages: options.maxResident === undefined ? 0 : Math.floor(options.maxResident / options.pageSize),
      })
    }
    // Eviction needs writers to block while a page is dropped: sync tracking.
    const bounded = segment === undefined && (options.maxResident !== undefined || options.residentPool !== undefined)
    // A peer's pages are read with process_vm_readv, which needs them present: sync tracking only.
    const tracking = readOnly ? 'none' : peer !== undefined ? 'sync-wp' : chooseTracking(bounded ? 'sync' : options.writeTracking)
    const huge = options.hugePageSize
    if (huge !== 0) parts.huge!.checkHugeFeatures(native.probe().features, huge, tracking !== 'none')
    const features =
      FEATURE_BITS.THREAD_ID |
      (tracking === 'none' ? 0 : FEATURE_BITS.PAGEFAULT_FLAG_WP) |
      (tracking === 'async-wp' ? FEATURE_BITS.WP_ASYNC : 0) |
      (huge === 0 ? 0 : FEATURE_BITS.MISSING_HUGETLBFS | (tracking === 'none' ? 0 : FEATURE_BITS.WP_HUGETLBFS_SHMEM)) |
      (segment === undefined ? 0 : FEATURE_BITS.MISSING_SHMEM)
    // A peer mapped and registered its range itself, on the descriptor it sent.
    const uffd = peer === undefined ? openUffd(features) : { fd: peer.uffd, userModeOnly: false }
    fd = uffd.fd
    // A shared region maps the cache's pages file MAP_SHARED, PROT_READ: what one process installs, all see.
    address = peer?.address ?? (segment !== undefined ? native.mapSharedFile(segment.pagesFd, size, false) : huge === 0 ? native.mapAnonymous(size) : parts.huge!.mapHuge(size, huge))
    // The kernel fills and skips a hugetlb region one huge page at a time.
    const fillUnit = huge === 0 ? systemPageSize : huge
    if (peer === undefined) native.uffdRegister(fd, address, size, registerModeBits({ missing: true, wp: tracking !== 'none' }))
    const stats = new StatsWriter(statsBuffer)
    const several = layout?.several === true ? layout : undefined
    const pager = new Pager({ fd, address, size, pageSize: options.pageSize, fillUnit, hugetlb: huge !== 0, addressOf: several === undefined ? undefined : (p) => several.addressOf(p), maxBatchPages: Math.min(options.maxBatchPages, backend.info.maxBatchPages ?? Infinity), maxPartPages: backend.info.maxBatchPages ?? MAX_PART_PAGES, fetchTimeoutMs: options.fetchTimeoutMs, readaheadPages: readaheadPages(options, backend.info.readaheadBytes) }, backend, stats, post)
    pager.shared = segment
    if (segment !== undefined) {
      const attached = segment
      me.abandonShared = () => attached.abandon()
    }
    const memory = peer === undefined ? new ViewSet(address, size, 'pager') : new parts.peer!.PeerMemory(peer)
    if (tracking !== 'none') {
      pager.writeBack = new parts.writes!.WriteBack(
        { fd, address, size, pageSize: options.pageSize, mode: tracking, batchPages: Math.min(options.maxBatchPages, backend.info.maxBatchPages ?? 64), intervalMs: options.writeBack.intervalMs, maxDirtyBytes: options.writeBack.maxDirtyBytes, scanWritten: tracking === 'async-wp' ? parts.scan!.makeWrittenScanner(address, size, options.pageSize) : undefined },
        backend,
        memory,
        stats,
        post,
      )
    }
    const served = peer
    const screen = { removed, forget: (p: number) => pager.forgetPage(p), onRemove: () => watcher?.dropFileSources(), warn: (m: string) => writeSync(2, `${m}\n`) }
    const onMessages = served === undefined
      ? (count: number, messages: Float64Array) => pager.onMessages(count, messages)
      : (count: number, messages: Float64Array) => pager.onMessages(count < 0 ? count : parts.peer!.screenPeerMessages(served, layout!, count, messages, screen), messages)
    watcher = native.watch(fd, WATCH_CAPACITY, onMessages, fillUnit)
    if (peer !== undefined) {
      pager.onBusy = () => drainQueued(fd, onMessages)
      if (pager.writeBack !== undefined) pager.writeBack.onBusy = pager.onBusy
    }
    if (backend.info.freshReadBuffers === true) {
      installer = native.createInstaller(fd, (count, results) => pager.onInstallerDone(count, results), fillUnit)
      pager.installer = installer
    }
    // The native watcher knows one run of addresses: a peer's several ranges are all served in JS.
    if (several === undefined) serveNatively(watcher, pager, backend, stats, { address, size, pageSize: options.pageSize })
    // The poisoners act on real addresses: the span of every range.
    const span = several === undefined ? { address, size } : spanOf(several.ranges)
    // If this thread dies of a bug, faults get SIGBUS instead of hanging (armed
    // only then: a thread torn down by process exit is not a dead pager).
    const guarded = watcher
    me.guard = () => guarded.poisonOnAbandon(span.address, span.size, peer?.pid ?? 0)
    if (Number.isFinite(options.fetchTimeoutMs)) {
      // Past the fetch deadline a waiting fault gets SIGBUS anyway; the floor
      // keeps a loaded machine's pauses from looking like a stuck thread.
      const stallMs = Math.max(options.fetchTimeoutMs, WATCHDOG_FLOOR_MS)
      watcher.armWatchdog(span.address, span.size, stallMs)
      pager.watchdog = { stallMs, drainTakeover: (out) => guarded.drainTakeover(out) }
      if (pager.writeBack !== undefined) pager.writeBack.beforeCollect = () => pager.absorbTakeoverWrites()
    }
    const tier = options.secondTierBytes > 0 ? new parts.tier!.SecondTier(options.secondTierBytes, options.pageSize, watcher) : undefined
    pager.secondTier = tier
    const pool = options.residentPool === undefined ? undefined : new PoolMember(options.residentPool, options.pageSize)
    if (bounded) {
      const limit = options.maxResident === undefined ? Infinity : Math.floor(options.maxResident / options.pageSize)
      pager.evictor = new parts.eviction!.Evictor(limit, address, options.pageSize, size / options.pageSize, {
        isResident: (p) => pager.isResident(p),
        dropResident: (p) => pager.dropResident(p),
        isDirty: (p) => pager.writeBack?.isDirty(p) ?? false,
        isInstalling: (p) => pager.isInstalling(p),
        flush: () => pager.writeBack?.flush() ?? Promise.resolve(),
        beforeDrop: tier === undefined ? undefined : (p) => tier.keep(p, memory.view(p * options.pageSize, options.pageSize)),
      }, stats, (err) => post({ kind: 'event', type: 'writeback-error', pages: [...((err as FaultlineError).pages ?? [])], message: String((err as Error).message) }), pool)
      const evictor = pager.evictor
      pool?.listen(() => evictor.onPoolPressure())
    }
    const opened = backend
    // region.read(): from the backend, not the mapping; close waits for them.
    const reads = new Set<Promise<unknown>>()
    const read = (offset: number, length: number): Promise<Uint8Array> => {
      const p = readRange(opened, { pageSize: options.pageSize, maxBatchPages: Math.min(options.maxBatchPages, opened.info.maxBatchPages ?? Infinity), fetchTimeoutMs: options.fetchTimeoutMs }, stats, offset, length)
      reads.add(p)
      p.then(
        () => reads.delete(p),
        () => reads.delete(p),
      )
      return p
    }
    serve(port, me, options.pageSize, pager, read, async (discard) => {
      // Write back first: if that fails the region stays fully alive and close() can be retried.
      // (A peer that is gone has no memory left to read: its unflushed writes are lost.)
      if (!discard) await pager.writeBack?.flush()
      pager.writeBack?.stop()
      pager.stop()
      guarded.stop()
      await pager.idle()
      installer?.stop()
      await Promise.allSettled(reads)
      pager.evictor?.release()
      if (memory instanceof ViewSet) {
        memory.close()
        native.uffdUnregister(fd, address, size)
      }
      // A peer's descriptor is the server's to close (session.ts), whether this thread closes or dies.
      if (peer === undefined) {
        native.closeFd(fd)
        native.retireMapping(address)
      }
      segment?.leave()
      await closeBackend(opened)
    })
    post({ kind: 'ready', threadId, address, size, dataSize, pageSize: options.pageSize, hugePages: huge !== 0, readOnly, writeTracking: tracking, backendName: backend.info.name, features: featureNames(features), userModeOnly: uffd.userModeOnly, shared: segment === undefined ? undefined : { ctlAddress: segment.ctlAddress, ctlLength: segment.ctlLength, slot: segment.slot, path: segment.pagesPath } })
  } catch (err) {
    // Stop polling before the fd goes: libuv aborts on a closed fd it still watches.
    watcher?.stop()
    installer?.stop()
    // A peer's descriptor goes back to the server, which closes it.
    if (fd >= 0 && peer === undefined) native.closeFd(fd)
    if (address !== 0 && peer === undefined) native.retireMapping(address)
    segment?.leave()
    await backend?.close().catch(() => undefined)
    served.delete(me)
    post({ kind: 'failed', error: serializeError(err) })
    port.close()
  }
}

/**
 * The modules only some regions need, loaded (at once, in parallel) when a
 * region does: a pager thread starts ~12 ms sooner without them (~57 ms
 * with, here), and its first regions wait for that start.
 */
async function loadParts(options: PagerStartData['options'], peer: PeerAttach | undefined) {
  // `access` left out: the backend decides, so a writable one may need write-back.
  const writable = options.access !== 'read-only'
  const bounded = options.maxResident !== undefined || options.residentPool !== undefined
  const [peerParts, shared, huge, writes, scan, eviction, tier] = await Promise.all([
    peer === undefined ? undefined : import('./peer.js'),
    options.shared === undefined ? undefined : import('../shared/segment.js'),
    options.hugePageSize === 0 ? undefined : import('./huge.js'),
    writable ? import('./writeback.js') : undefined,
    writable ? import('./scan.js') : undefined,
    bounded ? import('./eviction.js') : undefined,
    options.secondTierBytes > 0 ? import('./second-tier.js') : undefined,
  ])
  return { peer: peerParts, shared, huge, writes, scan, eviction, tier }
}

/**
 * Faults on pages whose bytes are already here (staged readahead markers,
 * the second tier, a backend's shared memory) are installed by the watcher
 * before JS runs; the pager only keeps the books afterwards.
 */
function serveNatively(watcher: Watcher, pager: Pager, backend: Backend, stats: StatsWriter, region: { address: number; size: number; pageSize: number }): void {
  const pageCount = region.size / region.pageSize
  const readMode = pager.writeBack?.installMode(false) ?? 0
  const writeMode = pager.writeBack?.installMode(true) ?? 0
  watcher.serveNatively(region.address, region.pageSize, pageCount, readMode, writeMode, stats.cells, nativeServeSlots())
  pager.staging = watcher
  const shared = backend.sharedPages?.()
  if (shared !== undefined && shared.pages > 0) {
    pager.sharedPages = Math.min(shared.pages, pageCount)
    watcher.addSource(0, pager.sharedPages, shared.data)
  }
  // Not for a shared cache: a page the watcher installed would escape its table of claims, and its evictor.
  const file = pager.shared === undefined ? backend.filePages?.() : undefined
  if (file !== undefined) watcher.addFileSource(0, pageCount, file.fd, file.offset ?? 0, file.length)
}

/**
 * Every page is written back by now, so a backend that does not finish
 * closing (a connection that never answers its goodbye) only leaks its
 * sockets until the thread ends: close() goes on after BACKEND_CLOSE_MS and
 * says so on stderr, rather than never resolving.
 */
async function closeBackend(backend: Backend): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), BACKEND_CLOSE_MS)
  })
  try {
    if ((await Promise.race([backend.close().then(() => 'closed' as const), late])) === 'late') {
      writeSync(2, `faultline: ${backend.info.name} did not finish closing within ${BACKEND_CLOSE_MS / 1000} s; the region is closed (every page was written back) and its connections are dropped with the pager thread\n`)
      // Its sockets would keep this thread (and so close()) alive.
      endAfterClose = true
    }
  } finally {
    clearTimeout(timer)
  }
}

const BACKEND_CLOSE_MS = 30_000
/** Largest readahead request for a backend that sets no limit of its own (maxBatchPages' own maximum). */
const MAX_PART_PAGES = 4096
/**
 * Set when a backend was left closing: its sockets would keep this thread
 * alive, so it takes no new region (close replies say `retiring`) and
 * ends, with process.exit, when the host retires it. Never before: the
 * host must have every close reply in hand first (a reply on a region's
 * port is not drained before the thread's exit is reported).
 */
let endAfterClose = false

/**
 * Readahead never takes more than a quarter of a resident bound (the region's or its pool's).
 * Over huge pages it is off unless asked for (or the backend prefers a window:
 * the remote ones): a fault already brings 2 MiB, and the window of a few
 * pages is all held markers, each copied twice before it is installed. A
 * local scan ran at 0.7–0.8 GB/s with it against 1.4–2.1 without.
 */
function readaheadPages(o: PagerStartData['options'], backendPrefers: number | undefined): number {
  const bytes = o.readaheadBytes ?? backendPrefers ?? (o.hugePageSize === 0 ? DEFAULT_READAHEAD_BYTES : 0)
  const bound = Math.min(o.maxResident ?? Infinity, o.residentPool === undefined ? Infinity : ResidentPool.attach(o.residentPool).maxBytes)
  return Math.min(Math.floor(bytes / o.pageSize), Math.floor(bound / o.pageSize / 4))
}

function chooseTracking(wanted: 'auto' | 'sync' | 'async'): 'sync-wp' | 'async-wp' {
  if (wanted === 'sync') return 'sync-wp'
  const offered = (native.probe().features & FEATURE_BITS.WP_ASYNC) !== 0
  if (offered) return 'async-wp'
  if (wanted === 'async') {
    throw new FaultlineError('ERR_UFFD_UNAVAILABLE', 'faultline: writeTracking "async" needs UFFD_FEATURE_WP_ASYNC (Linux 6.7+), which this kernel does not offer; use "sync" or "auto"', { option: 'writeTracking' })
  }
  return 'sync-wp'
}

function openUffd(features: number): ReturnType<typeof native.uffdOpen> {
  try {
    return native.uffdOpen(features, 'fallback')
  } catch (cause) {
    throw new FaultlineError(
      'ERR_UFFD_UNAVAILABLE',
      `faultline: userfaultfd is not available (${String((cause as Error).message)}). It needs Linux ≥ 4.11 and either root, CAP_SYS_PTRACE, sysctl vm.unprivileged_userfaultfd=1, or read-write access to /dev/userfaultfd.`,
      { cause },
    )
  }
}

/** First and last page a byte range of the region touches. */
function pagesOf(range: { offset: number; length: number }, pageSize: number): [number, number] {
  return [Math.floor(range.offset / pageSize), Math.floor((range.offset + range.length - 1) / pageSize)]
}

/**
 * Reads the messages queued on a peer's descriptor while an install is
 * refused with EAGAIN (a REMOVE event waits), and hands them to the pager
 * once the install is done. (The install in progress completes first: a
 * page being installed as its range is removed may get the backend's bytes.)
 */
function drainQueued(fd: number, onMessages: (count: number, messages: Float64Array) => void): void {
  // Called on every EAGAIN of a retry loop: read into one buffer, copy out only what came.
  const n = native.uffdRead(fd, drained)
  if (n <= 0) return
  const messages = drained.slice(0, n * 4)
  setImmediate(() => onMessages(n, messages))
}
const drained = new Float64Array(WATCH_CAPACITY * 4)

/**
 * A peer's range is a window on the whole object: the backend opens at the
 * object's own size. A store that does not exist yet is created just large
 * enough for the range.
 */
async function openForPeer(p: PeerAttach, options: PagerStartData['options']): Promise<Backend> {
  const context = { pageSize: options.pageSize, readOnly: options.access === 'read-only' }
  try {
    return await createBackend(options.backend, { ...context, size: undefined })
  } catch (err) {
    if (!(err instanceof FaultlineError && err.code === 'ERR_GEOMETRY' && err.option === 'size')) throw err
    return createBackend(options.backend, { ...context, size: Math.max(...(p.ranges ?? [p]).map((r) => r.offset + r.size)) })
  }
}

/** The smallest range of addresses holding every one of a peer's ranges. */
function spanOf(ranges: readonly PeerRange[]): { address: number; size: number } {
  const start = Math.min(...ranges.map((r) => r.address))
  return { address: start, size: Math.max(...ranges.map((r) => r.address + r.size)) - start }
}

/** A peer's range is what it declared; past the object's end it reads as zeros. */
function peerGeometry(peer: PeerAttach | undefined): { size: number; dataSize: number } | undefined {
  return peer === undefined ? undefined : { size: peer.size, dataSize: peer.size }
}

function serve(port: MessagePort, me: Served, pageSize: number, pager: Pager, read: (offset: number, length: number) => Promise<Uint8Array>, shutdown: (discard: boolean) => Promise<void>): void {
  const post = (msg: PagerToHost): void => port.postMessage(msg)
  let closing: Promise<void> | undefined
  const onRequest = (req: PagerRequest): void => {
    const reply = (error?: unknown): void => post(error === undefined ? { kind: 'reply', id: req.id } : { kind: 'reply', id: req.id, error: serializeError(error) })
    switch (req.op) {
      case 'read':
        read(req.offset, req.length).then(
          (bytes) => port.postMessage({ kind: 'reply', id: req.id, bytes } satisfies PagerToHost, [bytes.buffer as ArrayBuffer]),
          reply,
        )
        return
      case 'prefetch':
        pager.prefetch(...pagesOf(req, pageSize)).then(() => reply(), reply)
        return
      case 'advise':
        pager.advise(...pagesOf(req, pageSize), req.advice).then(() => reply(), reply)
        return
      case 'flush':
        // Read-only regions have nothing to write: their writes are private.
        ;(pager.writeBack?.flush() ?? Promise.resolve()).then(() => reply(), reply)
        return
      case 'close':
        closing ??= shutdown(req.discard === true)
        closing.then(
          () => {
            // The region is gone: this thread serves its others, waits for the next one, or is retired.
            port.off('message', onRequest)
            served.delete(me)
            post({ kind: 'reply', id: req.id, ...(endAfterClose ? { retiring: true } : {}) })
            port.close()
            // Waiting for the next region, this thread should not hold the last one's memory.
            if (served.size === 0 && !endAfterClose) setImmediate(releaseMemory)
          },
          (err: unknown) => {
            closing = undefined
            reply(err)
          },
        )
        return
    }
  }
  port.on('message', onRequest)
}

// A bug here must not leave faulting threads asleep: say what happened (the
// application's threads may all be asleep, so nobody else will), then end
// the thread; the watchers' abandon guards (poisonOnAbandon) turn every
// fault on the thread's regions into SIGBUS from then on.
process.on('uncaughtException', (err) => {
  try {
    for (const region of served) {
      region.guard?.()
      try {
        region.abandonShared?.()
      } catch {
        // the others then take the claims over once this process is gone
      }
    }
    writeSync(2, `faultline: the pager thread failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  } finally {
    process.exit(70)
  }
})

/** Gives the malloc arenas' free memory back to the system (a thread's arena outlives its regions). */
function releaseMemory(): void {
  native.trimMemory()
}

/** What the host tells a thread: serve a region over `port`, or end once nothing is left to serve. */
type ThreadMessage = { op: 'start'; data: PagerStartData; port: MessagePort; env: Record<string, string | undefined> } | { op: 'retire' }

/** This thread's process.env, made the host's again (backends read credentials from it). */
function takeEnv(env: Record<string, string | undefined>): void {
  for (const key of Object.keys(process.env)) if (!(key in env)) delete process.env[key]
  for (const [key, value] of Object.entries(env)) if (value !== undefined) process.env[key] = value
}

thread.on('message', (msg: ThreadMessage) => {
  if (msg.op === 'start') {
    takeEnv(msg.env)
    void start(msg.data, msg.port)
  } else if (msg.op === 'retire') {
    if (endAfterClose) process.exit(0)
    thread.close()
  }
})
