// A TCP proxy that holds every chunk for a fixed time in each direction, so
// a loopback server behaves like one across a network (`pnpm bench` has no
// netem on this kernel). Run as a child process, so its event loop never
// competes with the measured one:
//   node bench/delay-proxy.mjs <targetPort> <oneWayMs>   → prints {"port":N}
import { connect, createServer } from 'node:net'

const [targetPort, oneWayMs] = process.argv.slice(2).map(Number)

/** Forwards `from` to `to`, each chunk `oneWayMs` after it arrived, in order. */
function delayed(from, to) {
  const queue = []
  let timer
  const pump = () => {
    timer = undefined
    const now = performance.now()
    while (queue.length > 0 && queue[0].due <= now) to.write(queue.shift().chunk)
    if (queue.length > 0) timer = setTimeout(pump, queue[0].due - now)
  }
  from.on('data', (chunk) => {
    queue.push({ chunk, due: performance.now() + oneWayMs })
    timer ??= setTimeout(pump, oneWayMs)
  })
  from.on('close', () => to.destroy())
  from.on('error', () => to.destroy())
}

const server = createServer({ noDelay: true }, (client) => {
  const upstream = connect({ port: targetPort, host: '127.0.0.1', noDelay: true })
  delayed(client, upstream)
  delayed(upstream, client)
})
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`))
