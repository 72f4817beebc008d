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
#include "ready_pages.h"
#include "uffd_compat.h"

namespace faultline {

namespace {

struct Watcher;

// Shared between the watcher and the JS stop() function, which may outlive it.
struct Control {
  Watcher* watcher = nullptr;  // null once the handle is closing
};

struct Watcher {
  uv_poll_t handle;  // handle.data points back at the Watcher
  uv_async_t stall_signal;  // its data too; see Pulse::on_fire
  int open_handles = 0;
  bool stall_reported = false;
  napi_env env = nullptr;
  int fd = -1;
  size_t capacity = 0;
  uint64_t unit = 0;  // fill unit of the watched region: system or huge page (watch()'s fillUnit)
  Napi::FunctionReference callback;
  Napi::ObjectReference messages;  // Float64Array(capacity * 4)
  napi_async_cleanup_hook_handle cleanup = nullptr;
  bool closing = false;
  std::shared_ptr<Control> control;
  std::unique_ptr<ReadyPages> ready;  // set by serveNatively()
  // Set by poisonOnAbandon(): the region handed to a reaper if the env ends before stop().
  uint64_t abandon_address = 0;
  uint64_t abandon_length = 0;
  int abandon_owner = 0;  // a peer's pid; 0: this process
  // Shared with the watchdog thread, if armWatchdog() started one.
  std::shared_ptr<Pulse> pulse = std::make_shared<Pulse>();
};

void OnClosed(uv_handle_t* handle) {
  Watcher* w = static_cast<Watcher*>(handle->data);
  if (--w->open_handles > 0) return;
  w->callback.Reset();
  w->messages.Reset();
  w->ready.reset();
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
  StopWatchdog(w->pulse.get());
  uv_poll_stop(&w->handle);
  // Now, not when the handles are closed (a loop turn later): the region's
  // close() resolves first, and the backend may then close the fd.
  if (w->ready) w->ready->DropFileSources();
  uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), OnClosed);
  if (w->open_handles == 2) uv_close(reinterpret_cast<uv_handle_t*>(&w->stall_signal), OnClosed);
}

void OnEnvCleanup(napi_async_cleanup_hook_handle, void* arg) {
  Watcher* w = static_cast<Watcher*>(arg);
  // The thread is ending and nobody called stop(): its pager is gone.
  if (!w->closing && w->abandon_length != 0) PoisonAbandoned(w->fd, w->abandon_address, w->abandon_length, w->unit, w->abandon_owner);
  BeginClose(w);
}

// The poll callback uses raw N-API, not node-addon-api's wrappers: while a
// thread is being terminated (e.g. process.exit() with a region open) any
// call may fail, and a wrapper's failure path builds an Error, which then
// fails too and aborts the process. Here a failed call just ends the turn.

void Deliver(Watcher* w, napi_env env, double count, napi_value messages) {
  napi_value global, callback, argv[2], result;
  if (napi_get_global(env, &global) != napi_ok || napi_get_reference_value(env, w->callback, &callback) != napi_ok ||
      callback == nullptr || napi_create_double(env, count, &argv[0]) != napi_ok) {
    return;
  }
  argv[1] = messages;
  if (napi_make_callback(env, nullptr, global, callback, 2, argv, &result) != napi_pending_exception) return;
  // A throwing callback: route it to process 'uncaughtException' (or the
  // Worker's 'error' event), as Node does for its own callbacks.
  napi_value error;
  if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
}

// Moves the pages whose write faults the watchdog's takeover let through
// into `out` as write-protect fault messages; returns how many.
size_t DrainTakeover(Pulse* pulse, double* out, size_t capacity) {
  std::lock_guard<std::mutex> lock(pulse->takeover.mutex);
  std::vector<uint64_t>& written = pulse->takeover.written;
  const size_t n = std::min(capacity, written.size());
  for (size_t k = 0; k < n; k++) {
    const uint64_t page = written[written.size() - 1 - k];
    out[k * 4] = UFFD_EVENT_PAGEFAULT;
    out[k * 4 + 1] = UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_WRITE;
    out[k * 4 + 2] = static_cast<double>(page);
    out[k * 4 + 3] = 0;
  }
  written.resize(written.size() - n);
  return n;
}

