/** Small helpers over page lists shared by the fault and write-back paths. */

/** "page 3" or "pages 1, 2, 5, … (40 in all)", for messages. */
export function describePages(pages: readonly number[]): string {
  if (pages.length === 1) return `page ${pages[0]}`
  const shown = pages.slice(0, 8).join(', ')
  return `pages ${shown}${pages.length > 8 ? `, … (${pages.length} in all)` : ''}`
}

/** Consecutive runs of a sorted page list, as [first, count]. */
export function runs(pages: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const p of pages) {
    const last = out[out.length - 1]
    if (last !== undefined && last[0] + last[1] === p) last[1]++
    else out.push([p, 1])
  }
  return out
}
