/*
 * The kernel floor for `faultline serve`: a handler speaking the same socket
 * protocol (clients/README.md) that answers every missing fault with
 * UFFDIO_COPY straight from a read-only mmap of a local file. No backend, no
 * JS, no write-back: what remains is the cost of the protocol and of
 * userfaultfd across two processes, so a benchmark of the real server has
 * something to be divided by. It is also the handler the C client's tests
 * run against.
 *
 *   serve-floor SOCKET FILE
 *
 * Prints {"listening":"SOCKET"} once it accepts connections, serves each
 * peer on its own thread until the peer hangs up or detaches, and exits 0 on
 * SIGTERM or SIGINT (removing the socket). Accepts Firecracker's plain array
 * of mappings (any number of them, with page_size, page_size_kib or neither)
 * as well as faultline's object form.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef UFFD_PAGEFAULT_FLAG_WP
#define UFFD_PAGEFAULT_FLAG_WP (1 << 1)
#endif

#define MAX_MAPPINGS 64
#define MAX_HANDSHAKE 65536
#define MAX_LINE 4096

static const char *file_data;
static uint64_t file_size;
static long sys_page;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

struct mapping {
  uint64_t base, size, offset, page_size;
};

struct peer {
  int sock;
  int uffd;
  int id;
  struct mapping maps[MAX_MAPPINGS];
  int nmaps;
  char line[MAX_LINE];
  size_t line_len;
  uint64_t faults, duplicates;
};

static void logf_(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct peer *p, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "serve-floor: peer %d: %s\n", p->id, buf);
}

static int send_line(int sock, const char *s) {
  size_t len = strlen(s);
  while (len) {
    ssize_t n = send(sock, s, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    s += n;
    len -= (size_t)n;
  }
  return 0;
}

static int refuse(struct peer *p, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(struct peer *p, const char *code, const char *fmt, ...) {
  char msg[300], esc[620], line[720];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t o = 0;
  for (const char *c = msg; *c; c++) {
    if (*c == '"' || *c == '\\') esc[o++] = '\\', esc[o++] = *c;
    else esc[o++] = (unsigned char)*c < 0x20 ? ' ' : *c;
  }
  esc[o] = '\0';
  snprintf(line, sizeof line, "{\"ok\":false,\"code\":\"%s\",\"message\":\"%s\"}\n", code, esc);
  logf_(p, "refused: %s: %s", code, msg);
  send_line(p->sock, line);
  return -1;
}

/* ---- a small JSON reader: enough for the handshake and command lines ---- */

struct json {
  const char *p, *end;
  int bad;
  int depth;
};

/* Unknown members are skipped recursively; a peer must not run a thread out of stack. */
#define MAX_DEPTH 32

static void ws(struct json *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n')) j->p++;
}

static int eat(struct json *j, char c) {
  ws(j);
  if (j->p < j->end && *j->p == c) {
    j->p++;
    return 1;
  }
  return 0;
}

/* A string without escapes is all our protocol has; others are skipped as unknown. */
static int str(struct json *j, char *out, size_t len) {
  ws(j);
  if (j->p >= j->end || *j->p != '"') return j->bad = 1, 0;
  size_t o = 0;
  for (j->p++; j->p < j->end && *j->p != '"'; j->p++) {
    if (*j->p == '\\') {
      if (++j->p >= j->end) break;
    }
    if (o + 1 < len) out[o++] = *j->p;
  }
  if (j->p >= j->end) return j->bad = 1, 0;
  j->p++;
  out[o] = '\0';
  return 1;
}

