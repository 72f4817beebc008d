import { readFileSync } from 'node:fs'

/** Resident bytes of the mapping that starts at `address`, as the kernel counts them (/proc/self/smaps). */
export function residentBytes(address: number): number {
  const smaps = readFileSync('/proc/self/smaps', 'utf8').split('\n')
  const start = address.toString(16)
  for (let i = 0; i < smaps.length; i++) {
    const line = smaps[i]!
    if (!/^[0-9a-f]+-[0-9a-f]+ /.test(line) || line.split('-')[0] !== start) continue
    for (let j = i + 1; j < smaps.length && !/^[0-9a-f]+-[0-9a-f]+ /.test(smaps[j]!); j++) {
      const m = /^Rss:\s+(\d+) kB/.exec(smaps[j]!)
      if (m) return Number(m[1]) * 1024
    }
  }
  throw new Error(`no mapping at 0x${start} in /proc/self/smaps`)
}
