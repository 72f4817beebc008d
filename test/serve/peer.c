/*
 * A peer of `faultline serve` (or bench/serve-floor) for tests and benchmarks:
 * maps anonymous memory, attaches it through the C client, and reads or
 * writes it. Every result is one JSON line on stdout.
 *
 *   peer SOCKET SIZE OFFSET MODE [options]
 *     MODE sha256   SHA-256 of the whole range, read sequentially
 *                   -> {"sha256":"<hex>","bytes":..,"seconds":..}
 *     MODE seq      one byte per 4 KiB page in order (--touches N: the first N)
 *     MODE random   N distinct pages in a seeded random order (--touches N, --seed S)
 *                   -> {"mode":..,"touches":..,"threads":..,"seconds":..,"p50_us":..,"p99_us":..}
 *     MODE none     attach only (with --write: write, flush)
 *     --threads T        seq/random: T threads walk the same order at once
 *                        (duplicate faults on one page); touches are per thread
 *     --sha256-after     after MODE, the SHA-256 of the whole range
 *                        -> {"sha256_after":"<hex>"}
 *     --write-back       attach with FAULTLINE_WRITE_BACK
 *     --write PS:COUNT   after MODE, fill COUNT pages of PS bytes, spread evenly,
 *                        with byte (page index * 7 + 1) & 0xff, then flush
 *                        -> {"written":COUNT}
 *     --slow-ms N        sleep N ms after every 64 MiB read (so a test can kill
 *                        the peer midway)
 *     --hold             after MODE (and --write, unflushed), stay attached until
 *                        killed -> {"holding":true}
 *   Prints {"attached":true} as soon as the attach succeeded, and detaches at
 *   the end. SIZE and OFFSET take K/M/G suffixes (powers of 1024).
 *
 *   peer --self-test           the SHA-256 against FIPS 180-4 vectors
 *   peer --bad-args SOCKET     the client's argument and refusal checks, one
 *                              JSON line per case (SOCKET: a live serve-floor)
 *   peer --attach-once SOCKET  one attach, reporting its error, whether the
 *                              range is registrable again and leaked fds
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "faultline.h"

/* ---- SHA-256 (FIPS 180-4) ---- */

struct sha256 {
  uint32_t h[8];
  uint64_t bytes;
  unsigned char block[64];
  size_t used;
};

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_init(struct sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->bytes = 0;
  s->used = 0;
}

static void sha256_block(struct sha256 *s, const unsigned char *b) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], bb = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c));
    h = g, g = f, f = e, e = d + t1, d = c, c = bb, bb = a, a = t1 + t2;
  }
  s->h[0] += a, s->h[1] += bb, s->h[2] += c, s->h[3] += d, s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_update(struct sha256 *s, const void *data, size_t len) {
  const unsigned char *p = data;
  s->bytes += len;
  if (s->used) {
    size_t take = 64 - s->used < len ? 64 - s->used : len;
    memcpy(s->block + s->used, p, take);
    s->used += take, p += take, len -= take;
    if (s->used < 64) return;
    sha256_block(s, s->block);
    s->used = 0;
  }
  /* Straight from the caller's memory: this is where the range's pages fault in. */
  for (; len >= 64; p += 64, len -= 64) sha256_block(s, p);
  memcpy(s->block, p, len);
  s->used = len;
}

static void sha256_hex(struct sha256 *s, char out[65]) {
  uint64_t bits = s->bytes * 8;
  unsigned char pad[72] = {0x80};
  size_t padlen = (s->used < 56 ? 56 : 120) - s->used;
  for (int i = 0; i < 8; i++) pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_update(s, pad, padlen + 8);
  for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", s->h[i]);
}

static int self_test(void) {
  static const struct {
    const char *in, *hex;
  } v[] = {
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
  };
  int bad = 0;
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    struct sha256 s;
    char hex[65];
    sha256_init(&s);
    sha256_update(&s, v[i].in, strlen(v[i].in));
    sha256_hex(&s, hex);
    if (strcmp(hex, v[i].hex)) {
      fprintf(stderr, "peer: sha256(\"%s\") = %s, expected %s\n", v[i].in, hex, v[i].hex);
      bad = 1;
    }
  }
  /* One million 'a' fed in uneven pieces: exercises the partial-block path. */
  struct sha256 s;
  char hex[65], chunk[997];
  memset(chunk, 'a', sizeof chunk);
  sha256_init(&s);
  for (size_t left = 1000000; left;) {
    size_t n = left < sizeof chunk ? left : sizeof chunk;
    sha256_update(&s, chunk, n);
    left -= n;
  }
  sha256_hex(&s, hex);
  if (strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")) {
    fprintf(stderr, "peer: sha256(a x 1e6) = %s\n", hex);
    bad = 1;
  }
  printf("{\"self_test\":\"%s\"}\n", bad ? "failed" : "ok");
  return bad;
}

