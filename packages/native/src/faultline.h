// Shared declarations of the faultline addon (node-addon-api, built with
// NAPI_DISABLE_CPP_EXCEPTIONS: every failure is thrown as a pending JS
// exception and the function returns; callers check env.IsExceptionPending()).
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstddef>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace faultline {

// ---- errors.cc --------------------------------------------------------------

// errno -> "EEXIST"; unknown values come out as "E<n>".
const char* ErrnoName(int err, char* scratch, size_t scratch_len);

// Throws FaultlineNativeError {code, errno, syscall} for a failed syscall,
// e.g. ThrowErrno(env, EINVAL, "ioctl(UFFDIO_COPY)").
void ThrowErrno(Napi::Env env, int err, const char* syscall);

// Throw TypeError / RangeError with "<fn>: <message>".
void ThrowType(Napi::Env env, const char* fn, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void ThrowRange(Napi::Env env, const char* fn, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

// Argument readers: on failure they throw (TypeError/RangeError naming the
// argument) and return false.
bool ArgFd(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int* out);
// A non-negative safe integer (<= 2^53-1).
bool ArgU64(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, uint64_t* out);
// info[i] as a boolean; throws a TypeError naming the argument otherwise.
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, bool* out);
// A non-negative safe integer, or undefined -> dflt.
bool ArgU64Or(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, uint64_t dflt, uint64_t* out);
// A signed safe integer.
bool ArgI64(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t* out);
// A page-aligned address and a page-aligned, non-zero length.
bool ArgRange(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* addr_name,
              const char* len_name, uint64_t* addr, uint64_t* len);

size_t PageSize();

// The optional `fillUnit` argument: the smallest piece UFFDIO_COPY/POISON
// may fill or skip (the system page, or the huge page size of a hugetlb
// mapping, where the kernel refuses anything smaller). Undefined means the
// system page; otherwise a power of two of at least the system page.
bool ArgFillUnit(const Napi::CallbackInfo& info, size_t i, const char* fn, uint64_t* out);

// A uint64 mask as a JS number. Bits >= 53 cannot be represented exactly and
// are dropped (only UFFDIO_API's own bit 63 in uffdio_api.ioctls is affected).
inline double MaskToNumber(uint64_t mask) {
  return static_cast<double>(mask & ((uint64_t{1} << 53) - 1));
}

// A JS function bound to a native object's control block. Each function owns
// a reference to the block, so any of them may outlive the others and the
// object itself (whose pointer in the block is cleared when it closes).
template <typename Control>
Napi::Function BoundMethod(Napi::Env env, Napi::Function::Callback cb, const char* name, const std::shared_ptr<Control>& control) {
  auto* ref = new std::shared_ptr<Control>(control);
  Napi::Function fn = Napi::Function::New(env, cb, name, ref);
  fn.AddFinalizer([](Napi::Env, std::shared_ptr<Control>* r) { delete r; }, ref);
  return fn;
}

// ---- uffd.cc ----------------------------------------------------------------

// Non-blocking drain of a uffd into `out` (4 doubles per message, capacity
// messages at most). Returns the count (>= 0), -errno when the very first
// read fails with anything but EAGAIN, or -EPROTO when a read returns part of
// a message (never from a real uffd; messages decoded by this call are lost).
long DrainMessages(int fd, double* out, size_t capacity);

// ---- copy_page.cc -----------------------------------------------------------

// Installs [address, address+length) from `bytes` with UFFDIO_COPY in `mode`,
// resuming after partial copies. EEXIST on a part means someone installed it
// first: its waiters are woken and the copy goes on after that `unit` (the
// system page, or the huge page of a hugetlb mapping). EAGAIN is retried up to
// max_again times. Returns 1 if this call installed any of it, 0 if all of it
// was present already, -1 with *err = errno when a part could not be copied.
// `source_populated`: the caller has mapped every source page already (and
// the source may be a file mapping, which must not be read from user space:
// a truncated file would raise SIGBUS, where the kernel's copy fails with EFAULT).
int CopyPage(int fd, uint64_t address, const uint8_t* bytes, uint64_t length, uint64_t unit, uint64_t mode, int max_again,
             int* err, bool source_populated = false);

// ---- abandon.cc -------------------------------------------------------------

// Hands a uffd whose pager is gone to a detached native thread that answers
// every fault in [address, address+length) with UFFDIO_POISON (SIGBUS), one
// `unit` (system or huge page) at a time. `owner` is the process the range
// belongs to when it is another's (a peer of faultline serve): the thread
// ends, closing its descriptor, once that process has exited. 0: this one.
void PoisonAbandoned(int fd, uint64_t address, uint64_t length, uint64_t unit, int owner);

// A region served by a native thread while its pager is alive but stuck
// (watchdog.cc): the thread ends when `stop` is set, and the pages whose
// write-protect faults it let through are kept for the pager to count dirty.
struct Takeover {
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<uint64_t> written;  // addresses of fill units (system or huge pages)
};

// Answers faults on `own_fd` (which it closes) with poison, on the calling
// thread: for ever (PoisonAbandoned's thread, `takeover` null), until
// `takeover->stop`, or until process `owner` (if not 0) has exited.
void ServePoisoning(int own_fd, uint64_t address, uint64_t length, uint64_t unit, Takeover* takeover, int owner);

// ---- watchdog.cc ------------------------------------------------------------

// What a watcher tells its watchdog about the pager thread's progress.
struct Pulse {
  std::atomic<uint64_t> drains{0};              // reads of the uffd by the watcher
  std::atomic<int64_t> in_callback_since_ms{0};  // 0 unless the JS callback is running
  std::atomic<bool> fired{false};
  Takeover takeover;
  std::mutex wake_mutex;  // with `wake`: StopWatchdog ends the thread's wait at once
  std::condition_variable wake;
  // Signalled (under wake_mutex) when the watchdog fires, so the pager
  // learns of it even though nothing it polls becomes readable again.
  // Null once the watcher closes.
  uv_async_t* on_fire = nullptr;
};

// Starts a detached thread that, once the pager has left faults unread, or
// been inside its fault callback, for `stall_ms`, takes the uffd over:
// faults get SIGBUS (the fetch-timeout policy) until the watcher stops.
// False (errno set) if the descriptor could not be duplicated.
bool StartWatchdog(std::shared_ptr<Pulse> pulse, int fd, uint64_t address, uint64_t length, uint64_t unit,
                   uint64_t stall_ms);
// Ends the watchdog (and any takeover) of a watcher that stops.
void StopWatchdog(Pulse* pulse);
int64_t SteadyMs();

void InitUffd(Napi::Env env, Napi::Object exports);
void InitMapping(Napi::Env env, Napi::Object exports);
void InitPoller(Napi::Env env, Napi::Object exports);
void InitFiles(Napi::Env env, Napi::Object exports);
void InitPagemap(Napi::Env env, Napi::Object exports);
void InitInstaller(Napi::Env env, Napi::Object exports);
void InitPeers(Napi::Env env, Napi::Object exports);

}  // namespace faultline
