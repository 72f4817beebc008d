// PAGEMAP_SCAN (Linux 6.7+): walks the page tables of a range of this process
// and reports pages by category; with PM_SCAN_WP_MATCHING it also
// write-protects the matching pages of a WP_ASYNC uffd registration, which
// makes "get the written pages and re-arm them" one atomic call.
//
// The ioctl is issued on /proc/self/pagemap, opened once per process (shared
// by every thread that loads the addon) and kept open. The descriptor is tied
// to the mm of the process that opened it, so a forked child (which would see
// its parent's fd) reopens its own.
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "faultline.h"
#include "uffd_compat.h"

namespace faultline {

namespace {

// Leaked on purpose, like the mapping registry: worker threads may still scan
// while the main thread runs static destructors at exit.
std::mutex& PagemapMutex() {
  static std::mutex* mu = new std::mutex();
  return *mu;
}

int g_pagemap_fd = -1;
pid_t g_pagemap_pid = 0;

// Returns the process-wide /proc/self/pagemap descriptor, opening it on first
// use; -errno when the open fails (the next call tries again).
int PagemapFd() {
  std::lock_guard<std::mutex> lock(PagemapMutex());
  const pid_t pid = getpid();
  if (g_pagemap_fd >= 0 && g_pagemap_pid == pid) return g_pagemap_fd;
  // After fork() the inherited descriptor still points at the parent's mm;
  // close our copy and open the child's own (O_CLOEXEC covers exec).
  if (g_pagemap_fd >= 0) close(g_pagemap_fd);
  g_pagemap_fd = -1;
  int fd;
  do {
    fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return -errno;
  g_pagemap_fd = fd;
  g_pagemap_pid = pid;
  return fd;
}

bool ArgFloat64Array(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name,
                     Napi::Float64Array* out) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    ThrowType(info.Env(), fn, "%s must be a Float64Array", name);
    return false;
  }
  *out = info[i].As<Napi::Float64Array>();
  return true;
}

Napi::Value PagemapScan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "pagemapScan";
  uint64_t addr, len, flags, category_mask, category_anyof_mask, category_inverted, return_mask, max_pages;
  Napi::Float64Array out, walk_end;
  if (!ArgRange(info, 0, fn, "address", "length", &addr, &len) ||
      !ArgU64(info, 2, fn, "flags", &flags) ||
      !ArgU64(info, 3, fn, "categoryMask", &category_mask) ||
      !ArgU64(info, 4, fn, "categoryAnyofMask", &category_anyof_mask) ||
      !ArgU64(info, 5, fn, "categoryInverted", &category_inverted) ||
      !ArgU64(info, 6, fn, "returnMask", &return_mask) ||
      !ArgU64(info, 7, fn, "maxPages", &max_pages) ||
      !ArgFloat64Array(info, 8, fn, "out", &out) ||
      !ArgFloat64Array(info, 9, fn, "walkEnd", &walk_end)) {
    return env.Undefined();
  }
  if (walk_end.ElementLength() < 1) {
    ThrowRange(env, fn, "walkEnd must hold at least 1 element");
    return env.Undefined();
  }
  const size_t capacity = out.ElementLength() / 3;

  const int pagemap = PagemapFd();
  if (pagemap < 0) {
    ThrowErrno(env, -pagemap, "open(/proc/self/pagemap)");
    return env.Undefined();
  }

  // The kernel writes struct page_region (three __u64) here; JS gets doubles.
  // Reused per thread so a scan loop does not allocate.
  thread_local std::vector<fl_page_region> regions;
  if (regions.size() < capacity) regions.resize(capacity);

  fl_pm_scan_arg arg;
  const uint64_t end = addr + len;
  uint64_t cursor = addr;
  uint64_t found_pages = 0;
  size_t n = 0;
  // One ioctl returns at most kSubCallRegions regions. The kernel collects
  // regions in rounds of one bounce buffer (PMD_SIZE / PAGE_SIZE entries:
  // 512 on x86_64) and sets walk_end only when a round stops early; when a
  // later round then completes the walk, 6.18 reports the stale walk_end of
  // the previous round (observed: all 4096 regions returned, walk_end short
  // of the end, so resuming re-reported 512 of them). A vector no longer than
  // one round keeps every call to a single round, where walk_end is exact.
  constexpr size_t kSubCallRegions = 512;
  for (;;) {
    const size_t room = capacity - n;
    memset(&arg, 0, sizeof arg);
    arg.size = sizeof arg;
    arg.flags = flags;
    arg.start = cursor;
    arg.end = end;
    arg.vec = room > 0 ? reinterpret_cast<uintptr_t>(regions.data() + n) : 0;
    arg.vec_len = room < kSubCallRegions ? room : kSubCallRegions;
    arg.max_pages = max_pages == 0 ? 0 : max_pages - found_pages;
    arg.category_inverted = category_inverted;
    arg.category_mask = category_mask;
    arg.category_anyof_mask = category_anyof_mask;
    arg.return_mask = return_mask;

    int rc;
    do {
      rc = ioctl(pagemap, PAGEMAP_SCAN, &arg);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      // Pages already reported (and re-protected) by earlier sub-calls are
      // lost to the caller here; only a fault in the kernel's copy-out or a
      // fatal signal can fail a call whose predecessor succeeded.
      ThrowErrno(env, errno, "ioctl(PAGEMAP_SCAN)");
      return env.Undefined();
    }
    size_t got = static_cast<size_t>(rc) <= arg.vec_len ? static_cast<size_t>(rc) : arg.vec_len;
    for (size_t k = 0; k < got; k++) {
      found_pages += (regions[n + k].end - regions[n + k].start) / PageSize();
    }
    // A run split across two calls (only by max_pages) is one region to the caller.
    if (got > 0 && n > 0 && regions[n - 1].end == regions[n].start &&
        regions[n - 1].categories == regions[n].categories) {
      regions[n - 1].end = regions[n].end;
      memmove(&regions[n], &regions[n + 1], (got - 1) * sizeof(fl_page_region));
      got--;
    }
    n += got;
    cursor = arg.walk_end;
    if (cursor >= end || arg.vec_len == 0) break;           // complete, or no vector at all
    if (got == 0) break;                                    // no progress: let the caller decide
    if (max_pages != 0 && found_pages >= max_pages) break;  // page budget spent
    if (n >= capacity) break;                               // out is full
  }

  double* o = out.Data();
  for (size_t k = 0; k < n; k++) {
    o[3 * k] = static_cast<double>(regions[k].start);
    o[3 * k + 1] = static_cast<double>(regions[k].end);
    o[3 * k + 2] = MaskToNumber(regions[k].categories);
  }
  walk_end.Data()[0] = static_cast<double>(cursor);
  return Napi::Number::New(env, static_cast<double>(n));
}

}  // namespace

void InitPagemap(Napi::Env env, Napi::Object exports) {
  exports.Set("pagemapScan", Napi::Function::New(env, PagemapScan, "pagemapScan"));
}

}  // namespace faultline