static int u64(struct json *j, uint64_t *out) {
  ws(j);
  uint64_t v = 0;
  const char *start = j->p;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
    uint64_t d = (uint64_t)(*j->p - '0');
    if (v > (UINT64_MAX - d) / 10) return j->bad = 1, 0;
    v = v * 10 + d;
    j->p++;
  }
  if (j->p == start || (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E' || *j->p == '-')))
    return j->bad = 1, 0;
  *out = v;
  return 1;
}

static void skip(struct json *j) {
  ws(j);
  if (j->p >= j->end) {
    j->bad = 1;
    return;
  }
  char tmp[2];
  if (*j->p == '"') {
    str(j, tmp, sizeof tmp);
  } else if (*j->p == '{' || *j->p == '[') {
    char close = *j->p == '{' ? '}' : ']';
    if (++j->depth > MAX_DEPTH) {
      j->bad = 1;
      return;
    }
    j->p++;
    if (eat(j, close)) return;
    do {
      if (close == '}') {
        str(j, tmp, sizeof tmp);
        if (!eat(j, ':')) j->bad = 1;
      }
      if (j->bad) return;
      skip(j);
    } while (!j->bad && eat(j, ','));
    if (!eat(j, close)) j->bad = 1;
    j->depth--;
  } else {
    const char *start = j->p;
    while (j->p < j->end && strchr(",}] \t\r\n", *j->p) == NULL) j->p++;
    if (j->p == start) j->bad = 1;
  }
}

/* Reads `true`/`false`. */
static int boolean(struct json *j, int *out) {
  ws(j);
  if (j->end - j->p >= 4 && !memcmp(j->p, "true", 4)) return j->p += 4, *out = 1, 1;
  if (j->end - j->p >= 5 && !memcmp(j->p, "false", 5)) return j->p += 5, *out = 0, 1;
  return j->bad = 1, 0;
}

/* Firecracker's GuestRegionUffdMapping array. Unknown members are ignored. */
static int mappings(struct json *j, struct peer *p, char *err, size_t errlen) {
  if (!eat(j, '[')) return snprintf(err, errlen, "expected an array of mappings"), -1;
  if (eat(j, ']')) return snprintf(err, errlen, "the array of mappings is empty"), -1;
  do {
    if (p->nmaps == MAX_MAPPINGS) return snprintf(err, errlen, "more than %d mappings", MAX_MAPPINGS), -1;
    struct mapping *m = &p->maps[p->nmaps++];
    int seen = 0;
    uint64_t kib_field = 0;
    if (!eat(j, '{')) return snprintf(err, errlen, "a mapping is not an object"), -1;
    if (!eat(j, '}')) do {
        char key[32];
        if (!str(j, key, sizeof key) || !eat(j, ':')) return snprintf(err, errlen, "malformed mapping"), -1;
        if (!strcmp(key, "base_host_virt_addr")) seen |= u64(j, &m->base) << 0;
        else if (!strcmp(key, "size")) seen |= u64(j, &m->size) << 1;
        else if (!strcmp(key, "offset")) seen |= u64(j, &m->offset) << 2;
        else if (!strcmp(key, "page_size")) seen |= u64(j, &m->page_size) << 3;
        /*
         * Older Firecracker sent only page_size_kib (firecracker#4449); current
         * Firecracker sends it next to page_size, deprecated. It is in bytes
         * despite its name (firecracker#4948).
         */
        else if (!strcmp(key, "page_size_kib")) seen |= u64(j, &kib_field) << 4;
        else skip(j);
        if (j->bad) return snprintf(err, errlen, "malformed value for \"%s\"", key), -1;
      } while (eat(j, ','));
    if (!eat(j, '}')) return snprintf(err, errlen, "malformed mapping"), -1;
    if ((seen & 0x7) != 0x7) return snprintf(err, errlen, "a mapping lacks base_host_virt_addr, size or offset"), -1;
    /* Firecracker before #4449 sent no page size: the host's was meant. */
    if (!(seen & 0x8)) m->page_size = seen & 0x10 ? kib_field : (uint64_t)sys_page;
  } while (eat(j, ','));
  if (!eat(j, ']')) return snprintf(err, errlen, "malformed array of mappings"), -1;
  return 0;
}

/* The whole handshake: the array, or {"mappings":[...],"write_back":bool}. */
static int parse_handshake(const char *buf, size_t len, struct peer *p, int *write_back, char *err, size_t errlen) {
  struct json j = {buf, buf + len, 0, 0};
  *write_back = 0;
  ws(&j);
  if (j.p < j.end && *j.p == '[') {
    if (mappings(&j, p, err, errlen)) return -1;
  } else if (eat(&j, '{')) {
    int have = 0;
    if (!eat(&j, '}')) do {
        char key[32];
        if (!str(&j, key, sizeof key) || !eat(&j, ':')) return snprintf(err, errlen, "malformed object"), -1;
        if (!strcmp(key, "mappings")) {
          if (mappings(&j, p, err, errlen)) return -1;
          have = 1;
        } else if (!strcmp(key, "write_back")) {
          if (!boolean(&j, write_back)) return snprintf(err, errlen, "write_back is not a boolean"), -1;
        } else {
          skip(&j);
        }
        if (j.bad) return snprintf(err, errlen, "malformed value for \"%s\"", key), -1;
      } while (eat(&j, ','));
    if (!eat(&j, '}')) return snprintf(err, errlen, "malformed object"), -1;
    if (!have) return snprintf(err, errlen, "the object has no \"mappings\""), -1;
  } else {
    return snprintf(err, errlen, "expected a JSON array or object"), -1;
  }
  ws(&j);
  if (j.p != j.end) return snprintf(err, errlen, "trailing bytes after the JSON value"), -1;
  return 0;
}

/*
 * Whether buf holds one complete JSON container yet (depth back to 0, outside
 * strings). Anything that does not start like one is "complete" too: the
 * parser then refuses it instead of waiting for more.
 */
static int complete_value(const char *buf, size_t len) {
  int depth = 0, in_str = 0, started = 0;
  for (size_t i = 0; i < len; i++) {
    char c = buf[i];
    if (!started && !strchr(" \t\r\n[{", c)) return 1;
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '[' || c == '{') {
      depth++, started = 1;
    } else if (c == ']' || c == '}') {
      if (--depth == 0 && started) return 1;
    }
  }
  return 0;
}

