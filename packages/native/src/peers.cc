// What `faultline serve` needs to serve other processes' memory: a Unix
// socket that accepts a peer's userfaultfd (SCM_RIGHTS, as Firecracker sends
// it), a readiness poll for those sockets on the calling thread's loop, and
// reads of a peer's memory for write-back (process_vm_readv).
//
// Node's net module cannot receive descriptors on a plain stream socket, and
// libuv cannot watch one fd from two handles, so these sockets never become
// net.Sockets: they are polled here and read with recvmsg.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <vector>

#include "faultline.h"

namespace faultline {

namespace {

// unixListen(path, backlog) -> fd: a non-blocking, close-on-exec listening socket.
Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) {
    ThrowType(env, "unixListen", "path must be a string");
    return env.Undefined();
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  uint64_t backlog;
  if (!ArgU64Or(info, 1, "unixListen", "backlog", 64, &backlog)) return env.Undefined();
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    ThrowRange(env, "unixListen", "path must be 1 to %zu bytes long (got %zu)", sizeof addr.sun_path - 1, path.size());
    return env.Undefined();
  }
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowErrno(env, errno, "socket(AF_UNIX)");
    return env.Undefined();
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    close(fd);
    ThrowErrno(env, err, "bind");
    return env.Undefined();
  }
  if (listen(fd, static_cast<int>(backlog)) != 0) {
    const int err = errno;
    close(fd);
    ThrowErrno(env, err, "listen");
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// unixAccept(fd) -> { fd, pid, uid } of the next peer, or null when none waits.
Napi::Value UnixAccept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, "unixAccept", "fd", &fd)) return env.Undefined();
  int peer;
  do {
    peer = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (peer < 0 && errno == EINTR);
  if (peer < 0) {
    // ECONNABORTED: the peer gave up before we got to it; as if none waited.
    if (errno == EAGAIN || errno == ECONNABORTED) return env.Null();
    ThrowErrno(env, errno, "accept4");
    return env.Undefined();
  }
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(peer, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    const int err = errno;
    close(peer);
    ThrowErrno(env, err, "getsockopt(SO_PEERCRED)");
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, peer));
  result.Set("pid", Napi::Number::New(env, cred.pid));
  result.Set("uid", Napi::Number::New(env, cred.uid));
  return result;
}

// Most descriptors one message may carry: Firecracker sends one (the uffd).
constexpr size_t kMaxFds = 8;