void OnPoll(uv_poll_t* handle, int status, int events) {
  Watcher* w = static_cast<Watcher*>(handle->data);
  if (w->closing) return;
  // The watchdog owns the descriptor now; reading it here too would race it.
  const bool stalled = w->pulse->fired.load();
  if (stalled) {
    uv_poll_stop(&w->handle);
    if (w->stall_reported) return;
    w->stall_reported = true;
  }
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;  // the thread is going away
  napi_value messages = nullptr;
  void* data = nullptr;
  size_t length = 0;
  napi_typedarray_type type;
  if (napi_get_reference_value(env, w->messages, &messages) != napi_ok || messages == nullptr ||
      napi_get_typedarray_info(env, messages, &type, &length, &data, nullptr, nullptr) != napi_ok) {
    napi_close_handle_scope(env, scope);
    return;
  }
  double* decoded = static_cast<double*>(data);
  double count;
  if (stalled) {
    // Said once, as a failed read: the pager reports it and stops serving.
    const size_t capacity = std::min(w->capacity, length / 4);
    size_t n;
    while ((n = DrainTakeover(w->pulse.get(), decoded, capacity)) > 0) Deliver(w, env, static_cast<double>(n), messages);
    count = -ETIMEDOUT;
  } else if (status < 0) {
    BeginClose(w);
    count = status;  // libuv's status is -errno on Linux
  } else {
    const size_t capacity = std::min(w->capacity, length / 4);
    if (capacity == 0) {
      // The array was detached (e.g. transferred away): nowhere to decode into.
      BeginClose(w);
      count = -EINVAL;
    } else {
      const long n = DrainMessages(w->fd, decoded, capacity);
      w->pulse->drains.fetch_add(1);
      if (n == 0) {  // spurious wake-up: someone else drained the queue
        napi_close_handle_scope(env, scope);
        return;
      }
      if (n < 0) BeginClose(w);
      // Pages already here are installed before JS runs; JS still sees each
      // message (marked served) to keep its books.
      if (n > 0 && w->ready) w->ready->Serve(w->fd, decoded, static_cast<size_t>(n));
      count = static_cast<double>(n);
    }
  }
  w->pulse->in_callback_since_ms.store(SteadyMs());
  Deliver(w, env, count, messages);
  w->pulse->in_callback_since_ms.store(0);
  napi_close_handle_scope(env, scope);
}

void OnStallSignal(uv_async_t* handle) {
  Watcher* w = static_cast<Watcher*>(handle->data);
  if (!w->closing && w->pulse->fired.load()) OnPoll(&w->handle, 0, 0);
}

Napi::Value Stop(const Napi::CallbackInfo& info) {
  auto* control = static_cast<std::shared_ptr<Control>*>(info.Data());
  if (control != nullptr && (*control)->watcher != nullptr) BeginClose((*control)->watcher);
  return info.Env().Undefined();
}

// True when a typed array's buffer is a SharedArrayBuffer, which can never be
// detached. Asked of the engine (napi_is_arraybuffer is false for a shared
// one), not of JS properties a caller could redefine.
bool OverSharedMemory(Napi::Env env, napi_value typed_array) {
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_value buffer = nullptr;
  bool plain = true;
  if (napi_get_typedarray_info(env, typed_array, &type, &length, &data, &buffer, nullptr) != napi_ok || buffer == nullptr) return false;
  return napi_is_arraybuffer(env, buffer, &plain) == napi_ok && !plain;
}

// The live watcher behind a method call, or null once it stopped.
Watcher* LiveWatcher(const Napi::CallbackInfo& info) {
  auto* control = static_cast<std::shared_ptr<Control>*>(info.Data());
  return control == nullptr ? nullptr : (*control)->watcher;
}

