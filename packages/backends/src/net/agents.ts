/**
 * Keep-alive agents for a backend's HTTP(S) traffic. One pair per backend:
 * its sockets are owned by the pager thread that made them, and they resolve
 * host names without the libuv threadpool (see lookup.ts).
 */
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { createLookup } from './lookup.js'

export interface Agents {
  http: HttpAgent
  https: HttpsAgent
  destroy(): void
}

export function createAgents(maxSockets: number): Agents {
  const lookup = createLookup()
  // maxFreeSockets = maxSockets: a burst of batches should find warm sockets on the next burst.
  const options = { keepAlive: true, keepAliveMsecs: 15_000, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' as const, lookup }
  const http = new HttpAgent(options)
  const https = new HttpsAgent(options)
  return {
    http,
    https,
    destroy() {
      http.destroy()
      https.destroy()
    },
  }
}
