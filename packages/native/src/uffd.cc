// userfaultfd: creation, the API handshake, the range ioctls and reading.
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "faultline.h"
#include "uffd_compat.h"

namespace faultline {

namespace {

enum class UserMode { kFull, kUserOnly, kFallback };

struct OpenedUffd {
  int fd = -1;
  bool via_device = false;
  bool user_mode_only = false;
};

struct SysError {
  int err = 0;
  const char* syscall = "";
};

// One attempt with the given creation flags: the syscall first, then (when the
// syscall is missing or refused) /dev/userfaultfd, whose access is governed by
// the node's permissions instead of vm.unprivileged_userfaultfd. On failure the
// syscall's error is reported, unless the syscall does not exist at all.
int CreateOnce(int extra_flags, bool* via_device, SysError* error) {
  const int flags = O_CLOEXEC | O_NONBLOCK | extra_flags;
  int fd = static_cast<int>(syscall(__NR_userfaultfd, flags));
  if (fd >= 0) {
    *via_device = false;
    return fd;
  }
  const int sys_err = errno;
  *error = {sys_err, "userfaultfd"};
  if (sys_err != ENOSYS && sys_err != EPERM) return -1;

  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev < 0) {
    const int dev_err = errno;
    if (sys_err == ENOSYS && dev_err != ENOENT) *error = {dev_err, "open(/dev/userfaultfd)"};
    return -1;
  }
  fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
  const int ioc_err = errno;
  close(dev);
  if (fd >= 0) {
    *via_device = true;
    return fd;
  }
  if (sys_err == ENOSYS) *error = {ioc_err, "ioctl(USERFAULTFD_IOC_NEW)"};
  return -1;
}

// Creates a non-blocking, close-on-exec uffd (no handshake yet).
bool CreateUffd(UserMode mode, OpenedUffd* out, SysError* error) {
  if (mode != UserMode::kUserOnly) {
    out->fd = CreateOnce(0, &out->via_device, error);
    if (out->fd >= 0) return true;
    if (mode == UserMode::kFull) return false;
    if (error->err != EPERM && error->err != EACCES) return false;
  }
  out->fd = CreateOnce(UFFD_USER_MODE_ONLY, &out->via_device, error);
  out->user_mode_only = true;
  return out->fd >= 0;
}

// UFFDIO_API; closes the fd on failure.
bool Handshake(int fd, uint64_t features, uffdio_api* api, SysError* error) {
  memset(api, 0, sizeof *api);
  api->api = UFFD_API;
  api->features = features;
  if (ioctl(fd, UFFDIO_API, api) == 0) return true;
  *error = {errno, "ioctl(UFFDIO_API)"};
  close(fd);
  return false;
}

bool ArgUserMode(const Napi::CallbackInfo& info, size_t i, const char* fn, UserMode* out) {
  Napi::Value v = info[i];
  if (v.IsUndefined()) {
    *out = UserMode::kFallback;
    return true;
  }
  if (v.IsBoolean()) {
    *out = v.As<Napi::Boolean>().Value() ? UserMode::kUserOnly : UserMode::kFull;
    return true;
  }
  if (v.IsString() && v.As<Napi::String>().Utf8Value() == "fallback") {
    *out = UserMode::kFallback;
    return true;
  }
  ThrowType(info.Env(), fn, "userModeOnly must be true, false or 'fallback'");
  return false;
}

// Names of UFFD_FEATURE_* bits, in bit order (mirrors FEATURE_BITS in constants.ts).
constexpr const char* kFeatureNames[] = {
    "PAGEFAULT_FLAG_WP", "EVENT_FORK",       "EVENT_REMAP",     "EVENT_REMOVE",       "MISSING_HUGETLBFS",
    "MISSING_SHMEM",     "EVENT_UNMAP",      "SIGBUS",          "THREAD_ID",          "MINOR_HUGETLBFS",
    "MINOR_SHMEM",       "EXACT_ADDRESS",    "WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED", "POISON",
    "WP_ASYNC",          "MOVE",
};
static_assert(sizeof(kFeatureNames) / sizeof(kFeatureNames[0]) == 17, "17 feature names");
static_assert(UFFD_FEATURE_MOVE == (1 << 16), "MOVE is the last named bit");

Napi::Array FeatureNames(Napi::Env env, uint64_t mask) {
  Napi::Array names = Napi::Array::New(env);
  uint32_t n = 0;
  for (unsigned bit = 0; bit < 64; bit++) {
    if (!(mask & (uint64_t{1} << bit))) continue;
    if (bit < sizeof(kFeatureNames) / sizeof(kFeatureNames[0])) {
      names.Set(n++, Napi::String::New(env, kFeatureNames[bit]));
    } else {
      char buf[16];
      snprintf(buf, sizeof buf, "bit%u", bit);
      names.Set(n++, Napi::String::New(env, buf));
    }
  }
  return names;
}

// ---- bindings ---------------------------------------------------------------

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpenedUffd uffd;
  SysError error;
  uffdio_api api;
  if (!CreateUffd(UserMode::kFallback, &uffd, &error) || !Handshake(uffd.fd, 0, &api, &error)) {
    ThrowErrno(env, error.err, error.syscall);
    return env.Undefined();
  }
  close(uffd.fd);
  Napi::Object result = Napi::Object::New(env);
  result.Set("features", Napi::Number::New(env, MaskToNumber(api.features)));
  result.Set("names", FeatureNames(env, api.features));
  result.Set("ioctls", Napi::Number::New(env, MaskToNumber(api.ioctls)));
  result.Set("via", Napi::String::New(env, uffd.via_device ? "device" : "syscall"));
  result.Set("userModeOnly", Napi::Boolean::New(env, uffd.user_mode_only));
  return result;
}