// A typed array's bytes (works over a SharedArrayBuffer too), or null after throwing.
uint8_t* TypedArrayBytes(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, size_t* length) {
  napi_typedarray_type type;
  size_t elements = 0;
  void* data = nullptr;
  napi_value buffer = nullptr;
  if (!info[i].IsTypedArray() ||
      napi_get_typedarray_info(info.Env(), info[i], &type, &elements, &data, &buffer, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    ThrowType(info.Env(), fn, "%s must be a Uint8Array", name);
    return nullptr;
  }
  *length = elements;
  return static_cast<uint8_t*>(data);
}

bool ReadSlots(const Napi::CallbackInfo& info, size_t i, ServeCounters* out) {
  constexpr uint32_t kSlots = 12;
  if (!info[i].IsArray() || info[i].As<Napi::Array>().Length() != kSlots) {
    ThrowType(info.Env(), "serveNatively", "slots must be an array of %u counter indexes", kSlots);
    return false;
  }
  Napi::Array slots = info[i].As<Napi::Array>();
  uint32_t values[kSlots];
  for (uint32_t k = 0; k < kSlots; k++) {
    Napi::Value v = slots.Get(k);
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 0xffffffff && d == static_cast<double>(static_cast<uint64_t>(d)))) {
      ThrowType(info.Env(), "serveNatively", "slots[%u] must be a whole number from 0 to 2^32-1", k);
      return false;
    }
    values[k] = static_cast<uint32_t>(d);
  }
  *out = ServeCounters{values[0], values[1], values[2], values[3], values[4],
                       values[5], values[6], values[7], values[8], values[9], values[10], values[11]};
  return true;
}

// poisonOnAbandon(address, length, owner = 0)
Napi::Value PoisonOnAbandon(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Watcher* w = LiveWatcher(info);
  uint64_t address, length, owner = 0;
  if (w == nullptr || !ArgRange(info, 0, "poisonOnAbandon", "address", "length", &address, &length)) return env.Undefined();
  if (info.Length() > 2 && !ArgU64(info, 2, "poisonOnAbandon", "owner", &owner)) return env.Undefined();
  w->abandon_address = address;
  w->abandon_length = length;
  w->abandon_owner = static_cast<int>(owner);
  return env.Undefined();
}

// armWatchdog(address, length, stallMs): see watchdog.cc. Once per watcher.
Napi::Value ArmWatchdog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "armWatchdog";
  Watcher* w = LiveWatcher(info);
  uint64_t address, length, stall_ms;
  if (w == nullptr || !ArgRange(info, 0, fn, "address", "length", &address, &length) || !ArgU64(info, 2, fn, "stallMs", &stall_ms)) {
    return env.Undefined();
  }
  if (stall_ms == 0) {
    ThrowRange(env, fn, "stallMs must be at least 1");
    return env.Undefined();
  }
  if (w->pulse.use_count() > 1) {
    ThrowType(env, fn, "the watchdog is armed already");
    return env.Undefined();
  }
  if (!StartWatchdog(w->pulse, w->fd, address, length, w->unit, stall_ms)) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC)");
  return env.Undefined();
}

// drainTakeover(out: Float64Array) -> messages written: write faults the
// watchdog let through since the last call, for the pager to count dirty.
Napi::Value DrainTakeoverJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Watcher* w = LiveWatcher(info);
  if (w == nullptr) return Napi::Number::New(env, 0);
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    ThrowType(env, "drainTakeover", "out must be a Float64Array");
    return env.Undefined();
  }
  Napi::Float64Array out = info[0].As<Napi::Float64Array>();
  return Napi::Number::New(env, static_cast<double>(DrainTakeover(w->pulse.get(), out.Data(), out.ElementLength() / 4)));
}

