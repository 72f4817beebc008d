/**
 * @faultline/native: a thin, typed wrapper over Linux userfaultfd, mmap and
 * madvise. No policy lives here: which page to fetch, when to evict and how
 * to retry are decisions of @faultline/core.
 *
 * Addresses are plain numbers. User-space addresses on x86_64 and arm64 fit
 * in 47/48 bits, well inside the 53 bits a double holds exactly, and numbers
 * keep the fault path free of BigInt allocation.
 */
import { constants } from './constants.js'
import { loadAddon, missingAddonMessage } from './load-addon.js'
import type { NativeErrorCode } from './errors.js'

export { constants, featureNames, FEATURE_BITS } from './constants.js'
export { NativeError, isNativeError, type NativeErrorCode } from './errors.js'

/** What `UFFDIO_API` reports on a throwaway descriptor. */
export interface FeatureProbe {
  /** Bitmask of every feature the kernel offers (`uffdio_api.features`). */
  features: number
  /** The same bits by name, e.g. `['PAGEFAULT_FLAG_WP', 'MISSING_SHMEM', …]`. */
  names: string[]
  /**
   * Bitmask of ioctls the descriptor supports (`uffdio_api.ioctls`), bits 0–52
   * only: the kernel also sets bit 63 (`_UFFDIO_API`), which a double cannot
   * hold exactly, so it is dropped (0x3 = REGISTER|UNREGISTER).
   */
  ioctls: number
  /** How the descriptor was created: the syscall, or `/dev/userfaultfd`. */
  via: 'syscall' | 'device'
  /** True when only `UFFD_USER_MODE_ONLY` was permitted (kernel accesses get EFAULT). */
  userModeOnly: boolean
}

export interface UffdOpenOptions {
  /** Feature bits to request in the `UFFDIO_API` handshake. Default 0. */
  features?: number
  /** Ask for `UFFD_USER_MODE_ONLY`. Default: only if the full mode is refused with EPERM/EACCES. */
  userModeOnly?: boolean | 'fallback'
}

export interface RegisterMode {
  missing?: boolean
  wp?: boolean
  minor?: boolean
}

/**
 * Where `serveNatively` counts what it does, as indexes into the stats
 * Float64Array, in this order: faults, duplicateFaults, pagesFetched,
 * bytesFetched, residentPages, latencyCount, latencyMaxUs, histogramBase,
 * histogramBuckets, subBuckets (latency buckets: 0 below 1 µs, then
 * `subBuckets` per power of two, clamped to the last), dirtyPages (counted
 * for a fault taken by a write when `readMode` includes WP: the page is
 * installed writable, so it is dirty from the start), served (faults
 * answered natively, duplicates included).
 */
export type ServeSlots = [number, number, number, number, number, number, number, number, number, number, number, number]

/**
 * A running uffd watcher. Besides stopping it, it can answer faults on pages
 * whose bytes are already in this process without calling into JS: the
 * message still reaches the callback, with its event replaced by
 * `constants.WATCH_SERVED` and its arg (`messages[4k+3]`) set to 1 if the
 * page was installed then, 0 if it was already present (EEXIST).
 * Every method is a no-op once the watcher has stopped.
 */