Napi::Value UffdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t features;
  UserMode mode;
  if (!ArgU64Or(info, 0, "uffdOpen", "features", 0, &features)) return env.Undefined();
  if (!ArgUserMode(info, 1, "uffdOpen", &mode)) return env.Undefined();

  OpenedUffd uffd;
  SysError error;
  uffdio_api api;
  if (!CreateUffd(mode, &uffd, &error) || !Handshake(uffd.fd, features, &api, &error)) {
    ThrowErrno(env, error.err, error.syscall);
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, uffd.fd));
  result.Set("features", Napi::Number::New(env, MaskToNumber(api.features)));
  result.Set("ioctls", Napi::Number::New(env, MaskToNumber(api.ioctls)));
  result.Set("via", Napi::String::New(env, uffd.via_device ? "device" : "syscall"));
  result.Set("userModeOnly", Napi::Boolean::New(env, uffd.user_mode_only));
  return result;
}

Napi::Value UffdRegister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t addr, len, mode;
  if (!ArgFd(info, 0, "uffdRegister", "fd", &fd) ||
      !ArgRange(info, 1, "uffdRegister", "address", "length", &addr, &len) ||
      !ArgU64(info, 3, "uffdRegister", "mode", &mode)) {
    return env.Undefined();
  }
  uffdio_register reg;
  memset(&reg, 0, sizeof reg);
  reg.range.start = addr;
  reg.range.len = len;
  reg.mode = mode;
  if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
    ThrowErrno(env, errno, "ioctl(UFFDIO_REGISTER)");
    return env.Undefined();
  }
  return Napi::Number::New(env, MaskToNumber(reg.ioctls));
}

// Shared by UNREGISTER and WAKE: an ioctl taking a bare uffdio_range.
Napi::Value RangeIoctl(const Napi::CallbackInfo& info, const char* fn, unsigned long request,
                       const char* syscall) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t addr, len;
  if (!ArgFd(info, 0, fn, "fd", &fd) || !ArgRange(info, 1, fn, "address", "length", &addr, &len)) {
    return env.Undefined();
  }
  uffdio_range range{addr, len};
  if (ioctl(fd, request, &range) != 0) ThrowErrno(env, errno, syscall);
  return env.Undefined();
}

Napi::Value UffdUnregister(const Napi::CallbackInfo& info) {
  return RangeIoctl(info, "uffdUnregister", UFFDIO_UNREGISTER, "ioctl(UFFDIO_UNREGISTER)");
}

Napi::Value UffdWake(const Napi::CallbackInfo& info) {
  return RangeIoctl(info, "uffdWake", UFFDIO_WAKE, "ioctl(UFFDIO_WAKE)");
}

// The fill ioctls' return convention: bytes done on success; on failure the
// partial byte count (EAGAIN with progress), -EEXIST, -EAGAIN, or a throw.
Napi::Value FillResult(Napi::Env env, int rc, int err, int64_t done, uint64_t len, const char* syscall) {
  if (rc == 0) return Napi::Number::New(env, static_cast<double>(len));
  if (err == EAGAIN && done > 0) return Napi::Number::New(env, static_cast<double>(done));
  if (err == EEXIST) return Napi::Number::New(env, -EEXIST);
  if (err == EAGAIN) return Napi::Number::New(env, -EAGAIN);
  ThrowErrno(env, err, syscall);
  return env.Undefined();
}

