/**
 * Host names to addresses without the libuv threadpool. ioredis would call
 * dns.lookup (getaddrinfo on a pool thread) for a host name; a pool thread
 * may be asleep in a page fault of this very region, so the backend hands
 * ioredis IP addresses only: literals as they are, localhost, /etc/hosts
 * (read synchronously on the pager thread), then DNS through c-ares, which
 * runs on the calling thread's event loop.
 */
import { promises as dns } from 'node:dns'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'

export async function resolveHost(host: string, timeoutMs: number): Promise<string> {
  if (isIP(host) !== 0) return host
  const name = host.toLowerCase().replace(/\.$/, '')
  if (name === 'localhost' || name.endsWith('.localhost')) return '127.0.0.1'
  const fromHosts = lookupHostsFile(name)
  if (fromHosts !== undefined) return fromHosts
  const resolver = new dns.Resolver({ timeout: timeoutMs, tries: 2 })
  let v4Error: unknown
  try {
    const [address] = await resolver.resolve4(name)
    if (address !== undefined) return address
  } catch (err) {
    v4Error = err
  }
  try {
    const [address] = await resolver.resolve6(name)
    if (address !== undefined) return address
  } catch {
    // report the IPv4 failure, usually the informative one
  }
  const why = v4Error instanceof Error ? v4Error.message : 'no A or AAAA record'
  throw new Error(`cannot resolve host ${JSON.stringify(host)}: ${why}`)
}

/** The first address /etc/hosts gives `name`, if any. */
function lookupHostsFile(name: string): string | undefined {
  let text: string
  try {
    text = readFileSync('/etc/hosts', 'utf8')
  } catch {
    return undefined
  }
  for (const line of text.split('\n')) {
    const fields = line.replace(/#.*/, '').trim().split(/\s+/)
    const address = fields[0]
    if (address === undefined || isIP(address) === 0) continue
    if (fields.slice(1).some((f) => f.toLowerCase() === name)) return address
  }
  return undefined
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
