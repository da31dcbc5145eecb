/*
 * io_ring: positioned readv/writev/fdatasync through io_uring, so block I/O leaves the event loop.
 *
 * Why: the built-in target's readvSync/writevSync/fdatasyncSync block the loop for as long as the
 * disk takes. One io_uring_enter submits a whole batch; the kernel completes what it can without
 * blocking (page-cache hits) inside that call, so those completions are read back before
 * ringSubmit returns, and hands the rest to its io-wq workers, whose completions wake the loop
 * through an eventfd watched by a uv_poll.
 *
 * Shape (like the link arenas of aoegw_native.c): JS describes ops in shared typed arrays and
 * passes counts, and op buffers are (offset, length) pairs in an arena this file owns, so a submit
 * touches no JS object. Tables (layout shared with src/io/io-ring.ts):
 *   desc  Float64Array, RING_DESC_STRIDE numbers per op:
 *         [0] opcode (RING_OP_*) [1] fd [2] file position [3] first iov [4] iov count
 *         [5] token (int32, comes back in the completion) [6] flags (RING_LINK) [7] reserved
 *   iov   Int32Array pairs: arena offset, length
 *   cqe   Int32Array pairs: token, result (bytes >= 0, or -errno)
 * A descriptor that fails validation is never turned into an iovec: it goes to the kernel as an
 * SQE with an unknown opcode, which completes with -EINVAL and fails its link chain exactly like
 * any other op failing at submit time.
 *
 * Invariants:
 * - Every op submitted produces exactly one CQE (no CQE_SKIP, no multishot), and at most
 *   cq_entries ops are in flight (submitted and not yet copied out of the CQ), so the CQ cannot
 *   overflow. IORING_FEAT_NODROP backs this up: an overflow would be kept, not lost.
 * - IORING_FEAT_SUBMIT_STABLE: the kernel has copied every iovec when io_uring_enter returns, so
 *   the iovec array is rewritten freely by the next submit.
 * - The arena is unmapped only when both the ring and its ArrayBuffer let go of it, and the ring
 *   lets go only after its in-flight ops completed (a worker may still be writing into it).
 *
 * Raw syscalls, no liburing: the ring layout is the kernel ABI of <linux/io_uring.h>.
 */
#define _GNU_SOURCE
#include "io_ring.h"
#include "napi_util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

enum { RING_OP_READV = 1, RING_OP_WRITEV = 2, RING_OP_FDATASYNC = 3 };
enum { D_OP, D_FD, D_POS, D_IOV, D_COUNT, D_TOKEN, D_FLAGS, D_RESERVED, RING_DESC_STRIDE };
#define RING_LINK 1

#define RING_MAX_ENTRIES 32768
#define RING_MAX_ARENA 0x7ffff000u /* offsets and lengths are int32 in the iov table */
#define RING_MAX_IOV 1024          /* UIO_MAXIOV */
#define RING_MAX_RW 0x7ffff000u    /* MAX_RW_COUNT: keeps every result an int32 */
#define RING_REGISTER_IOWQ_MAX_WORKERS 19 /* IORING_REGISTER_IOWQ_MAX_WORKERS (5.15): an enum, not a macro */
#define RING_BAD_OPCODE 0xff       /* >= IORING_OP_LAST on every kernel: completes with -EINVAL */
#define RING_POLL_ROUNDS 4         /* completion callbacks per eventfd wakeup before yielding */

typedef struct arena {
  uint8_t *mem;
  size_t bytes;
  int holders; /* the ring and the ArrayBuffer; both live on the JS thread */
} arena_t;

typedef struct ring {
  napi_env env;
  int fd;  /* the io_uring, -1 once closed */
  int efd; /* eventfd registered with it, -1 until ringStart */
  unsigned sq_entries, cq_entries;
  unsigned features;
  bool has_rw; /* IORING_OP_READ/WRITE: one buffer without an iovec */
  void *sq_map, *cq_map;
  size_t sq_map_len, cq_map_len;
  struct io_uring_sqe *sqes;
  size_t sqes_len;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_flags;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
  arena_t *arena;
  /* JS tables */
  double *desc;
  uint32_t desc_ops;
  int32_t *iov;
  uint32_t iov_pairs;
  int32_t *cqe;
  uint32_t cqe_pairs;
  napi_ref desc_ref, iov_ref, cqe_ref;
  struct iovec *iovecs; /* parallel to the iov table: an op's iovecs sit at its first iov index */
  uint32_t in_flight;   /* submitted and not yet copied out of the CQ */
  bool broken;          /* io_uring_enter failed hard: SQEs may be stuck in the SQ */
  /* event loop */
  uv_poll_t *poll;
  bool polling, loop_ref, in_callback, closed;
  napi_ref on_ready;
  napi_ref self; /* strong while polling, so a started ring is never collected */
  napi_async_context async_ctx;
  /* counters */
  uint64_t enters, sqes_submitted, cqes_reaped, wakeups, spurious_wakeups, enter_retries, overflow_flushes,
      bad_descriptors;
} ring_t;

/* ---------- small helpers (the shared ones are in napi_util.h) ---------- */