export interface Watcher {
  stop(): void
  /**
   * Turns native serving on for the region at `address`: missing faults
   * (never write-protect faults) on staged or source pages are installed with
   * UFFDIO_COPY in `readMode` (or `writeMode` for a fault taken by a write),
   * and counted in `stats` at `slots` before the copy wakes the faulter.
   * A copy that keeps failing (EAGAIN, ENOMEM…) leaves the message to JS.
   */
  serveNatively(address: number, pageSize: number, pageCount: number, readMode: number, writeMode: number, stats: Float64Array, slots: ServeSlots): void
  /** Pages [firstPage, firstPage+pageCount) read from `data`, which must be over a SharedArrayBuffer (kept alive). */
  addSource(firstPage: number, pageCount: number, data: Uint8Array): void
  /**
   * Pages [firstPage, firstPage+pageCount) read with pread(2) from `fd` (keep
   * it open until the watcher stops): page p at byte fileOffset + (p -
   * firstPage) × pageSize, zeros at or past `length` (the file's). A failed
   * read leaves the fault to JS. The sources are dropped at the first
   * REMOVE or UNMAP event the watcher reads: pages given back read as zeros.
   */
  addFileSource(firstPage: number, pageCount: number, fd: number, fileOffset: number, length: number): void
  /** Forgets every file source (for a REMOVE event JS read itself, e.g. while an install was refused with EAGAIN). */
  dropFileSources(): void
  /** Copies one page of bytes to native memory; a fault on `page` is installed from it, once. */
  stage(page: number, bytes: Uint8Array): void
  /** Forgets a staged page, copying it into `out` first if given; false if it was not staged. */
  unstage(page: number, out?: Uint8Array): boolean
  /**
   * If this thread ends without calling `stop()` (an uncaught exception, a
   * terminated Worker), a detached native thread takes over a duplicate of
   * the uffd: it says so on stderr, wakes every thread waiting in
   * `[address, address+length)` so each faults again, and answers every
   * missing fault with UFFDIO_POISON (SIGBUS) — never zeros — and every
   * write-protect fault by lifting the protection. Nobody sleeps for ever.
   * `owner`: the pid of the process the range belongs to, when another's
   * (a peer of faultline serve); that thread ends once it has exited.
   */
  poisonOnAbandon(address: number, length: number, owner?: number): void
  /**
   * Starts the watchdog of this watcher's pager thread (native, its own
   * thread): once faults on [address, address+length) have gone unread for
   * `stallMs`, or the callback has not returned for that long, it takes the
   * descriptor over and answers every missing fault with UFFDIO_POISON
   * (SIGBUS) until `stop()`. The callback then receives the write faults
   * the takeover let through, then once a count of `-ETIMEDOUT`. Once.
   */
  armWatchdog(address: number, length: number, stallMs: number): void
  /**
   * Write-protect faults the watchdog's takeover let through since the last
   * call, as messages in `out` (4 numbers each); returns how many.
   */
  drainTakeover(out: Float64Array): number
}

/**
 * A native thread installing pages with UFFDIO_COPY (see createInstaller).
 * Once stopped, `install` throws.
 */
export interface Installer {
  /**
   * Queues a copy of `bytes` to `address` in `mode` (UFFDIO_COPY_MODE_*;
   * never add DONTWAKE: the copy is what wakes a thread that faulted on the
   * page meanwhile). `bytes` is read on the installer thread: keep it alive
   * and unchanged until `token` is reported done.
   */
  install(address: number, bytes: Uint8Array, mode: number, token: number): void
  /** Stops the thread after the copy in progress (queued ones are dropped, never reported) and closes its uffd duplicate. */
  stop(): void
}

/**
 * The raw addon surface. Every function validates its arguments and throws a
 * TypeError/RangeError for bad ones; failing syscalls throw a
 * {@link NativeError} with `code` (errno name), `errno` and `syscall`.
 */