// serveNatively(address, pageSize, pageCount, readMode, writeMode, stats: Float64Array, slots: number[12])
Napi::Value ServeNatively(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "serveNatively";
  Watcher* w = LiveWatcher(info);
  if (w == nullptr) return env.Undefined();
  ServeConfig config;
  if (!ArgU64(info, 0, fn, "address", &config.address) || !ArgU64(info, 1, fn, "pageSize", &config.page_size) ||
      !ArgU64(info, 2, fn, "pageCount", &config.page_count) || !ArgU64(info, 3, fn, "readMode", &config.read_mode) ||
      !ArgU64(info, 4, fn, "writeMode", &config.write_mode)) {
    return env.Undefined();
  }
  if (config.page_size == 0 || config.page_size % w->unit != 0) {
    ThrowRange(env, fn, "pageSize must be a multiple of %llu (the watcher's fill unit)", static_cast<unsigned long long>(w->unit));
    return env.Undefined();
  }
  config.fill_unit = w->unit;
  if (!info[5].IsTypedArray() || info[5].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    ThrowType(env, fn, "stats must be a Float64Array");
    return env.Undefined();
  }
  Napi::Float64Array stats = info[5].As<Napi::Float64Array>();
  if (!OverSharedMemory(env, stats)) {
    ThrowType(env, fn, "stats must be over a SharedArrayBuffer");
    return env.Undefined();
  }
  if (!ReadSlots(info, 6, &config.slots)) return env.Undefined();
  const ServeCounters& s = config.slots;
  // 64-bit: base + buckets must not wrap around to pass the check.
  const uint64_t highest = std::max<uint64_t>({s.faults, s.duplicate_faults, s.pages_fetched, s.bytes_fetched,
                                               s.resident_pages, s.latency_count, s.latency_max_us,
                                               uint64_t{s.histogram_base} + s.histogram_buckets - 1, s.dirty_pages, s.served});
  if (s.histogram_buckets == 0 || s.sub_buckets == 0 || highest >= stats.ElementLength()) {
    ThrowRange(env, fn, "slots must index into stats (%zu cells)", stats.ElementLength());
    return env.Undefined();
  }
  w->ready.reset(new ReadyPages(env, config, stats));
  return env.Undefined();
}

ReadyPages* ReadyOf(const Napi::CallbackInfo& info, const char* fn) {
  Watcher* w = LiveWatcher(info);
  if (w == nullptr) return nullptr;
  if (!w->ready) ThrowType(info.Env(), fn, "call serveNatively() first");
  return w->ready.get();
}

// addSource(firstPage, pageCount, data: Uint8Array over a SharedArrayBuffer)
Napi::Value AddSource(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "addSource";
  ReadyPages* ready = ReadyOf(info, fn);
  uint64_t first, count;
  size_t length = 0;
  if (ready == nullptr || !ArgU64(info, 0, fn, "firstPage", &first) || !ArgU64(info, 1, fn, "pageCount", &count)) {
    return env.Undefined();
  }
  uint8_t* bytes = TypedArrayBytes(info, 2, fn, "data", &length);
  if (bytes == nullptr) return env.Undefined();
  Napi::TypedArray data = info[2].As<Napi::TypedArray>();
  // A non-shared ArrayBuffer can be detached or transferred, freeing the bytes under us.
  if (!OverSharedMemory(env, info[2])) {
    if (!env.IsExceptionPending()) ThrowType(env, fn, "data must be over a SharedArrayBuffer");
    return env.Undefined();
  }
  if (length / ready->page_size() < count) {
    ThrowRange(env, fn, "data holds %zu bytes, fewer than %llu pages", length, static_cast<unsigned long long>(count));
    return env.Undefined();
  }
  ready->AddSource(first, count, data, bytes);
  return env.Undefined();
}

// addFileSource(firstPage, pageCount, fd, fileOffset, length)
Napi::Value AddFileSource(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "addFileSource";
  ReadyPages* ready = ReadyOf(info, fn);
  uint64_t first, count, offset, length;
  int fd;
  if (ready == nullptr || !ArgU64(info, 0, fn, "firstPage", &first) || !ArgU64(info, 1, fn, "pageCount", &count) ||
      !ArgFd(info, 2, fn, "fd", &fd) || !ArgU64(info, 3, fn, "fileOffset", &offset) || !ArgU64(info, 4, fn, "length", &length)) {
    return env.Undefined();
  }
  ready->AddFileSource(first, count, fd, offset, length);
  return env.Undefined();
}

// dropFileSources(): for REMOVE events JS read itself, not through the watcher.
Napi::Value DropFileSources(const Napi::CallbackInfo& info) {
  ReadyPages* ready = ReadyOf(info, "dropFileSources");
  if (ready != nullptr) ready->DropFileSources();
  return info.Env().Undefined();
}