/* Fails the calling function (returns NULL) with ERR_NATIVE_ARGUMENT unless the N-API call worked. */
#define RING_NAPI(call)                                                                   \
  do {                                                                                    \
    if ((call) != napi_ok) {                                                              \
      bool pending__ = false;                                                             \
      napi_is_exception_pending(env, &pending__);                                         \
      if (!pending__) napi_throw_error(env, "ERR_NATIVE_ARGUMENT", "N-API call failed: " #call); \
      return NULL;                                                                        \
    }                                                                                     \
  } while (0)

static int sys_setup(unsigned entries, struct io_uring_params *p) {
  return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

static int sys_register(int fd, unsigned op, void *arg, unsigned nr) {
  return (int)syscall(__NR_io_uring_register, fd, op, arg, nr);
}

/* A JS number that is an integer in [lo, hi] (false for NaN and infinities too). */
static bool num_in(double v, double lo, double hi, int64_t *out) {
  if (!(v >= lo && v <= hi)) return false;
  int64_t i = (int64_t)v;
  if ((double)i != v) return false;
  *out = i;
  return true;
}

static void arena_release(arena_t *a) {
  if (--a->holders > 0) return;
  munmap(a->mem, a->bytes);
  free(a);
}

static void arena_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  arena_release(hint);
}

/* ---------- ring setup and teardown ---------- */

/* Why io_uring_setup failed, in words an operator can act on. */
static void setup_failure(int err, char *why, size_t cap) {
  if (err == EPERM || err == EACCES) {
    int disabled = -1;
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    if (f) {
      if (fscanf(f, "%d", &disabled) != 1) disabled = -1;
      fclose(f);
    }
    if (disabled > 0)
      snprintf(why, cap, "io_uring is disabled by sysctl kernel.io_uring_disabled=%d", disabled);
    else
      snprintf(why, cap, "io_uring_setup: %s (blocked by seccomp or a security module)", strerror(err));
  } else if (err == ENOSYS) {
    snprintf(why, cap, "io_uring_setup: not implemented (kernel without io_uring, or blocked by seccomp)");
  } else {
    snprintf(why, cap, "io_uring_setup: %s", strerror(err));
  }
}

static bool op_supported(const struct io_uring_probe *p, unsigned op) {
  return op < p->ops_len && (p->ops[op].flags & IO_URING_OP_SUPPORTED);
}

/* Unmaps and closes what ring_setup built. The caller has waited for in-flight ops. */
static void ring_unmap(ring_t *r) {
  if (r->sqes) munmap(r->sqes, r->sqes_len);
  if (r->cq_map && r->cq_map != r->sq_map) munmap(r->cq_map, r->cq_map_len);
  if (r->sq_map) munmap(r->sq_map, r->sq_map_len);
  r->sqes = NULL;
  r->sq_map = r->cq_map = NULL;
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
}

/* Creates the ring and maps it. Returns false with a reason in `why`. */
static bool ring_setup(ring_t *r, unsigned entries, char *why, size_t cap) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  /* SUBMIT_ALL (5.18): an SQE failing at submit time does not stop the ones after it. */
  p.flags = IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
  int fd = sys_setup(entries, &p);
  if (fd < 0 && errno == EINVAL) {
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CLAMP;
    fd = sys_setup(entries, &p);
  }
  if (fd < 0) {
    setup_failure(errno, why, cap);
    return false;
  }
  r->fd = fd;
  r->features = p.features;
  if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_SUBMIT_STABLE)) {
    snprintf(why, cap, "io_uring lacks %s (needs Linux 5.5 or later)",
             !(p.features & IORING_FEAT_NODROP) ? "IORING_FEAT_NODROP" : "IORING_FEAT_SUBMIT_STABLE");
    ring_unmap(r);
    return false;
  }
  r->sq_entries = p.sq_entries;
  r->cq_entries = p.cq_entries;
  r->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  r->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single) {
    if (r->cq_map_len > r->sq_map_len) r->sq_map_len = r->cq_map_len;
    r->cq_map_len = r->sq_map_len;
  }
  r->sq_map = mmap(NULL, r->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (r->sq_map == MAP_FAILED) {
    r->sq_map = NULL;
    snprintf(why, cap, "mmap of the io_uring SQ ring: %s", strerror(errno));
    ring_unmap(r);
    return false;
  }
  if (single) {
    r->cq_map = r->sq_map;
  } else {
    r->cq_map = mmap(NULL, r->cq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    if (r->cq_map == MAP_FAILED) {
      r->cq_map = NULL;
      snprintf(why, cap, "mmap of the io_uring CQ ring: %s", strerror(errno));
      ring_unmap(r);
      return false;
    }
  }
  r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
  r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (r->sqes == MAP_FAILED) {
    r->sqes = NULL;
    snprintf(why, cap, "mmap of the io_uring SQE array: %s", strerror(errno));
    ring_unmap(r);
    return false;
  }
  uint8_t *sq = r->sq_map, *cq = r->cq_map;
  r->sq_head = (unsigned *)(sq + p.sq_off.head);
  r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
  r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  r->sq_flags = (unsigned *)(sq + p.sq_off.flags);
  r->cq_head = (unsigned *)(cq + p.cq_off.head);
  r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
  r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  /* The SQ index array maps ring slot i to SQE i, once: SQE (tail & mask) is always the next one. */
  unsigned *array = (unsigned *)(sq + p.sq_off.array);
  for (unsigned i = 0; i < p.sq_entries; i++) array[i] = i;

  size_t probe_len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  struct io_uring_probe *probe = calloc(1, probe_len);
  if (!probe || sys_register(fd, IORING_REGISTER_PROBE, probe, 256) < 0) {
    snprintf(why, cap, "io_uring cannot list its operations (IORING_REGISTER_PROBE needs Linux 5.6 or later)");
    free(probe);
    ring_unmap(r);
    return false;
  }
  const char *missing = !op_supported(probe, IORING_OP_READV)    ? "IORING_OP_READV"
                        : !op_supported(probe, IORING_OP_WRITEV) ? "IORING_OP_WRITEV"
                        : !op_supported(probe, IORING_OP_FSYNC)  ? "IORING_OP_FSYNC"
                                                                 : NULL;
  r->has_rw = op_supported(probe, IORING_OP_READ) && op_supported(probe, IORING_OP_WRITE);
  free(probe);
  if (missing) {
    snprintf(why, cap, "io_uring does not support %s here", missing);
    ring_unmap(r);
    return false;
  }
  return true;
}

/* The io-wq (the kernel's worker threads for ops that block) belongs to the task, not to the
 * ring: every ring of the process shares it, and it is created with the first ring the task ever
 * sets up, its cap on workers for regular-file ops being min(that ring's SQ entries, 4 x online
 * CPUs). The availability probe's 1-entry ring (ringProbe) thus left ONE worker for all block I/O:
 * an export's slow fdatasync held the reads and writes of every other export until it returned.
 * Raises the cap to what this ring would have set had it come first (never lowers it). Returns the
 * cap in effect, or 0 when the kernel cannot tell (before 5.15). */
static unsigned ring_io_workers(ring_t *r) {
  uint32_t now[2] = {0, 0}; /* zeros: only read the current caps (bounded, unbounded) */
  if (sys_register(r->fd, RING_REGISTER_IOWQ_MAX_WORKERS, now, 2) < 0) return 0;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  uint32_t want = 4u * (uint32_t)(cpus > 0 ? cpus : 1);
  if (want > r->sq_entries) want = r->sq_entries;
  if (now[0] >= want) return now[0];
  uint32_t set[2] = {want, 0}; /* 0: the unbounded cap stays */
  if (sys_register(r->fd, RING_REGISTER_IOWQ_MAX_WORKERS, set, 2) < 0) return now[0];
  return want;
}

/* ---------- completions ---------- */

static void eventfd_drain(ring_t *r) {
  uint64_t v;
  ssize_t got = r->efd >= 0 ? read(r->efd, &v, sizeof v) : 0;
  (void)got; /* -1 with EAGAIN: nothing was signalled */
}

/* Re-arms the eventfd for CQEs left in the CQ, so the loop comes back for them. */
static void eventfd_signal(ring_t *r) {
  uint64_t one = 1;
  ssize_t got = r->efd >= 0 ? write(r->efd, &one, sizeof one) : 0;
  (void)got; /* cannot fail short of a counter at its maximum, which is signalled anyway */
}

static bool cq_empty(const ring_t *r) { return *r->cq_head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE); }

