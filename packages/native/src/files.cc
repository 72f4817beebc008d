// lseek(SEEK_DATA / SEEK_HOLE) for sparse backing files; fallocate(PUNCH_HOLE)
// and flock for the files of regions shared between processes; malloc_trim.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
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

// fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE): on tmpfs the pages
// leave the page cache and every process's mapping of them.
Napi::Value PunchHole(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t offset, length;
  if (!ArgFd(info, 0, "punchHole", "fd", &fd) || !ArgU64(info, 1, "punchHole", "offset", &offset) ||
      !ArgU64(info, 2, "punchHole", "length", &length)) {
    return env.Undefined();
  }
  if (length == 0) {
    ThrowRange(env, "punchHole", "length must be > 0");
    return env.Undefined();
  }
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length)) != 0) {
    ThrowErrno(env, errno, "fallocate(FALLOC_FL_PUNCH_HOLE)");
  }
  return env.Undefined();
}

// flock(fd, LOCK_EX | LOCK_UN), blocking (EINTR retried).
Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  bool exclusive;
  if (!ArgFd(info, 0, "flock", "fd", &fd) || !ArgBool(info, 1, "flock", "exclusive", &exclusive)) return env.Undefined();
  const int op = exclusive ? LOCK_EX : LOCK_UN;
  int r;
  do {
    r = flock(fd, op);
  } while (r != 0 && errno == EINTR);
  if (r != 0) ThrowErrno(env, errno, op == LOCK_EX ? "flock(LOCK_EX)" : "flock(LOCK_UN)");
  return env.Undefined();
}

}  // namespace

void InitFiles(Napi::Env env, Napi::Object exports) {
  exports.Set("punchHole", Napi::Function::New(env, PunchHole, "punchHole"));
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
  exports.Set("seekData", Napi::Function::New(env, SeekData, "seekData"));
  exports.Set("seekHole", Napi::Function::New(env, SeekHole, "seekHole"));
  exports.Set("trimMemory", Napi::Function::New(env, TrimMemory, "trimMemory"));
}

}  // namespace faultline
