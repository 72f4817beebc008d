/**
 * Host names to addresses without the libuv threadpool, for ioredis: it
 * would call dns.lookup (getaddrinfo on a pool thread) for a host name, and a
 * pool thread may be asleep in a page fault of this very region. The backend
 * hands ioredis IP addresses only, from the shared resolver in net/lookup.ts
 * (literals, localhost, /etc/hosts, then c-ares on the event loop).
 */
import { isIP } from 'node:net'
import { createResolver } from '../net/lookup.js'

const resolvers = new Map<number, ReturnType<typeof createResolver>>()

/** One address for `host`, IPv4 preferred (the common case in containers with no IPv6 route). */
export async function resolveHost(host: string, timeoutMs: number): Promise<string> {
  if (isIP(host) !== 0) return host
  let resolve = resolvers.get(timeoutMs)
  if (resolve === undefined) {
    resolve = createResolver(timeoutMs)
    resolvers.set(timeoutMs, resolve)
  }
  const addresses = await resolve(host)
  const chosen = addresses.find((a) => a.family === 4) ?? addresses[0]
  if (chosen === undefined) throw new Error(`cannot resolve host ${JSON.stringify(host)}: no A or AAAA record`)
  return chosen.address
}

/** A `dns.lookup`-shaped callback function for ioredis Cluster's `dnsLookup` option. */
export function clusterLookup(timeoutMs: number): (hostname: string, callback: (err: Error | null, address: string) => void) => void {
  return (hostname, callback) => {
    resolveHost(hostname, timeoutMs).then(
      (address) => callback(null, address),
      (err: Error) => callback(err, ''),
    )
  }
}
