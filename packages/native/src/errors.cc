// Errors: FaultlineNativeError for failed syscalls, TypeError/RangeError for
// bad arguments, and the argument readers every binding uses.
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <cmath>
#include <cstdarg>
#include <cstdio>

#include "faultline.h"

namespace faultline {

namespace {

struct ErrnoEntry {
  int value;
  const char* name;
};

// The errno values a uffd/mmap/lseek/open path can plausibly return, plus the
// common rest. Aliases (EWOULDBLOCK == EAGAIN, ENOTSUP == EOPNOTSUPP) are
// reported under the first name.
constexpr ErrnoEntry kErrnoNames[] = {
    {EPERM, "EPERM"},         {ENOENT, "ENOENT"},       {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},         {EIO, "EIO"},             {ENXIO, "ENXIO"},
    {E2BIG, "E2BIG"},         {ENOEXEC, "ENOEXEC"},     {EBADF, "EBADF"},
    {ECHILD, "ECHILD"},       {EAGAIN, "EAGAIN"},       {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},       {EFAULT, "EFAULT"},       {ENOTBLK, "ENOTBLK"},
    {EBUSY, "EBUSY"},         {EEXIST, "EEXIST"},       {EXDEV, "EXDEV"},
    {ENODEV, "ENODEV"},       {ENOTDIR, "ENOTDIR"},     {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},       {ENFILE, "ENFILE"},       {EMFILE, "EMFILE"},
    {ENOTTY, "ENOTTY"},       {ETXTBSY, "ETXTBSY"},     {EFBIG, "EFBIG"},
    {ENOSPC, "ENOSPC"},       {ESPIPE, "ESPIPE"},       {EROFS, "EROFS"},
    {EMLINK, "EMLINK"},       {EPIPE, "EPIPE"},         {EDOM, "EDOM"},
    {ERANGE, "ERANGE"},       {EDEADLK, "EDEADLK"},     {ENAMETOOLONG, "ENAMETOOLONG"},
    {ENOLCK, "ENOLCK"},       {ENOSYS, "ENOSYS"},       {ENOTEMPTY, "ENOTEMPTY"},
    {ELOOP, "ELOOP"},         {ENOMSG, "ENOMSG"},       {EOVERFLOW, "EOVERFLOW"},
    {EBADFD, "EBADFD"},       {EOPNOTSUPP, "EOPNOTSUPP"}, {ETIMEDOUT, "ETIMEDOUT"},
    {ECANCELED, "ECANCELED"}, {EOWNERDEAD, "EOWNERDEAD"}, {EHWPOISON, "EHWPOISON"},
    {EPROTO, "EPROTO"},
};

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

// Throwing uses raw N-API and ignores its failure: in a thread being
// terminated (Worker.terminate() while it is inside one of our calls) the
// throw itself fails, and node-addon-api's ThrowAsJavaScriptException then
// aborts the whole process (napi_fatal_error). The thread is going away;
// there is nobody left to throw to.
void ThrowFormatted(Napi::Env env, bool range, const char* fn, const char* fmt, va_list ap) {
  char detail[256];
  vsnprintf(detail, sizeof detail, fmt, ap);
  char message[320];
  snprintf(message, sizeof message, "%s: %s", fn, detail);
  if (range) {
    napi_throw_range_error(env, nullptr, message);
  } else {
    napi_throw_type_error(env, nullptr, message);
  }
}

// Reads info[i] as an integral double; throws a TypeError naming the argument.
bool ArgInteger(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, double* out) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) {
    ThrowType(info.Env(), fn, "%s must be a number", name);
    return false;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d) {
    ThrowType(info.Env(), fn, "%s must be an integer (got %g)", name, d);
    return false;
  }
  *out = d;
  return true;
}

}  // namespace

