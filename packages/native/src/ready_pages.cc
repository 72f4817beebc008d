#include "ready_pages.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "faultline.h"
#include "uffd_compat.h"

namespace faultline {

namespace {

// EAGAIN means the mm is changing under us; give up after this many tries and
// let the JS path (which retries with its own bound) take the fault.
constexpr int kMaxAgain = 64;

double NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

}  // namespace

ReadyPages::ReadyPages(napi_env env, const ServeConfig& config, Napi::Float64Array stats)
    : env_(env), config_(config), stats_ref_(Napi::Persistent(stats)), stats_(stats.Data()) {}

ReadyPages::~ReadyPages() {
  DropFileSources();
  // Staged bytes were reported to V8 as external memory: give the count back.
  if (!staged_.empty()) {
    int64_t ignored;
    napi_adjust_external_memory(env_, -static_cast<int64_t>(staged_.size() * config_.page_size), &ignored);
  }
}

void ReadyPages::AddSource(uint64_t first_page, uint64_t count, Napi::TypedArray data, uint8_t* bytes) {
  sources_.push_back(Source{first_page, count, bytes, Napi::Persistent(data)});
}

void ReadyPages::AddFileSource(uint64_t first_page, uint64_t count, int fd, uint64_t file_offset, uint64_t length) {
  FileSource f{first_page, count, fd, file_offset, length, nullptr, 0};
  const uint64_t whole = length > file_offset ? std::min(count, (length - file_offset) / config_.page_size) : 0;
  // A page ending past the file's end stays on pread: touching a mapping past
  // EOF is SIGBUS. Without a mapping (mmap failed) every page is pread.
  if (config_.fill_unit > PageSize() && file_offset % PageSize() == 0 && whole > 0) {
    void* map = mmap(nullptr, whole * config_.page_size, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(file_offset));
    if (map != MAP_FAILED) {
      f.map = static_cast<uint8_t*>(map);
      f.mapped_pages = whole;
    }
  }
  files_.push_back(f);
  if (!file_page_) file_page_.reset(new uint8_t[config_.page_size]);
}

void ReadyPages::DropFileSources() {
  for (const FileSource& f : files_) {
    if (f.map != nullptr) munmap(f.map, f.mapped_pages * config_.page_size);
  }
  files_.clear();
}

const uint8_t* ReadyPages::ReadFilePage(const FileSource& f, uint64_t page, bool* mapped) {
  if (page - f.first < f.mapped_pages) {
    uint8_t* at = f.map + (page - f.first) * config_.page_size;
    // Populated here, so UFFDIO_COPY finds every source page mapped (see
    // copy_page.cc). EFAULT: the file shrank since open; pread says what is left.
    if (madvise(at, config_.page_size, MADV_POPULATE_READ) == 0) {
      *mapped = true;
      return at;
    }
    // A populate that failed partway left the pages before the failure mapped.
    madvise(at, config_.page_size, MADV_DONTNEED);
  }
  const uint64_t start = f.offset + (page - f.first) * config_.page_size;
  uint8_t* out = file_page_.get();
  uint64_t got = 0;
  const uint64_t wanted = start >= f.length ? 0 : std::min(config_.page_size, f.length - start);
  while (got < wanted) {
    const ssize_t n = pread(f.fd, out + got, wanted - got, static_cast<off_t>(start + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return nullptr;
    if (n == 0) break;  // the file shrank: the rest reads as zeros, as on the JS path
    got += static_cast<uint64_t>(n);
  }
  memset(out + got, 0, config_.page_size - got);
  return out;
}

void ReadyPages::Stage(uint64_t page, const uint8_t* bytes) {
  auto& slot = staged_[page];
  if (!slot) {
    slot.reset(new uint8_t[config_.page_size]);
    int64_t ignored;
    napi_adjust_external_memory(env_, static_cast<int64_t>(config_.page_size), &ignored);
  }
  memcpy(slot.get(), bytes, config_.page_size);
}

bool ReadyPages::Unstage(uint64_t page, uint8_t* out) {
  auto it = staged_.find(page);
  if (it == staged_.end()) return false;
  if (out != nullptr) memcpy(out, it->second.get(), config_.page_size);
  staged_.erase(it);
  int64_t ignored;
  napi_adjust_external_memory(env_, -static_cast<int64_t>(config_.page_size), &ignored);
  return true;
}

const uint8_t* ReadyPages::Find(uint64_t page, bool* staged, bool* mapped) {
  *mapped = false;
  auto it = staged_.find(page);
  if (it != staged_.end()) {
    *staged = true;
    return it->second.get();
  }
  *staged = false;
  for (const Source& s : sources_) {
    if (page >= s.first && page - s.first < s.count) return s.bytes + (page - s.first) * config_.page_size;
  }
  for (const FileSource& f : files_) {
    if (page >= f.first && page - f.first < f.count) return ReadFilePage(f, page, mapped);
  }
  return nullptr;
}

int ReadyPages::Install(int fd, uint64_t address, const uint8_t* bytes, uint64_t mode, bool mapped) const {
  int err = 0;
  // A copy that fails midway (e.g. ENOMEM, or EFAULT from a file truncated
  // under its mapping) is left to the JS path, which finishes the page,
  // taking EEXIST on the parts already here.
  return CopyPage(fd, address, bytes, config_.page_size, config_.fill_unit, mode, kMaxAgain, &err, mapped);
}

uint32_t ReadyPages::LatencyBucket(double us) const {
  const ServeCounters& s = config_.slots;
  // The same buckets as stats.ts bucketOf(): sub_buckets per power of two.
  if (!(us >= 1)) return 0;
  return static_cast<uint32_t>(std::min<double>(s.histogram_buckets - 1, 1 + std::floor(std::log2(us) * s.sub_buckets)));
}

void ReadyPages::ChargeInstall(double sign, bool dirty, uint32_t bucket, double us) {
  const ServeCounters& s = config_.slots;
  Count(s.faults, sign);
  Count(s.served, sign);
  Count(s.pages_fetched, sign);
  Count(s.bytes_fetched, sign * static_cast<double>(config_.page_size));
  Count(s.resident_pages, sign);
  if (dirty) Count(s.dirty_pages, sign);
  Count(s.histogram_base + bucket, sign);
  Count(s.latency_count, sign);
  if (sign > 0 && us > stats_[s.latency_max_us]) stats_[s.latency_max_us] = us;
}

void ReadyPages::Serve(int fd, double* messages, size_t count) {
  const ServeCounters& s = config_.slots;
  const double read_at = NowUs();  // the messages were read just now
  for (size_t m = 0; m < count; m++) {
    double* msg = messages + 4 * m;
    // Faults after it in this very read may be on the pages it gave back.
    if (msg[0] == UFFD_EVENT_REMOVE || msg[0] == UFFD_EVENT_UNMAP) DropFileSources();
    if (msg[0] != UFFD_EVENT_PAGEFAULT) continue;
    const uint64_t flags = static_cast<uint64_t>(msg[1]);
    if (flags & UFFD_PAGEFAULT_FLAG_WP) continue;  // a write to a present page: JS tracks it
    const uint64_t address = static_cast<uint64_t>(msg[2]);
    if (address < config_.address) continue;
    const uint64_t page = (address - config_.address) / config_.page_size;
    if (page >= config_.page_count) continue;
    bool staged = false;
    bool mapped = false;
    const uint8_t* bytes = Find(page, &staged, &mapped);
    if (bytes == nullptr) continue;
    const uint64_t mode = (flags & UFFD_PAGEFAULT_FLAG_WRITE) ? config_.write_mode : config_.read_mode;
    // Written pages are tracked when reads install write-protected: this one
    // is installed writable for its writer, so it is dirty from the start.
    const bool dirty = (flags & UFFD_PAGEFAULT_FLAG_WRITE) && (config_.read_mode & UFFDIO_COPY_MODE_WP);
    // Counted (latency too, as the JS path does) before the copy wakes the
    // faulting thread, which may read stats() at once; undone if it fails.
    const double us = NowUs() - read_at;
    const uint32_t bucket = LatencyBucket(us);
    ChargeInstall(1, dirty, bucket, us);
    const int result = Install(fd, config_.address + page * config_.page_size, bytes, mode, mapped);
    if (result != 1) ChargeInstall(-1, dirty, bucket, us);
    // The page cache keeps the file's pages; this process need not map them
    // too (they would count in its RSS and pin the pages against reclaim).
    if (mapped) madvise(const_cast<uint8_t*>(bytes), config_.page_size, MADV_DONTNEED);
    if (result < 0) continue;  // JS takes it from the backend, with its own retries
    if (result == 0) {
      // Already present: a duplicate of a fault someone else answered.
      Count(s.faults, 1);
      Count(s.served, 1);
      Count(s.duplicate_faults, 1);
    }
    if (staged) Unstage(page, nullptr);  // used, or stale: the page is there already
    msg[0] = kServedEvent;
    msg[3] = result;
  }
}

}  // namespace faultline
