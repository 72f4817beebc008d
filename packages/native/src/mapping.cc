// Anonymous mappings handed to JS as external ArrayBuffers.
//
// A process-global registry (shared by every worker thread that loads the
// addon) tracks each mapping and how many external ArrayBuffers point into it.
// A mapping is only munmapped once it is retired AND no buffer refers to it;
// retiring first replaces it with a fresh anonymous mapping, so a stale view in
// any thread reads zeros instead of faulting, and the address range cannot be
// handed out again while a view exists.
//
// Buffer accounting is exactly-once: each buffer has a BufferHint with an
// atomic `released` flag. Both the ArrayBuffer's finalizer (which Node runs
// after GC, after a detach frees the backing store, or at environment
// teardown) and detachBuffer() try to release it; the flag lets only the
// first one decrement the mapping's refs.
#include <errno.h>
#include <sys/mman.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>

#include "faultline.h"

namespace faultline {

namespace {

struct Mapping {
  uintptr_t address;
  size_t length;
  size_t refs;
  bool retiring;  // retireMapping() is replacing it right now
  bool retired;
};

// Leaked on purpose: worker threads may still release buffers while the main
// thread runs static destructors at exit.
std::mutex& RegistryMutex() {
  static std::mutex* mu = new std::mutex();
  return *mu;
}
std::map<uintptr_t, Mapping>& Registry() {
  static auto* maps = new std::map<uintptr_t, Mapping>();
  return *maps;
}

struct BufferHint {
  uintptr_t mapping;  // start address of the owning mapping (registry key)
  std::atomic<bool> released{false};
  explicit BufferHint(uintptr_t m) : mapping(m) {}
};

void Release(BufferHint& hint) {
  if (hint.released.exchange(true)) return;
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto& maps = Registry();
  auto it = maps.find(hint.mapping);
  if (it == maps.end()) return;  // cannot happen: refs > 0 keeps the record
  if (it->second.refs > 0) it->second.refs--;
  if (it->second.retired && it->second.refs == 0) {
    munmap(reinterpret_cast<void*>(it->second.address), it->second.length);
    maps.erase(it);
  }
}

using HintPtr = std::shared_ptr<BufferHint>;

const char* AdviceSyscall(int advice) {
  switch (advice) {
    case MADV_NORMAL: return "madvise(MADV_NORMAL)";
    case MADV_RANDOM: return "madvise(MADV_RANDOM)";
    case MADV_SEQUENTIAL: return "madvise(MADV_SEQUENTIAL)";
    case MADV_WILLNEED: return "madvise(MADV_WILLNEED)";
    case MADV_DONTNEED: return "madvise(MADV_DONTNEED)";
    case MADV_FREE: return "madvise(MADV_FREE)";
    case MADV_REMOVE: return "madvise(MADV_REMOVE)";
    case MADV_DONTFORK: return "madvise(MADV_DONTFORK)";
    case MADV_DOFORK: return "madvise(MADV_DOFORK)";
    case MADV_HUGEPAGE: return "madvise(MADV_HUGEPAGE)";
    case MADV_NOHUGEPAGE: return "madvise(MADV_NOHUGEPAGE)";
    case 20: return "madvise(MADV_COLD)";
    case 21: return "madvise(MADV_PAGEOUT)";
    case 22: return "madvise(MADV_POPULATE_READ)";
    case 23: return "madvise(MADV_POPULATE_WRITE)";
    default: return "madvise";
  }
}

void* MapFresh(void* at, size_t length) {
  const int fixed = at != nullptr ? MAP_FIXED : 0;
  return mmap(at, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed, -1, 0);
}

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

// A private hugetlb mapping of `huge`-byte pages. Without MAP_NORESERVE the
// kernel reserves every page now, so a short pool fails here with ENOMEM
// rather than with SIGBUS on some later fault.
void* MapHuge(size_t length, uint64_t huge) {
  const int log2 = __builtin_ctzll(huge);
  return mmap(nullptr, length, PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (log2 << MAP_HUGE_SHIFT), -1, 0);
}

// A fresh mapping: MADV_DONTFORK (a fork child must not inherit a registered
// range it cannot serve), then into the registry; its address as a Number.
Napi::Value Register(Napi::Env env, void* p, uint64_t length) {
  if (madvise(p, length, MADV_DONTFORK) != 0) {
    const int err = errno;
    munmap(p, length);
    ThrowErrno(env, err, "madvise(MADV_DONTFORK)");
    return env.Undefined();
  }
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    Registry()[addr] = Mapping{addr, static_cast<size_t>(length), 0, false, false};
  }
  return Napi::Number::New(env, static_cast<double>(addr));
}

// ---- bindings ---------------------------------------------------------------

// mapAnonymous(length, hugePageSize?)
Napi::Value MapAnonymous(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t length, huge;
  if (!ArgU64(info, 0, "mapAnonymous", "length", &length) ||
      !ArgU64Or(info, 1, "mapAnonymous", "hugePageSize", 0, &huge)) {
    return env.Undefined();
  }
  if (length == 0) {
    ThrowRange(env, "mapAnonymous", "length must be > 0");
    return env.Undefined();
  }
  if (huge != 0 && (huge <= PageSize() || (huge & (huge - 1)) != 0)) {
    ThrowRange(env, "mapAnonymous", "hugePageSize must be a power of two above %zu bytes (got %llu)", PageSize(),
               static_cast<unsigned long long>(huge));
    return env.Undefined();
  }
  const uint64_t page = huge != 0 ? huge : PageSize();
  length = (length + page - 1) / page * page;
  void* p = huge != 0 ? MapHuge(length, huge) : MapFresh(nullptr, length);
  if (p == MAP_FAILED) {
    ThrowErrno(env, errno, "mmap");
    return env.Undefined();
  }
  return Register(env, p, length);
}

// mmap(MAP_SHARED) of a file (a tmpfs file, for regions shared between
// processes), registered like mapAnonymous's mappings so externalBuffer,
// views and retireMapping work on it. PROT_READ unless `writable`.
Napi::Value MapSharedFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t length;
  bool writable;
  if (!ArgFd(info, 0, "mapSharedFile", "fd", &fd) || !ArgU64(info, 1, "mapSharedFile", "length", &length) ||
      !ArgBool(info, 2, "mapSharedFile", "writable", &writable)) {
    return env.Undefined();
  }
  const uint64_t page = PageSize();
  if (length == 0 || (length & (page - 1))) {
    ThrowRange(env, "mapSharedFile", "length must be a non-zero multiple of the page size %zu (got %llu)", page,
               static_cast<unsigned long long>(length));
    return env.Undefined();
  }
  void* p = mmap(nullptr, length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    ThrowErrno(env, errno, "mmap(MAP_SHARED)");
    return env.Undefined();
  }
  return Register(env, p, length);
}

