/** What /proc says of another process on this machine. */
import { readFileSync } from 'node:fs'

/**
 * The process's start time (clock ticks since boot, mod 2^31: it tells a
 * process from a later one with the same pid), or undefined when it is gone
 * or a zombie (whose memory is gone already; a zombie still answers kill(pid, 0)).
 */
export function processStartTime(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    // fields[0] is the state (field 3 of proc(5)); fields[19] the start time (field 22).
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined
    return Number(BigInt(fields[19]!) % 2147483648n)
  } catch {
    return undefined
  }
}
