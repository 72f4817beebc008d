/** The application's side of a pager thread: start it, call it, watch it die. */
import { Worker } from 'node:worker_threads'
import { deserializeError, FaultlineError } from '../errors.js'
import type { NormalizedOptions } from '../options.js'
import type { PagerEvent, PagerReady, PagerReply, PagerRequest, PagerStartData, PagerToHost } from './protocol.js'
import type { PeerAttach } from './peer.js'
import { StatsWriter } from '../stats.js'
import { PoolMember } from '../pool.js'

/** A request without its id: the host numbers them. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never
type RequestBody = WithoutId<PagerRequest>

/**
 * A pager thread that died never took its pages out of its resident pool:
 * do it for it, from the residency its stats last showed, so the other
 * members are not squeezed for ever.
 */
function leavePool(options: NormalizedOptions, stats: SharedArrayBuffer): void {
  if (options.residentPool === undefined) return
  const resident = new StatsWriter(stats).get('residentPages')
  new PoolMember(options.residentPool, options.pageSize).leave(resident)
}

export class PagerHost {
  private nextId = 1
  private readonly pending = new Map<number, { op: RequestBody['op']; resolve: (reply: PagerReply) => void; reject: (e: Error) => void }>()
  private failure: FaultlineError | undefined
  /** Set when a close request succeeded: the pager took its pages out of its pool itself. */
  private closed = false

  private constructor(
    private readonly worker: Worker,
    readonly ready: PagerReady,
    onEvent: (event: PagerEvent) => void,
    onDeath: () => void,
  ) {
    worker.on('message', (msg: PagerToHost) => {
      if (msg.kind === 'reply') this.settle(msg)
      else if (msg.kind === 'event') onEvent(msg)
    })
    const fail = (why: string): void => {
      this.failure ??= new FaultlineError('ERR_PAGER_FAILED', `faultline: the pager thread ${why}`)
      for (const p of this.pending.values()) p.reject(this.failure)
      this.pending.clear()
    }
    worker.on('error', (err) => fail(`failed: ${err.message}`))
    worker.on('exit', (code) => {
      fail(`exited (code ${code})`)
      if (!this.closed) onDeath()
    })
  }

  static start(options: NormalizedOptions, stats: SharedArrayBuffer, onEvent: (event: PagerEvent) => void, peer?: PeerAttach): Promise<PagerHost> {
    const entry = new URL('./worker.js', import.meta.url)
    // A worker inherits the process's flags, and under --input-type (node -e)
    // refuses to start from a file; an eval'd import() is string input, valid
    // as CommonJS and as ESM. (An explicit execArgv instead would reject
    // process-wide flags such as --max-old-space-size.)
    const stringEntry = process.execArgv.some((arg) => arg.startsWith('--input-type'))
    const worker = new Worker(stringEntry ? `import(${JSON.stringify(entry.href)})` : entry, {
      eval: stringEntry,
      workerData: { options, stats, peer } satisfies PagerStartData,
      // The pager's own stack and heap; it never runs user code on the fault path.
      name: 'faultline-pager',
    })
    return new Promise((resolve, reject) => {
      const onMessage = (msg: PagerToHost): void => {
        if (msg.kind === 'ready') {
          cleanup()
          resolve(new PagerHost(worker, msg, onEvent, () => leavePool(options, stats)))
        } else if (msg.kind === 'failed') {
          cleanup()
          reject(deserializeError(msg.error))
        }
      }
      const onError = (err: Error): void => {
        cleanup()
        reject(new FaultlineError('ERR_PAGER_FAILED', `faultline: the pager thread failed to start: ${err.message}`, { cause: err }))
      }
      const onExit = (code: number): void => {
        cleanup()
        reject(new FaultlineError('ERR_PAGER_FAILED', `faultline: the pager thread exited during start (code ${code})`))
      }
      const cleanup = (): void => {
        worker.off('message', onMessage)
        worker.off('error', onError)
        worker.off('exit', onExit)
      }
      worker.on('message', onMessage)
      worker.on('error', onError)
      worker.on('exit', onExit)
    })
  }

  async request(body: RequestBody): Promise<void> {
    await this.call(body)
  }

  /** Bytes from the backend for `region.read()`. */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const reply = await this.call({ op: 'read', offset, length })
    return reply.bytes ?? new Uint8Array(0)
  }

  private call(body: RequestBody): Promise<PagerReply> {
    if (this.failure) return Promise.reject(this.failure)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { op: body.op, resolve, reject })
      this.worker.postMessage({ id, ...body } as PagerRequest)
    })
  }

  private settle(reply: PagerReply): void {
    const p = this.pending.get(reply.id)
    if (p === undefined) return
    this.pending.delete(reply.id)
    if (reply.error) {
      p.reject(deserializeError(reply.error))
      return
    }
    // Marked here, not after the caller's await: when the reply and the
    // thread's end are heard together, Node hands over the reply and emits
    // 'exit' with no microtask between, and the exit would pass for a death
    // (taking the pages out of the pool a second time).
    if (p.op === 'close') this.closed = true
    p.resolve(reply)
  }

  /** Waits for the thread to end after a close request. */
  async exited(): Promise<void> {
    if (this.worker.threadId === -1) return
    await new Promise<void>((resolve) => this.worker.once('exit', () => resolve()))
  }
}