/* Copies posted CQEs into the completion table (at most its size) and returns how many.
 * Invariant kept for the eventfd: a CQE still in the CQ afterwards has a signal pending. */
static uint32_t ring_reap(ring_t *r) {
  if (r->fd < 0 || !r->cqe) return 0;
  if (__atomic_load_n(r->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW) {
    /* Cannot happen while in_flight <= cq_entries; if it does, NODROP kept the CQEs and a
     * GETEVENTS enter moves them back into the ring. */
    r->overflow_flushes++;
    sys_enter(r->fd, 0, 0, IORING_ENTER_GETEVENTS);
  }
  unsigned head = *r->cq_head; /* only this thread writes it */
  unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
  if (head == tail) return 0;
  /* Every CQE signals the eventfd, inline ones too. Clearing it before reading the CQ (never
   * after) spares the loop a wakeup for the completions taken here, and a CQE posted after the
   * clear signals again. */
  bool drained = false;
  if (r->efd >= 0 && tail - head <= r->cqe_pairs) {
    eventfd_drain(r);
    drained = true;
    tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
  }
  unsigned mask = *r->cq_mask;
  uint32_t n = 0;
  while (head != tail && n < r->cqe_pairs) {
    const struct io_uring_cqe *c = &r->cqes[head & mask];
    r->cqe[2 * n] = (int32_t)(uint32_t)c->user_data;
    r->cqe[2 * n + 1] = c->res;
    head++;
    n++;
  }
  __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
  r->in_flight -= n;
  r->cqes_reaped += n;
  /* A CQE posted between the first tail read and the clear lost its signal: give it back. */
  if (drained && head != tail) eventfd_signal(r);
  return n;
}

/* Keeps the event loop alive exactly while ops are in flight: their completions are still coming,
 * and an idle ring should not hold a finished process open. */
static void update_loop_ref(ring_t *r) {
  if (!r->poll || !r->polling) return;
  bool want = r->in_flight > 0;
  if (want && !r->loop_ref) uv_ref((uv_handle_t *)r->poll);
  if (!want && r->loop_ref) uv_unref((uv_handle_t *)r->poll);
  r->loop_ref = want;
}

/* Waits until every in-flight op has completed, discarding the CQEs (close and finalize only).
 * Returns false if the kernel would not say, in which case the arena must never be freed. */
static bool ring_wait_idle(ring_t *r) {
  while (r->in_flight > 0) {
    unsigned head = *r->cq_head, tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
    r->in_flight -= tail - head;
    __atomic_store_n(r->cq_head, tail, __ATOMIC_RELEASE);
    if (r->in_flight == 0) break;
    if (sys_enter(r->fd, 0, r->in_flight, IORING_ENTER_GETEVENTS) < 0 && errno != EINTR) return false;
  }
  return true;
}

/* ---------- submission ---------- */

/* Fills one SQE from descriptor `d`. A descriptor that does not validate becomes an SQE with an
 * unknown opcode: the kernel completes it with -EINVAL and fails its chain, no memory touched. */
static void fill_sqe(ring_t *r, const double *d, struct io_uring_sqe *sqe) {
  memset(sqe, 0, sizeof *sqe);
  int64_t token = 0, flags = 0, op = 0, fd = 0, pos = 0, first = 0, count = 0;
  bool ok = num_in(d[D_TOKEN], INT32_MIN, INT32_MAX, &token);
  if (!ok) token = INT32_MIN;
  ok = num_in(d[D_FLAGS], 0, RING_LINK, &flags) && ok;
  sqe->user_data = (uint32_t)(int32_t)token;
  sqe->flags = (flags & RING_LINK) ? IOSQE_IO_LINK : 0;
  ok = ok && num_in(d[D_OP], RING_OP_READV, RING_OP_FDATASYNC, &op) && num_in(d[D_FD], 0, INT32_MAX, &fd);
  if (ok && op == RING_OP_FDATASYNC) {
    sqe->opcode = IORING_OP_FSYNC;
    sqe->fd = (int32_t)fd;
    sqe->fsync_flags = IORING_FSYNC_DATASYNC;
    return;
  }
  ok = ok && num_in(d[D_POS], 0, 9007199254740991.0, &pos) && num_in(d[D_COUNT], 1, RING_MAX_IOV, &count) &&
       num_in(d[D_IOV], 0, (double)r->iov_pairs - (double)count, &first);
  uint64_t total = 0;
  for (int64_t i = first; ok && i < first + count; i++) {
    int32_t off = r->iov[2 * i], len = r->iov[2 * i + 1];
    if (off < 0 || len < 0 || (uint64_t)off + (uint64_t)len > r->arena->bytes) ok = false;
    total += (uint64_t)(len < 0 ? 0 : len);
  }
  if (!ok || total > RING_MAX_RW) {
    sqe->opcode = RING_BAD_OPCODE;
    r->bad_descriptors++;
    return;
  }
  bool write = op == RING_OP_WRITEV;
  sqe->fd = (int32_t)fd;
  sqe->off = (uint64_t)pos;
  if (count == 1 && r->has_rw) {
    /* READ/WRITE take the buffer itself: the kernel need not copy an iovec. */
    sqe->opcode = write ? IORING_OP_WRITE : IORING_OP_READ;
    sqe->addr = (uint64_t)(uintptr_t)(r->arena->mem + r->iov[2 * first]);
    sqe->len = (uint32_t)r->iov[2 * first + 1];
    return;
  }
  for (int64_t i = first; i < first + count; i++) {
    r->iovecs[i].iov_base = r->arena->mem + r->iov[2 * i];
    r->iovecs[i].iov_len = (size_t)r->iov[2 * i + 1];
  }
  sqe->opcode = write ? IORING_OP_WRITEV : IORING_OP_READV;
  sqe->addr = (uint64_t)(uintptr_t)&r->iovecs[first];
  sqe->len = (uint32_t)count;
}

/* Hands `n` published SQEs to the kernel. Returns 0, or -errno when the ring is unusable. */
static int submit_published(ring_t *r, unsigned n) {
  unsigned spins = 0;
  while (n > 0) {
    int got = sys_enter(r->fd, n, 0, 0);
    r->enters++;
    if (got > 0) {
      n -= (unsigned)got;
      r->in_flight += (unsigned)got;
      r->sqes_submitted += (unsigned)got;
      continue;
    }
    int e = got == 0 ? EAGAIN : errno;
    if (e == EINTR) continue;
    /* EAGAIN (no memory for requests) and EBUSY (CQ backlog) pass once completions are in. */
    if ((e == EAGAIN || e == EBUSY) && ++spins < 10000) {
      r->enter_retries++;
      if (r->in_flight > 0)
        sys_enter(r->fd, 0, 1, IORING_ENTER_GETEVENTS);
      else
        sched_yield();
      continue;
    }
    return -e;
  }
  return 0;
}

/* ---------- JS functions ---------- */

static ring_t *get_ring(napi_env env, napi_value v) {
  ring_t *r = NULL;
  if (napi_get_value_external(env, v, (void **)&r) != napi_ok || r == NULL) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "not a ring handle");
    return NULL;
  }
  if (r->closed) {
    throw_coded(env, "ERR_CLOSED", "io ring is closed");
    return NULL;
  }
  return r;
}