/*
 * Receives the handshake: the fd rides on the first bytes; a stream socket
 * may split the JSON, so read on (without fds) until the value is complete.
 */
static int handshake(struct peer *p, int *write_back) {
  char *buf = malloc(MAX_HANDSHAKE);
  if (!buf) return -1;
  size_t len = 0;
  int rc = -1, extra_fds = 0;
  for (;;) {
    union {
      char b[CMSG_SPACE(sizeof(int) * 4)];
      struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf + len, .iov_len = MAX_HANDSHAKE - len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    ssize_t n = recvmsg(p->sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      logf_(p, "hung up during the handshake");
      goto out;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < nfd; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (p->uffd < 0 && len == 0) {
          p->uffd = fd;
        } else {
          close(fd);
          extra_fds++;
        }
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      refuse(p, "ERR_PROTOCOL", "more descriptors than one were sent");
      goto out;
    }
    len += (size_t)n;
    if (complete_value(buf, len)) break;
    if (len == MAX_HANDSHAKE) {
      refuse(p, "ERR_PROTOCOL", "the handshake JSON is longer than %d bytes", MAX_HANDSHAKE);
      goto out;
    }
  }
  if (p->uffd < 0 || extra_fds) {
    refuse(p, "ERR_PROTOCOL", "the handshake must carry exactly one descriptor (the userfaultfd) with its first bytes");
    goto out;
  }
  char link[64] = "", fdpath[64];
  snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", p->uffd);
  ssize_t ln = readlink(fdpath, link, sizeof link - 1);
  if (ln < 0 || (link[ln] = '\0', strcmp(link, "anon_inode:[userfaultfd]"))) {
    refuse(p, "ERR_PROTOCOL", "the descriptor sent is not a userfaultfd (%s)", ln < 0 ? "unknown" : link);
    goto out;
  }
  /* UFFDIO_API works once per descriptor: success here means the peer skipped it. */
  struct uffdio_api api = {.api = UFFD_API};
  if (ioctl(p->uffd, UFFDIO_API, &api) == 0) {
    refuse(p, "ERR_PROTOCOL", "the userfaultfd has not been through UFFDIO_API (the peer must do it, and register the range)");
    goto out;
  }
  char err[200];
  if (parse_handshake(buf, len, p, write_back, err, sizeof err)) {
    refuse(p, "ERR_PROTOCOL", "%s", err);
    goto out;
  }
  for (int i = 0; i < p->nmaps; i++) {
    struct mapping *m = &p->maps[i];
    if (m->page_size < (uint64_t)sys_page || (m->page_size & (m->page_size - 1))) {
      refuse(p, "ERR_PAGE_SIZE", "mapping %d: page_size %llu is not a power of two of at least %ld", i,
             (unsigned long long)m->page_size, sys_page);
      goto out;
    }
    if (m->size == 0 || m->base % m->page_size || m->size % m->page_size) {
      refuse(p, "ERR_RANGE", "mapping %d: base_host_virt_addr %llu and size %llu must be non-empty multiples of page_size %llu",
             i, (unsigned long long)m->base, (unsigned long long)m->size, (unsigned long long)m->page_size);
      goto out;
    }
    /* UFFDIO_COPY wants a page-aligned source, and the source is the file's mmap. */
    if (m->offset % (uint64_t)sys_page) {
      refuse(p, "ERR_RANGE", "mapping %d: offset %llu is not a multiple of the page size %ld", i,
             (unsigned long long)m->offset, sys_page);
      goto out;
    }
    if (m->offset > file_size || m->size > file_size - m->offset) {
      refuse(p, "ERR_RANGE", "mapping %d: offset %llu + size %llu is past the end of the file (%llu bytes)", i,
             (unsigned long long)m->offset, (unsigned long long)m->size, (unsigned long long)file_size);
      goto out;
    }
  }
  rc = 0;
out:
  free(buf);
  return rc;
}

/* Installs the page containing addr. 0 done, 1 peer gone, -1 error. */
static int fill(struct peer *p, uint64_t addr, uint64_t flags) {
  struct mapping *m = NULL;
  for (int i = 0; i < p->nmaps; i++)
    if (addr - p->maps[i].base < p->maps[i].size) m = &p->maps[i];
  if (!m) {
    logf_(p, "fault at 0x%llx outside every mapping", (unsigned long long)addr);
    return -1;
  }
  uint64_t start = m->base + (addr - m->base) / m->page_size * m->page_size;
  if (flags & UFFD_PAGEFAULT_FLAG_WP) {
    /* Nothing here arms write protection, but a peer might: just let the write through. */
    struct uffdio_writeprotect wp = {.range = {.start = addr & ~((uint64_t)sys_page - 1), .len = (uint64_t)sys_page}, .mode = 0};
    if (ioctl(p->uffd, UFFDIO_WRITEPROTECT, &wp) == 0) return 0;
    return errno == ESRCH || errno == ENOENT ? 1 : -1;
  }
  uint64_t done = 0, len = m->page_size;
  int spins = 0;
  while (done < len) {
    struct uffdio_copy c = {
        .dst = start + done,
        .src = (uint64_t)(uintptr_t)(file_data + m->offset + (start - m->base) + done),
        .len = len - done,
    };
    if (ioctl(p->uffd, UFFDIO_COPY, &c) == 0) return 0;
    int e = errno;
    if (e == EEXIST) {
      p->duplicates++;
      /* Someone else (another fault on the page) filled it: wake whoever waits on it. */
      struct uffdio_range r = {.start = start, .len = len};
      if (ioctl(p->uffd, UFFDIO_WAKE, &r) == 0) return 0;
      return errno == ESRCH || errno == ENOENT ? 1 : -1;
    }
    if (e == ESRCH || e == ENOENT) return 1;
    if (e != EAGAIN) {
      logf_(p, "UFFDIO_COPY at 0x%llx: %s", (unsigned long long)c.dst, strerror(e));
      return -1;
    }
    /* Partial copy (a sub-page already present) or a pending event: resume. */
    if (c.copy > 0) {
      done += (uint64_t)c.copy;
    } else {
      if (++spins > 1000) {
        logf_(p, "UFFDIO_COPY kept returning EAGAIN");
        return -1;
      }
      struct timespec ts = {0, 100000};
      nanosleep(&ts, NULL);
    }
  }
  return 0;
}

/* Handles one command line; returns 1 after detach. */
static int on_command(struct peer *p, char *line) {
  struct json j = {line, line + strlen(line), 0, 0};
  char cmd[32] = "";
  int found = 0;
  if (eat(&j, '{') && !eat(&j, '}')) do {
      char key[32];
      if (!str(&j, key, sizeof key) || !eat(&j, ':')) break;
      if (!strcmp(key, "command")) found = str(&j, cmd, sizeof cmd);
      else skip(&j);
    } while (!j.bad && eat(&j, ','));
  if (!found) {
    refuse(p, "ERR_PROTOCOL", "a command line must be {\"command\":\"flush\"|\"detach\"}");
    return 0;
  }
  if (!strcmp(cmd, "flush")) {
    send_line(p->sock, "{\"ok\":true,\"flushed_pages\":0}\n");
    return 0;
  }
  if (!strcmp(cmd, "detach")) {
    /* Released before answering, so the peer's range is plain memory once it hears ok. */
    close(p->uffd);
    p->uffd = -1;
    send_line(p->sock, "{\"ok\":true}\n");
    return 1;
  }
  refuse(p, "ERR_COMMAND", "unknown command (this handler knows flush and detach)");
  return 0;
}

/* Reads available command bytes; returns -1 on hangup. */
static int on_socket(struct peer *p, int *detached) {
  ssize_t n = recv(p->sock, p->line + p->line_len, sizeof p->line - 1 - p->line_len, MSG_DONTWAIT);
  if (n < 0) return errno == EINTR || errno == EAGAIN ? 0 : -1;
  if (n == 0) return -1;
  p->line_len += (size_t)n;
  char *nl;
  while ((nl = memchr(p->line, '\n', p->line_len))) {
    *nl = '\0';
    if (!*detached && on_command(p, p->line)) *detached = 1;
    else if (*detached) refuse(p, "ERR_DETACHED", "the range is detached");
    size_t used = (size_t)(nl + 1 - p->line);
    memmove(p->line, nl + 1, p->line_len - used);
    p->line_len -= used;
  }
  if (p->line_len == sizeof p->line - 1) {
    refuse(p, "ERR_PROTOCOL", "a command line is longer than %d bytes", MAX_LINE - 1);
    return -1;
  }
  return 0;
}

static void *serve_peer(void *arg) {
  struct peer *p = arg;
  int write_back = 0, detached = 0;
  if (handshake(p, &write_back)) goto out;
  {
    char reply[128];
    snprintf(reply, sizeof reply, "{\"ok\":true,\"handler\":\"serve-floor\",\"write_back\":%s}\n", write_back ? "true" : "false");
    if (send_line(p->sock, reply)) goto out;
  }
  struct uffd_msg msgs[64];
  for (;;) {
    struct pollfd pf[2] = {{.fd = p->sock, .events = POLLIN}, {.fd = p->uffd, .events = POLLIN}};
    int r = poll(pf, p->uffd >= 0 ? 2 : 1, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pf[0].revents && on_socket(p, &detached)) break;
    if (p->uffd < 0) continue;
    if (pf[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      /* Polling would spin on it; the socket still tells us when the peer leaves. */
      logf_(p, "the userfaultfd reports an error (revents 0x%x); no longer serving", pf[1].revents);
      close(p->uffd);
      p->uffd = -1;
      continue;
    }
    if (!(pf[1].revents & POLLIN)) continue;
    ssize_t n = read(p->uffd, msgs, sizeof msgs);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      logf_(p, "read(uffd): %s", strerror(errno));
      break;
    }
    int gone = 0;
    for (ssize_t i = 0; i < n / (ssize_t)sizeof msgs[0] && !gone; i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      p->faults++;
      int f = fill(p, msgs[i].arg.pagefault.address, msgs[i].arg.pagefault.flags);
      if (f) gone = f;
    }
    if (gone) {
      /* Peer gone (its mm exited): the socket hangup follows; stop serving until then. */
      close(p->uffd);
      p->uffd = -1;
      if (gone < 0) break;
    }
  }
  /* One line per served peer, for benchmarks and for tests that want the duplicates. */
  logf_(p, "ended: %llu faults, %llu already filled (EEXIST)%s", (unsigned long long)p->faults,
        (unsigned long long)p->duplicates, detached ? ", detached" : "");
out:
  if (p->uffd >= 0) close(p->uffd);
  close(p->sock);
  free(p);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: serve-floor SOCKET FILE\n");
    return 2;
  }
  sys_page = sysconf(_SC_PAGESIZE);
  int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st)) {
    fprintf(stderr, "serve-floor: %s: %s\n", argv[2], strerror(errno));
    return 1;
  }
  file_size = (uint64_t)st.st_size;
  if (file_size == 0) {
    fprintf(stderr, "serve-floor: %s is empty\n", argv[2]);
    return 1;
  }
  file_data = mmap(NULL, file_size, PROT_READ, MAP_SHARED, fd, 0);
  if (file_data == MAP_FAILED) {
    fprintf(stderr, "serve-floor: mmap(%s): %s\n", argv[2], strerror(errno));
    return 1;
  }
  close(fd);

  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  if (strlen(argv[1]) >= sizeof sun.sun_path) {
    fprintf(stderr, "serve-floor: socket path too long\n");
    return 1;
  }
  strcpy(sun.sun_path, argv[1]);
  int lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(argv[1]);
  if (lsock < 0 || bind(lsock, (struct sockaddr *)&sun, sizeof sun) || listen(lsock, 64)) {
    fprintf(stderr, "serve-floor: listen on %s: %s\n", argv[1], strerror(errno));
    return 1;
  }

  /* Peer threads inherit a blocked mask, so the signals land in main's ppoll. */
  sigset_t block, orig;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &orig);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigdelset(&orig, SIGTERM);
  sigdelset(&orig, SIGINT);

  printf("{\"listening\":\"%s\"}\n", argv[1]);
  fflush(stdout);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int next_id = 0;
  while (!stopping) {
    struct pollfd pf = {.fd = lsock, .events = POLLIN};
    int r = ppoll(&pf, 1, NULL, &orig);
    if (r < 0) {
      if (errno == EINTR) continue;
      perror("serve-floor: ppoll");
      break;
    }
    int s = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      perror("serve-floor: accept");
      break;
    }
    struct peer *p = calloc(1, sizeof *p);
    if (!p) {
      close(s);
      continue;
    }
    p->sock = s;
    p->uffd = -1;
    p->id = ++next_id;
    pthread_t t;
    if (pthread_create(&t, &attr, serve_peer, p)) {
      close(s);
      free(p);
    }
  }
  unlink(argv[1]);
  /*
   * Exiting closes every peer's uffd: their faulting threads then read zeros,
   * which is the kernel's rule, not ours; a benchmark stops its peers first.
   */
  return stopping ? 0 : 1;
}
