/**
 * Host name resolution for sockets opened on the pager thread. `dns.lookup`
 * (Node's default for every socket) runs getaddrinfo on the libuv
 * threadpool, and a pool thread may be the one asleep in a page fault this
 * very lookup is meant to serve. So: IP literals and `localhost` need no
 * lookup, /etc/hosts is read once synchronously, and everything else goes to
 * c-ares (`dns.promises.Resolver`), which uses sockets on the event loop.
 */
import { promises as dns, type LookupAddress, type LookupOptions } from 'node:dns'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'

type Callback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void
/** The `lookup` option of `net.connect`/`http.Agent`. */
export type LookupFn = (hostname: string, options: LookupOptions, callback: Callback) => void

/** Answers from c-ares are cached for their TTL, at least this long. */
const MIN_TTL_MS = 1_000
const MAX_TTL_MS = 300_000

let hostsFile: Map<string, LookupAddress[]> | undefined

/** /etc/hosts, parsed once: c-ares does not consult it, getaddrinfo would. */
function hosts(): Map<string, LookupAddress[]> {
  if (hostsFile !== undefined) return hostsFile
  hostsFile = new Map()
  let text = ''
  try {
    text = readFileSync('/etc/hosts', 'utf8')
  } catch {
    return hostsFile
  }
  for (const line of text.split('\n')) {
    const [address, ...names] = line.replace(/#.*/, '').trim().split(/\s+/)
    const family = address === undefined ? 0 : isIP(address)
    if (family === 0) continue
    for (const name of names) {
      const key = name.toLowerCase()
      const list = hostsFile.get(key) ?? []
      list.push({ address: address!, family })
      hostsFile.set(key, list)
    }
  }
  return hostsFile
}

function byFamily(addresses: LookupAddress[], family: number): LookupAddress[] {
  return family === 4 || family === 6 ? addresses.filter((a) => a.family === family) : addresses
}

/** Addresses for a host name, without the threadpool; one resolver and TTL cache per call of this. */
export function createResolver(timeoutMs = 2_000): (hostname: string) => Promise<LookupAddress[]> {
  const resolver = new dns.Resolver({ timeout: timeoutMs, tries: 3 })
  const cache = new Map<string, { addresses: LookupAddress[]; expires: number }>()

  async function resolve(hostname: string): Promise<LookupAddress[]> {
    const name = hostname.toLowerCase().replace(/\.$/, '')
    if (name === 'localhost' || name.endsWith('.localhost')) {
      return [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }]
    }
    const fromHosts = hosts().get(name)
    if (fromHosts !== undefined) return fromHosts
    const cached = cache.get(name)
    if (cached !== undefined && cached.expires > Date.now()) return cached.addresses
    // IPv4 first: the common case in containers with no IPv6 route.
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(name, { ttl: true }), resolver.resolve6(name, { ttl: true })])
    const records = [...(v4.status === 'fulfilled' ? v4.value.map((r) => ({ ...r, family: 4 })) : []), ...(v6.status === 'fulfilled' ? v6.value.map((r) => ({ ...r, family: 6 })) : [])]
    if (records.length === 0) {
      const reason = v4.status === 'rejected' ? (v4.reason as NodeJS.ErrnoException) : undefined
      throw Object.assign(new Error(`cannot resolve host ${hostname}: ${reason?.code ?? 'no addresses'}`), { code: reason?.code ?? 'ENOTFOUND', hostname })
    }
    const ttlMs = Math.min(MAX_TTL_MS, Math.max(MIN_TTL_MS, Math.min(...records.map((r) => r.ttl)) * 1000))
    const addresses = records.map((r) => ({ address: r.address, family: r.family }))
    cache.set(name, { addresses, expires: Date.now() + ttlMs })
    return addresses
  }
  return resolve
}

/** A lookup function with its own resolver and cache; one per backend. */
export function createLookup(): LookupFn {
  const resolve = createResolver()
  return (hostname, options, callback) => {
    const family = typeof options.family === 'number' ? options.family : 0
    const literal = isIP(hostname)
    const found = literal !== 0 ? Promise.resolve([{ address: hostname, family: literal }]) : resolve(hostname)
    found.then(
      (all) => {
        const usable = byFamily(all, family)
        const first = usable[0]
        if (first === undefined) {
          callback(Object.assign(new Error(`host ${hostname} has no IPv${family} address`), { code: 'ENOTFOUND' }), '')
          return
        }
        if (options.all === true) callback(null, usable)
        else callback(null, first.address, first.family)
      },
      (err: NodeJS.ErrnoException) => callback(err, ''),
    )
  }
}
