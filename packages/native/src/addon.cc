// Entry point of the faultline addon. Context-aware (Node-API modules always
// are): each thread that loads it gets its own exports; the only process-wide
// state is the mapping registry in mapping.cc and the /proc/self/pagemap
// descriptor in pagemap.cc (plain C++, mutex-protected).
#include <errno.h>
#include <sys/mman.h>

#include "faultline.h"
#include "ready_pages.h"
#include "uffd_compat.h"

namespace faultline {

namespace {

void SetConstants(Napi::Env env, Napi::Object exports) {
  Napi::Object c = Napi::Object::New(env);
  auto set = [&](const char* name, double value) { c.Set(name, Napi::Number::New(env, value)); };

  set("SYSTEM_PAGE_SIZE", static_cast<double>(PageSize()));
  set("UFFD_API", UFFD_API);
  set("UFFD_USER_MODE_ONLY", UFFD_USER_MODE_ONLY);
  set("UFFDIO_REGISTER_MODE_MISSING", UFFDIO_REGISTER_MODE_MISSING);
  set("UFFDIO_REGISTER_MODE_WP", UFFDIO_REGISTER_MODE_WP);
  set("UFFDIO_REGISTER_MODE_MINOR", UFFDIO_REGISTER_MODE_MINOR);
  set("UFFDIO_COPY_MODE_DONTWAKE", UFFDIO_COPY_MODE_DONTWAKE);
  set("UFFDIO_COPY_MODE_WP", UFFDIO_COPY_MODE_WP);
  set("UFFDIO_ZEROPAGE_MODE_DONTWAKE", UFFDIO_ZEROPAGE_MODE_DONTWAKE);
  set("UFFDIO_WRITEPROTECT_MODE_WP", UFFDIO_WRITEPROTECT_MODE_WP);
  set("UFFDIO_WRITEPROTECT_MODE_DONTWAKE", UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
  set("UFFDIO_CONTINUE_MODE_DONTWAKE", UFFDIO_CONTINUE_MODE_DONTWAKE);
  set("UFFDIO_CONTINUE_MODE_WP", UFFDIO_CONTINUE_MODE_WP);
  set("UFFDIO_POISON_MODE_DONTWAKE", UFFDIO_POISON_MODE_DONTWAKE);
  set("UFFDIO_MOVE_MODE_DONTWAKE", UFFDIO_MOVE_MODE_DONTWAKE);
  set("UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES", UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
  set("UFFD_EVENT_PAGEFAULT", UFFD_EVENT_PAGEFAULT);
  set("UFFD_EVENT_FORK", UFFD_EVENT_FORK);
  set("UFFD_EVENT_REMAP", UFFD_EVENT_REMAP);
  set("UFFD_EVENT_REMOVE", UFFD_EVENT_REMOVE);
  set("UFFD_EVENT_UNMAP", UFFD_EVENT_UNMAP);
  set("UFFD_PAGEFAULT_FLAG_WRITE", UFFD_PAGEFAULT_FLAG_WRITE);
  set("UFFD_PAGEFAULT_FLAG_WP", UFFD_PAGEFAULT_FLAG_WP);
  set("UFFD_PAGEFAULT_FLAG_MINOR", UFFD_PAGEFAULT_FLAG_MINOR);

  set("UFFD_FEATURE_PAGEFAULT_FLAG_WP", UFFD_FEATURE_PAGEFAULT_FLAG_WP);
  set("UFFD_FEATURE_EVENT_FORK", UFFD_FEATURE_EVENT_FORK);
  set("UFFD_FEATURE_EVENT_REMAP", UFFD_FEATURE_EVENT_REMAP);
  set("UFFD_FEATURE_EVENT_REMOVE", UFFD_FEATURE_EVENT_REMOVE);
  set("UFFD_FEATURE_MISSING_HUGETLBFS", UFFD_FEATURE_MISSING_HUGETLBFS);
  set("UFFD_FEATURE_MISSING_SHMEM", UFFD_FEATURE_MISSING_SHMEM);
  set("UFFD_FEATURE_EVENT_UNMAP", UFFD_FEATURE_EVENT_UNMAP);
  set("UFFD_FEATURE_SIGBUS", UFFD_FEATURE_SIGBUS);
  set("UFFD_FEATURE_THREAD_ID", UFFD_FEATURE_THREAD_ID);
  set("UFFD_FEATURE_MINOR_HUGETLBFS", UFFD_FEATURE_MINOR_HUGETLBFS);
  set("UFFD_FEATURE_MINOR_SHMEM", UFFD_FEATURE_MINOR_SHMEM);
  set("UFFD_FEATURE_EXACT_ADDRESS", UFFD_FEATURE_EXACT_ADDRESS);
  set("UFFD_FEATURE_WP_HUGETLBFS_SHMEM", UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
  set("UFFD_FEATURE_WP_UNPOPULATED", UFFD_FEATURE_WP_UNPOPULATED);
  set("UFFD_FEATURE_POISON", UFFD_FEATURE_POISON);
  set("UFFD_FEATURE_WP_ASYNC", UFFD_FEATURE_WP_ASYNC);
  set("UFFD_FEATURE_MOVE", UFFD_FEATURE_MOVE);

  // Request codes (informational; JS never issues ioctls itself).
  set("UFFDIO_API", UFFDIO_API);
  set("UFFDIO_REGISTER", UFFDIO_REGISTER);
  set("UFFDIO_UNREGISTER", UFFDIO_UNREGISTER);
  set("UFFDIO_WAKE", UFFDIO_WAKE);
  set("UFFDIO_COPY", UFFDIO_COPY);
  set("UFFDIO_ZEROPAGE", UFFDIO_ZEROPAGE);
  set("UFFDIO_MOVE", UFFDIO_MOVE);
  set("UFFDIO_WRITEPROTECT", UFFDIO_WRITEPROTECT);
  set("UFFDIO_CONTINUE", UFFDIO_CONTINUE);
  set("UFFDIO_POISON", UFFDIO_POISON);
  set("USERFAULTFD_IOC_NEW", USERFAULTFD_IOC_NEW);
  set("PAGEMAP_SCAN", PAGEMAP_SCAN);

  // PAGEMAP_SCAN flags and page categories (include/uapi/linux/fs.h).
  set("PM_SCAN_WP_MATCHING", PM_SCAN_WP_MATCHING);
  set("PM_SCAN_CHECK_WPASYNC", PM_SCAN_CHECK_WPASYNC);
  set("PAGE_IS_WPALLOWED", PAGE_IS_WPALLOWED);
  set("PAGE_IS_WRITTEN", PAGE_IS_WRITTEN);
  set("PAGE_IS_FILE", PAGE_IS_FILE);
  set("PAGE_IS_PRESENT", PAGE_IS_PRESENT);
  set("PAGE_IS_SWAPPED", PAGE_IS_SWAPPED);
  set("PAGE_IS_PFNZERO", PAGE_IS_PFNZERO);
  set("PAGE_IS_HUGE", PAGE_IS_HUGE);
  set("PAGE_IS_SOFT_DIRTY", PAGE_IS_SOFT_DIRTY);
  set("PAGE_IS_GUARD", PAGE_IS_GUARD);

  set("MADV_DONTNEED", MADV_DONTNEED);
  set("MADV_FREE", MADV_FREE);
  set("MADV_DONTFORK", MADV_DONTFORK);
  set("MADV_PAGEOUT", 21);
  set("MADV_POPULATE_READ", 22);
  set("MADV_POPULATE_WRITE", 23);
  set("EEXIST", EEXIST);
  set("EAGAIN", EAGAIN);
  set("WATCH_SERVED", kServedEvent);

  c.Freeze();
  exports.Set("constants", c);
}

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  InitUffd(env, exports);
  InitMapping(env, exports);
  InitPoller(env, exports);
  InitFiles(env, exports);
  InitPagemap(env, exports);
  InitInstaller(env, exports);
  InitPeers(env, exports);
  SetConstants(env, exports);
  return exports;
}

}  // namespace

}  // namespace faultline

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  return faultline::InitAll(env, exports);
}

NODE_API_MODULE(faultline, Init)
