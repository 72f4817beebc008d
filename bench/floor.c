/*
 * The kernel floor: the best any userfaultfd pager can do on this machine.
 * No JS, no backend: a handler thread answers faults with UFFDIO_COPY from a
 * prefilled buffer. Modes (output: one JSON object on stdout):
 *   floor fault <bytes> <pageSize> <seq|random> <touches>
 *       one thread touches pages, the handler copies each faulting page;
 *       reports GB/s and the toucher's per-fault latency percentiles
 *   floor copy <bytes> <pageSize> [hugetlb]
 *       UFFDIO_COPY of the whole region with nobody faulting: the bandwidth
 *       ceiling of installing pages; with `hugetlb`, into a MAP_HUGETLB
 *       region of <pageSize> pages (2 MiB, 1 GiB; reserve them first)
 *   floor mmap <file> <seq|random> <touches>
 *       the kernel's own mmap of a file (page cache warm), touching one byte
 *       per 4 KiB page
 *   floor anon <bytes>
 *       first touch of plain anonymous memory (page allocation cost)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what) {
  fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

struct handler {
  int uffd;
  char *src;
  size_t page;
  char *base;
  volatile int stop;
};

static void *serve(void *arg) {
  struct handler *h = arg;
  struct uffd_msg msgs[64];
  for (;;) {
    struct pollfd pfd = {.fd = h->uffd, .events = POLLIN};
    int r = poll(&pfd, 1, 100);
    if (h->stop) return NULL;
    if (r <= 0) continue;
    ssize_t n = read(h->uffd, msgs, sizeof msgs);
    if (n <= 0) continue;
    for (ssize_t i = 0; i < n / (ssize_t)sizeof msgs[0]; i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      uint64_t addr = msgs[i].arg.pagefault.address & ~((uint64_t)h->page - 1);
      struct uffdio_copy c = {.dst = addr, .src = (uint64_t)(uintptr_t)(h->src + (addr - (uint64_t)(uintptr_t)h->base)), .len = h->page};
      if (ioctl(h->uffd, UFFDIO_COPY, &c) && errno != EEXIST) die("UFFDIO_COPY");
    }
  }
}

static int make_uffd(char *base, size_t bytes) {
  int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (uffd < 0) die("userfaultfd");
  struct uffdio_api api = {.api = UFFD_API};
  if (ioctl(uffd, UFFDIO_API, &api)) die("UFFDIO_API");
  struct uffdio_register reg = {.range = {.start = (uint64_t)(uintptr_t)base, .len = bytes}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg)) die("UFFDIO_REGISTER");
  return uffd;
}

static char *map_anon(size_t bytes) {
  char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  return p;
}

static void print_latency(const char *mode, double *lat, size_t n, double total_us, size_t bytes) {
  qsort(lat, n, sizeof *lat, cmp_double);
  printf("{\"mode\":\"%s\",\"touches\":%zu,\"bytes\":%zu,\"ms\":%.3f,\"gbps\":%.4f,\"p50_us\":%.3f,\"p99_us\":%.3f}\n", mode, n, bytes,
         total_us / 1e3, bytes / total_us / 1e3, lat[n / 2], lat[(size_t)(n * 0.99)]);
}

static int mode_fault(size_t bytes, size_t page, int random, size_t touches) {
  char *src = map_anon(bytes);
  memset(src, 0x5a, bytes);
  char *base = map_anon(bytes);
  struct handler h = {.uffd = make_uffd(base, bytes), .src = src, .page = page, .base = base};
  pthread_t t;
  pthread_create(&t, NULL, serve, &h);
  size_t pages = bytes / page;
  if (touches > pages) touches = pages;
  double *lat = malloc(touches * sizeof *lat);
  /* random: a permutation prefix, so each touch faults */
  size_t *order = malloc(pages * sizeof *order);
  for (size_t i = 0; i < pages; i++) order[i] = i;
  if (random)
    for (size_t i = pages - 1; i > 0; i--) {
      size_t j = next_rand() % (i + 1), x = order[i];
      order[i] = order[j];
      order[j] = x;
    }
  volatile char sink = 0;
  double t0 = now_us();
  for (size_t i = 0; i < touches; i++) {
    double a = now_us();
    sink += base[order[i] * page];
    lat[i] = now_us() - a;
  }
  double total = now_us() - t0;
  (void)sink;
  h.stop = 1;
  pthread_join(t, NULL);
  print_latency(random ? "fault-random" : "fault-seq", lat, touches, total, touches * page);
  return 0;
}

