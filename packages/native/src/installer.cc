// createInstaller(): a native thread that installs pages with UFFDIO_COPY
// while the pager's JS thread goes on parsing the next backend reply. On two
// cores the copy into fresh pages (the kernel allocates each one) and the
// parsing then run side by side instead of one after the other.
//
// The thread only copies: which page, which bytes and in which mode is
// decided in JS, and each result comes back to JS (on the thread that created
// the installer, through a uv_async_t) as [token, result] pairs: 1 installed,
// 0 already present (EEXIST; the waiters were woken), or -errno. Copies are
// made without DONTWAKE, so a thread that faulted on the page meanwhile is
// woken by the copy itself. The bytes are read on the installer thread: JS
// must keep each array alive and unchanged until its token comes back.
//
// Lifetime: stop() or the environment's async cleanup hook (a Worker ending
// without stop()) stops the thread — after the copy it is doing, dropping the
// rest — joins it, closes its duplicate of the uffd, then closes the async
// handle; the close callback releases the JS callback and lets the env go on.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "faultline.h"

namespace faultline {

namespace {

// EAGAIN means the mm is changing (e.g. a concurrent munmap or fork): retry a
// few times, then report it and let JS install the page on its own path.
constexpr int kMaxAgain = 64;

struct Installer;

struct Control {
  Installer* installer = nullptr;  // null once closing
};

struct Job {
  uint64_t address;
  const uint8_t* bytes;
  uint64_t length;
  uint64_t mode;
  double token;
};

struct Done {
  double token;
  double result;
};

struct Installer {
  uv_async_t async;  // async.data points back here
  napi_env env = nullptr;
  int fd = -1;  // our own duplicate: the pager's may be closed and its number reused
  uint64_t unit = 0;  // fill unit: the system page, or the huge page of a hugetlb region
  napi_ref callback = nullptr;
  napi_async_cleanup_hook_handle cleanup = nullptr;
  std::shared_ptr<Control> control;
  bool closing = false;

  std::thread thread;
  std::mutex mu;
  std::condition_variable wake;
  std::deque<Job> jobs;    // guarded by mu
  std::vector<Done> done;  // guarded by mu
  bool stopping = false;   // guarded by mu
};

void Run(Installer* in) {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(in->mu);
      in->wake.wait(lock, [in] { return in->stopping || !in->jobs.empty(); });
      if (in->stopping) return;
      job = in->jobs.front();
      in->jobs.pop_front();
    }
    int err = 0;
    const int r = CopyPage(in->fd, job.address, job.bytes, job.length, in->unit, job.mode, kMaxAgain, &err);
    {
      std::lock_guard<std::mutex> lock(in->mu);
      in->done.push_back({job.token, r >= 0 ? static_cast<double>(r) : -static_cast<double>(err)});
    }
    uv_async_send(&in->async);
  }
}

void OnClosed(uv_handle_t* handle) {
  Installer* in = static_cast<Installer*>(handle->data);
  if (in->callback != nullptr) napi_delete_reference(in->env, in->callback);
  napi_async_cleanup_hook_handle cleanup = in->cleanup;
  delete in;
  // Last: when called from the cleanup hook this lets the env finish tearing down.
  if (cleanup != nullptr) napi_remove_async_cleanup_hook(cleanup);
}

void BeginClose(Installer* in) {
  if (in->closing) return;
  in->closing = true;
  in->control->installer = nullptr;
  {
    std::lock_guard<std::mutex> lock(in->mu);
    in->stopping = true;
  }
  in->wake.notify_all();
  if (in->thread.joinable()) in->thread.join();
  close(in->fd);
  in->fd = -1;
  uv_close(reinterpret_cast<uv_handle_t*>(&in->async), OnClosed);
}

void OnEnvCleanup(napi_async_cleanup_hook_handle, void* arg) { BeginClose(static_cast<Installer*>(arg)); }

