// Starts bench/delay-proxy.mjs in a child process in front of a loopback
// port: { port, stop } once it listens. Shared by the Redis and remote scenarios.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** A proxy to 127.0.0.1:`targetPort` holding every chunk `oneWayMs` in each direction (round trip 2 × oneWayMs). */
export function startDelayProxy(targetPort, oneWayMs) {
  const proc = spawn(process.execPath, [fileURLToPath(new URL('./delay-proxy.mjs', import.meta.url)), String(targetPort), String(oneWayMs)], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    proc.once('error', reject)
    proc.stdout.once('data', (line) => resolve({ port: JSON.parse(String(line)).port, stop: () => proc.kill() }))
  })
}
