// The best loop a user would write by hand to read a whole remote object:
// parallel ranged GETs with the same client (SDK for S3, fetch for HTTP),
// `concurrency` requests in flight, each of `part` bytes, assembled into one
// buffer. The part size and concurrency are swept over a small grid and the
// best kept, so faultline's sequential scan is compared with the best such
// loop on this machine, not with a guess.

const MiB = 2 ** 20
export const PARTS = [1 * MiB, 4 * MiB, 8 * MiB, 16 * MiB]
export const CONCURRENCY = [2, 4, 8, 16]

/** Reads [0, size) as ranged GETs, `concurrency` at a time, each `part` bytes; `range(start, end)` returns the bytes. */
export async function parallelRanges(range, size, part, concurrency) {
  const out = new Uint8Array(size)
  let next = 0
  const worker = async () => {
    while (next < size) {
      const start = next
      next = Math.min(size, start + part)
      const end = next
      const bytes = await range(start, end)
      if (bytes.byteLength !== end - start) throw new Error(`range ${start}-${end - 1}: got ${bytes.byteLength} bytes`)
      out.set(bytes, start)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return out
}

/**
 * Every (part, concurrency) of the grid once, each checked against `expected`;
 * returns the fastest as { part, concurrency, ms } and all of them in `grid`.
 */
export async function bestParallelLoop(range, expected, { parts = PARTS, concurrency = CONCURRENCY } = {}) {
  const size = expected.byteLength
  const grid = []
  for (const part of parts) {
    for (const c of concurrency) {
      const t0 = performance.now()
      const got = await parallelRanges(range, size, part, c)
      const ms = performance.now() - t0
      if (Buffer.compare(got, expected) !== 0) throw new Error(`parallel ranged GETs (${part / MiB} MiB × ${c}) read wrong bytes`)
      grid.push({ part, concurrency: c, ms })
    }
  }
  const best = grid.reduce((a, b) => (b.ms < a.ms ? b : a))
  return { ...best, grid }
}

export const describeLoop = ({ part, concurrency }) => `${part / MiB} MiB × ${concurrency}`