static void ring_release_js(napi_env env, ring_t *r) {
  if (r->desc_ref) napi_delete_reference(env, r->desc_ref);
  if (r->iov_ref) napi_delete_reference(env, r->iov_ref);
  if (r->cqe_ref) napi_delete_reference(env, r->cqe_ref);
  r->desc_ref = r->iov_ref = r->cqe_ref = NULL;
  r->desc = NULL;
  r->iov = NULL;
  r->cqe = NULL;
  if (r->on_ready) napi_delete_reference(env, r->on_ready);
  r->on_ready = NULL;
  if (r->self) napi_delete_reference(env, r->self);
  r->self = NULL;
  if (r->async_ctx) napi_async_destroy(env, r->async_ctx);
  r->async_ctx = NULL;
}


/* Stops the poll, waits for in-flight ops (blocking: an op in an io-wq worker may still write
 * into the arena), unmaps the ring and lets go of the arena. Safe to call twice. */
static void ring_teardown(napi_env env, ring_t *r) {
  if (r->closed) return;
  r->closed = true;
  if (r->poll) {
    if (r->polling) uv_poll_stop(r->poll);
    uv_close((uv_handle_t *)r->poll, free_closed_handle);
    r->poll = NULL;
  }
  r->polling = false;
  bool idle = r->fd < 0 || ring_wait_idle(r);
  ring_unmap(r);
  if (r->efd >= 0) close(r->efd);
  r->efd = -1;
  /* If the kernel would not confirm completion, leaking the arena is the only safe choice. */
  if (r->arena && idle) arena_release(r->arena);
  r->arena = NULL;
  free(r->iovecs);
  r->iovecs = NULL;
  /* Inside the completion callback the JS side of the ring is still in use: on_ring_poll releases
   * it on the way out. */
  if (!r->in_callback) ring_release_js(env, r);
}

