/**
 * The bounce stress's main thread during each round: it keeps the
 * pager busy alongside the workers with flushes, prefetches of random ranges
 * (readahead the workers did not ask for) and reads through its own view.
 */
import type { Region } from '@faultline/core'
import { WORD, decode, rng } from '../fixtures/bounce-layout.mjs'
import type { Geometry } from './bounce-check.js'

/** The main thread's part: flush most of the time, prefetch a range, or check a page through its own view. */
export function mainThread(region: Region, g: Geometry, seed: number): { step(): Promise<void>; readonly flushes: number } {
  const r = rng(seed)
  const view = region.view(0, g.pages * g.pageSize)
  const words = new Uint32Array(view.buffer, view.byteOffset, view.byteLength / WORD)
  const wordsPerPage = g.pageSize / WORD
  let flushes = 0
  return {
    get flushes() {
      return flushes
    },
    async step() {
      const action = r.below(10)
      if (action < 6) {
        await region.flush()
        flushes++
      } else if (action < 8) {
        const pages = 1 + r.below(Math.max(1, g.pages / 16))
        const first = r.below(g.pages - pages + 1)
        await region.prefetch(first * g.pageSize, pages * g.pageSize)
      } else {
        const page = r.below(g.pages)
        for (let k = 0; k < 16; k++) {
          const word = 1 + r.below(wordsPerPage - 1)
          const value = words[page * wordsPerPage + word]!
          if (decode(page, word, value) < 0) throw new Error(`main thread: garbage 0x${value.toString(16)} at page ${page} word ${word}`)
        }
      }
      await new Promise((resolve) => setTimeout(resolve, r.below(3)))
    },
  }
}
