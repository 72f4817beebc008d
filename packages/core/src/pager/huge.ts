/**
 * Mapping a region over hugetlb pages (`hugePages`). The native layer only
 * maps; what a short pool means, and what to do about it, is said here.
 */
import { readFileSync } from 'node:fs'
import { native, FEATURE_BITS } from '@faultline/native'
import { FaultlineError } from '../errors.js'
import { formatHuge } from '../options.js'

const option = { option: 'hugePages' }

function poolDir(hugePageSize: number): string {
  return `/sys/kernel/mm/hugepages/hugepages-${hugePageSize / 1024}kB`
}

function readCount(dir: string, name: string): number | undefined {
  try {
    return Number(readFileSync(`${dir}/${name}`, 'utf8').trim())
  } catch {
    return undefined
  }
}

/** The pool of one huge page size: free pages not yet promised to a mapping, and the pool's size. */
export function hugePool(hugePageSize: number): { dir: string; available: number; total: number } | undefined {
  const dir = poolDir(hugePageSize)
  const total = readCount(dir, 'nr_hugepages')
  const free = readCount(dir, 'free_hugepages')
  if (total === undefined || free === undefined) return undefined
  return { dir, available: Math.max(0, free - (readCount(dir, 'resv_hugepages') ?? 0)), total }
}

/**
 * Throws ERR_HUGE_PAGES unless the kernel can register hugetlb memory for
 * these modes: MISSING always, WP when writes are tracked.
 */
export function checkHugeFeatures(offered: number, hugePageSize: number, tracksWrites: boolean): void {
  const size = formatHuge(hugePageSize)
  if ((offered & FEATURE_BITS.MISSING_HUGETLBFS) === 0) {
    throw new FaultlineError('ERR_HUGE_PAGES', `faultline: hugePages: this kernel's userfaultfd cannot serve hugetlb memory (no UFFD_FEATURE_MISSING_HUGETLBFS); open the region without hugePages`, option)
  }
  if (tracksWrites && (offered & FEATURE_BITS.WP_HUGETLBFS_SHMEM) === 0) {
    throw new FaultlineError('ERR_HUGE_PAGES', `faultline: hugePages: this kernel cannot write-protect hugetlb memory (no UFFD_FEATURE_WP_HUGETLBFS_SHMEM, Linux 5.19+), which a read-write region needs to track writes; open it with access: 'read-only', or without hugePages (${size} pages)`, option)
  }
}

/**
 * mmap over `size / hugePageSize` huge pages, all reserved now. A pool too
 * small fails here (ENOMEM) and becomes ERR_HUGE_PAGES saying how many pages
 * are needed, how many are free, and how to reserve them.
 */
export function mapHuge(size: number, hugePageSize: number): number {
  const pool = hugePool(hugePageSize)
  const kB = hugePageSize / 1024
  const label = formatHuge(hugePageSize)
  if (pool === undefined) {
    throw new FaultlineError('ERR_HUGE_PAGES', `faultline: hugePages: this machine offers no ${label} huge pages (${poolDir(hugePageSize)} does not exist: the CPU or kernel lacks that size, or the kernel has no hugetlbfs); use another size or open the region without hugePages`, option)
  }
  try {
    return native.mapAnonymous(size, hugePageSize)
  } catch (cause) {
    if ((cause as { code?: string }).code !== 'ENOMEM') throw cause
    const needed = size / hugePageSize
    const now = hugePool(hugePageSize) ?? pool
    const target = now.total + Math.max(1, needed - now.available)
    const sysctl = hugePageSize === 2 ** 21 ? ` (or \`sysctl vm.nr_hugepages=${target}\`)` : ''
    throw new FaultlineError(
      'ERR_HUGE_PAGES',
      `faultline: hugePages: the region needs ${needed} huge page${needed === 1 ? '' : 's'} of ${label} but the pool has ${now.available} free ` +
        `(nr_hugepages ${now.total}, in ${now.dir}). Reserve them as root: \`echo ${target} > ${now.dir}/nr_hugepages\`${sysctl}, ` +
        `or at boot with hugepagesz=${hugePageSize === 2 ** 30 ? '1G' : '2M'} hugepages=${target} on the kernel command line; ` +
        `read nr_hugepages back, as the kernel gives fewer when memory is fragmented (${kB} kB pages)`,
      { ...option, cause },
    )
  }
}
