// Fuzzes the native decoding of userfaultfd messages (DrainMessages and
// DecodeMessage in packages/native/src/uffd.cc, used by uffdRead and by the
// watcher in poller.cc). Only the kernel writes to a real uffd, and it
// writes whole, well-formed struct uffd_msg records; but the decoding reads
// any descriptor, so a FIFO stands in for the uffd here and gets arbitrary
// records: every event byte, reserved fields set, 64-bit fields at the edges
// of what a double holds, batches across the 64-message read chunk and the
// caller's capacity, and records cut short. The decoded doubles must be
// what a reference decoder in TypeScript makes of the same bytes; a record
// cut short must end in a typed error (EPROTO), never in decoding bytes
// out of step.
import { execFileSync } from 'node:child_process'
import { closeSync, constants as fsConstants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { constants as osConstants, tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { constants, isNativeError, native } from '@faultline/native'
import { fuzzTimeoutMs, runCases, type Budget } from './cases.js'
import type { Rng } from './rng.js'

/** sizeof(struct uffd_msg): an event byte, 7 reserved bytes, a 24-byte union. */
const MSG = 32
const BUDGET: Budget = { cases: 2000, seconds: 5 }

const EVENTS = [constants.UFFD_EVENT_PAGEFAULT, constants.UFFD_EVENT_FORK, constants.UFFD_EVENT_REMAP, constants.UFFD_EVENT_REMOVE, constants.UFFD_EVENT_UNMAP] as number[]
const EDGES = [0n, 1n, 2n, 0x1000n, 0x7fff_ffff_f000n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 63n + 1025n, 2n ** 64n - 1n]

/** What DecodeMessage must make of one record: [event, …] as the pager reads them. */
function reference(record: Buffer): number[] {
  const u64 = (at: number): number => Number(record.readBigUInt64LE(8 + at))
  const u32 = (at: number): number => record.readUInt32LE(8 + at)
  const event = record[0]!
  switch (event) {
    case constants.UFFD_EVENT_PAGEFAULT:
      return [event, u64(0), u64(8), u32(16)]
    case constants.UFFD_EVENT_FORK:
      return [event, u32(0), 0, 0]
    case constants.UFFD_EVENT_REMAP:
      return [event, u64(0), u64(8), u64(16)]
    case constants.UFFD_EVENT_REMOVE:
    case constants.UFFD_EVENT_UNMAP:
      return [event, u64(0), u64(8), 0]
    default:
      return [event, 0, 0, 0]
  }
}

function record(rng: Rng): Buffer {
  const r = rng.bytes(MSG)
  r[0] = rng.chance(0.8) ? rng.pick(EVENTS) : rng.int(256)
  if (rng.chance(0.5)) r.fill(0, 1, 8)
  for (let at = 8; at < MSG; at += 8) {
    if (rng.chance(0.6)) r.writeBigUInt64LE(rng.chance(0.5) ? rng.pick(EDGES) : BigInt(rng.next()) * 4096n, at)
  }
  return r
}

let dir: string
let fd: number

/** Whatever is left in the FIFO from a case that ended early is read and dropped. */
function drain(): void {
  const out = new Float64Array(4 * 64)
  try {
    while (native.uffdRead(fd, out) > 0);
  } catch {
    // A cut-short record left behind: its error is the point of that case.
  }
}

/** Reads everything queued with uffdRead into arrays of `capacity` messages; the error, if any, ends it. */
function readAll(capacity: number): { messages: number[][]; error: unknown } {
  const out = new Float64Array(4 * capacity)
  const messages: number[][] = []
  for (;;) {
    let n: number
    try {
      n = native.uffdRead(fd, out)
    } catch (error) {
      return { messages, error }
    }
    expect(n).toBeLessThanOrEqual(capacity)
    if (n === 0) return { messages, error: undefined }
    for (let m = 0; m < n; m++) messages.push(Array.from(out.subarray(4 * m, 4 * m + 4)))
  }
}

describe('uffd message decoding fuzz', () => {
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'faultline-fuzz-uffd-'))
    const fifo = path.join(dir, 'uffd')
    execFileSync('mkfifo', [fifo])
    // O_RDWR: Linux opens a FIFO for both ends at once, without waiting for a writer.
    fd = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK)
  })
  afterAll(() => {
    if (fd !== undefined) closeSync(fd)
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('decodes every record as the reference does, and a record cut short into EPROTO', { timeout: fuzzTimeoutMs(BUDGET) }, async () => {
    await runCases('uffd-messages', BUDGET, (rng) => {
      drain()
      const records = Array.from({ length: rng.weighted([[4, () => rng.range(1, 8)], [1, () => rng.range(60, 140)]] as const)() }, () => record(rng))
      const short = rng.chance(0.2) ? rng.bytes(rng.range(1, MSG - 1)) : undefined
      const bytes = Buffer.concat([...records, short ?? Buffer.alloc(0)])
      expect(writeSync(fd, bytes)).toBe(bytes.length)
      const capacity = rng.pick([1, 3, 64, 65, 200])
      const { messages, error } = readAll(capacity)
      const expected = records.map(reference)
      if (short === undefined) {
        expect(error).toBeUndefined()
        expect(messages).toEqual(expected)
        return
      }
      // Cut short: whole records read before the short one may come out, in order; then EPROTO, nothing made of the stray bytes.
      expect(messages).toEqual(expected.slice(0, messages.length))
      expect(isNativeError(error), `a record cut short ended in ${String(error)}`).toBe(true)
      expect((error as { code: string }).code).toBe('EPROTO')
    })
  })

  it('the watcher delivers the same decoded messages, and stops with -EPROTO on a record cut short', async () => {
    const rounds: Array<{ records: Buffer[]; short: boolean }> = [
      { records: [1, 2, 3].map(() => Buffer.alloc(MSG)), short: false },
      { records: [], short: true },
    ]
    rounds[0]!.records.forEach((r, i) => {
      r[0] = constants.UFFD_EVENT_PAGEFAULT
      r.writeBigUInt64LE(BigInt(i), 8)
      r.writeBigUInt64LE(0x7f00_0000_0000n + BigInt(i) * 4096n, 16)
    })
    drain()
    const seen: Array<number[][] | number> = []
    let wake: () => void = () => undefined
    const watcher = native.watch(fd, 16, (count, messages) => {
      seen.push(count < 0 ? count : Array.from({ length: count }, (_, m) => Array.from(messages.subarray(4 * m, 4 * m + 4))))
      wake()
    })
    try {
      for (const round of rounds) {
        const delivered = new Promise<void>((resolve) => (wake = resolve))
        writeSync(fd, Buffer.concat([...round.records, round.short ? Buffer.alloc(MSG - 8) : Buffer.alloc(0)]))
        // Bounded: a watcher that takes part of a message for a spurious wake-up never calls back.
        let timer: NodeJS.Timeout | undefined
        const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no callback within 2 s (so far: ${JSON.stringify(seen)})`)), 2000)))
        await Promise.race([delivered, late]).finally(() => clearTimeout(timer))
      }
    } finally {
      watcher.stop()
    }
    expect(seen).toEqual([rounds[0]!.records.map(reference), -osConstants.errno.EPROTO])
  })
})
