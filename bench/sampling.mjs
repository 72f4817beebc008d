// Page choices shared by the bench scenarios: deterministic, so runs compare.

/** `count` distinct pages of `pages` (all of them if fewer), in a fixed pseudo-random order. */
export function randomPages(pages, count, seed = 7) {
  const chosen = new Set()
  let s = seed
  while (chosen.size < Math.min(count, pages)) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    chosen.add(s % pages)
  }
  return [...chosen]
}
