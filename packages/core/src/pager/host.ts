/** The application's side of a pager thread: start it, call it, watch it die. */
import type { MessagePort, Worker } from 'node:worker_threads'
import { deserializeError, FaultlineError } from '../errors.js'
import type { NormalizedOptions } from '../options.js'
import type { PagerEvent, PagerReady, PagerReply, PagerRequest, PagerStartData, PagerToHost } from './protocol.js'
import type { PeerAttach } from './peer.js'
import { StatsWriter } from '../stats.js'
import { PoolMember } from '../pool.js'
import { giveBack, takeThread } from './threads.js'

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

  /** Resolves once the thread is no longer this region's: waiting for the next region, or ended. */
  private readonly released: Promise<void>
  private release: () => void = () => undefined
  /** Stops listening to the thread and hands it back (threads.ts). */
  private readonly detach: (reusable: boolean) => void

  private constructor(
    worker: Worker,
    private readonly port: MessagePort,
    readonly ready: PagerReady,
    onEvent: (event: PagerEvent) => void,
    onDeath: () => void,
    reusable: boolean,
  ) {
    this.released = new Promise((resolve) => (this.release = resolve))
    const onMessage = (msg: PagerToHost): void => {
      if (msg.kind === 'reply') this.settle(msg)
      else if (msg.kind === 'event') onEvent(msg)
    }
    const fail = (why: string): void => {
      this.failure ??= new FaultlineError('ERR_PAGER_FAILED', `faultline: the pager thread ${why}`)
      for (const p of this.pending.values()) p.reject(this.failure)
      this.pending.clear()
    }
    const onError = (err: Error): void => fail(`failed: ${err.message}`)
    const onExit = (code: number): void => {
      // An open port would keep the application's loop alive for a thread that is gone.
      port.close()
      fail(`exited (code ${code})`)
      if (!this.closed) onDeath()
      this.release()
    }
    port.on('message', onMessage)
    worker.on('error', onError)
    worker.on('exit', onExit)
    this.detach = (threadReusable) => {
      port.off('message', onMessage)
      port.close()
      worker.off('error', onError)
      worker.off('exit', onExit)
      this.failure ??= new FaultlineError('ERR_REGION_CLOSED', 'faultline: the region is closed')
      giveBack(worker, reusable && threadReusable)
      this.release()
    }
  }

  /**
   * Starts the pager of a region (or of a peer's range: `peer`) on a pager
   * thread (threads.ts). A peer's thread is its own and ends with it:
   * `faultline serve` counts on a gone peer leaving nothing behind.
   */
  static start(options: NormalizedOptions, stats: SharedArrayBuffer, onEvent: (event: PagerEvent) => void, peer?: PeerAttach): Promise<PagerHost> {
    const own = peer !== undefined || options.pagerThread === 'own'
    const { worker, port } = takeThread({ options, stats, peer }, own)
    return new Promise((resolve, reject) => {
      const onMessage = (msg: PagerToHost): void => {
        if (msg.kind === 'ready') {
          cleanup()
          resolve(new PagerHost(worker, port, msg, onEvent, () => leavePool(options, stats), !own))
        } else if (msg.kind === 'failed') {
          cleanup()
          // The pager undid what it had opened; the thread serves its other regions.
          port.close()
          giveBack(worker, true)
          reject(deserializeError(msg.error))
        }
      }
      const onError = (err: Error): void => {
        cleanup()
        port.close()
        reject(new FaultlineError('ERR_PAGER_FAILED', `faultline: the pager thread failed to start: ${err.message}`, { cause: err }))
      }
      const onExit = (code: number): void => {
        cleanup()
        port.close()
        reject(new FaultlineError('ERR_PAGER_FAILED', `faultline: the pager thread exited during start (code ${code})`))
      }
      const cleanup = (): void => {
        port.off('message', onMessage)
        worker.off('error', onError)
        worker.off('exit', onExit)
      }
      port.on('message', onMessage)
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
      this.port.postMessage({ id, ...body } as PagerRequest)
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
    if (p.op === 'close') {
      this.closed = true
      this.detach(reply.retiring !== true)
    }
    p.resolve(reply)
  }

  /** Waits, after a close request, until the thread is no longer this region's (waiting for the next one, or ended). */
  async exited(): Promise<void> {
    await this.released
  }
}
