/*
 * faultline client library: the peer side of the handshake described in
 * clients/README.md. libc only, so it can be linked into anything (or loaded
 * through ctypes/FFI as libfaultline.so).
 */
#define _GNU_SOURCE
#include "faultline.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Old uapi headers lack these; the values are the kernel's ABI. */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_FEATURE_PAGEFAULT_FLAG_WP
#define UFFD_FEATURE_PAGEFAULT_FLAG_WP (1 << 0)
#endif
#ifndef UFFDIO_REGISTER_MODE_WP
#define UFFDIO_REGISTER_MODE_WP ((__u64)1 << 1)
#endif

#define ATTACH_TIMEOUT_MS_DEFAULT 30000
/* A reply longer than this is not a faultline handler talking. */
#define MAX_REPLY 65536

static _Thread_local char last_error[512];

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
}

const char *faultline_last_error(void) { return last_error; }

/* strerrorname_np is glibc-only (2.32+); the errnos these calls can produce. */
static const char *errno_name(int e) {
  switch (e) {
#define N(x) \
  case x:    \
    return #x;
    N(EPERM) N(ENOENT) N(ESRCH) N(EINTR) N(EIO) N(EBADF) N(EAGAIN) N(ENOMEM) N(EACCES) N(EFAULT) N(EBUSY) N(EEXIST)
    N(ENOTDIR) N(EINVAL) N(ENFILE) N(EMFILE) N(ENOSPC) N(EPIPE) N(ERANGE) N(ENAMETOOLONG) N(ENOSYS) N(ELOOP) N(EPROTO)
    N(EMSGSIZE) N(ENOTSOCK) N(EPROTOTYPE) N(EOPNOTSUPP) N(EADDRINUSE) N(ENETDOWN) N(ECONNRESET) N(ENOTCONN)
    N(ETIMEDOUT) N(ECONNREFUSED) N(EREMOTEIO) N(ENODEV) N(ENXIO)
#undef N
    default:
      return NULL;
  }
}

/* "ENOENT (No such file or directory)", into buf. */
static const char *describe(int e, char *buf, size_t len) {
  const char *name = errno_name(e);
  if (name)
    snprintf(buf, len, "%s (%s)", name, strerror(e));
  else
    snprintf(buf, len, "errno %d (%s)", e, strerror(e));
  return buf;
}

/* Records "<fn>: <step>: <errno>" and leaves errno as the step failed with. */
static int fail_errno(const char *fn, const char *step) {
  int e = errno;
  char d[96];
  set_error("%s: %s: %s", fn, step, describe(e, d, sizeof d));
  errno = e;
  return -1;
}

static void close_keep_errno(int fd) {
  int e = errno;
  close(fd);
  errno = e;
}

/*
 * Full mode first (kernel accesses such as read(2) into the range fault and
 * are served too), by syscall and then /dev/userfaultfd, whose access is
 * governed by the node's permissions rather than vm.unprivileged_userfaultfd.
 * Only if both are refused, user-mode-only, where such kernel accesses fail
 * with EFAULT instead. The error reported is the syscall's unless the syscall
 * does not exist.
 */
static int create_once(int extra, const char **step) {
  int flags = O_CLOEXEC | O_NONBLOCK | extra;
  int fd = (int)syscall(__NR_userfaultfd, flags);
  if (fd >= 0) return fd;
  int sys_err = errno;
  *step = extra ? "userfaultfd(UFFD_USER_MODE_ONLY)" : "userfaultfd";
  if (sys_err != ENOSYS && sys_err != EPERM && sys_err != EACCES) return -1;
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev < 0) {
    if (sys_err == ENOSYS && errno != ENOENT) {
      *step = "open(/dev/userfaultfd)";
      return -1;
    }
    errno = sys_err;
    return -1;
  }
  fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
  int ioc_err = errno;
  close(dev);
  if (fd >= 0) return fd;
  if (sys_err == ENOSYS) {
    *step = "ioctl(USERFAULTFD_IOC_NEW)";
    errno = ioc_err;
  } else {
    errno = sys_err;
  }
  return -1;
}

static int create_uffd(const char **step) {
  int fd = create_once(0, step);
  if (fd >= 0 || (errno != EPERM && errno != EACCES)) return fd;
  return create_once(UFFD_USER_MODE_ONLY, step);
}