static void ring_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  ring_t *r = data;
  ring_teardown(env, r);
  ring_release_js(env, r);
  free(r);
}

/* ringProbe() -> null when io_uring works here with what the ring needs, else the reason. */
static napi_value js_ring_probe(napi_env env, napi_callback_info info) {
  (void)info;
  ring_t r;
  memset(&r, 0, sizeof r);
  r.fd = r.efd = -1;
  char why[256];
  napi_value out;
  if (ring_setup(&r, 1, why, sizeof why)) {
    ring_unmap(&r);
    RING_NAPI(napi_get_null(env, &out));
  } else {
    RING_NAPI(napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &out));
  }
  return out;
}

/* ringOpen({ entries, arenaBytes }) -> { handle, arena, sqEntries, cqEntries }. The arena is
 * mmap'd (page-aligned, zeroed) and exposed as an external ArrayBuffer. */
static napi_value js_ring_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  RING_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t entries = 256, arena_bytes = 0;
  bool has = false;
  if (argc > 0 && napi_has_named_property(env, argv[0], "entries", &has) == napi_ok && has) {
    RING_NAPI(napi_get_named_property(env, argv[0], "entries", &v));
    RING_NAPI(napi_get_value_int64(env, v, &entries));
  }
  if (argc > 0 && napi_has_named_property(env, argv[0], "arenaBytes", &has) == napi_ok && has) {
    RING_NAPI(napi_get_named_property(env, argv[0], "arenaBytes", &v));
    RING_NAPI(napi_get_value_int64(env, v, &arena_bytes));
  }
  if (entries < 1 || entries > RING_MAX_ENTRIES || arena_bytes < 4096 || arena_bytes > RING_MAX_ARENA ||
      arena_bytes % 4096 != 0) {
    throw_coded(env, "ERR_IO_RING", "ringOpen: entries must be 1..%d and arenaBytes a multiple of 4096 up to %u",
               RING_MAX_ENTRIES, RING_MAX_ARENA);
    return NULL;
  }
  ring_t *r = calloc(1, sizeof *r);
  arena_t *a = calloc(1, sizeof *a);
  if (!r || !a) {
    free(r);
    free(a);
    throw_coded(env, "ERR_IO_RING", "ringOpen: out of memory");
    return NULL;
  }
  r->env = env;
  r->fd = r->efd = -1;
  char why[256];
  if (!ring_setup(r, (unsigned)entries, why, sizeof why)) {
    free(r);
    free(a);
    throw_coded(env, "ERR_IO_RING", "%s", why);
    return NULL;
  }
  unsigned io_workers = ring_io_workers(r);
  a->bytes = (size_t)arena_bytes;
  a->mem = mmap(NULL, a->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a->mem == MAP_FAILED) {
    int e = errno;
    ring_unmap(r);
    free(r);
    free(a);
    throw_coded(env, "ERR_IO_RING", "ringOpen: cannot map a %lld-byte arena: %s", (long long)arena_bytes, strerror(e));
    return NULL;
  }
  napi_value ab, ext, name, out;
  if (napi_create_external_arraybuffer(env, a->mem, a->bytes, arena_finalize, a, &ab) != napi_ok) {
    munmap(a->mem, a->bytes);
    ring_unmap(r);
    free(r);
    free(a);
    throw_coded(env, "ERR_IO_RING", "ringOpen: external ArrayBuffers are not allowed in this runtime");
    return NULL;
  }
  a->holders = 2; /* the ArrayBuffer (arena_finalize) and the ring (ring_teardown) */
  r->arena = a;
  if (napi_create_external(env, r, ring_finalize, NULL, &ext) != napi_ok) {
    ring_finalize(env, r, NULL);
    throw_coded(env, "ERR_IO_RING", "ringOpen: cannot wrap the ring");
    return NULL;
  }
  RING_NAPI(napi_create_string_utf8(env, "aoegw-io-ring", NAPI_AUTO_LENGTH, &name));
  RING_NAPI(napi_async_init(env, ext, name, &r->async_ctx));
  RING_NAPI(napi_create_object(env, &out));
  RING_NAPI(napi_set_named_property(env, out, "handle", ext));
  RING_NAPI(napi_set_named_property(env, out, "arena", ab));
  set_num(env, out, "sqEntries", r->sq_entries);
  set_num(env, out, "cqEntries", r->cq_entries);
  set_num(env, out, "ioWorkers", io_workers);
  return out;
}

