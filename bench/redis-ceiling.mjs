// How fast redis-server and the socket can deliver pages at all: MGETs of
// 1 MiB pipelined on a raw socket, the replies' bytes counted and dropped.
// No client library, no parsing, no copy: no Redis reader on this machine
// can be much faster, so it bounds every other subject of a scenario. Two
// commands in flight suit loopback (more makes the server build bigger
// replies in new memory); eight keep a 2 ms round trip busy. The best of both counts.
import net from 'node:net'

const KEYS_PER_COMMAND = 16

/** Milliseconds to receive the values of `keys` (each `valueBytes` long; all must exist) from the server at host:port: the best of 2 and 8 commands in flight. */
export async function deliveryCeiling(host, port, keys, valueBytes) {
  return Math.min(await receive(host, port, keys, valueBytes, 2), await receive(host, port, keys, valueBytes, 8))
}

async function receive(host, port, keys, valueBytes, inFlight) {
  const commands = []
  for (let i = 0; i < keys.length; i += KEYS_PER_COMMAND) commands.push(keys.slice(i, i + KEYS_PER_COMMAND))
  const encode = (part) => `*${part.length + 1}\r\n$4\r\nMGET\r\n${part.map((k) => `$${Buffer.byteLength(k)}\r\n${k}\r\n`).join('')}`
  const header = `$${valueBytes}\r\n`.length
  const replyBytes = commands.map((part) => `*${part.length}\r\n`.length + part.length * (header + valueBytes + 2))
  let sent = 0
  let received = 0
  let replied = 0
  let boundary = replyBytes[0]
  let done
  const finished = new Promise((resolve) => (done = resolve))
  const socket = net.connect({
    host,
    port,
    noDelay: true,
    onread: {
      buffer: Buffer.allocUnsafe(256 * 1024),
      callback: (n) => {
        received += n
        while (replied < commands.length && received >= boundary) {
          replied++
          boundary += replyBytes[replied] ?? 0
          if (sent < commands.length) socket.write(encode(commands[sent++]))
        }
        if (replied === commands.length) done()
        return true
      },
    },
  })
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const t0 = performance.now()
  while (sent < Math.min(inFlight, commands.length)) socket.write(encode(commands[sent++]))
  await finished
  const ms = performance.now() - t0
  socket.destroy()
  return ms
}