static char *map_huge(size_t bytes, size_t page) {
  char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (__builtin_ctzll(page) << 26), -1, 0);
  if (p == MAP_FAILED) die("mmap(MAP_HUGETLB) (are enough huge pages reserved?)");
  return p;
}

static int mode_copy(size_t bytes, size_t page, int hugetlb) {
  char *src = map_anon(bytes);
  memset(src, 0x5a, bytes);
  char *base = hugetlb ? map_huge(bytes, page) : map_anon(bytes);
  int uffd = make_uffd(base, bytes);
  size_t chunk = page * 64 > bytes ? bytes : page * 64;
  double t0 = now_us();
  for (size_t off = 0; off < bytes; off += chunk) {
    struct uffdio_copy c = {.dst = (uint64_t)(uintptr_t)(base + off), .src = (uint64_t)(uintptr_t)(src + off), .len = chunk};
    if (ioctl(uffd, UFFDIO_COPY, &c)) die("UFFDIO_COPY");
  }
  double total = now_us() - t0;
  printf("{\"mode\":\"copy\",\"bytes\":%zu,\"ms\":%.3f,\"gbps\":%.4f}\n", bytes, total / 1e3, bytes / total / 1e3);
  return 0;
}

static int mode_mmap(const char *path, int random, size_t touches) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) die("open");
  struct stat st;
  fstat(fd, &st);
  size_t bytes = st.st_size, pages = bytes / 4096;
  char *p = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) die("mmap file");
  if (touches > pages) touches = pages;
  double *lat = malloc(touches * sizeof *lat);
  volatile char sink = 0;
  double t0 = now_us();
  for (size_t i = 0; i < touches; i++) {
    size_t pg = random ? next_rand() % pages : i;
    double a = now_us();
    sink += p[pg * 4096];
    lat[i] = now_us() - a;
  }
  double total = now_us() - t0;
  (void)sink;
  print_latency(random ? "mmap-random" : "mmap-seq", lat, touches, total, touches * 4096);
  return 0;
}

static int mode_anon(size_t bytes) {
  char *p = map_anon(bytes);
  double t0 = now_us();
  for (size_t off = 0; off < bytes; off += 4096) p[off] = 1;
  double total = now_us() - t0;
  printf("{\"mode\":\"anon\",\"bytes\":%zu,\"ms\":%.3f,\"gbps\":%.4f}\n", bytes, total / 1e3, bytes / total / 1e3);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 6 && !strcmp(argv[1], "fault"))
    return mode_fault(strtoull(argv[2], 0, 0), strtoull(argv[3], 0, 0), !strcmp(argv[4], "random"), strtoull(argv[5], 0, 0));
  if (argc >= 4 && !strcmp(argv[1], "copy"))
    return mode_copy(strtoull(argv[2], 0, 0), strtoull(argv[3], 0, 0), argc >= 5 && !strcmp(argv[4], "hugetlb"));
  if (argc >= 5 && !strcmp(argv[1], "mmap")) return mode_mmap(argv[2], !strcmp(argv[3], "random"), strtoull(argv[4], 0, 0));
  if (argc >= 3 && !strcmp(argv[1], "anon")) return mode_anon(strtoull(argv[2], 0, 0));
  fprintf(stderr, "usage: floor fault <bytes> <page> <seq|random> <touches> | copy <bytes> <page> [hugetlb] | mmap <file> <seq|random> <touches> | anon <bytes>\n");
  return 2;
}
