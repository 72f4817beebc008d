/** The hints `region.advise()` takes, after madvise(2)'s MADV_* names. */
export const ADVICE = ['normal', 'sequential', 'random', 'willneed', 'dontneed'] as const

/** How a range of a region will be used (see `Region.advise`). */
export type Advice = (typeof ADVICE)[number]

export function isAdvice(value: unknown): value is Advice {
  return typeof value === 'string' && (ADVICE as readonly string[]).includes(value)
}