// Raw N-API, as in the watcher's poll callback: while a thread is being
// terminated any call may fail, and then the turn just ends.
void OnAsync(uv_async_t* handle) {
  Installer* in = static_cast<Installer*>(handle->data);
  if (in->closing) return;
  size_t n;
  {
    std::lock_guard<std::mutex> lock(in->mu);
    n = in->done.size();
  }
  if (n == 0) return;
  napi_env env = in->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value buffer, results, global, callback, argv[2], ignored;
  void* data = nullptr;
  // Results leave the queue only once there is somewhere to put them: if this
  // fails they go out with the next batch, so close() still hears of them.
  if (napi_create_arraybuffer(env, n * 2 * sizeof(double), &data, &buffer) == napi_ok &&
      napi_create_typedarray(env, napi_float64_array, n * 2, buffer, 0, &results) == napi_ok &&
      napi_get_global(env, &global) == napi_ok && napi_get_reference_value(env, in->callback, &callback) == napi_ok &&
      callback != nullptr && napi_create_double(env, static_cast<double>(n), &argv[0]) == napi_ok) {
    double* out = static_cast<double*>(data);
    {
      std::lock_guard<std::mutex> lock(in->mu);
      for (size_t k = 0; k < n; k++) {
        out[2 * k] = in->done[k].token;
        out[2 * k + 1] = in->done[k].result;
      }
      in->done.erase(in->done.begin(), in->done.begin() + static_cast<std::ptrdiff_t>(n));
    }
    argv[1] = results;
    if (napi_make_callback(env, nullptr, global, callback, 2, argv, &ignored) == napi_pending_exception) {
      napi_value error;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

Installer* LiveInstaller(const Napi::CallbackInfo& info) {
  auto* control = static_cast<std::shared_ptr<Control>*>(info.Data());
  return control == nullptr ? nullptr : (*control)->installer;
}

// install(address, bytes: Uint8Array, mode, token)
Napi::Value Install(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "install";
  Installer* in = LiveInstaller(info);
  if (in == nullptr) {
    ThrowType(env, fn, "the installer has stopped");
    return env.Undefined();
  }
  uint64_t address, mode;
  if (!ArgU64(info, 0, fn, "address", &address) || !ArgU64(info, 2, fn, "mode", &mode)) return env.Undefined();
  if (!info[3].IsNumber()) {
    ThrowType(env, fn, "token must be a number");
    return env.Undefined();
  }
  const double token = info[3].As<Napi::Number>().DoubleValue();
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (!info[1].IsTypedArray() ||
      napi_get_typedarray_info(env, info[1], &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    ThrowType(env, fn, "bytes must be a Uint8Array");
    return env.Undefined();
  }
  if (address % in->unit != 0 || length == 0 || length % in->unit != 0) {
    ThrowRange(env, fn, "address must be page-aligned and bytes a whole number of pages, of the %llu-byte fill unit (got %zu bytes)",
               static_cast<unsigned long long>(in->unit), length);
    return env.Undefined();
  }
  {
    std::lock_guard<std::mutex> lock(in->mu);
    in->jobs.push_back({address, static_cast<const uint8_t*>(data), length, mode, token});
  }
  in->wake.notify_one();
  return env.Undefined();
}

Napi::Value Stop(const Napi::CallbackInfo& info) {
  Installer* in = LiveInstaller(info);
  if (in != nullptr) BeginClose(in);
  return info.Env().Undefined();
}

// createInstaller(fd, onDone(count, results: Float64Array of [token, result] pairs), fillUnit?)
Napi::Value CreateInstaller(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t unit;
  if (!ArgFd(info, 0, "createInstaller", "fd", &fd) || !ArgFillUnit(info, 2, "createInstaller", &unit)) return env.Undefined();
  if (!info[1].IsFunction()) {
    ThrowType(env, "createInstaller", "onDone must be a function");
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_get_uv_event_loop(env, &loop), env.Undefined());
  const int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) {
    ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC)");
    return env.Undefined();
  }
  auto* in = new Installer();
  in->env = env;
  in->fd = own;
  in->unit = unit;
  const int rc = uv_async_init(loop, &in->async, OnAsync);
  if (rc != 0) {
    close(own);
    delete in;
    ThrowErrno(env, -rc, "uv_async_init");
    return env.Undefined();
  }
  in->async.data = in;
  in->control = std::make_shared<Control>();
  in->control->installer = in;
  if (napi_create_reference(env, info[1], 1, &in->callback) != napi_ok ||
      napi_add_async_cleanup_hook(env, OnEnvCleanup, in, &in->cleanup) != napi_ok) {
    in->cleanup = nullptr;
    BeginClose(in);
    ThrowType(env, "createInstaller", "could not register the installer with this thread");
    return env.Undefined();
  }
  in->thread = std::thread(Run, in);

  Napi::Object result = Napi::Object::New(env);
  result.Set("install", BoundMethod(env, Install, "install", in->control));
  result.Set("stop", BoundMethod(env, Stop, "stop", in->control));
  return result;
}

}  // namespace

void InitInstaller(Napi::Env env, Napi::Object exports) {
  exports.Set("createInstaller", Napi::Function::New(env, CreateInstaller, "createInstaller"));
}

}  // namespace faultline
