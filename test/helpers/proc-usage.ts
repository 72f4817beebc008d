/** What a process holds, as the kernel counts it: for tests that check nothing is left behind. */
import { readdirSync, readFileSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

export interface ProcessUsage {
  /** Open file descriptors (/proc/self/fd). */
  fds: number
  /** Threads (/proc/self/task): the main thread, V8's and libuv's, Workers'. */
  threads: number
  /** Lines of /proc/self/maps: every mapping, reserved or not. */
  mappings: number
  /** Address space in KiB (VmSize): catches mappings the kernel merged into one line. */
  vmKiB: number
  /** Resident set size in KiB (VmRSS of /proc/self/status). */
  rssKiB: number
}

export function processUsage(): ProcessUsage {
  const status = readFileSync('/proc/self/status', 'utf8')
  const kiB = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)
    if (m === null) throw new Error(`no ${field} in /proc/self/status`)
    return Number(m[1])
  }
  return {
    // readdirSync opens the directory: its own fd is in the listing.
    fds: readdirSync('/proc/self/fd').length - 1,
    threads: readdirSync('/proc/self/task').length,
    mappings: readFileSync('/proc/self/maps', 'utf8').split('\n').length - 1,
    vmKiB: kiB('VmSize'),
    rssKiB: kiB('VmRSS'),
  }
}

/**
 * Collects garbage twice (finalizers of external buffers run in between)
 * when the process can: gc is exposed on demand, since vitest's workers do
 * not run with --expose-gc.
 */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  gc()
}