Napi::Value RetireMapping(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address;
  if (!ArgU64(info, 0, "retireMapping", "address", &address)) return env.Undefined();
  size_t length;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto it = Registry().find(address);
    if (it == Registry().end()) {
      ThrowRange(env, "retireMapping", "address 0x%llx is not the start of a mapping made by mapAnonymous",
                 static_cast<unsigned long long>(address));
      return env.Undefined();
    }
    if (it->second.retired || it->second.retiring) {
      ThrowRange(env, "retireMapping", "the mapping at 0x%llx is already retired",
                 static_cast<unsigned long long>(address));
      return env.Undefined();
    }
    it->second.retiring = true;  // no new buffers; no concurrent retire
    length = it->second.length;
  }
  // Outside the lock: with UFFD_FEATURE_EVENT_UNMAP on a registered range the
  // kernel blocks this call until the UNMAP event is read.
  void* p = MapFresh(reinterpret_cast<void*>(address), length);
  const int err = errno;
  if (p != MAP_FAILED) madvise(p, length, MADV_DONTFORK);  // best effort

  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto it = Registry().find(address);
  it->second.retiring = false;
  if (p == MAP_FAILED) {
    ThrowErrno(env, err, "mmap");
    return env.Undefined();
  }
  it->second.retired = true;
  if (it->second.refs == 0) {
    munmap(p, length);
    Registry().erase(it);
  }
  return env.Undefined();
}

Napi::Value Madvise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address, length;
  int64_t advice;
  if (!ArgU64(info, 0, "madvise", "address", &address) || !ArgU64(info, 1, "madvise", "length", &length) ||
      !ArgI64(info, 2, "madvise", "advice", &advice)) {
    return env.Undefined();
  }
  if (address & (PageSize() - 1)) {
    ThrowRange(env, "madvise", "address must be page-aligned (got 0x%llx)", static_cast<unsigned long long>(address));
    return env.Undefined();
  }
  if (advice < 0 || advice > 0x7fffffff) {
    ThrowRange(env, "madvise", "advice must be a MADV_* value");
    return env.Undefined();
  }
  if (madvise(reinterpret_cast<void*>(address), length, static_cast<int>(advice)) != 0) {
    ThrowErrno(env, errno, AdviceSyscall(static_cast<int>(advice)));
  }
  return env.Undefined();
}