Napi::Value UffdCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "uffdCopy";
  int fd;
  uint64_t dst, src_offset, len, mode;
  if (!ArgFd(info, 0, fn, "fd", &fd)) return env.Undefined();
  if (!ArgU64(info, 1, fn, "dst", &dst)) return env.Undefined();
  if (!info[2].IsTypedArray()) {
    ThrowType(env, fn, "src must be a Uint8Array (or another TypedArray)");
    return env.Undefined();
  }
  if (!ArgU64(info, 3, fn, "srcOffset", &src_offset)) return env.Undefined();
  if (!ArgU64(info, 4, fn, "length", &len)) return env.Undefined();
  if (!ArgU64(info, 5, fn, "mode", &mode)) return env.Undefined();
  const uint64_t mask = PageSize() - 1;
  if (dst & mask) {
    ThrowRange(env, fn, "dst must be page-aligned (got 0x%llx)", static_cast<unsigned long long>(dst));
    return env.Undefined();
  }
  if (len == 0 || (len & mask)) {
    ThrowRange(env, fn, "length must be a non-zero multiple of the page size %zu (got %llu)", PageSize(),
               static_cast<unsigned long long>(len));
    return env.Undefined();
  }
  // napi_get_typedarray_info's data pointer works for typed arrays over a
  // SharedArrayBuffer too, where Napi::ArrayBuffer::Data() would not.
  napi_typedarray_type src_type;
  size_t src_elems = 0;
  void* src_data = nullptr;
  if (napi_get_typedarray_info(env, info[2], &src_type, &src_elems, &src_data, nullptr, nullptr) != napi_ok) {
    ThrowType(env, fn, "src must be a Uint8Array (or another TypedArray)");
    return env.Undefined();
  }
  const uint64_t src_len = info[2].As<Napi::TypedArray>().ByteLength();
  if (src_offset > src_len || len > src_len - src_offset) {
    ThrowRange(env, fn, "srcOffset + length (%llu + %llu) exceeds src.byteLength (%llu)",
               static_cast<unsigned long long>(src_offset), static_cast<unsigned long long>(len),
               static_cast<unsigned long long>(src_len));
    return env.Undefined();
  }
  const uint8_t* base = static_cast<const uint8_t*>(src_data);

  uffdio_copy copy;
  memset(&copy, 0, sizeof copy);
  copy.dst = dst;
  copy.src = reinterpret_cast<uintptr_t>(base + src_offset);
  copy.len = len;
  copy.mode = mode;
  const int rc = ioctl(fd, UFFDIO_COPY, &copy);
  return FillResult(env, rc, rc == 0 ? 0 : errno, copy.copy, len, "ioctl(UFFDIO_COPY)");
}

Napi::Value UffdZeropage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t addr, len, mode;
  if (!ArgFd(info, 0, "uffdZeropage", "fd", &fd) ||
      !ArgRange(info, 1, "uffdZeropage", "address", "length", &addr, &len) ||
      !ArgU64(info, 3, "uffdZeropage", "mode", &mode)) {
    return env.Undefined();
  }
  uffdio_zeropage zp;
  memset(&zp, 0, sizeof zp);
  zp.range.start = addr;
  zp.range.len = len;
  zp.mode = mode;
  const int rc = ioctl(fd, UFFDIO_ZEROPAGE, &zp);
  return FillResult(env, rc, rc == 0 ? 0 : errno, zp.zeropage, len, "ioctl(UFFDIO_ZEROPAGE)");
}

Napi::Value UffdPoison(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t addr, len, mode;
  if (!ArgFd(info, 0, "uffdPoison", "fd", &fd) ||
      !ArgRange(info, 1, "uffdPoison", "address", "length", &addr, &len) ||
      !ArgU64(info, 3, "uffdPoison", "mode", &mode)) {
    return env.Undefined();
  }
  fl_uffdio_poison poison;
  memset(&poison, 0, sizeof poison);
  poison.range.start = addr;
  poison.range.len = len;
  poison.mode = mode;
  const int rc = ioctl(fd, UFFDIO_POISON, &poison);
  return FillResult(env, rc, rc == 0 ? 0 : errno, poison.updated, len, "ioctl(UFFDIO_POISON)");
}

Napi::Value UffdWriteProtect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t addr, len, mode;
  if (!ArgFd(info, 0, "uffdWriteProtect", "fd", &fd) ||
      !ArgRange(info, 1, "uffdWriteProtect", "address", "length", &addr, &len) ||
      !ArgU64(info, 3, "uffdWriteProtect", "mode", &mode)) {
    return env.Undefined();
  }
  uffdio_writeprotect wp;
  memset(&wp, 0, sizeof wp);
  wp.range.start = addr;
  wp.range.len = len;
  wp.mode = mode;
  if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) != 0) {
    // An event (REMOVE, UNMAP) waits to be read: the caller reads it and retries.
    if (errno == EAGAIN) return Napi::Number::New(env, -EAGAIN);
    ThrowErrno(env, errno, "ioctl(UFFDIO_WRITEPROTECT)");
    return env.Undefined();
  }
  return Napi::Number::New(env, 0);
}