/* Takes a typed array of `want` type from property `key` of `opts`, if present. Returns 1 when
 * taken, 0 when absent, -1 with an exception pending. */
static int take_table(napi_env env, napi_value opts, const char *key, napi_typedarray_type want, void **data,
                      size_t *elems, napi_ref *ref) {
  bool has = false;
  napi_value v;
  if (napi_has_named_property(env, opts, key, &has) != napi_ok || !has) return 0;
  if (napi_get_named_property(env, opts, key, &v) != napi_ok) return -1;
  bool is_ta = false;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, elems, data, &ab, &off) != napi_ok || type != want) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "ringTables: %s must be a %s", key,
               want == napi_float64_array ? "Float64Array" : "Int32Array");
    return -1;
  }
  napi_ref fresh;
  if (napi_create_reference(env, v, 1, &fresh) != napi_ok) return -1;
  if (*ref) napi_delete_reference(env, *ref);
  *ref = fresh;
  return 1;
}

/* ringTables(h, { desc?, iov?, cqe? }): (re)points the ring at its tables; between calls only
 * (the wrapper grows its queue by handing over bigger arrays). */
static napi_value js_ring_tables(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  RING_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ring_t *r = get_ring(env, argv[0]);
  if (!r) return NULL;
  if (argc < 2) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "ringTables(h, { desc?, iov?, cqe? })");
    return NULL;
  }
  void *data;
  size_t elems;
  int t = take_table(env, argv[1], "iov", napi_int32_array, &data, &elems, &r->iov_ref);
  if (t < 0) return NULL;
  if (t > 0) {
    struct iovec *iv = realloc(r->iovecs, (elems / 2 + 1) * sizeof *iv);
    if (!iv) {
      throw_coded(env, "ERR_IO_RING", "ringTables: out of memory");
      return NULL;
    }
    r->iovecs = iv;
    r->iov = data;
    r->iov_pairs = (uint32_t)(elems / 2);
  }
  if ((t = take_table(env, argv[1], "desc", napi_float64_array, &data, &elems, &r->desc_ref)) < 0) return NULL;
  if (t > 0) {
    r->desc = data;
    r->desc_ops = (uint32_t)(elems / RING_DESC_STRIDE);
  }
  if ((t = take_table(env, argv[1], "cqe", napi_int32_array, &data, &elems, &r->cqe_ref)) < 0) return NULL;
  if (t > 0) {
    r->cqe = data;
    r->cqe_pairs = (uint32_t)(elems / 2);
  }
  return NULL;
}

/* ringSubmit(h, nOps[, first = 0[, harvest = 1]]) -> completions copied into the cqe table.
 * Builds SQEs from descriptors first..first+nOps-1, submits them with one io_uring_enter (more
 * only if the kernel takes fewer), then, unless harvest is 0, copies the CQEs already posted. */