export interface NativeAddon {
  /**
   * The addon's own view of the uapi values: SYSTEM_PAGE_SIZE (sysconf), every
   * key of `constants` in constants.ts, `UFFD_FEATURE_<name>` for each of
   * FEATURE_BITS, and the UFFDIO_* request codes. Frozen.
   */
  readonly constants: Readonly<Record<string, number>>
  probe(): FeatureProbe
  /**
   * Creates a non-blocking, close-on-exec uffd and completes the API handshake.
   * Tries the userfaultfd syscall, then `/dev/userfaultfd` when the syscall is
   * missing or refused (ENOSYS/EPERM). `'fallback'` asks for the full mode and
   * retries with UFFD_USER_MODE_ONLY if that is refused with EPERM/EACCES.
   * `features` in the result is what the kernel returned (all it supports, not
   * only the ones requested); `ioctls` as in {@link FeatureProbe}.
   * A failed handshake closes the fd and throws (`syscall: 'ioctl(UFFDIO_API)'`).
   */
  uffdOpen(features: number, userModeOnly: boolean | 'fallback'): { fd: number; features: number; ioctls: number; via: 'syscall' | 'device'; userModeOnly: boolean }
  /**
   * UFFDIO_REGISTER; returns the `ioctls` mask available on the range.
   * Range arguments of every uffd call (address/dst and length) must be
   * page-aligned with length > 0, or a RangeError is thrown before the ioctl.
   */
  uffdRegister(fd: number, address: number, length: number, mode: number): number
  uffdUnregister(fd: number, address: number, length: number): void
  /**
   * UFFDIO_COPY from `src[srcOffset, srcOffset+length)` to `dst`.
   * Returns bytes copied (== length on full success, < length on partial
   * progress with EAGAIN), or `-EEXIST` / `-EAGAIN` when nothing was copied.
   * Any other failure throws.
   */
  uffdCopy(fd: number, dst: number, src: Uint8Array, srcOffset: number, length: number, mode: number): number
  /** UFFDIO_ZEROPAGE; same return convention as uffdCopy. */
  uffdZeropage(fd: number, address: number, length: number, mode: number): number
  uffdWake(fd: number, address: number, length: number): void
  /**
   * UFFDIO_WRITEPROTECT; mode is a combination of WRITEPROTECT_MODE_WP / _DONTWAKE.
   * 0, or -EAGAIN while an event on the descriptor waits to be read; throws otherwise.
   */
  uffdWriteProtect(fd: number, address: number, length: number, mode: number): number
  /** UFFDIO_POISON; same return convention as uffdCopy. */
  uffdPoison(fd: number, address: number, length: number, mode: number): number
  /**
   * Non-blocking read of queued messages, decoded into `out` as 4 doubles per
   * message: [event, flagsOrArg0, address/arg1, arg2]. Returns the number of
   * messages (0 when nothing is queued). Reads until EAGAIN, until `out` is
   * full, or until a read returns less than asked (the queue was empty). Throws
   * RangeError when `out` holds fewer than 4 elements, and EPROTO when a read
   * returns part of a message (`fd` is not a uffd).
   */
  uffdRead(fd: number, out: Float64Array): number
  /** close(2). */
  closeFd(fd: number): void

  /**
   * mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE) + MADV_DONTFORK,
   * `length` rounded up to whole pages. With `hugePageSize` (a power of two
   * above the system page: 2 MiB, 1 GiB) the mapping is hugetlb instead
   * (MAP_HUGETLB | log2(hugePageSize) << MAP_HUGE_SHIFT) and without
   * MAP_NORESERVE: the pages are reserved from the pool now, so a short pool
   * throws ENOMEM here (`syscall: 'mmap'`), never SIGBUS on a later fault.
   */
  mapAnonymous(length: number, hugePageSize?: number): number
  /**
   * Ends a mapping's life safely: replaces it with a fresh anonymous mapping
   * (so a stale view reads zeros instead of crashing), and munmaps once the
   * last external ArrayBuffer over it has been collected or detached.
   * `address` must be the start of a live mapping made by mapAnonymous, else
   * RangeError. Unregister it from any uffd first: the replacement drops the
   * registration (and with EVENT_UNMAP the call blocks until UNMAP is read).
   */
  retireMapping(address: number): void
  /**
   * mmap(MAP_SHARED) of `length` bytes of the file `fd` (PROT_READ, or
   * PROT_READ|PROT_WRITE when `writable`) + MADV_DONTFORK, registered like a
   * mapAnonymous mapping: externalBuffer and retireMapping work on it.
   * `length` must be a non-zero multiple of the system page size.
   */
  mapSharedFile(fd: number, length: number, writable: boolean): number
  madvise(address: number, length: number, advice: number): void
  /**
   * An external ArrayBuffer over [address, address+length) of a live mapping;
   * keeps it alive. RangeError if the range is not inside one live
   * (non-retired) mapping made by mapAnonymous.
   */
  externalBuffer(address: number, length: number): ArrayBuffer
  /**
   * Detaches an ArrayBuffer made by externalBuffer (its views become length 0)
   * and drops its reference on the mapping at once. A no-op on a buffer that
   * is already detached; TypeError for any other ArrayBuffer.
   */
  detachBuffer(buffer: ArrayBuffer): void
  /**
   * Number of external buffers still alive over the mapping starting at
   * `address` (for tests); -1 when there is no such mapping (never mapped, or
   * retired and already unmapped).
   */
  mappingRefs(address: number): number

