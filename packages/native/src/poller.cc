// watch(): a uv_poll_t on the calling thread's event loop that drains a uffd
// and hands the decoded messages to a JS callback.
//
// Lifetime: the handle is closed exactly once, either by stop() or by the
// environment's async cleanup hook (a Worker exiting without stop()). The
// close callback releases the JS references and then, only then, tells Node
// the async cleanup is finished, so the env is still alive for it.
#include <errno.h>
#include <uv.h>

#include <algorithm>
#include <memory>

#include "faultline.h"

namespace faultline {

namespace {

struct Watcher;

// Shared between the watcher and the JS stop() function, which may outlive it.
struct Control {
  Watcher* watcher = nullptr;  // null once the handle is closing
};

struct Watcher {
  uv_poll_t handle;  // handle.data points back at the Watcher
  napi_env env = nullptr;
  int fd = -1;
  size_t capacity = 0;
  Napi::FunctionReference callback;
  Napi::ObjectReference messages;  // Float64Array(capacity * 4)
  napi_async_cleanup_hook_handle cleanup = nullptr;
  bool closing = false;
  std::shared_ptr<Control> control;
};

void OnClosed(uv_handle_t* handle) {
  Watcher* w = static_cast<Watcher*>(handle->data);
  w->callback.Reset();
  w->messages.Reset();
  if (w->control) w->control->watcher = nullptr;
  napi_async_cleanup_hook_handle cleanup = w->cleanup;
  delete w;
  // Last: when called from the cleanup hook this lets the env finish tearing down.
  if (cleanup != nullptr) napi_remove_async_cleanup_hook(cleanup);
}

void BeginClose(Watcher* w) {
  if (w->closing) return;
  w->closing = true;
  w->control->watcher = nullptr;
  uv_poll_stop(&w->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), OnClosed);
}

void OnEnvCleanup(napi_async_cleanup_hook_handle, void* arg) {
  BeginClose(static_cast<Watcher*>(arg));
}

void Deliver(Watcher* w, Napi::Env env, double count, Napi::Float64Array messages) {
  w->callback.MakeCallback(env.Global(), {Napi::Number::New(env, count), messages});
  // A throwing callback: route it to process 'uncaughtException' (or the
  // Worker's 'error' event), as Node does for its own callbacks.
  if (env.IsExceptionPending()) {
    Napi::Error error = env.GetAndClearPendingException();
    napi_fatal_exception(env, error.Value());
  }
}

void OnPoll(uv_poll_t* handle, int status, int events) {
  Watcher* w = static_cast<Watcher*>(handle->data);
  if (w->closing) return;
  Napi::Env env(w->env);
  Napi::HandleScope scope(env);
  Napi::Float64Array messages = w->messages.Value().As<Napi::Float64Array>();
  double count;
  if (status < 0) {
    BeginClose(w);
    count = status;  // libuv's status is -errno on Linux
  } else {
    const size_t capacity = std::min(w->capacity, messages.ElementLength() / 4);
    if (capacity == 0) {
      // The array was detached (e.g. transferred away): nowhere to decode into.
      BeginClose(w);
      count = -EINVAL;
    } else {
      const long n = DrainMessages(w->fd, messages.Data(), capacity);
      if (n == 0) return;  // spurious wake-up: someone else drained the queue
      if (n < 0) BeginClose(w);
      count = static_cast<double>(n);
    }
  }
  Deliver(w, env, count, messages);
}

Napi::Value Stop(const Napi::CallbackInfo& info) {
  auto* control = static_cast<std::shared_ptr<Control>*>(info.Data());
  if (control != nullptr && (*control)->watcher != nullptr) BeginClose((*control)->watcher);
  return info.Env().Undefined();
}

Napi::Value Watch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t capacity;
  if (!ArgFd(info, 0, "watch", "fd", &fd) || !ArgU64(info, 1, "watch", "capacity", &capacity)) {
    return env.Undefined();
  }
  if (capacity == 0 || capacity > (1u << 20)) {
    ThrowRange(env, "watch", "capacity must be between 1 and 1048576 messages (got %llu)",
               static_cast<unsigned long long>(capacity));
    return env.Undefined();
  }
  if (!info[2].IsFunction()) {
    ThrowType(env, "watch", "callback must be a function");
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_get_uv_event_loop(env, &loop), env.Undefined());

  auto* w = new Watcher();
  w->env = env;
  w->fd = fd;
  w->capacity = static_cast<size_t>(capacity);
  int rc = uv_poll_init(loop, &w->handle, fd);
  if (rc != 0) {
    delete w;
    ThrowErrno(env, -rc, "uv_poll_init");
    return env.Undefined();
  }
  w->handle.data = w;
  rc = uv_poll_start(&w->handle, UV_READABLE, OnPoll);
  if (rc != 0) {
    w->closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&w->handle),
             [](uv_handle_t* h) { delete static_cast<Watcher*>(h->data); });
    ThrowErrno(env, -rc, "uv_poll_start");
    return env.Undefined();
  }
  w->callback = Napi::Persistent(info[2].As<Napi::Function>());
  w->messages = Napi::Persistent(Napi::Float64Array::New(env, static_cast<size_t>(capacity) * 4).As<Napi::Object>());
  w->control = std::make_shared<Control>();
  w->control->watcher = w;
  napi_status status = napi_add_async_cleanup_hook(env, OnEnvCleanup, w, &w->cleanup);
  if (status != napi_ok) {
    w->cleanup = nullptr;
    BeginClose(w);
    NAPI_THROW_IF_FAILED(env, status, env.Undefined());
  }

  auto* control_ref = new std::shared_ptr<Control>(w->control);
  Napi::Function stop = Napi::Function::New(env, Stop, "stop", control_ref);
  stop.AddFinalizer([](Napi::Env, std::shared_ptr<Control>* ref) { delete ref; }, control_ref);
  Napi::Object result = Napi::Object::New(env);
  result.Set("stop", stop);
  return result;
}

}  // namespace

void InitPoller(Napi::Env env, Napi::Object exports) {
  exports.Set("watch", Napi::Function::New(env, Watch, "watch"));
}

}  // namespace faultline
