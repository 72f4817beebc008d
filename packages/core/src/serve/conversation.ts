/**
 * One peer's conversation with the server, from its first message to its
 * hangup: the handshake (attach or status), then its commands, one reply
 * line each. Policy (which ranges are served, how a gone peer is retired)
 * stays with the server.
 */
import { FaultlineError } from '../errors.js'
import { Connection } from './connection.js'
import { decodeCommand, decodeHello, type PeerCommand, type PeerHello } from './handshake.js'
import type { PeerSession } from './session.js'

/** What a conversation needs of the server. */
export interface ConversationHost {
  attach(pid: number, hello: Extract<PeerHello, { kind: 'attach' }>, fds: number[]): Promise<PeerSession>
  status(): unknown
  /** Counts and logs a refusal. */
  refused(pid: number, error: FaultlineError): void
  /** Keeps a refused peer's descriptor, answering its faults with SIGBUS until it exits. */
  keepRefused(uffd: number, pid: number): void
  /** Closes a session: `gone` when the peer's process is gone, else a detach. */
  retire(session: PeerSession, gone: boolean): Promise<void>
  /** The peer hung up: retire its session once its process has exited. */
  whenGone(session: PeerSession): void
  ended(conversation: Conversation): void
}

type State = 'hello' | 'attaching' | 'attached' | 'ended'

export class Conversation {
  private readonly conn: Connection
  private state: State = 'hello'
  private session: PeerSession | undefined
  private hungUp = false
  /** Commands that came while the attach was still being served. */
  private readonly queued: string[] = []

  constructor(
    fd: number,
    private readonly pid: number,
    private readonly host: ConversationHost,
  ) {
    this.conn = new Connection(fd, pid, {
      hello: (text) => this.onHello(text),
      line: (line) => this.onLine(line),
      hangup: () => this.onHangup(),
      broken: (err) => this.refuse(err),
    })
  }

  close(): void {
    this.end()
  }

  /** Returns true once the first message is complete. */
  private onHello(text: string): boolean {
    let hello: PeerHello | undefined
    try {
      hello = decodeHello(text)
    } catch (err) {
      this.refuse(err)
      return false
    }
    if (hello === undefined) return false
    if (hello.kind === 'status') {
      this.conn.reply(this.host.status())
      this.end()
      return true
    }
    this.state = 'attaching'
    this.host.attach(this.pid, hello, this.conn.takeFds()).then(
      (session) => this.onAttached(session),
      (err: unknown) => this.refuse(err),
    )
    return true
  }

  private onAttached(session: PeerSession): void {
    this.session = session
    if (this.hungUp) {
      // It left while its pager was starting.
      this.host.whenGone(session)
      return
    }
    this.state = 'attached'
    this.conn.reply({ ok: true, id: session.id, pageSize: session.pageSize, pages: session.peer.size / session.pageSize, writeBack: session.peer.writeBack })
    for (const line of this.queued.splice(0)) this.onLine(line)
  }

  private onLine(line: string): void {
    if (this.state !== 'attached') {
      this.queued.push(line)
      return
    }
    let command: PeerCommand
    try {
      command = decodeCommand(line)
    } catch (err) {
      this.conn.reply({ ok: false, code: 'ERR_PEER', message: (err as Error).message })
      return
    }
    const session = this.session!
    const done = (): void => this.conn.reply({ ok: true, command, pagesWritten: session.stats().pagesWritten })
    const failed = (err: unknown): void => this.conn.reply({ ok: false, code: err instanceof FaultlineError ? err.code : 'ERR_PEER', message: String((err as Error).message) })
    if (command === 'flush') {
      session.flush().then(done, failed)
      return
    }
    this.host.retire(session, false).then(() => {
      done()
      this.end()
    }, failed)
  }

  private onHangup(): void {
    this.hungUp = true
    const session = this.state === 'attached' ? this.session : undefined
    // Gone before its message was whole: closing the descriptor it sent would leave its range reading zeros.
    for (const uffd of this.conn.takeFds()) this.host.keepRefused(uffd, this.pid)
    this.end()
    if (session !== undefined) this.host.whenGone(session)
  }

  private refuse(err: unknown): void {
    const e = err instanceof FaultlineError ? err : new FaultlineError('ERR_PEER', `faultline serve: ${String((err as Error).message ?? err)}`)
    // An attached peer that breaks the protocol later is still served until it exits.
    const session = this.state === 'attached' ? this.session : undefined
    this.host.refused(this.pid, e)
    this.conn.reply({ ok: false, code: e.code, message: e.message })
    for (const uffd of this.conn.takeFds()) this.host.keepRefused(uffd, this.pid)
    this.end()
    if (session !== undefined) this.host.whenGone(session)
  }

  private end(): void {
    if (this.state === 'ended') return
    // An attach still being served finishes in onAttached, which sees hungUp or the end.
    if (this.state === 'attaching') this.hungUp = true
    this.state = 'ended'
    this.conn.close()
    this.host.ended(this)
  }
}