/* ---- helpers ---- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

static _Noreturn void die(const char *fmt, const char *arg) {
  fprintf(stderr, "peer: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  exit(1);
}

static uint64_t parse_size(const char *s) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || end == s) die("not a number: %s", s);
  switch (*end) {
    case 'k': case 'K': v <<= 10, end++; break;
    case 'm': case 'M': v <<= 20, end++; break;
    case 'g': case 'G': v <<= 30, end++; break;
    default: break;
  }
  if (*end) die("not a size: %s", s);
  return v;
}

static uint64_t rng;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Aligned to 2 MiB, so a handler may serve it in pages larger than 4 KiB. */
#define MAP_ALIGN ((size_t)2 << 20)

static char *map_anon(size_t size) {
  char *p = mmap(NULL, size + MAP_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) die("mmap: %s", strerror(errno));
  char *aligned = (char *)(((uintptr_t)p + MAP_ALIGN - 1) & ~(uintptr_t)(MAP_ALIGN - 1));
  if (aligned > p) munmap(p, (size_t)(aligned - p));
  munmap(aligned + size, (size_t)(p + MAP_ALIGN - aligned));
  return aligned;
}

#define SLOW_EVERY ((size_t)64 << 20)

static void hash_range(const char *mem, size_t size, long slow_ms, char hex[65]) {
  struct sha256 s;
  sha256_init(&s);
  for (size_t off = 0; off < size; off += SLOW_EVERY) {
    sha256_update(&s, mem + off, size - off < SLOW_EVERY ? size - off : SLOW_EVERY);
    if (slow_ms && off + SLOW_EVERY < size) sleep_ms(slow_ms);
  }
  sha256_hex(&s, hex);
}

/*
 * One touching thread. With several, all walk the same order, so they fault
 * on the same pages at nearly the same time: the handler sees duplicate
 * faults and must treat EEXIST as done (and wake the other waiter).
 */
struct toucher {
  pthread_t thread;
  const char *mem;
  const size_t *order;
  size_t touches;
  double *lat;
  long slow_ms;
};

static void *touch(void *arg) {
  struct toucher *t = arg;
  volatile char sink = 0;
  const size_t slow_pages = SLOW_EVERY / 4096;
  for (size_t i = 0; i < t->touches; i++) {
    double a = now_s();
    sink += t->mem[t->order[i] * 4096];
    t->lat[i] = (now_s() - a) * 1e6;
    if (t->slow_ms && (i + 1) % slow_pages == 0) sleep_ms(t->slow_ms);
  }
  (void)sink;
  return NULL;
}

/* ---- --bad-args: each case, its errno and message ---- */

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (!d) return -1;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

static const char *ename(int e) {
  switch (e) {
    case EINVAL: return "EINVAL";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EREMOTEIO: return "EREMOTEIO";
    case EBADF: return "EBADF";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case EPROTO: return "EPROTO";
    case 0: return "0";
    default: return "other";
  }
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
    else putchar(*s);
  }
  putchar('"');
}

static void report(const char *name, int rc, int err) {
  printf("{\"case\":\"%s\",\"rc\":%d,\"errno\":\"%s\",\"error\":", name, rc, ename(err));
  json_string(faultline_last_error());
  printf("}\n");
}