// stage(page, bytes: Uint8Array of one page)
Napi::Value Stage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReadyPages* ready = ReadyOf(info, "stage");
  uint64_t page;
  size_t length = 0;
  if (ready == nullptr || !ArgU64(info, 0, "stage", "page", &page)) return env.Undefined();
  const uint8_t* bytes = TypedArrayBytes(info, 1, "stage", "bytes", &length);
  if (bytes == nullptr) return env.Undefined();
  if (length != ready->page_size()) {
    ThrowRange(env, "stage", "bytes must be one page (%llu bytes), got %zu",
               static_cast<unsigned long long>(ready->page_size()), length);
    return env.Undefined();
  }
  ready->Stage(page, bytes);
  return env.Undefined();
}

// unstage(page, out?: Uint8Array of one page) -> whether the page was staged
Napi::Value Unstage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReadyPages* ready = ReadyOf(info, "unstage");
  uint64_t page;
  if (ready == nullptr || !ArgU64(info, 0, "unstage", "page", &page)) return Napi::Boolean::New(env, false);
  uint8_t* out = nullptr;
  if (!info[1].IsUndefined()) {
    size_t length = 0;
    out = TypedArrayBytes(info, 1, "unstage", "out", &length);
    if (out == nullptr) return env.Undefined();
    if (length != ready->page_size()) {
      ThrowRange(env, "unstage", "out must be one page (%llu bytes), got %zu",
                 static_cast<unsigned long long>(ready->page_size()), length);
      return env.Undefined();
    }
  }
  return Napi::Boolean::New(env, ready->Unstage(page, out));
}

Napi::Value Watch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t capacity, unit;
  if (!ArgFd(info, 0, "watch", "fd", &fd) || !ArgU64(info, 1, "watch", "capacity", &capacity) ||
      !ArgFillUnit(info, 3, "watch", &unit)) {
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
  w->unit = unit;
  int rc = uv_poll_init(loop, &w->handle, fd);
  if (rc != 0) {
    delete w;
    ThrowErrno(env, -rc, "uv_poll_init");
    return env.Undefined();
  }
  w->handle.data = w;
  w->open_handles = 1;
  const char* step = "uv_poll_start";
  rc = uv_poll_start(&w->handle, UV_READABLE, OnPoll);
  if (rc == 0) {
    step = "uv_async_init";
    rc = uv_async_init(loop, &w->stall_signal, OnStallSignal);
    if (rc == 0) {
      w->stall_signal.data = w;
      w->open_handles = 2;
      // Only the poll handle keeps the thread alive, as before.
      uv_unref(reinterpret_cast<uv_handle_t*>(&w->stall_signal));
      w->pulse->on_fire = &w->stall_signal;
    }
  }
  if (rc != 0) {
    w->closing = true;
    uv_poll_stop(&w->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&w->handle),
             [](uv_handle_t* h) { delete static_cast<Watcher*>(h->data); });
    ThrowErrno(env, -rc, step);
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

  Napi::Object result = Napi::Object::New(env);
  result.Set("stop", BoundMethod(env, Stop, "stop", w->control));
  result.Set("serveNatively", BoundMethod(env, ServeNatively, "serveNatively", w->control));
  result.Set("addSource", BoundMethod(env, AddSource, "addSource", w->control));
  result.Set("addFileSource", BoundMethod(env, AddFileSource, "addFileSource", w->control));
  result.Set("dropFileSources", BoundMethod(env, DropFileSources, "dropFileSources", w->control));
  result.Set("stage", BoundMethod(env, Stage, "stage", w->control));
  result.Set("unstage", BoundMethod(env, Unstage, "unstage", w->control));
  result.Set("poisonOnAbandon", BoundMethod(env, PoisonOnAbandon, "poisonOnAbandon", w->control));
  result.Set("armWatchdog", BoundMethod(env, ArmWatchdog, "armWatchdog", w->control));
  result.Set("drainTakeover", BoundMethod(env, DrainTakeoverJs, "drainTakeover", w->control));
  return result;
}

}  // namespace

void InitPoller(Napi::Env env, Napi::Object exports) {
  exports.Set("watch", Napi::Function::New(env, Watch, "watch"));
}

}  // namespace faultline
