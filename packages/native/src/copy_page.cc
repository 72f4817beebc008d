// One page installed with UFFDIO_COPY, shared by the watcher's native serving
// (ready_pages.cc) and the installer thread (installer.cc).
#include <errno.h>
#include <sys/ioctl.h>

#include <cstring>

#include "faultline.h"
#include "uffd_compat.h"

namespace faultline {

namespace {

// A hugetlb UFFDIO_COPY first copies with page faults disabled; if a source
// page is not mapped yet it allocates a second, unreserved huge page from the
// pool to copy into, and fails with ENOMEM when the pool has none spare.
// Reading every source page first (a zero page maps no memory) keeps the
// kernel on the first path, so a region needs exactly its own pages. The
// last byte too: a source that is not page-aligned (a malloc'd buffer) ends
// in one more page than the stride reaches.
void TouchSource(const uint8_t* bytes, uint64_t length) {
  const uint64_t sys_page = PageSize();
  uint8_t sink = 0;
  for (uint64_t at = 0; at < length; at += sys_page) sink |= *static_cast<const volatile uint8_t*>(bytes + at);
  sink |= *static_cast<const volatile uint8_t*>(bytes + length - 1);
  static_cast<void>(sink);
}

}  // namespace

int CopyPage(int fd, uint64_t address, const uint8_t* bytes, uint64_t length, uint64_t unit, uint64_t mode, int max_again,
             int* err, bool source_populated) {
  uint64_t done = 0;
  bool installed_any = false;
  int again = 0;
  *err = 0;
  if (unit > PageSize() && !source_populated) TouchSource(bytes, length);
  while (done < length) {
    uffdio_copy copy;
    memset(&copy, 0, sizeof copy);
    copy.dst = address + done;
    copy.src = reinterpret_cast<uintptr_t>(bytes + done);
    copy.len = length - done;
    copy.mode = mode;
    const int rc = ioctl(fd, UFFDIO_COPY, &copy);
    if (copy.copy > 0) {
      done += static_cast<uint64_t>(copy.copy);
      installed_any = true;
      continue;
    }
    const int e = rc == 0 ? 0 : errno;
    if (copy.copy == -EEXIST || e == EEXIST) {
      // Someone installed this part first; its waiters still need waking.
      uffdio_range wake{address + done, unit};
      ioctl(fd, UFFDIO_WAKE, &wake);
      done += unit;
    } else if ((copy.copy == -EAGAIN || e == EAGAIN) && ++again < max_again) {
      continue;
    } else {
      *err = copy.copy < 0 ? static_cast<int>(-copy.copy) : (e != 0 ? e : EIO);
      return -1;
    }
  }
  return installed_any ? 1 : 0;
}

}  // namespace faultline
