// The watchdog of a region's pager thread. A pager that is alive but stuck
// (a backend call that blocks the thread, a callback that never returns)
// leaves every faulting thread asleep in the kernel, and nothing on that
// thread can notice. A detached native thread watches two signs, each for
// `stall_ms`:
//   - the uffd stays readable while the watcher reads nothing from it: the
//     pager's event loop is not turning;
//   - the watcher's JS callback has not returned: the pager is stuck in the
//     fault path itself (where a blocking backend read runs).
// Then it takes the descriptor over and answers faults as the abandon guard
// does (UFFDIO_POISON: SIGBUS, the fetch-timeout policy; never zeros) until
// the watcher stops. A fault whose backend call hangs without blocking the
// thread is failed by the pager's own fetch deadline instead.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "faultline.h"

namespace faultline {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

namespace {

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0;
}

void Watch(std::shared_ptr<Pulse> pulse, int own, uint64_t address, uint64_t length, uint64_t unit, uint64_t stall_ms) {
  const auto tick = std::chrono::milliseconds(std::clamp<uint64_t>(stall_ms / 8, 10, 250));
  const int64_t stall = static_cast<int64_t>(stall_ms);
  int64_t unread_since = 0;
  uint64_t drains_then = pulse->drains.load();
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(pulse->wake_mutex);
      if (pulse->wake.wait_for(lock, tick, [&] { return pulse->takeover.stop.load(); })) break;
    }
    const int64_t now = SteadyMs();
    const uint64_t drains = pulse->drains.load();
    if (!Readable(own) || drains != drains_then) {
      unread_since = 0;
      drains_then = drains;
    } else if (unread_since == 0) {
      unread_since = now;
    }
    const int64_t in_callback = pulse->in_callback_since_ms.load();
    const bool unread = unread_since != 0 && now - unread_since >= stall;
    const bool stuck = in_callback != 0 && now - in_callback >= stall;
    if (!unread && !stuck) continue;
    pulse->fired.store(true);
    {
      std::lock_guard<std::mutex> lock(pulse->wake_mutex);
      if (pulse->on_fire != nullptr) uv_async_send(pulse->on_fire);
    }
    dprintf(2,
            "faultline: the pager thread of the region at 0x%llx has not answered faults for %llu ms (%s); "
            "from now on an access to a page of it that is not resident gets SIGBUS\n",
            static_cast<unsigned long long>(address), static_cast<unsigned long long>(stall_ms),
            stuck ? "stuck in its fault callback" : "its event loop is not reading the userfaultfd");
    ServePoisoning(own, address, length, unit, &pulse->takeover, 0);
    return;
  }
  close(own);
}

}  // namespace

void StopWatchdog(Pulse* pulse) {
  {
    std::lock_guard<std::mutex> lock(pulse->wake_mutex);
    pulse->takeover.stop.store(true);
    pulse->on_fire = nullptr;
  }
  pulse->wake.notify_all();
}

bool StartWatchdog(std::shared_ptr<Pulse> pulse, int fd, uint64_t address, uint64_t length, uint64_t unit,
                   uint64_t stall_ms) {
  // Our own descriptor: the watcher's may be closed and its number reused.
  const int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return false;
  std::thread(Watch, std::move(pulse), own, address, length, unit, stall_ms).detach();
  return true;
}

}  // namespace faultline