static napi_value js_ring_submit(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], out;
  RING_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ring_t *r = get_ring(env, argv[0]);
  if (!r) return NULL;
  int32_t n = 0, first = 0, harvest = 1;
  if (argc > 1) napi_get_value_int32(env, argv[1], &n);
  if (argc > 2) napi_get_value_int32(env, argv[2], &first);
  if (argc > 3) napi_get_value_int32(env, argv[3], &harvest);
  if (r->broken) {
    throw_coded(env, "ERR_IO_RING", "ringSubmit: the ring failed earlier and cannot submit");
    return NULL;
  }
  if (!r->desc || !r->iov || !r->cqe) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "ringSubmit: call ringTables first");
    return NULL;
  }
  if (n < 0 || first < 0 || (uint64_t)first + (uint64_t)n > r->desc_ops || (unsigned)n > r->sq_entries) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "ringSubmit: ops %d..%d outside the %u-op table or over %u SQ entries",
               first, first + n, r->desc_ops, r->sq_entries);
    return NULL;
  }
  if (r->in_flight + (unsigned)n > r->cq_entries) {
    throw_coded(env, "ERR_IO_RING", "ringSubmit: %d more ops would put more than %u in flight", n, r->cq_entries);
    return NULL;
  }
  unsigned tail = *r->sq_tail; /* only this thread writes it */
  unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
  if (tail - head + (unsigned)n > r->sq_entries) {
    throw_coded(env, "ERR_IO_RING", "ringSubmit: the SQ still holds %u unsubmitted entries", tail - head);
    return NULL;
  }
  unsigned mask = *r->sq_mask;
  for (int32_t i = 0; i < n; i++) fill_sqe(r, r->desc + (size_t)(first + i) * RING_DESC_STRIDE, &r->sqes[(tail + i) & mask]);
  /* Release: the kernel reads the SQEs only after it sees the tail move. */
  __atomic_store_n(r->sq_tail, tail + (unsigned)n, __ATOMIC_RELEASE);
  int err = submit_published(r, (unsigned)n);
  if (err < 0) {
    r->broken = true;
    update_loop_ref(r);
    throw_coded(env, "ERR_IO_RING", "io_uring_enter: %s", strerror(-err));
    return NULL;
  }
  uint32_t got = harvest ? ring_reap(r) : 0;
  update_loop_ref(r);
  RING_NAPI(napi_create_uint32(env, got, &out));
  return out;
}

/* ringReap(h) -> completions copied into the cqe table (posted ones only; never waits). */
static napi_value js_ring_reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  RING_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ring_t *r = get_ring(env, argv[0]);
  if (!r) return NULL;
  uint32_t got = ring_reap(r);
  update_loop_ref(r);
  RING_NAPI(napi_create_uint32(env, got, &out));
  return out;
}

/* ringWait(h) -> completions copied into the cqe table, blocking until there is at least one
 * (0 at once when nothing is in flight). For close(), which must see every op finish. */
static napi_value js_ring_wait(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  RING_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ring_t *r = get_ring(env, argv[0]);
  if (!r) return NULL;
  if (!r->cqe) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "ringWait: call ringTables first");
    return NULL;
  }
  uint32_t got = 0;
  while (r->in_flight > 0 && (got = ring_reap(r)) == 0) {
    if (sys_enter(r->fd, 0, 1, IORING_ENTER_GETEVENTS) < 0 && errno != EINTR) {
      throw_coded(env, "ERR_IO_RING", "io_uring_enter(GETEVENTS): %s", strerror(errno));
      return NULL;
    }
  }
  update_loop_ref(r);
  RING_NAPI(napi_create_uint32(env, got, &out));
  return out;
}

/* Calls onReady(count). Exceptions become uncaught exceptions, as in the link code: the JS wrapper
 * catches its handler's own, and the poll keeps running either way. */
static void call_ready(ring_t *r, uint32_t count) {
  napi_env env = r->env;
  napi_value cb, recv, arg, result, resource = NULL;
  if (!r->on_ready || napi_get_reference_value(env, r->on_ready, &cb) != napi_ok || cb == NULL) return;
  napi_get_undefined(env, &recv);
  napi_create_uint32(env, count, &arg);
  if (r->self) napi_get_reference_value(env, r->self, &resource);
  r->in_callback = true;
  napi_status st = napi_make_callback(env, r->async_ctx, resource ? resource : recv, cb, 1, &arg, &result);
  r->in_callback = false;
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
}

static void on_ring_poll(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  ring_t *r = h->data;
  napi_env env = r->env;
  if (r->closed) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  r->wakeups++;
  /* Clear first: the completions behind this wakeup may already have been taken by a submit, and
   * an eventfd left readable would wake the loop forever. */
  eventfd_drain(r);
  bool any = false;
  /* A few tablefuls per wakeup (the callback may submit more that completes at once); then
   * yield to the loop, signalling the eventfd so it comes back for the rest. */
  for (int round = 0; round < RING_POLL_ROUNDS && !r->closed && r->polling; round++) {
    uint32_t n = ring_reap(r);
    if (n == 0) break;
    any = true;
    call_ready(r, n);
  }
  if (!any) r->spurious_wakeups++;
  if (r->closed) {
    ring_release_js(env, r); /* closed from inside the callback */
  } else {
    if (r->polling && !cq_empty(r)) eventfd_signal(r);
    update_loop_ref(r);
  }
  napi_close_handle_scope(env, scope);
}

/* ringStart(h, onReady(count)): registers an eventfd with the ring and watches it from the event
 * loop; each wakeup copies posted CQEs into the cqe table and calls onReady once per tableful. */
