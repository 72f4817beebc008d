// lseek(SEEK_DATA / SEEK_HOLE) for sparse backing files, and malloc_trim.
#include <errno.h>
#include <malloc.h>
#include <unistd.h>

#include "faultline.h"

namespace faultline {

namespace {

Napi::Value Seek(const Napi::CallbackInfo& info, const char* fn, int whence, const char* syscall) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t offset;
  if (!ArgFd(info, 0, fn, "fd", &fd) || !ArgU64(info, 1, fn, "offset", &offset)) return env.Undefined();
  const off_t r = lseek(fd, static_cast<off_t>(offset), whence);
  if (r < 0) {
    // ENXIO: offset is at or past EOF, or (SEEK_DATA) no data follows it.
    if (errno == ENXIO) return Napi::Number::New(env, -1);
    ThrowErrno(env, errno, syscall);
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(r));
}

Napi::Value SeekData(const Napi::CallbackInfo& info) {
  return Seek(info, "seekData", SEEK_DATA, "lseek(SEEK_DATA)");
}

Napi::Value SeekHole(const Napi::CallbackInfo& info) {
  return Seek(info, "seekHole", SEEK_HOLE, "lseek(SEEK_HOLE)");
}

// trimMemory() -> whether memory went back to the system (malloc_trim(0)):
// a pager thread that goes idle gives back what its region's buffers used.
Napi::Value TrimMemory(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

}  // namespace

void InitFiles(Napi::Env env, Napi::Object exports) {
  exports.Set("seekData", Napi::Function::New(env, SeekData, "seekData"));
  exports.Set("seekHole", Napi::Function::New(env, SeekHole, "seekHole"));
  exports.Set("trimMemory", Napi::Function::New(env, TrimMemory, "trimMemory"));
}

}  // namespace faultline
