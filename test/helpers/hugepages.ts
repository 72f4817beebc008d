/**
 * Reserving hugetlb pages for a test, and giving them back. The pool is
 * machine-wide: every change is relative to what was there before, and
 * restore() puts the count back exactly (pages still mapped would linger as
 * surplus, so close regions first).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'

export const HUGE_2M = 2 ** 21
export const HUGE_1G = 2 ** 30

export function poolDir(hugePageSize: number): string {
  return `/sys/kernel/mm/hugepages/hugepages-${hugePageSize / 1024}kB`
}

function read(dir: string, name: string): number {
  return Number(readFileSync(`${dir}/${name}`, 'utf8').trim())
}

export interface HugePool {
  readonly dir: string
  /** nr_hugepages before this helper touched it. */
  readonly before: number
  /** Sets the pool so that `free` pages are free and unpromised (as far as the kernel can); returns how many are. */
  provide(free: number): number
  /** Free pages not promised to any mapping. */
  available(): number
  /** Puts nr_hugepages back to `before`. */
  restore(): void
}

/** undefined when this size has no pool on this machine. */
export function hugePool(hugePageSize: number): HugePool | undefined {
  const dir = poolDir(hugePageSize)
  if (!existsSync(`${dir}/nr_hugepages`)) return undefined
  const before = read(dir, 'nr_hugepages')
  const available = (): number => read(dir, 'free_hugepages') - read(dir, 'resv_hugepages')
  return {
    dir,
    before,
    available,
    provide(free) {
      const total = read(dir, 'nr_hugepages')
      writeFileSync(`${dir}/nr_hugepages`, String(Math.max(0, total + free - available())))
      return available()
    },
    restore() {
      writeFileSync(`${dir}/nr_hugepages`, String(before))
    },
  }
}
