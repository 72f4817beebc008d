/**
 * Entry point of a region's pager thread. Owns the backend, the mapping's
 * userfaultfd and the fault service. Its event loop is its own: the
 * application's threads may all be asleep in page faults while it runs.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { native, featureNames, FEATURE_BITS, registerModeBits } from '@faultline/native'
import { createBackend } from '../backend/load.js'
import type { Backend } from '../backend/contract.js'
import { FaultlineError, serializeError } from '../errors.js'
import { resolveGeometry } from '../options.js'
import { StatsWriter } from '../stats.js'
import { Pager } from './pager.js'
import type { PagerRequest, PagerStartData, PagerToHost } from './protocol.js'

const port = parentPort!
const { options, stats: statsBuffer } = workerData as PagerStartData
const post = (msg: PagerToHost): void => port.postMessage(msg)

/** Messages decoded per readable event; the kernel queues one per faulting thread. */
const WATCH_CAPACITY = 512

async function start(): Promise<void> {
  let backend: Backend | undefined
  let fd = -1
  let address = 0
  try {
    backend = await createBackend(options.backend, { pageSize: options.pageSize, size: options.size, readOnly: options.access === 'read-only' })
    const { size, dataSize } = resolveGeometry(options.size, backend.info.size, options.pageSize)
    const uffd = openUffd()
    fd = uffd.fd
    address = native.mapAnonymous(size)
    native.uffdRegister(fd, address, size, registerModeBits({ missing: true }))
    const stats = new StatsWriter(statsBuffer)
    const pager = new Pager({ fd, address, size, pageSize: options.pageSize, maxBatchPages: options.maxBatchPages, fetchTimeoutMs: options.fetchTimeoutMs }, backend, stats, post)
    const watcher = native.watch(fd, WATCH_CAPACITY, (count, messages) => pager.onMessages(count, messages))
    const readOnly = options.access === 'read-only' || backend.info.readOnly
    serve(pager, async () => {
      pager.stop()
      watcher.stop()
      await pager.idle()
      native.uffdUnregister(fd, address, size)
      native.closeFd(fd)
      native.retireMapping(address)
      await backend!.close()
    })
    post({ kind: 'ready', address, size, dataSize, pageSize: options.pageSize, readOnly, backendName: backend.info.name, features: featureNames(uffd.features), userModeOnly: uffd.userModeOnly })
  } catch (err) {
    if (fd >= 0) native.closeFd(fd)
    if (address !== 0) native.retireMapping(address)
    await backend?.close().catch(() => undefined)
    post({ kind: 'failed', error: serializeError(err) })
    port.close()
  }
}

function openUffd(): ReturnType<typeof native.uffdOpen> {
  try {
    return native.uffdOpen(FEATURE_BITS.THREAD_ID, 'fallback')
  } catch (cause) {
    throw new FaultlineError(
      'ERR_UFFD_UNAVAILABLE',
      `faultline: userfaultfd is not available (${String((cause as Error).message)}). It needs Linux ≥ 4.11 and either root, CAP_SYS_PTRACE, sysctl vm.unprivileged_userfaultfd=1, or read-write access to /dev/userfaultfd.`,
      { cause },
    )
  }
}

function serve(pager: Pager, shutdown: () => Promise<void>): void {
  let closing: Promise<void> | undefined
  port.on('message', (req: PagerRequest) => {
    const reply = (error?: unknown): void => post(error === undefined ? { kind: 'reply', id: req.id } : { kind: 'reply', id: req.id, error: serializeError(error) })
    switch (req.op) {
      case 'prefetch': {
        const first = Math.floor(req.offset / options.pageSize)
        const last = Math.floor((req.offset + req.length - 1) / options.pageSize)
        pager.prefetch(first, last).then(() => reply(), reply)
        return
      }
      case 'flush':
        pager.idle().then(() => reply(), reply)
        return
      case 'close':
        closing ??= shutdown()
        closing.then(
          () => {
            reply()
            port.close()
          },
          (err: unknown) => {
            reply(err)
            port.close()
          },
        )
        return
    }
  })
}

void start()
