/**
 * userfaultfd constants from the kernel's uapi (include/uapi/linux/userfaultfd.h),
 * plus the PAGEMAP_SCAN flags and categories (include/uapi/linux/fs.h).
 * The system headers here are 6.1; values added later are defined by hand in
 * the C++ too, and a test checks the two sets agree with the addon's export.
 */
import { loadAddon } from './load-addon.js'

// The page size comes from the addon when it loads; without it (a type
// check, a docs build) the x86_64 value keeps the constants usable.
const loaded = loadAddon()
const addonConstants = 'addon' in loaded ? (loaded.addon as { constants: { SYSTEM_PAGE_SIZE: number } }).constants : { SYSTEM_PAGE_SIZE: 4096 }

/** Feature bits of `uffdio_api.features`, by name (UFFD_FEATURE_*). */
export const FEATURE_BITS = {
  PAGEFAULT_FLAG_WP: 1 << 0,
  EVENT_FORK: 1 << 1,
  EVENT_REMAP: 1 << 2,
  EVENT_REMOVE: 1 << 3,
  MISSING_HUGETLBFS: 1 << 4,
  MISSING_SHMEM: 1 << 5,
  EVENT_UNMAP: 1 << 6,
  SIGBUS: 1 << 7,
  THREAD_ID: 1 << 8,
  MINOR_HUGETLBFS: 1 << 9,
  MINOR_SHMEM: 1 << 10,
  EXACT_ADDRESS: 1 << 11,
  WP_HUGETLBFS_SHMEM: 1 << 12,
  WP_UNPOPULATED: 1 << 13,
  POISON: 1 << 14,
  WP_ASYNC: 1 << 15,
  MOVE: 1 << 16,
} as const

export type FeatureName = keyof typeof FEATURE_BITS

/** Names of the bits set in a feature mask; unknown bits come out as `bit<N>`. */
export function featureNames(mask: number): string[] {
  const names: string[] = []
  for (let bit = 0; bit < 32; bit++) {
    const value = 2 ** bit
    if (Math.floor(mask / value) % 2 !== 1) continue
    const name = (Object.keys(FEATURE_BITS) as FeatureName[]).find((n) => FEATURE_BITS[n] === value)
    names.push(name ?? `bit${bit}`)
  }
  return names
}

export const constants = {
  UFFD_API: 0xaa,
  UFFDIO_REGISTER_MODE_MISSING: 1 << 0,
  UFFDIO_REGISTER_MODE_WP: 1 << 1,
  UFFDIO_REGISTER_MODE_MINOR: 1 << 2,
  UFFDIO_COPY_MODE_DONTWAKE: 1 << 0,
  UFFDIO_COPY_MODE_WP: 1 << 1,
  UFFDIO_ZEROPAGE_MODE_DONTWAKE: 1 << 0,
  UFFDIO_WRITEPROTECT_MODE_WP: 1 << 0,
  UFFDIO_WRITEPROTECT_MODE_DONTWAKE: 1 << 1,
  UFFDIO_POISON_MODE_DONTWAKE: 1 << 0,
  UFFD_EVENT_PAGEFAULT: 0x12,
  UFFD_EVENT_FORK: 0x13,
  UFFD_EVENT_REMAP: 0x14,
  UFFD_EVENT_REMOVE: 0x15,
  UFFD_EVENT_UNMAP: 0x16,
  UFFD_PAGEFAULT_FLAG_WRITE: 1 << 0,
  UFFD_PAGEFAULT_FLAG_WP: 1 << 1,
  UFFD_PAGEFAULT_FLAG_MINOR: 1 << 2,
  MADV_DONTNEED: 4,
  MADV_FREE: 8,
  MADV_DONTFORK: 10,
  MADV_PAGEOUT: 21,
  MADV_POPULATE_READ: 22,
  MADV_POPULATE_WRITE: 23,
  EEXIST: 17,
  /** The event code a watcher writes over a fault it answered natively (kernel events are 0x12–0x17). */
  WATCH_SERVED: 256,
  EAGAIN: 11,
  /** PAGEMAP_SCAN flag: write-protect the pages that match (needs a WP_ASYNC registration to take effect). */
  PM_SCAN_WP_MATCHING: 1 << 0,
  /** PAGEMAP_SCAN flag: fail with EPERM unless every VMA in the range is registered WP with WP_ASYNC. */
  PM_SCAN_CHECK_WPASYNC: 1 << 1,
  /** Page categories of PAGEMAP_SCAN (include/uapi/linux/fs.h); 6.18 rejects bit 9 and above with EINVAL. */
  PAGE_IS_WPALLOWED: 1 << 0,
  /** Not write-protected: written since the last re-protect, or an unprotected hole/page. */
  PAGE_IS_WRITTEN: 1 << 1,
  PAGE_IS_FILE: 1 << 2,
  PAGE_IS_PRESENT: 1 << 3,
  PAGE_IS_SWAPPED: 1 << 4,
  PAGE_IS_PFNZERO: 1 << 5,
  PAGE_IS_HUGE: 1 << 6,
  PAGE_IS_SOFT_DIRTY: 1 << 7,
  PAGE_IS_GUARD: 1 << 8,
  SYSTEM_PAGE_SIZE: addonConstants.SYSTEM_PAGE_SIZE,
} as const