  /**
   * Watches a uffd with uv_poll on the calling thread's event loop. Each time
   * it is readable, the callback gets `count` decoded messages in `messages`
   * (the same Float64Array every time: copy out what you keep). The handle is
   * closed by `stop()` or by the environment's cleanup hook.
   *
   * A negative `count` is `-errno`: polling or reading failed (e.g. -EBADF, or
   * -EPROTO when a read returned part of a message);
   * the watcher has already stopped and `messages` holds nothing new.
   * While watching, the handle keeps the event loop alive. Call `stop()` before
   * `closeFd(fd)`, and watch a given fd at most once per thread. An exception
   * thrown by the callback goes to 'uncaughtException' (a Worker's 'error').
   * The callback runs on this thread: it must never touch memory registered
   * on `fd`, or this thread sleeps in the fault it is meant to serve.
   * `fillUnit` (default the system page) is the smallest piece the kernel
   * fills in the watched region: a hugetlb region's huge page size. Native
   * serving skips present parts, and the abandon guard and watchdog poison
   * and unprotect, one unit at a time.
   */
  watch(fd: number, capacity: number, callback: (count: number, messages: Float64Array) => void, fillUnit?: number): Watcher

  /**
   * Starts a native thread that installs pages into regions registered on
   * `fd` (it keeps its own duplicate), so the calling thread can go on while
   * the kernel allocates and fills them. Results come back on the calling
   * thread's event loop: `onDone(count, results)` with `results` holding
   * `[token, result]` pairs, where result is 1 (installed), 0 (all of it was
   * present already: EEXIST, waiters woken) or `-errno` (EAGAIN that kept
   * coming, ENOMEM, ENOENT after an unregister…: not installed). While it
   * runs it keeps the event loop alive; `stop()` or the thread's end stops it.
   * `fillUnit` as in {@link NativeAddon.watch}: copies must be whole units.
   */
  createInstaller(fd: number, onDone: (count: number, results: Float64Array) => void, fillUnit?: number): Installer

  /**
   * ioctl(PAGEMAP_SCAN) on /proc/self/pagemap (opened once per process, O_RDONLY|O_CLOEXEC, kept open).
   * Writes up to out.length/3 regions as [start, end, categories] triples into `out`.
   * Returns the number of regions written, and sets walkEnd[0] to the address where the walk stopped
   * (== address+length when complete; less when `out` or maxPages ran out: call again from there).
   *
   * - `address`/`length`: page-aligned, length > 0 (else RangeError, before the ioctl).
   * - `flags`: `PM_SCAN_WP_MATCHING` (write-protect every page that matches; only
   *   VMAs registered WP on a `WP_ASYNC` uffd are affected) and/or
   *   `PM_SCAN_CHECK_WPASYNC` (EPERM unless every VMA in the range is such a registration).
   * - A page matches when `(categories ^ categoryInverted) & categoryMask` equals
   *   `categoryMask` (all required), and, when `categoryAnyofMask` is non-zero, when
   *   it also has one of those bits. Reported categories are ANDed with `returnMask`;
   *   adjacent matching pages with equal reported categories merge into one region.
   * - `maxPages`: stop after this many matching pages (walkEnd is then the next
   *   matching page); 0 = unlimited.
   * - `out.length < 3` passes no output vector at all: nothing is reported and
   *   maxPages is ignored; with WP_MATCHING the range is protected (an "arm" call;
   *   in the 6.18 source, the no-output path protects every entry of a populated page table
   *   whatever the masks).
   * - The binding issues one ioctl per 512 regions and resumes from each one's
   *   walk_end: when a single ioctl returns more regions than the kernel's internal
   *   bounce buffer (512 on x86_64) and completes, 6.18 reports a stale walk_end
   *   short of the end, so resuming would report up to 512 regions twice. If a
   *   later one of those ioctls fails, pages reported by the earlier ones are lost
   *   to the caller (with WP_MATCHING they were already re-protected).
   *
   * Categories are the `PAGE_IS_*` bits of `constants`. Unknown flag or category
   * bits fail with EINVAL. Failures throw a {@link NativeError}
   * with `syscall: 'ioctl(PAGEMAP_SCAN)'` (or `'open(/proc/self/pagemap)'`).
   * The scan walks page tables only: it never faults on the range, so it is safe on
   * missing pages of a MISSING registration. Note that with WP_MATCHING it
   * installs uffd-wp markers on holes that match (see docs/experiments/wp-async.md).
   */
  pagemapScan(
    address: number,
    length: number,
    flags: number,
    categoryMask: number,
    categoryAnyofMask: number,
    categoryInverted: number,
    returnMask: number,
    maxPages: number,
    out: Float64Array,
    walkEnd: Float64Array,
  ): number