// recvWithFds(fd, maxBytes) -> { bytes, fds, truncated } or null when nothing
// is queued; `bytes` is empty at end of stream. Received descriptors are
// close-on-exec and belong to the caller.
Napi::Value RecvWithFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t max_bytes;
  if (!ArgFd(info, 0, "recvWithFds", "fd", &fd) || !ArgU64(info, 1, "recvWithFds", "maxBytes", &max_bytes)) return env.Undefined();
  if (max_bytes == 0 || max_bytes > (1u << 24)) {
    ThrowRange(env, "recvWithFds", "maxBytes must be between 1 and 16 MiB (got %llu)", static_cast<unsigned long long>(max_bytes));
    return env.Undefined();
  }
  std::vector<char> data(max_bytes);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return env.Null();
    ThrowErrno(env, errno, "recvmsg");
    return env.Undefined();
  }
  Napi::Array fds = Napi::Array::New(env);
  uint32_t count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t j = 0; j < k; j++) {
      int received;
      memcpy(&received, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
      fds.Set(count++, Napi::Number::New(env, received));
    }
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("bytes", Napi::Buffer<char>::Copy(env, data.data(), static_cast<size_t>(n)));
  result.Set("fds", fds);
  // More descriptors than fit were closed by the kernel: the caller must refuse the message.
  result.Set("truncated", Napi::Boolean::New(env, (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0));
  return result;
}

// sendBytes(fd, bytes) -> bytes sent (0 if the socket's buffer is full);
// never raises SIGPIPE: a gone peer is an EPIPE error.
Napi::Value SendBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, "sendBytes", "fd", &fd)) return env.Undefined();
  if (!info[1].IsTypedArray()) {
    ThrowType(env, "sendBytes", "bytes must be a Uint8Array");
    return env.Undefined();
  }
  Napi::Uint8Array bytes = info[1].As<Napi::Uint8Array>();
  ssize_t n;
  do {
    n = send(fd, bytes.Data(), bytes.ByteLength(), MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return Napi::Number::New(env, 0);
    ThrowErrno(env, errno, "send");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// readPeerMemory(pid, address, out) -> bytes read into `out`, from another
// process's address space. Only present pages may be read: a missing page
// of a region this thread serves would fault into this very thread.
Napi::Value ReadPeerMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t pid, address;
  if (!ArgU64(info, 0, "readPeerMemory", "pid", &pid) || !ArgU64(info, 1, "readPeerMemory", "address", &address)) return env.Undefined();
  if (!info[2].IsTypedArray()) {
    ThrowType(env, "readPeerMemory", "out must be a Uint8Array");
    return env.Undefined();
  }
  Napi::Uint8Array out = info[2].As<Napi::Uint8Array>();
  iovec local{out.Data(), out.ByteLength()};
  iovec remote{reinterpret_cast<void*>(address), out.ByteLength()};
  const ssize_t n = process_vm_readv(static_cast<pid_t>(pid), &local, 1, &remote, 1, 0);
  if (n < 0) {
    ThrowErrno(env, errno, "process_vm_readv");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// ---- pollFd: readiness of a socket on this thread's loop --------------------

struct FdPoll;

struct PollControl {
  FdPoll* poll = nullptr;  // null once closing
};

struct FdPoll {
  uv_poll_t handle;
  napi_env env = nullptr;
  Napi::FunctionReference callback;
  napi_async_cleanup_hook_handle cleanup = nullptr;
  std::shared_ptr<PollControl> control = std::make_shared<PollControl>();
};

void OnPollClosed(uv_handle_t* handle) {
  FdPoll* p = static_cast<FdPoll*>(handle->data);
  p->callback.Reset();
  napi_async_cleanup_hook_handle cleanup = p->cleanup;
  delete p;
  if (cleanup != nullptr) napi_remove_async_cleanup_hook(cleanup);
}

void ClosePoll(FdPoll* p) {
  if (p->control->poll == nullptr) return;
  p->control->poll = nullptr;
  uv_poll_stop(&p->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), OnPollClosed);
}

void OnPollCleanup(napi_async_cleanup_hook_handle, void* arg) {
  ClosePoll(static_cast<FdPoll*>(arg));
}

// Raw N-API, as in poller.cc: the thread may be going away.
void OnFdReady(uv_poll_t* handle, int status, int events) {
  FdPoll* p = static_cast<FdPoll*>(handle->data);
  if (p->control->poll == nullptr) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value global, callback, argv[2], result;
  const bool hangup = status < 0 || (events & UV_DISCONNECT) != 0;
  if (napi_get_global(env, &global) == napi_ok && napi_get_reference_value(env, p->callback, &callback) == napi_ok && callback != nullptr &&
      napi_get_boolean(env, (events & UV_READABLE) != 0, &argv[0]) == napi_ok && napi_get_boolean(env, hangup, &argv[1]) == napi_ok) {
    if (napi_make_callback(env, nullptr, global, callback, 2, argv, &result) == napi_pending_exception) {
      napi_value error;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

Napi::Value StopPoll(const Napi::CallbackInfo& info) {
  auto* control = static_cast<std::shared_ptr<PollControl>*>(info.Data());
  if (control != nullptr && (*control)->poll != nullptr) ClosePoll((*control)->poll);
  return info.Env().Undefined();
}

// pollFd(fd, callback(readable, hangup)) -> { stop() }. Stop it before the
// fd is closed: libuv must not watch a closed descriptor.
Napi::Value PollFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, "pollFd", "fd", &fd)) return env.Undefined();
  if (!info[1].IsFunction()) {
    ThrowType(env, "pollFd", "callback must be a function");
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_get_uv_event_loop(env, &loop), env.Undefined());
  auto* p = new FdPoll();
  p->env = env;
  int rc = uv_poll_init(loop, &p->handle, fd);
  if (rc != 0) {
    delete p;
    ThrowErrno(env, -rc, "uv_poll_init");
    return env.Undefined();
  }
  p->handle.data = p;
  p->control->poll = p;
  rc = uv_poll_start(&p->handle, UV_READABLE | UV_DISCONNECT, OnFdReady);
  if (rc == 0 && napi_add_async_cleanup_hook(env, OnPollCleanup, p, &p->cleanup) != napi_ok) {
    p->cleanup = nullptr;
    rc = -ENOMEM;
  }
  if (rc != 0) {
    ClosePoll(p);
    ThrowErrno(env, -rc, "uv_poll_start");
    return env.Undefined();
  }
  p->callback = Napi::Persistent(info[1].As<Napi::Function>());
  Napi::Object result = Napi::Object::New(env);
  result.Set("stop", BoundMethod(env, StopPoll, "stop", p->control));
  return result;
}

}  // namespace

void InitPeers(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, UnixListen, "unixListen"));
  exports.Set("unixAccept", Napi::Function::New(env, UnixAccept, "unixAccept"));
  exports.Set("recvWithFds", Napi::Function::New(env, RecvWithFds, "recvWithFds"));
  exports.Set("sendBytes", Napi::Function::New(env, SendBytes, "sendBytes"));
  exports.Set("readPeerMemory", Napi::Function::New(env, ReadPeerMemory, "readPeerMemory"));
  exports.Set("pollFd", Napi::Function::New(env, PollFd, "pollFd"));
}

}  // namespace faultline
