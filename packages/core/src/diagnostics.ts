/** What the kernel says about a region, for tests, benchmarks and monitoring. */
import { readFileSync } from 'node:fs'

/**
 * Resident bytes of the mapping that starts at `address` (a region's
 * `handle().address`), as the kernel counts them in /proc/self/smaps.
 * Parses the whole smaps file: call it now and then, not per access.
 */
export function mappingResidentBytes(address: number): number {
  return mappingMemory(address).rss
}

/**
 * Rss and Pss (bytes) of the mapping that starts at `address`, from
 * /proc/self/smaps. Pss divides each page among the processes mapping it:
 * for a shared region (the `shared` option) the sum over every process is
 * what the machine holds once.
 */
export function mappingMemory(address: number): { rss: number; pss: number } {
  const lines = readFileSync('/proc/self/smaps', 'utf8').split('\n')
  const start = `${address.toString(16)}-`
  const at = lines.findIndex((l) => l.startsWith(start))
  if (at < 0) throw new Error(`faultline: no mapping starts at 0x${address.toString(16)}`)
  const out = { rss: 0, pss: 0 }
  for (let j = at + 1; j < lines.length && !/^[0-9a-f]+-[0-9a-f]+ /.test(lines[j]!); j++) {
    const m = /^(Rss|Pss):\s+(\d+) kB/.exec(lines[j]!)
    if (m) out[m[1] === 'Rss' ? 'rss' : 'pss'] = Number(m[2]) * 1024
  }
  return out
}
