/**
 * A raw HTTP/1.1 peer for the fuzzers, on 127.0.0.1 and an ephemeral port:
 * it reads requests off each connection and writes whatever bytes the test
 * hands it, in pieces, then keeps, ends, resets or goes silent on the
 * connection. node:http's server would refuse to send most of the
 * malformed replies the fuzzers need.
 */
import net from 'node:net'

export interface PeerRequest {
  method: string
  path: string
  /** Header names in lower case. */
  headers: Record<string, string>
  /** An earlier reply on this connection left bytes the client may still read. */
  polluted: boolean
}

export interface PeerAnswer {
  bytes: Buffer
  /** Cut points in `bytes`: each piece is a write of its own, a turn of the event loop apart. */
  cuts: readonly number[]
  after: 'keep' | 'end' | 'reset' | 'stall'
  /** The reply leaves bytes past its framing: the next request on the connection is marked polluted. */
  pollutes: boolean
}

export class FuzzPeer {
  private readonly sockets = new Set<net.Socket>()

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(answer: (request: PeerRequest) => PeerAnswer): Promise<FuzzPeer> {
    let peer: FuzzPeer | undefined
    const server = net.createServer((socket) => peer!.serve(socket, answer))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', resolve)
    })
    peer = new FuzzPeer(server, (server.address() as net.AddressInfo).port)
    return peer
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private serve(socket: net.Socket, answer: (request: PeerRequest) => PeerAnswer): void {
    this.sockets.add(socket)
    socket.on('close', () => this.sockets.delete(socket))
    // The client resets connections too (timeouts, destroyed agents): not a failure here.
    socket.on('error', () => undefined)
    let pending = Buffer.alloc(0)
    let busy = false
    let done = false
    let polluted = false
    const next = async (): Promise<void> => {
      if (busy || done) return
      const end = pending.indexOf('\r\n\r\n')
      if (end === -1) return
      const head = pending.subarray(0, end).toString('latin1')
      pending = pending.subarray(end + 4)
      busy = true
      const reply = answer(parseRequest(head, polluted))
      polluted ||= reply.pollutes
      let at = 0
      for (const cut of [...reply.cuts, reply.bytes.length]) {
        if (socket.destroyed) return
        socket.write(reply.bytes.subarray(at, cut))
        at = cut
        await new Promise((resolve) => setImmediate(resolve))
      }
      if (socket.destroyed) return
      if (reply.after === 'end') socket.end()
      else if (reply.after === 'reset') socket.resetAndDestroy()
      if (reply.after !== 'keep') {
        // A request written after this (to a connection the client thinks is alive) is not answered.
        done = true
        return
      }
      busy = false
      await next()
    }
    socket.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data])
      void next()
    })
  }
}

function parseRequest(head: string, polluted: boolean): PeerRequest {
  const [requestLine = '', ...lines] = head.split('\r\n')
  const [method = '', path = ''] = requestLine.split(' ')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { method, path, headers, polluted }
}