const char* ErrnoName(int err, char* scratch, size_t scratch_len) {
  for (const ErrnoEntry& e : kErrnoNames) {
    if (e.value == err) return e.name;
  }
  snprintf(scratch, scratch_len, "E%d", err);
  return scratch;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) {
  char scratch[16];
  const char* code = ErrnoName(err, scratch, sizeof scratch);
  char desc_buf[128];
  // GNU strerror_r (g++ defines _GNU_SOURCE) returns the string to use.
  const char* desc = strerror_r(err, desc_buf, sizeof desc_buf);
  char message[384];
  snprintf(message, sizeof message, "%s failed: %s (%s)", syscall, code, desc);

  napi_value text, error, value;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text) != napi_ok ||
      napi_create_error(env, nullptr, text, &error) != napi_ok) {
    return;  // see ThrowFormatted: a thread being torn down
  }
  if (napi_create_string_utf8(env, "FaultlineNativeError", NAPI_AUTO_LENGTH, &value) == napi_ok) napi_set_named_property(env, error, "name", value);
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &value) == napi_ok) napi_set_named_property(env, error, "code", value);
  if (napi_create_int32(env, err, &value) == napi_ok) napi_set_named_property(env, error, "errno", value);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &value) == napi_ok) napi_set_named_property(env, error, "syscall", value);
  napi_throw(env, error);
}

void ThrowType(Napi::Env env, const char* fn, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ThrowFormatted(env, false, fn, fmt, ap);
  va_end(ap);
}

void ThrowRange(Napi::Env env, const char* fn, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ThrowFormatted(env, true, fn, fmt, ap);
  va_end(ap);
}

bool ArgFd(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int* out) {
  double d;
  if (!ArgInteger(info, i, fn, name, &d)) return false;
  if (d < 0 || d > 2147483647.0) {
    ThrowRange(info.Env(), fn, "%s must be a file descriptor >= 0 (got %.0f)", name, d);
    return false;
  }
  *out = static_cast<int>(d);
  return true;
}

bool ArgU64(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, uint64_t* out) {
  double d;
  if (!ArgInteger(info, i, fn, name, &d)) return false;
  if (d < 0 || d > kMaxSafeInteger) {
    ThrowRange(info.Env(), fn, "%s must be a non-negative safe integer (got %.0f)", name, d);
    return false;
  }
  *out = static_cast<uint64_t>(d);
  return true;
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, bool* out) {
  if (!info[i].IsBoolean()) {
    ThrowType(info.Env(), fn, "%s must be a boolean", name);
    return false;
  }
  *out = info[i].As<Napi::Boolean>().Value();
  return true;
}

bool ArgU64Or(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, uint64_t dflt,
              uint64_t* out) {
  if (info[i].IsUndefined()) {
    *out = dflt;
    return true;
  }
  return ArgU64(info, i, fn, name, out);
}

bool ArgI64(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t* out) {
  double d;
  if (!ArgInteger(info, i, fn, name, &d)) return false;
  if (d < -kMaxSafeInteger || d > kMaxSafeInteger) {
    ThrowRange(info.Env(), fn, "%s must be a safe integer (got %.0f)", name, d);
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool ArgRange(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* addr_name,
              const char* len_name, uint64_t* addr, uint64_t* len) {
  if (!ArgU64(info, i, fn, addr_name, addr)) return false;
  if (!ArgU64(info, i + 1, fn, len_name, len)) return false;
  const uint64_t mask = PageSize() - 1;
  if (*addr & mask) {
    ThrowRange(info.Env(), fn, "%s must be page-aligned (got 0x%llx)", addr_name,
               static_cast<unsigned long long>(*addr));
    return false;
  }
  if (*len == 0 || (*len & mask)) {
    ThrowRange(info.Env(), fn, "%s must be a non-zero multiple of the page size %zu (got %llu)", len_name,
               PageSize(), static_cast<unsigned long long>(*len));
    return false;
  }
  return true;
}

bool ArgFillUnit(const Napi::CallbackInfo& info, size_t i, const char* fn, uint64_t* out) {
  if (!ArgU64Or(info, i, fn, "fillUnit", PageSize(), out)) return false;
  if (*out < PageSize() || (*out & (*out - 1)) != 0) {
    ThrowRange(info.Env(), fn, "fillUnit must be a power of two of at least %zu bytes (got %llu)", PageSize(),
               static_cast<unsigned long long>(*out));
    return false;
  }
  return true;
}

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

}  // namespace faultline