  /** lseek(fd, offset, SEEK_DATA|SEEK_HOLE); returns -1 for ENXIO (no more data). */
  seekData(fd: number, offset: number): number
  seekHole(fd: number, offset: number): number
  /** malloc_trim(0): returns freed heap memory of every arena to the system; true if some went back. */
  trimMemory(): boolean
  /** fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE): on tmpfs the pages leave every process's mapping. */
  punchHole(fd: number, offset: number, length: number): void
  /** flock(fd, LOCK_EX) when `exclusive` (blocking), else flock(fd, LOCK_UN). */
  flock(fd: number, exclusive: boolean): void

  // ---- serving other processes (faultline serve) ----------------------------

  /** A non-blocking, close-on-exec Unix stream socket bound to `path` and listening (RangeError if `path` does not fit sun_path). */
  unixListen(path: string, backlog?: number): number
  /** The next waiting connection (non-blocking, close-on-exec) with its peer's credentials (SO_PEERCRED), or null when none waits. */
  unixAccept(fd: number): { fd: number; pid: number; uid: number } | null
  /**
   * One recvmsg: the bytes and the descriptors passed with them (SCM_RIGHTS,
   * close-on-exec, owned by the caller), or null when nothing is queued.
   * Empty `bytes` is the end of the stream. `truncated`: data or descriptors
   * did not fit (extra descriptors were closed by the kernel).
   */
  recvWithFds(fd: number, maxBytes: number): { bytes: Buffer; fds: number[]; truncated: boolean } | null
  /** send(MSG_DONTWAIT|MSG_NOSIGNAL): bytes sent, 0 when the socket buffer is full; a gone peer throws EPIPE. */
  sendBytes(fd: number, bytes: Uint8Array): number
  /**
   * process_vm_readv of `out.length` bytes at `address` in process `pid`;
   * returns the bytes read. Only for pages known to be present: a missing
   * page the calling thread serves would fault into the calling thread.
   */
  readPeerMemory(pid: number, address: number, out: Uint8Array): number
  /**
   * Watches `fd` on this thread's loop: `callback(readable, hangup)` each time
   * it is readable or the peer hung up. Keeps the loop alive until `stop()`;
   * stop it before closing the fd.
   */
  pollFd(fd: number, callback: (readable: boolean, hangup: boolean) => void): { stop(): void }
}

export interface UffdMessage {
  event: number
  flags: number
  address: number
  arg: number
}

function addonOrThrow(): NativeAddon {
  const result = loadAddon()
  if ('addon' in result) return result.addon as NativeAddon
  const err = new Error(missingAddonMessage()) as Error & { code: NativeErrorCode | 'ENOADDON' }
  err.code = 'ENOADDON'
  ;(err as { cause?: unknown }).cause = result.error
  throw err
}

/** The loaded addon. Loading is per thread (context-aware addon). */
export const native: NativeAddon = addonOrThrow()

/** Register-mode bits from a readable description. */
export function registerModeBits(mode: RegisterMode): number {
  let bits = 0
  if (mode.missing) bits |= constants.UFFDIO_REGISTER_MODE_MISSING
  if (mode.wp) bits |= constants.UFFDIO_REGISTER_MODE_WP
  if (mode.minor) bits |= constants.UFFDIO_REGISTER_MODE_MINOR
  return bits
}

/** The system page size, asked of the kernel once. */
export const systemPageSize: number = constants.SYSTEM_PAGE_SIZE