static long env_ms(const char *name, long fallback) {
  const char *v = getenv(name);
  if (!v || !*v) return fallback;
  char *end;
  errno = 0;
  long ms = strtol(v, &end, 10);
  if (errno || *end || ms <= 0) return fallback;
  return ms;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Reads one reply line (without its '\n') into a malloc'd buffer. Peeks
 * first and consumes exactly through the newline, so nothing that follows
 * the line is swallowed. timeout_ms < 0: no limit. Returns NULL with errno
 * ETIMEDOUT, ECONNRESET (EOF), EPROTO (too long) or a recv error, and `step`
 * naming what failed.
 */
static char *read_line(int fd, long timeout_ms, const char **step) {
  size_t cap = 512, len = 0;
  char *buf = malloc(cap);
  if (!buf) {
    *step = "malloc";
    return NULL;
  }
  long long deadline = timeout_ms < 0 ? 0 : now_ms() + timeout_ms;
  for (;;) {
    int wait = -1;
    if (timeout_ms >= 0) {
      long long left = deadline - now_ms();
      if (left <= 0) {
        free(buf);
        *step = "waiting for the handler's reply";
        errno = ETIMEDOUT;
        return NULL;
      }
      wait = left > 1000000 ? 1000000 : (int)left;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, wait);
    if (r < 0) {
      if (errno == EINTR) continue;
      free(buf);
      *step = "poll";
      return NULL;
    }
    if (r == 0) continue;
    if (cap - len < 512) {
      if (cap >= MAX_REPLY) {
        free(buf);
        *step = "reading the handler's reply (longer than 64 KiB)";
        errno = EPROTO;
        return NULL;
      }
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        *step = "realloc";
        return NULL;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t n = recv(fd, buf + len, cap - len - 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      free(buf);
      *step = "recv";
      return NULL;
    }
    if (n == 0) {
      free(buf);
      *step = "reading the handler's reply (the handler closed the connection)";
      errno = ECONNRESET;
      return NULL;
    }
    char *nl = memchr(buf + len, '\n', (size_t)n);
    size_t take = nl ? (size_t)(nl - (buf + len)) + 1 : (size_t)n;
    ssize_t got = recv(fd, buf + len, take, MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      free(buf);
      *step = "recv";
      return NULL;
    }
    len += (size_t)got;
    if (nl && (size_t)got == take) {
      buf[len - 1] = '\0';
      return buf;
    }
  }
}

/* ---- the few JSON facts a reply carries: ok, code, message ---- */

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
  return p;
}

/* Skips a JSON string starting at its opening quote; NULL if unterminated. */
static const char *skip_string(const char *p) {
  for (p++; *p; p++) {
    if (*p == '\\') {
      if (!*++p) return NULL;
    } else if (*p == '"') {
      return p + 1;
    }
  }
  return NULL;
}

/* Skips any JSON value (nested containers by depth); NULL if malformed. */
static const char *skip_value(const char *p) {
  p = skip_ws(p);
  if (*p == '"') return skip_string(p);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (*p) {
      if (*p == '"') {
        p = skip_string(p);
        if (!p) return NULL;
        continue;
      }
      if (*p == '{' || *p == '[') depth++;
      if (*p == '}' || *p == ']') {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return NULL;
  }
  const char *start = p;
  while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') p++;
  return p == start ? NULL : p;
}

/* Copies a JSON string's text (escapes decoded, non-ASCII \u as '?') into out. */
static void copy_string(const char *p, char *out, size_t len) {
  size_t o = 0;
  for (p++; *p && *p != '"' && o + 1 < len; p++) {
    char c = *p;
    if (c == '\\') {
      c = *++p;
      switch (c) {
        case 'n': c = ' '; break;
        case 't': c = ' '; break;
        case 'r': c = ' '; break;
        case 'b': case 'f': c = ' '; break;
        case 'u': {
          unsigned v = 0;
          int i;
          for (i = 0; i < 4 && p[1]; i++) {
            char h = *++p;
            v = v * 16 + (unsigned)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
          }
          c = v >= 0x20 && v < 0x7f ? (char)v : '?';
          break;
        }
        case '\0': p--; c = '?'; break;
        default: break; /* \" \\ \/ */
      }
    }
    out[o++] = c;
  }
  out[o] = '\0';
}

struct reply {
  int ok; /* 1 true, 0 false, -1 absent or not a boolean */
  char code[64];
  char message[320];
};

/* Reads the top-level members ok/code/message; -1 if not a JSON object. */
static int parse_reply(const char *line, struct reply *r) {
  r->ok = -1;
  r->code[0] = r->message[0] = '\0';
  const char *p = skip_ws(line);
  if (*p != '{') return -1;
  p = skip_ws(p + 1);
  if (*p == '}') return 0;
  for (;;) {
    if (*p != '"') return -1;
    const char *key = p;
    p = skip_string(p);
    if (!p) return -1;
    size_t klen = (size_t)(p - key) - 2;
    p = skip_ws(p);
    if (*p != ':') return -1;
    const char *val = skip_ws(p + 1);
    p = skip_value(val);
    if (!p) return -1;
    if (klen == 2 && !memcmp(key + 1, "ok", 2)) {
      if (!strncmp(val, "true", 4) && val + 4 == p) r->ok = 1;
      if (!strncmp(val, "false", 5) && val + 5 == p) r->ok = 0;
    } else if (klen == 4 && !memcmp(key + 1, "code", 4) && *val == '"') {
      copy_string(val, r->code, sizeof r->code);
    } else if (klen == 7 && !memcmp(key + 1, "message", 7) && *val == '"') {
      copy_string(val, r->message, sizeof r->message);
    }
    p = skip_ws(p);
    if (*p == '}') return 0;
    if (*p != ',') return -1;
    p = skip_ws(p + 1);
  }
}

/*
 * Waits for one reply and turns it into 0 or -1 with errno and last_error.
 * `what` names the request in messages ("handler refused", "flush failed").
 */
static int await_reply(int fd, long timeout_ms, const char *fn, const char *what) {
  const char *step = "";
  char *line = read_line(fd, timeout_ms, &step);
  if (!line) return fail_errno(fn, step);
  struct reply r;
  int bad = parse_reply(line, &r);
  if (bad || r.ok < 0) {
    set_error("%s: the handler's reply is not {\"ok\":true|false,...}: %.200s", fn, line);
    free(line);
    errno = EPROTO;
    return -1;
  }
  free(line);
  if (!r.ok) {
    set_error("%s: %s: %s: %s", fn, what, r.code[0] ? r.code : "(no code)", r.message[0] ? r.message : "(no message)");
    errno = EREMOTEIO;
    return -1;
  }
  return 0;
}

static int send_all(int fd, const char *buf, size_t len) {
  while (len) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Sends the JSON with the uffd attached; the fd must ride on the first byte. */
static int send_with_fd(int sock, const char *json, size_t len, int uffd) {
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = (void *)json, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &uffd, sizeof(int));
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  /* A stream socket may take part of the data; the rest goes without the fd. */
  return send_all(sock, json + n, len - (size_t)n);
}

int faultline_attach_ex(const char *socket_path, void *addr, size_t size, uint64_t offset, unsigned flags) {
  static const char fn[] = "faultline_attach";
  last_error[0] = '\0';
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t a = (uintptr_t)addr;
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  if (!socket_path || !*socket_path) {
    set_error("%s: socket_path is %s", fn, socket_path ? "empty" : "NULL");
    errno = EINVAL;
    return -1;
  }
  if (strlen(socket_path) >= sizeof sun.sun_path) {
    set_error("%s: socket path is %zu bytes, longer than sun_path allows (%zu)", fn, strlen(socket_path),
              sizeof sun.sun_path - 1);
    errno = EINVAL;
    return -1;
  }
  if (!addr || size == 0) {
    set_error("%s: %s", fn, !addr ? "addr is NULL" : "size is 0");
    errno = EINVAL;
    return -1;
  }
  if (a % (uintptr_t)page || size % (size_t)page) {
    set_error("%s: addr %p and size %zu must be multiples of the page size %ld", fn, addr, size, page);
    errno = EINVAL;
    return -1;
  }
  if (a + size < a || offset + size < offset) {
    set_error("%s: the range (addr %p, size %zu, offset %llu) wraps around", fn, addr, size, (unsigned long long)offset);
    errno = EINVAL;
    return -1;
  }
  if (flags & ~FAULTLINE_WRITE_BACK) {
    set_error("%s: unknown flags 0x%x", fn, flags & ~FAULTLINE_WRITE_BACK);
    errno = EINVAL;
    return -1;
  }
  int write_back = (flags & FAULTLINE_WRITE_BACK) != 0;
  strcpy(sun.sun_path, socket_path);

  const char *step = "userfaultfd";
  int uffd = create_uffd(&step);
  if (uffd < 0) return fail_errno(fn, step);

  struct uffdio_api api = {.api = UFFD_API, .features = write_back ? UFFD_FEATURE_PAGEFAULT_FLAG_WP : 0};
  if (ioctl(uffd, UFFDIO_API, &api)) {
    fail_errno(fn, write_back ? "ioctl(UFFDIO_API, PAGEFAULT_FLAG_WP)" : "ioctl(UFFDIO_API)");
    close_keep_errno(uffd);
    return -1;
  }
  struct uffdio_register reg = {
      .range = {.start = (uint64_t)a, .len = size},
      .mode = UFFDIO_REGISTER_MODE_MISSING | (write_back ? UFFDIO_REGISTER_MODE_WP : 0),
  };
  if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
    fail_errno(fn, write_back ? "ioctl(UFFDIO_REGISTER, MISSING|WP)" : "ioctl(UFFDIO_REGISTER, MISSING)");
    close_keep_errno(uffd);
    return -1;
  }

  char json[320];
  char mapping[256];
  /* page_size_kib too (bytes, despite the name), as Firecracker sends it:
     handlers built on Firecracker's own struct require the field. */
  snprintf(mapping, sizeof mapping,
           "[{\"base_host_virt_addr\":%llu,\"size\":%zu,\"offset\":%llu,\"page_size\":%ld,\"page_size_kib\":%ld}]",
           (unsigned long long)a, size, (unsigned long long)offset, page, page);
  if (write_back)
    snprintf(json, sizeof json, "{\"mappings\":%s,\"write_back\":true}", mapping);
  else
    snprintf(json, sizeof json, "%s", mapping);

  char step_buf[160];
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    fail_errno(fn, "socket(AF_UNIX)");
    goto unregister;
  }
  if (connect(sock, (struct sockaddr *)&sun, sizeof sun) < 0) {
    snprintf(step_buf, sizeof step_buf, "connect(%s)", socket_path);
    fail_errno(fn, step_buf);
    goto close_sock;
  }
  if (send_with_fd(sock, json, strlen(json), uffd)) {
    fail_errno(fn, "sendmsg(mapping + userfaultfd)");
    goto close_sock;
  }
  if (await_reply(sock, env_ms("FAULTLINE_ATTACH_TIMEOUT_MS", ATTACH_TIMEOUT_MS_DEFAULT), fn, "handler refused")) goto close_sock;
  /* The handler holds the ctx now; our copy would only keep faulters asleep if it died. */
  close(uffd);
  return sock;

close_sock:
  close_keep_errno(sock);
unregister:
  /*
   * Whatever the handler did with its copy, our own still lets us drop the
   * registration, so a failed attach leaves ordinary memory and not a range
   * whose touches would wait for a handler that never answers.
   */
  {
    int e = errno;
    struct uffdio_range range = {.start = (uint64_t)a, .len = size};
    ioctl(uffd, UFFDIO_UNREGISTER, &range);
    close(uffd);
    errno = e;
  }
  return -1;
}

int faultline_attach(const char *socket_path, void *addr, size_t size, uint64_t offset) {
  return faultline_attach_ex(socket_path, addr, size, offset, 0);
}

static int command(int handle, const char *fn, const char *line, const char *what) {
  if (handle < 0) {
    set_error("%s: invalid handle %d", fn, handle);
    errno = EBADF;
    return -1;
  }
  if (send_all(handle, line, strlen(line))) {
    char step[64];
    snprintf(step, sizeof step, "send(%.*s)", (int)strlen(line) - 1, line);
    return fail_errno(fn, step);
  }
  return await_reply(handle, env_ms("FAULTLINE_COMMAND_TIMEOUT_MS", -1), fn, what);
}

int faultline_flush(int handle) {
  last_error[0] = '\0';
  return command(handle, "faultline_flush", "{\"command\":\"flush\"}\n", "flush failed");
}

int faultline_detach(int handle) {
  last_error[0] = '\0';
  int r = command(handle, "faultline_detach", "{\"command\":\"detach\"}\n", "detach failed");
  if (handle >= 0) close_keep_errno(handle);
  return r;
}
