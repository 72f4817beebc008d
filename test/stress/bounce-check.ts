/**
 * What a bounce run's region must hold, and how it differs when it does not:
 * the merged model of every worker's words plus the page counters' totals.
 */
import { WORD, decode, owner } from '../fixtures/bounce-layout.mjs'

export interface Geometry {
  pages: number
  pageSize: number
  workers: number
}

/** The region's expected contents as words: each worker's last writes, and in word 0 of each page the sum of every worker's increments. */
export function expectedWords(g: Geometry, model: Uint32Array, adds: Uint32Array): Uint32Array {
  const expected = model.slice()
  const wordsPerPage = g.pageSize / WORD
  for (let page = 0; page < g.pages; page++) {
    let total = 0
    for (let w = 0; w < g.workers; w++) total += adds[w * g.pages + page]!
    expected[page * wordsPerPage] = total
  }
  return expected
}

/** Up to `limit` differences between `bytes` and `expected`, each naming page, word, owner and what was there; empty when equal. */
export function differences(g: Geometry, expected: Uint32Array, bytes: Uint8Array, limit = 6): string[] {
  const out: string[] = []
  if (bytes.byteLength !== expected.byteLength) return [`${bytes.byteLength} bytes where ${expected.byteLength} were expected`]
  const actual = new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
  const wordsPerPage = g.pageSize / WORD
  let count = 0
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] === expected[i]) continue
    if (++count > limit) continue
    const page = Math.floor(i / wordsPerPage)
    const word = i % wordsPerPage
    const found = actual[i]!
    out.push(
      word === 0
        ? `page ${page} counter: expected ${expected[i]}, found ${found}`
        : `page ${page} word ${word} (worker ${owner(page, word, g.workers)}): expected seq ${decode(page, word, expected[i]!)}, found ${describeValue(page, word, found)}`,
    )
  }
  if (count > limit) out.push(`… ${count} words differ in all`)
  return out
}

function describeValue(page: number, word: number, value: number): string {
  const seq = decode(page, word, value)
  return seq < 0 ? `garbage 0x${value.toString(16)}` : `seq ${seq}`
}