/* Whether a fresh uffd may register the range: EBUSY means someone still holds it. */
static int registrable(void *addr, size_t size) {
  int uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (uffd < 0) return -1;
  struct uffdio_api api = {.api = UFFD_API};
  struct uffdio_register reg = {.range = {.start = (uint64_t)(uintptr_t)addr, .len = size}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  int ok = ioctl(uffd, UFFDIO_API, &api) == 0 && ioctl(uffd, UFFDIO_REGISTER, &reg) == 0;
  close(uffd);
  return ok;
}

static int bad_args(const char *sock) {
  long page = sysconf(_SC_PAGESIZE);
  char *mem = map_anon((size_t)page * 4);
  char longpath[200];
  memset(longpath, 'x', sizeof longpath - 1);
  longpath[0] = '/';
  longpath[sizeof longpath - 1] = '\0';
  int fds = count_fds();
  int rc;
#define CASE(name, call)  \
  errno = 0;              \
  rc = (call);            \
  report(name, rc, errno);
  CASE("null-path", faultline_attach(NULL, mem, (size_t)page, 0));
  CASE("empty-path", faultline_attach("", mem, (size_t)page, 0));
  CASE("zero-size", faultline_attach(sock, mem, 0, 0));
  CASE("null-addr", faultline_attach(sock, NULL, (size_t)page, 0));
  CASE("unaligned-addr", faultline_attach(sock, mem + 1, (size_t)page, 0));
  CASE("unaligned-size", faultline_attach(sock, mem, (size_t)page + 1, 0));
  CASE("long-path", faultline_attach(longpath, mem, (size_t)page, 0));
  CASE("unknown-flags", faultline_attach_ex(sock, mem, (size_t)page, 0, 0x80));
  CASE("no-socket", faultline_attach("/nonexistent-dir/faultline.sock", mem, (size_t)page, 0));
  /* serve-floor refuses a range past the end of its file. */
  CASE("refused", faultline_attach(sock, mem, (size_t)page * 4, UINT64_C(1) << 50));
  printf("{\"case\":\"refused-range-unregistered\",\"registrable\":%d}\n", registrable(mem, (size_t)page * 4));
  CASE("flush-bad-handle", faultline_flush(-1));
  /* A good attach afterwards still works, and detach leaves nothing open. */
  rc = faultline_attach(sock, mem, (size_t)page * 4, 0);
  if (rc < 0) {
    report("good-attach", rc, errno);
  } else {
    int f = faultline_flush(rc);
    int d = faultline_detach(rc);
    printf("{\"case\":\"good-attach\",\"flush\":%d,\"detach\":%d,\"registrable_after_detach\":%d}\n", f, d,
           registrable(mem, (size_t)page * 4));
  }
#undef CASE
  printf("{\"fds_leaked\":%d}\n", count_fds() - fds);
  return 0;
}

/* One attach of one page against a misbehaving handler: how it fails, and what it leaves. */
static int attach_once(const char *sock) {
  long page = sysconf(_SC_PAGESIZE);
  char *mem = map_anon((size_t)page);
  int fds = count_fds();
  errno = 0;
  int rc = faultline_attach(sock, mem, (size_t)page, 0);
  report("attach-once", rc, errno);
  if (rc >= 0) faultline_detach(rc);
  printf("{\"registrable\":%d,\"fds_leaked\":%d}\n", registrable(mem, (size_t)page), count_fds() - fds);
  return 0;
}

/* ---- the attach modes ---- */

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 2 && !strcmp(argv[1], "--self-test")) return self_test();
  if (argc == 3 && !strcmp(argv[1], "--bad-args")) return bad_args(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "--attach-once")) return attach_once(argv[2]);
  if (argc < 5) {
    fprintf(stderr, "usage: peer SOCKET SIZE OFFSET sha256|seq|random|none [--write-back] [--write PS:COUNT] [--touches N] [--seed S] [--threads T] [--slow-ms N] [--sha256-after] [--hold]\n"
                    "       peer --self-test | --bad-args SOCKET | --attach-once SOCKET\n");
    return 2;
  }
  const char *sock = argv[1];
  size_t size = (size_t)parse_size(argv[2]);
  uint64_t offset = parse_size(argv[3]);
  const char *mode = argv[4];
  unsigned flags = 0;
  size_t touches = 0, write_ps = 0, write_count = 0, threads = 1;
  int sha_after = 0, hold = 0;
  long slow_ms = 0;
  rng = 0x9e3779b97f4a7c15ull;
  for (int i = 5; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--write-back")) {
      flags |= FAULTLINE_WRITE_BACK;
      continue;
    }
    if (!strcmp(a, "--sha256-after")) {
      sha_after = 1;
      continue;
    }
    if (!strcmp(a, "--hold")) {
      hold = 1;
      continue;
    }
    if (!v) die("%s needs a value", a);
    i++;
    if (!strcmp(a, "--touches")) touches = (size_t)parse_size(v);
    else if (!strcmp(a, "--seed")) rng = parse_size(v) * 0x9e3779b97f4a7c15ull | 1;
    else if (!strcmp(a, "--slow-ms")) slow_ms = (long)parse_size(v);
    else if (!strcmp(a, "--threads")) {
      threads = (size_t)parse_size(v);
      if (threads < 1 || threads > 64) die("--threads wants 1..64, got %s", v);
    }
    else if (!strcmp(a, "--write")) {
      char *colon = strchr(v, ':');
      if (!colon) die("--write wants PAGESIZE:COUNT, got %s", v);
      *colon = '\0';
      write_ps = (size_t)parse_size(v);
      write_count = (size_t)parse_size(colon + 1);
      if (!write_ps || write_count > size / write_ps) die("--write: %s pages do not fit the range", colon + 1);
    } else die("unknown option %s", a);
  }

  char *mem = map_anon(size);
  int h = faultline_attach_ex(sock, mem, size, offset, flags);
  if (h < 0) die("%s", faultline_last_error());
  printf("{\"attached\":true}\n");

  if (!strcmp(mode, "sha256")) {
    char hex[65];
    double t0 = now_s();
    hash_range(mem, size, slow_ms, hex);
    printf("{\"sha256\":\"%s\",\"bytes\":%zu,\"seconds\":%.6f}\n", hex, size, now_s() - t0);
  } else if (!strcmp(mode, "seq") || !strcmp(mode, "random")) {
    size_t pages = size / 4096;
    if (!touches || touches > pages) touches = pages;
    size_t *order = malloc(pages * sizeof *order);
    double *lat = malloc(touches * threads * sizeof *lat);
    struct toucher *t = calloc(threads, sizeof *t);
    if (!order || !lat || !t) die("%s", "out of memory");
    for (size_t i = 0; i < pages; i++) order[i] = i;
    /* Distinct pages, so every touch is a first touch (a fault), as in bench/floor.c. */
    if (mode[0] == 'r')
      for (size_t i = pages - 1; i > 0; i--) {
        size_t j = next_rand() % (i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
      }
    double t0 = now_s();
    for (size_t k = 0; k < threads; k++) {
      t[k] = (struct toucher){.mem = mem, .order = order, .touches = touches, .lat = lat + k * touches, .slow_ms = slow_ms};
      if (k && pthread_create(&t[k].thread, NULL, touch, &t[k])) die("%s", "pthread_create failed");
    }
    touch(&t[0]);
    for (size_t k = 1; k < threads; k++) pthread_join(t[k].thread, NULL);
    double total = now_s() - t0;
    size_t n = touches * threads;
    qsort(lat, n, sizeof *lat, cmp_double);
    printf("{\"mode\":\"%s\",\"touches\":%zu,\"threads\":%zu,\"seconds\":%.6f,\"p50_us\":%.3f,\"p99_us\":%.3f}\n", mode,
           touches, threads, total, lat[n / 2], lat[(size_t)(n * 0.99)]);
    free(order);
    free(lat);
    free(t);
  } else if (strcmp(mode, "none")) {
    die("unknown mode %s", mode);
  }

  if (sha_after) {
    /* Whatever the mode left resident is read again, the rest faults in now. */
    char hex[65];
    hash_range(mem, size, 0, hex);
    printf("{\"sha256_after\":\"%s\"}\n", hex);
  }
  if (write_count) {
    size_t pages = size / write_ps, stride = pages / write_count;
    for (size_t k = 0; k < write_count; k++) {
      size_t page = k * stride;
      memset(mem + page * write_ps, (int)((page * 7 + 1) & 0xff), write_ps);
    }
    if (!hold && faultline_flush(h)) die("%s", faultline_last_error());
    printf("{\"written\":%zu}\n", write_count);
  }
  if (hold) {
    /* Stays attached, its writes unflushed, until killed: for the handler's own flush (SIGUSR1). */
    printf("{\"holding\":true}\n");
    fflush(stdout);
    for (;;) pause();
  }
  if (faultline_detach(h)) die("%s", faultline_last_error());
  return 0;
}