Napi::Value UffdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, "uffdRead", "fd", &fd)) return env.Undefined();
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    ThrowType(env, "uffdRead", "out must be a Float64Array");
    return env.Undefined();
  }
  Napi::Float64Array out = info[1].As<Napi::Float64Array>();
  const size_t capacity = out.ElementLength() / 4;
  if (capacity == 0) {
    ThrowRange(env, "uffdRead", "out must hold at least one message (4 elements), got %zu", out.ElementLength());
    return env.Undefined();
  }
  const long n = DrainMessages(fd, out.Data(), capacity);
  if (n < 0) {
    ThrowErrno(env, static_cast<int>(-n), "read");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, "closeFd", "fd", &fd)) return env.Undefined();
  // On Linux the descriptor is released even when close() reports EINTR.
  if (close(fd) != 0 && errno != EINTR) ThrowErrno(env, errno, "close");
  return env.Undefined();
}

void DecodeMessage(const uffd_msg& msg, double* out) {
  out[0] = msg.event;
  out[1] = out[2] = out[3] = 0;
  switch (msg.event) {
    case UFFD_EVENT_PAGEFAULT:
      out[1] = static_cast<double>(msg.arg.pagefault.flags);
      out[2] = static_cast<double>(msg.arg.pagefault.address);
      out[3] = msg.arg.pagefault.feat.ptid;
      break;
    case UFFD_EVENT_FORK:
      out[1] = msg.arg.fork.ufd;
      break;
    case UFFD_EVENT_REMAP:
      out[1] = static_cast<double>(msg.arg.remap.from);
      out[2] = static_cast<double>(msg.arg.remap.to);
      out[3] = static_cast<double>(msg.arg.remap.len);
      break;
    case UFFD_EVENT_REMOVE:
    case UFFD_EVENT_UNMAP:
      out[1] = static_cast<double>(msg.arg.remove.start);
      out[2] = static_cast<double>(msg.arg.remove.end);
      break;
    default:
      break;
  }
}

}  // namespace

long DrainMessages(int fd, double* out, size_t capacity) {
  constexpr size_t kChunk = 64;  // 2 KiB of uffd_msg on the stack
  uffd_msg msgs[kChunk];
  size_t count = 0;
  while (count < capacity) {
    const size_t want = std::min(kChunk, capacity - count);
    const ssize_t n = read(fd, msgs, want * sizeof(uffd_msg));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (count == 0) return -errno;
      break;  // report what we have; the error recurs on the next read
    }
    // The kernel returns whole messages only. Part of one means `fd` is not
    // a uffd's message stream: the rest would be decoded out of step (the
    // message fuzzer, feeding a FIFO, found the part silently dropped).
    if (static_cast<size_t>(n) % sizeof(uffd_msg) != 0) return -EPROTO;
    const size_t got = static_cast<size_t>(n) / sizeof(uffd_msg);
    for (size_t k = 0; k < got; k++) DecodeMessage(msgs[k], out + 4 * (count + k));
    count += got;
    // read() returns every queued message that fits: a short read means the
    // queue was empty a moment ago, so another read would almost surely be
    // EAGAIN. Stop here and save the syscall.
    if (got < want) break;
  }
  return static_cast<long>(count);
}

void InitUffd(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("uffdOpen", Napi::Function::New(env, UffdOpen, "uffdOpen"));
  exports.Set("uffdRegister", Napi::Function::New(env, UffdRegister, "uffdRegister"));
  exports.Set("uffdUnregister", Napi::Function::New(env, UffdUnregister, "uffdUnregister"));
  exports.Set("uffdCopy", Napi::Function::New(env, UffdCopy, "uffdCopy"));
  exports.Set("uffdZeropage", Napi::Function::New(env, UffdZeropage, "uffdZeropage"));
  exports.Set("uffdWake", Napi::Function::New(env, UffdWake, "uffdWake"));
  exports.Set("uffdWriteProtect", Napi::Function::New(env, UffdWriteProtect, "uffdWriteProtect"));
  exports.Set("uffdPoison", Napi::Function::New(env, UffdPoison, "uffdPoison"));
  exports.Set("uffdRead", Napi::Function::New(env, UffdRead, "uffdRead"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
}

}  // namespace faultline
