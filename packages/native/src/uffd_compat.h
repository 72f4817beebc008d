// userfaultfd / pagemap uapi values newer than the build machine's headers
// (Debian 12 ships linux-libc-dev 6.1). Values and layouts follow torvalds/linux
// include/uapi/linux/userfaultfd.h and include/uapi/linux/fs.h; each macro is
// guarded so newer headers win, and static_asserts pin the ABI.
//
// Structs are declared under faultline-specific names (fl_*) so they never
// clash with a newer header's definitions; the layouts are identical.
#pragma once

#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <cstddef>

// --- feature bits (uffdio_api.features) -------------------------------------
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13) /* 6.4 */
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14) /* 6.6 */
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15) /* 6.7 */
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16) /* 6.8 */
#endif

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC 0xAA
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif

// --- UFFDIO_CONTINUE --------------------------------------------------------
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif

// --- UFFDIO_MOVE (6.8) ------------------------------------------------------
struct fl_uffdio_move {
  __u64 dst;
  __u64 src;
  __u64 len;
  __u64 mode;
  __s64 move;  // bytes moved, or -errno
};
static_assert(sizeof(fl_uffdio_move) == 40, "uffdio_move is 40 bytes");

#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
#endif
#ifndef UFFDIO_MOVE
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct fl_uffdio_move)
#endif
#ifndef UFFDIO_MOVE_MODE_DONTWAKE
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#endif
#ifndef UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
#endif

// --- UFFDIO_POISON (6.6) ----------------------------------------------------
struct fl_uffdio_poison {
  struct uffdio_range range;
  __u64 mode;
  __s64 updated;  // bytes poisoned, or -errno
};
static_assert(sizeof(fl_uffdio_poison) == 32, "uffdio_poison is 32 bytes");

#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
#endif
#ifndef UFFDIO_POISON
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct fl_uffdio_poison)
#endif
#ifndef UFFDIO_POISON_MODE_DONTWAKE
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
#endif

// --- PAGEMAP_SCAN (6.7, include/uapi/linux/fs.h) -----------------------------
// Exposed to JS as pagemapScan() (pagemap.cc).
struct fl_page_region {
  __u64 start;
  __u64 end;
  __u64 categories;
};
static_assert(sizeof(fl_page_region) == 24, "page_region is 24 bytes");

struct fl_pm_scan_arg {
  __u64 size;  // must be sizeof(struct pm_scan_arg) == 96
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;
  __u64 vec;
  __u64 vec_len;
  __u64 max_pages;
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};
static_assert(sizeof(fl_pm_scan_arg) == 96, "pm_scan_arg is 96 bytes");

#ifndef PAGEMAP_SCAN
#define PAGEMAP_SCAN _IOWR('f', 16, struct fl_pm_scan_arg)
#endif
#ifndef PM_SCAN_WP_MATCHING
#define PM_SCAN_WP_MATCHING (1 << 0)
#endif
#ifndef PM_SCAN_CHECK_WPASYNC
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#endif
#ifndef PAGE_IS_WPALLOWED
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#endif
#ifndef PAGE_IS_SOFT_DIRTY
#define PAGE_IS_SOFT_DIRTY (1 << 7)
#endif
#ifndef PAGE_IS_GUARD
#define PAGE_IS_GUARD (1 << 8)
#endif

// --- ABI checks against the notes (x86_64 / arm64 ioctl encoding) ------------
static_assert(sizeof(struct uffd_msg) == 32, "uffd_msg is 32 bytes");
static_assert(UFFDIO_API == 0xC018AA3F, "UFFDIO_API");
static_assert(UFFDIO_REGISTER == 0xC020AA00, "UFFDIO_REGISTER");
static_assert(UFFDIO_UNREGISTER == 0x8010AA01, "UFFDIO_UNREGISTER");
static_assert(UFFDIO_WAKE == 0x8010AA02, "UFFDIO_WAKE");
static_assert(UFFDIO_COPY == 0xC028AA03, "UFFDIO_COPY");
static_assert(UFFDIO_ZEROPAGE == 0xC020AA04, "UFFDIO_ZEROPAGE");
static_assert(UFFDIO_MOVE == 0xC028AA05, "UFFDIO_MOVE");
static_assert(UFFDIO_WRITEPROTECT == 0xC018AA06, "UFFDIO_WRITEPROTECT");
static_assert(UFFDIO_CONTINUE == 0xC020AA07, "UFFDIO_CONTINUE");
static_assert(UFFDIO_POISON == 0xC020AA08, "UFFDIO_POISON");
static_assert(PAGEMAP_SCAN == 0xC0606610, "PAGEMAP_SCAN");
static_assert(USERFAULTFD_IOC_NEW == 0xAA00, "USERFAULTFD_IOC_NEW");
