// What happens to a uffd whose pager thread is gone without stopping its
// watcher (an uncaught exception, a terminated Worker): a faulting thread
// would sleep in the kernel for ever, and one whose message the dead pager
// had already read would never even be asked about again. A detached native
// thread takes over a duplicate of the descriptor, wakes every waiter in the
// region so each faults again, and answers every fault from then on with
// UFFDIO_POISON: the access gets SIGBUS, as a failed fetch does. It never
// installs zeros. A write-protect fault on a present page is let through.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <thread>

#include "faultline.h"
#include "uffd_compat.h"

namespace faultline {

namespace {

// False once `pid` has exited (gone, or a zombie: its memory is released either way).
bool ProcessRunning(int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "re");
  if (f == nullptr) return false;
  char buf[512];
  const size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  // "pid (comm) S ...": the state follows the last ')' (comm may hold any byte).
  const char* close = strrchr(buf, ')');
  return close == nullptr || close[1] != ' ' || (close[2] != 'Z' && close[2] != 'X');
}

void Answer(int fd, const uffd_msg& msg, uint64_t unit, Takeover* takeover) {
  if (msg.event != UFFD_EVENT_PAGEFAULT) return;
  // The address is system-page aligned; hugetlb fills and protects whole huge pages.
  const uint64_t page = msg.arg.pagefault.address & ~(unit - 1);
  if (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
    // Recorded before the writer is let through, so a pager that recovers
    // counts the page dirty and its next flush writes it.
    if (takeover != nullptr) {
      std::lock_guard<std::mutex> lock(takeover->mutex);
      takeover->written.push_back(page);
    }
    for (int tries = 0; tries < 64; tries++) {
      uffdio_writeprotect wp;
      memset(&wp, 0, sizeof wp);
      wp.range = {page, unit};
      if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0 || errno != EAGAIN) return;
    }
    // An event (REMOVE) still waits to be read: wake the writer, which faults
    // again, and its next message comes after the event, which this loop reads.
    uffdio_range wake{page, unit};
    ioctl(fd, UFFDIO_WAKE, &wake);
    return;
  }
  for (int tries = 0; tries < 64; tries++) {
    fl_uffdio_poison poison;
    memset(&poison, 0, sizeof poison);
    poison.range = {page, unit};
    if (ioctl(fd, UFFDIO_POISON, &poison) == 0) return;
    if (errno != EAGAIN) break;
  }
  // Present after all (EEXIST), or the poison failed: wake the thread, which
  // then reads the page or faults again and comes back here.
  uffdio_range wake{page, unit};
  ioctl(fd, UFFDIO_WAKE, &wake);
}

}  // namespace

// Polls with a timeout only when someone may ask it to stop, or the owner may exit.
void ServePoisoning(int fd, uint64_t address, uint64_t length, uint64_t unit, Takeover* takeover, int owner) {
  uffdio_range all{address, length};
  ioctl(fd, UFFDIO_WAKE, &all);
  const int timeout_ms = takeover != nullptr ? 100 : owner != 0 ? 500 : -1;
  for (;;) {
    if (takeover != nullptr && takeover->stop.load()) break;
    if (owner != 0 && !ProcessRunning(owner)) break;
    pollfd p{fd, POLLIN, 0};
    const int n = poll(&p, 1, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0) continue;
    if (p.revents & (POLLERR | POLLNVAL)) break;
    uffd_msg msgs[16];
    const ssize_t got = read(fd, msgs, sizeof msgs);
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      break;
    }
    for (ssize_t k = 0; k < got / static_cast<ssize_t>(sizeof(uffd_msg)); k++) Answer(fd, msgs[k], unit, takeover);
  }
  close(fd);
}

void PoisonAbandoned(int fd, uint64_t address, uint64_t length, uint64_t unit, int owner) {
  // Our own descriptor: the original may be closed and its number reused.
  const int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return;
  dprintf(2,
          "faultline: the pager thread of the region at 0x%llx ended without closing it; "
          "from now on an access to a page of it that is not resident gets SIGBUS\n",
          static_cast<unsigned long long>(address));
  std::thread(ServePoisoning, own, address, length, unit, nullptr, owner).detach();
}

}  // namespace faultline
