// Pages whose bytes are already in this process (a backend's shared memory,
// a readahead page held back, an evicted page kept in the second tier), so
// the watcher can answer their faults with UFFDIO_COPY before calling into
// JS. Policy stays in TypeScript: JS decides which bytes are staged and for
// how long; this only installs them and counts what it did.
//
// Single-threaded by construction: the watcher's poll callback and the JS
// calls that stage pages all run on the pager thread's event loop.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace faultline {

// Event code written over a served message's event field, so JS can tell it
// from the kernel's (UFFD_EVENT_* are 0x12..0x17).
constexpr double kServedEvent = 256;

// Where the stats counters live (Float64Array slots) that must be updated
// before a page is installed: the woken thread may read them at once.
struct ServeCounters {
  uint32_t faults, duplicate_faults, pages_fetched, bytes_fetched, resident_pages;
  uint32_t latency_count, latency_max_us, histogram_base, histogram_buckets, sub_buckets;
  uint32_t dirty_pages;  // counted for a write fault when read faults install write-protected
  uint32_t served;       // faults answered here
};

struct ServeConfig {
  uint64_t address = 0;
  uint64_t page_size = 0;
  uint64_t page_count = 0;
  uint64_t fill_unit = 0;   // EEXIST steps: the system page, or the huge page of a hugetlb region
  uint64_t read_mode = 0;   // UFFDIO_COPY mode for a read fault (WP when tracking writes)
  uint64_t write_mode = 0;  // and for a missing fault taken by a write
  ServeCounters slots{};
};

class ReadyPages {
 public:
  ReadyPages(napi_env env, const ServeConfig& config, Napi::Float64Array stats);
  ~ReadyPages();

  // Pages [first_page, first_page + count) read from `data`, which must be
  // over a SharedArrayBuffer (never detached) and is kept alive here.
  void AddSource(uint64_t first_page, uint64_t count, Napi::TypedArray data, uint8_t* bytes);
  // Pages [first_page, first_page + count) read with pread(2) from `fd`,
  // which the caller keeps open until the watcher stops: page p starts at
  // byte file_offset + (p - first_page) * page_size; bytes at or past
  // `length` (the file's) read as zeros. Dropped at the first REMOVE or
  // UNMAP event: pages given back must read as zeros, not as the file.
  void AddFileSource(uint64_t first_page, uint64_t count, int fd, uint64_t file_offset, uint64_t length);
  void DropFileSources();
  void Stage(uint64_t page, const uint8_t* bytes);
  // Copies the staged bytes into `out` (if given) and forgets them.
  bool Unstage(uint64_t page, uint8_t* out);
  size_t staged_count() const { return staged_.size(); }
  uint64_t page_size() const { return config_.page_size; }

  // Answers every missing fault among `count` decoded messages whose page is
  // staged or in a source. Each one answered has its event replaced by
  // kServedEvent and arg by 1 (installed here) or 0 (already present).
  void Serve(int fd, double* messages, size_t count);

 private:
  struct Source {
    uint64_t first, count;
    uint8_t* bytes;
    Napi::Reference<Napi::TypedArray> keep;
  };
  struct FileSource {
    uint64_t first, count;
    int fd;
    uint64_t offset, length;
    // Huge-page regions: the source's whole pages mapped read-only, so a page
    // is copied once (page cache to region) rather than twice (pread into a
    // buffer, then UFFDIO_COPY); at 2 MiB the second copy is what costs.
    uint8_t* map;  // PROT_READ: non-const only for madvise and munmap
    uint64_t mapped_pages;
  };
  // `*mapped`: the bytes are a populated page of a file mapping.
  const uint8_t* Find(uint64_t page, bool* staged, bool* mapped);
  // The page in the file's mapping, populated, or read into file_page_; null
  // if the read failed (left to JS).
  const uint8_t* ReadFilePage(const FileSource& f, uint64_t page, bool* mapped);
  // 1: installed, 0: already present (EEXIST), -1: could not (left to JS).
  int Install(int fd, uint64_t address, const uint8_t* bytes, uint64_t mode, bool mapped) const;
  void Count(uint32_t slot, double delta) { stats_[slot] += delta; }
  uint32_t LatencyBucket(double us) const;
  // Counts one installed page (sign 1), or takes the count back (sign -1).
  void ChargeInstall(double sign, bool dirty, uint32_t bucket, double us);

  napi_env env_;
  ServeConfig config_;
  Napi::Reference<Napi::Float64Array> stats_ref_;
  double* stats_;
  std::vector<Source> sources_;
  std::vector<FileSource> files_;
  std::unique_ptr<uint8_t[]> file_page_;
  std::unordered_map<uint64_t, std::unique_ptr<uint8_t[]>> staged_;
};

}  // namespace faultline