static napi_value js_ring_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  RING_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ring_t *r = get_ring(env, argv[0]);
  if (!r) return NULL;
  napi_valuetype t = napi_undefined;
  if (argc < 2 || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "ringStart(h, onReady): onReady must be a function");
    return NULL;
  }
  napi_ref cb;
  RING_NAPI(napi_create_reference(env, argv[1], 1, &cb));
  if (r->on_ready) napi_delete_reference(env, r->on_ready);
  r->on_ready = cb;
  if (r->efd < 0) {
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) {
      throw_coded(env, "ERR_IO_RING", "eventfd: %s", strerror(errno));
      return NULL;
    }
    if (sys_register(r->fd, IORING_REGISTER_EVENTFD, &efd, 1) < 0) {
      int e = errno;
      close(efd);
      throw_coded(env, "ERR_IO_RING", "IORING_REGISTER_EVENTFD: %s", strerror(e));
      return NULL;
    }
    r->efd = efd;
  }
  if (!r->poll) {
    uv_loop_t *loop;
    RING_NAPI(napi_get_uv_event_loop(env, &loop));
    r->poll = malloc(sizeof *r->poll);
    if (!r->poll || uv_poll_init(loop, r->poll, r->efd) != 0) {
      free(r->poll);
      r->poll = NULL;
      throw_coded(env, "ERR_IO_RING", "uv_poll_init on the ring's eventfd failed");
      return NULL;
    }
    r->poll->data = r;
    r->loop_ref = true; /* a fresh handle holds the loop; update_loop_ref settles it */
  }
  if (!r->self) RING_NAPI(napi_create_reference(env, argv[0], 1, &r->self));
  int e = uv_poll_start(r->poll, UV_READABLE, on_ring_poll);
  if (e != 0) {
    throw_coded(env, "ERR_IO_RING", "uv_poll_start: %s", uv_strerror(e));
    return NULL;
  }
  r->polling = true;
  update_loop_ref(r);
  return NULL;
}

/* ringStop(h): stops watching the eventfd (completions wait in the CQ for ringReap/ringStart). */
static napi_value js_ring_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  RING_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ring_t *r = get_ring(env, argv[0]);
  if (!r) return NULL;
  if (r->polling) uv_poll_stop(r->poll);
  r->polling = false;
  return NULL;
}

/* ringClose(h): blocks until in-flight ops complete (their completions are discarded: the wrapper
 * collects them first with ringWait), then unmaps the ring. The arena lives on until its
 * ArrayBuffer is collected too. Closing twice is a no-op. */
static napi_value js_ring_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  RING_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ring_t *r = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&r) == napi_ok && r) ring_teardown(env, r);
  return NULL;
}

/* ringStats(h) -> counters of the native side. */
static napi_value js_ring_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], o;
  RING_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  ring_t *r = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&r) != napi_ok || !r) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "not a ring handle");
    return NULL;
  }
  RING_NAPI(napi_create_object(env, &o));
  set_num(env, o, "enters", (double)r->enters);
  set_num(env, o, "sqes", (double)r->sqes_submitted);
  set_num(env, o, "cqes", (double)r->cqes_reaped);
  set_num(env, o, "inFlight", r->in_flight);
  set_num(env, o, "wakeups", (double)r->wakeups);
  set_num(env, o, "spuriousWakeups", (double)r->spurious_wakeups);
  set_num(env, o, "enterRetries", (double)r->enter_retries);
  set_num(env, o, "overflowFlushes", (double)r->overflow_flushes);
  set_num(env, o, "badDescriptors", (double)r->bad_descriptors);
  set_num(env, o, "sqEntries", r->sq_entries);
  set_num(env, o, "cqEntries", r->cq_entries);
  return o;
}

void io_ring_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"ringProbe", NULL, js_ring_probe, NULL, NULL, NULL, napi_default, NULL},
      {"ringOpen", NULL, js_ring_open, NULL, NULL, NULL, napi_default, NULL},
      {"ringTables", NULL, js_ring_tables, NULL, NULL, NULL, napi_default, NULL},
      {"ringSubmit", NULL, js_ring_submit, NULL, NULL, NULL, napi_default, NULL},
      {"ringReap", NULL, js_ring_reap, NULL, NULL, NULL, napi_default, NULL},
      {"ringWait", NULL, js_ring_wait, NULL, NULL, NULL, napi_default, NULL},
      {"ringStart", NULL, js_ring_start, NULL, NULL, NULL, napi_default, NULL},
      {"ringStop", NULL, js_ring_stop, NULL, NULL, NULL, napi_default, NULL},
      {"ringClose", NULL, js_ring_close, NULL, NULL, NULL, napi_default, NULL},
      {"ringStats", NULL, js_ring_stats, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  static const struct {
    const char *name;
    int value;
  } consts[] = {
      {"RING_DESC_STRIDE", RING_DESC_STRIDE}, {"RING_OP_READV", RING_OP_READV},
      {"RING_OP_WRITEV", RING_OP_WRITEV},     {"RING_OP_FDATASYNC", RING_OP_FDATASYNC},
      {"RING_LINK", RING_LINK},
  };
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++) {
    napi_value v;
    napi_create_int32(env, consts[i].value, &v);
    napi_set_named_property(env, exports, consts[i].name, v);
  }
}
