/**
 * One peer's socket: its first message (JSON with the uffd as SCM_RIGHTS,
 * possibly in pieces), then one JSON command per line, replies as lines.
 * Read with recvmsg, not a net.Socket: Node cannot receive descriptors on a
 * plain stream socket.
 */
import { native } from '@faultline/native'
import { FaultlineError } from '../errors.js'
import { closeQuietly } from './session.js'

/** The first message may not be longer: Firecracker's handler reads 1 KiB, ours are far shorter. */
export const MAX_HELLO_BYTES = 64 * 1024
/** Most descriptors a peer may pass: Firecracker passes one, the uffd. */
const MAX_FDS = 1

export interface ConnectionEvents {
  /** The first message so far (its descriptors are in takeFds()); return true once it is complete (later bytes are commands). */
  hello(text: string): boolean
  /** One command line. */
  line(line: string): void
  /** The peer closed its end or hung up. */
  hangup(): void
  /** The peer broke the framing (too long, too many descriptors). */
  broken(error: FaultlineError): void
}

export class Connection {
  private readonly poll: { stop(): void }
  private pending: Buffer = Buffer.alloc(0)
  private fds: number[] = []
  private greeted = false
  private closed = false

  constructor(
    readonly fd: number,
    readonly pid: number,
    private readonly on: ConnectionEvents,
  ) {
    this.poll = native.pollFd(fd, (readable, hangup) => this.onReady(readable, hangup))
  }

  /** Sends one JSON reply line; a peer that is gone or does not read is not waited for. */
  reply(value: unknown): void {
    if (this.closed) return
    const bytes = Buffer.from(`${JSON.stringify(value)}\n`)
    try {
      native.sendBytes(this.fd, bytes)
    } catch {
      // EPIPE/ECONNRESET: the peer left; its hangup is on its way.
    }
  }

  /** Takes the descriptors received with the first message (the caller owns them from here on). */
  takeFds(): number[] {
    const fds = this.fds
    this.fds = []
    return fds
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.poll.stop()
    for (const fd of this.takeFds()) closeQuietly(fd)
    closeQuietly(this.fd)
  }

  private onReady(readable: boolean, hangup: boolean): void {
    if (this.closed) return
    if (readable) {
      for (;;) {
        const got = native.recvWithFds(this.fd, MAX_HELLO_BYTES)
        if (got === null) break
        this.fds.push(...got.fds)
        if (got.truncated || this.fds.length > MAX_FDS) {
          this.on.broken(new FaultlineError('ERR_PEER', `faultline serve: process ${this.pid} passed more than ${MAX_FDS} descriptor or a message longer than ${MAX_HELLO_BYTES} bytes; it must pass exactly its userfaultfd`))
          return
        }
        if (got.bytes.length === 0) {
          hangup = true
          break
        }
        this.take(got.bytes)
        if (this.closed) return
      }
    }
    if (hangup) this.on.hangup()
  }

  private take(bytes: Buffer): void {
    this.pending = this.pending.length === 0 ? bytes : Buffer.concat([this.pending, bytes])
    if (!this.greeted) {
      if (this.pending.length > MAX_HELLO_BYTES) {
        this.on.broken(new FaultlineError('ERR_PEER', `faultline serve: process ${this.pid}'s first message is longer than ${MAX_HELLO_BYTES} bytes`))
        return
      }
      // Firecracker's message has no terminator: complete once it parses.
      const newline = this.pending.indexOf(10)
      const text = (newline < 0 ? this.pending : this.pending.subarray(0, newline)).toString('utf8')
      if (!this.on.hello(text)) return
      this.greeted = true
      this.pending = newline < 0 ? Buffer.alloc(0) : this.pending.subarray(newline + 1)
    }
    let newline: number
    while (!this.closed && (newline = this.pending.indexOf(10)) >= 0) {
      const line = this.pending.subarray(0, newline).toString('utf8').trim()
      this.pending = this.pending.subarray(newline + 1)
      if (line !== '') this.on.line(line)
    }
  }
}