Napi::Value ExternalBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address, length;
  if (!ArgU64(info, 0, "externalBuffer", "address", &address) ||
      !ArgU64(info, 1, "externalBuffer", "length", &length)) {
    return env.Undefined();
  }
  if (length == 0) {
    ThrowRange(env, "externalBuffer", "length must be > 0");
    return env.Undefined();
  }
  uintptr_t owner;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto& maps = Registry();
    auto it = maps.upper_bound(address);
    bool ok = it != maps.begin();
    if (ok) {
      --it;
      const Mapping& m = it->second;
      ok = address >= m.address && address - m.address < m.length && length <= m.length - (address - m.address);
      if (ok && (m.retired || m.retiring)) {
        ThrowRange(env, "externalBuffer", "the mapping at 0x%llx is retired",
                   static_cast<unsigned long long>(m.address));
        return env.Undefined();
      }
    }
    if (!ok) {
      ThrowRange(env, "externalBuffer", "[0x%llx, +%llu) is not inside one live mapping made by mapAnonymous",
                 static_cast<unsigned long long>(address), static_cast<unsigned long long>(length));
      return env.Undefined();
    }
    it->second.refs++;
    owner = it->second.address;
  }

  HintPtr hint = std::make_shared<BufferHint>(owner);
  auto* finalizer_ref = new HintPtr(hint);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
      env, reinterpret_cast<void*>(address), static_cast<size_t>(length),
      [](Napi::Env, void*, HintPtr* ref) {
        Release(**ref);
        delete ref;
      },
      finalizer_ref);
  if (env.IsExceptionPending()) {
    Release(*hint);
    delete finalizer_ref;
    return env.Undefined();
  }
  // The wrap lets detachBuffer() find the hint; it owns another reference.
  auto* wrap_ref = new HintPtr(hint);
  napi_status status = napi_wrap(
      env, ab, wrap_ref, [](napi_env, void* data, void*) { delete static_cast<HintPtr*>(data); }, nullptr,
      nullptr);
  if (status != napi_ok) {
    delete wrap_ref;
    NAPI_THROW_IF_FAILED(env, status, env.Undefined());
  }
  return ab;
}

Napi::Value DetachBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) {
    ThrowType(env, "detachBuffer", "buffer must be an ArrayBuffer");
    return env.Undefined();
  }
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  // Detached some other way: its finalizer does (or did) the release.
  if (ab.IsDetached()) return env.Undefined();
  void* data = nullptr;
  if (napi_remove_wrap(env, ab, &data) != napi_ok || data == nullptr) {
    ThrowType(env, "detachBuffer", "buffer was not made by externalBuffer");
    return env.Undefined();
  }
  std::unique_ptr<HintPtr> ref(static_cast<HintPtr*>(data));
  ab.Detach();
  if (env.IsExceptionPending()) {
    // Still attached: put the wrap back so a later call can retry.
    if (napi_wrap(env, ab, ref.get(), [](napi_env, void* d, void*) { delete static_cast<HintPtr*>(d); },
                  nullptr, nullptr) == napi_ok) {
      ref.release();
    }
    return env.Undefined();
  }
  Release(**ref);
  return env.Undefined();
}

Napi::Value MappingRefs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t address;
  if (!ArgU64(info, 0, "mappingRefs", "address", &address)) return env.Undefined();
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto it = Registry().find(address);
  if (it == Registry().end()) return Napi::Number::New(env, -1);
  return Napi::Number::New(env, static_cast<double>(it->second.refs));
}

}  // namespace

void InitMapping(Napi::Env env, Napi::Object exports) {
  exports.Set("mapAnonymous", Napi::Function::New(env, MapAnonymous, "mapAnonymous"));
  exports.Set("mapSharedFile", Napi::Function::New(env, MapSharedFile, "mapSharedFile"));
  exports.Set("retireMapping", Napi::Function::New(env, RetireMapping, "retireMapping"));
  exports.Set("madvise", Napi::Function::New(env, Madvise, "madvise"));
  exports.Set("externalBuffer", Napi::Function::New(env, ExternalBuffer, "externalBuffer"));
  exports.Set("detachBuffer", Napi::Function::New(env, DetachBuffer, "detachBuffer"));
  exports.Set("mappingRefs", Napi::Function::New(env, MappingRefs, "mappingRefs"));
}

}  // namespace faultline
