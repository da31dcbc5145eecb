/*
 * aoe-load: a small, independent AoE load generator for bench:target (not part of aoegw).
 *
 * One AF_PACKET socket on one interface, frames sent with sendmmsg and received with recvmmsg in
 * batches (up to 64), `qd` I/Os of `bs` bytes kept in flight for `seconds`, each split into frames
 * of at most min(target's sector count, (MTU - 36) / 512) sectors, at most `window` frames
 * outstanding (≤ the target's buffer count). Sequential or random, reads or writes, LBA48. A frame
 * unanswered for `rto` ms is sent again with a new tag. Prints one JSON object: I/Os, bytes,
 * seconds, MB/s (10^6 B/s), IOPS, latency p50/p99 per I/O in µs, frames, retransmits, errors and
 * its own CPU time. Built by bench/target.ts with gcc into build/aoe-load.
 *
 * usage: aoe-load --iface IF --target MAJOR.MINOR --rw read|write|randread|randwrite --bs BYTES
 *                 --qd N --window FRAMES --seconds S --sectors N [--rto-ms MS] [--seed N]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define AOE_TYPE 0x88a2
#define HDR_END 36 /* Ethernet 14 + AoE 10 + ATA 12 */
#define BATCH 64
#define MAX_WINDOW 4096
#define FINE_US 10000     /* 1 µs buckets up to 10 ms */
#define COARSE_N 100000   /* then 100 µs buckets up to 10 s, then one overflow bucket */

static void die(const char *what) {
  fprintf(stderr, "aoe-load: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void usage(const char *why) {
  fprintf(stderr,
          "aoe-load: %s\nusage: aoe-load --iface IF --target MAJOR.MINOR --rw read|write|randread|randwrite "
          "--bs BYTES --qd N --window FRAMES --seconds S --sectors N [--rto-ms MS] [--seed N]\n",
          why);
  exit(2);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------- state ---------- */

struct io {
  uint64_t lba;
  uint32_t sectors;
  uint32_t next;       /* next relative sector not yet put into a frame */
  uint32_t frames_left; /* frames not yet answered (sent or not) */
  int failed;
  double submitted;
  uint8_t *buf;
  int queued; /* in the send queue */
};

struct slot {
  int io;          /* -1: free */
  uint32_t rel;    /* first relative sector */
  uint32_t count;
  uint32_t tag;
  double sent;
};

static int fd;
static uint8_t my_mac[6], tgt_mac[6];
static unsigned major_, minor_;
static int is_write, is_random;
static uint32_t spf, window_, qd;
static uint64_t region_sectors;
static uint32_t io_sectors;
static double rto = 0.2;

static struct io *ios;
static struct slot *slots;
static int *free_slots, n_free;
static int *sendq; /* I/Os with sectors still to send, FIFO ring of size qd */
static uint32_t sq_head, sq_len;
static uint32_t tag_gen = 1;

static uint8_t txbuf[BATCH][9216 + 64];
static struct iovec txiov[BATCH];
static struct mmsghdr txmsg[BATCH];
static int ntx;
static uint8_t rxbuf[BATCH][9216 + 64];
static struct iovec rxiov[BATCH];
static struct mmsghdr rxmsg[BATCH];

static uint64_t cursor, rng = 0x12345678;
static uint64_t done_ios, done_bytes, frames_sent, retransmits, errors, stale;
static uint32_t *hist, *hist_coarse;
static uint64_t hist_over;
static int running = 1;
static uint32_t in_flight_ios;

static void flush_tx(void) {
  int off = 0;
  while (off < ntx) {
    int n = sendmmsg(fd, txmsg + off, ntx - off, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS || errno == EAGAIN) {
        /* The frames not sent are retransmitted after rto like lost ones. */
        break;
      }
      die("sendmmsg");
    }
    off += n;
  }
  ntx = 0;
}

static void put_u16(uint8_t *p, unsigned v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

static void send_slot(int s, double t) {
  struct slot *sl = &slots[s];
  struct io *o = &ios[sl->io];
  if (ntx == BATCH) flush_tx();
  uint8_t *f = txbuf[ntx];
  tag_gen = (tag_gen + 1) & 0x7fff;
  if (tag_gen == 0) tag_gen = 1;
  sl->tag = (tag_gen << 16) | (uint32_t)s;
  sl->sent = t;
  memcpy(f, tgt_mac, 6);
  memcpy(f + 6, my_mac, 6);
  put_u16(f + 12, AOE_TYPE);
  f[14] = 0x10; /* version 1, no flags */
  f[15] = 0;
  put_u16(f + 16, major_);
  f[18] = minor_;
  f[19] = 0; /* ATA */
  f[20] = sl->tag >> 24;
  f[21] = sl->tag >> 16;
  f[22] = sl->tag >> 8;
  f[23] = sl->tag;
  uint64_t lba = o->lba + sl->rel;
  f[24] = 0x40 | (is_write ? 0x01 : 0); /* LBA48 (+ W) */
  f[25] = 0;
  f[26] = sl->count;
  f[27] = is_write ? 0x34 : 0x24; /* WRITE/READ SECTORS EXT */
  for (int i = 0; i < 6; i++) f[28 + i] = (lba >> (8 * i)) & 0xff;
  f[34] = f[35] = 0;
  size_t len = HDR_END;
  if (is_write) {
    memcpy(f + HDR_END, o->buf + (size_t)sl->rel * 512, (size_t)sl->count * 512);
    len += (size_t)sl->count * 512;
  }
  if (len < 60) {
    memset(f + len, 0, 60 - len);
    len = 60;
  }
  txiov[ntx].iov_base = f;
  txiov[ntx].iov_len = len;
  ntx++;
  frames_sent++;
}

static uint64_t next_lba(void) {
  uint64_t slots_in_region = region_sectors / io_sectors;
  if (is_random) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (rng % slots_in_region) * io_sectors;
  }
  uint64_t l = cursor * io_sectors;
  cursor = (cursor + 1) % slots_in_region;
  return l;
}

static void start_io(int i, double t) {
  struct io *o = &ios[i];
  o->lba = next_lba();
  o->sectors = io_sectors;
  o->next = 0;
  o->frames_left = (io_sectors + spf - 1) / spf;
  o->failed = 0;
  o->submitted = t;
  o->queued = 1;
  sendq[(sq_head + sq_len) % qd] = i;
  sq_len++;
  in_flight_ios++;
}

/* Puts queued I/O sectors into free window slots (in I/O submission order). */
static void pump(double t) {
  while (n_free > 0 && sq_len > 0) {
    int i = sendq[sq_head];
    struct io *o = &ios[i];
    int s = free_slots[--n_free];
    struct slot *sl = &slots[s];
    sl->io = i;
    sl->rel = o->next;
    sl->count = o->sectors - o->next < spf ? o->sectors - o->next : spf;
    o->next += sl->count;
    if (o->next >= o->sectors) {
      o->queued = 0;
      sq_head = (sq_head + 1) % qd;
      sq_len--;
    }
    send_slot(s, t);
  }
}

static void record(double lat_s) {
  double us = lat_s * 1e6;
  if (us < 0) us = 0;
  if (us < FINE_US) hist[(uint32_t)us]++;
  else if (us < FINE_US + (double)COARSE_N * 100) hist_coarse[(uint32_t)((us - FINE_US) / 100)]++;
  else hist_over++;
}

static void finish_io(int i, double t) {
  struct io *o = &ios[i];
  in_flight_ios--;
  if (o->failed) errors++;
  else {
    done_ios++;
    done_bytes += (uint64_t)o->sectors * 512;
    record(t - o->submitted);
  }
  if (running) start_io(i, t);
}

static void on_frame(const uint8_t *f, size_t len, double t) {
  if (len < HDR_END) return;
  if (((f[12] << 8) | f[13]) != AOE_TYPE) return;
  if (!(f[14] & 0x08)) return; /* not a response */
  if ((unsigned)((f[16] << 8) | f[17]) != major_ || f[18] != minor_ || f[19] != 0) return;
  uint32_t tag = ((uint32_t)f[20] << 24) | ((uint32_t)f[21] << 16) | ((uint32_t)f[22] << 8) | f[23];
  uint32_t s = tag & 0xffff;
  if (s >= window_ || slots[s].io < 0 || slots[s].tag != tag) {
    stale++;
    return;
  }
  struct slot *sl = &slots[s];
  struct io *o = &ios[sl->io];
  int bad = (f[14] & 0x04) || (f[27] & 0xa9);
  if (!bad && !is_write) {
    size_t need = (size_t)sl->count * 512;
    if (len < HDR_END + need) bad = 1;
    else memcpy(o->buf + (size_t)sl->rel * 512, f + HDR_END, need);
  }
  if (bad) o->failed = 1;
  int i = sl->io;
  sl->io = -1;
  free_slots[n_free++] = (int)s;
  if (--o->frames_left == 0) finish_io(i, t);
}

static void check_timeouts(double t) {
  for (uint32_t s = 0; s < window_; s++) {
    if (slots[s].io >= 0 && t - slots[s].sent > rto) {
      retransmits++;
      send_slot((int)s, t);
    }
  }
}

static void query_config(void) {
  uint8_t f[60] = {0};
  memset(f, 0xff, 6);
  memcpy(f + 6, my_mac, 6);
  put_u16(f + 12, AOE_TYPE);
  f[14] = 0x10;
  put_u16(f + 16, major_);
  f[18] = minor_;
  f[19] = 1; /* Query Config */
  f[23] = 1;
  for (int attempt = 0; attempt < 10; attempt++) {
    if (send(fd, f, sizeof f, 0) < 0) die("send query config");
    double until = now_s() + 0.3;
    for (;;) {
      double left = until - now_s();
      if (left <= 0) break;
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, (int)(left * 1000) + 1) <= 0) continue;
      uint8_t r[9216 + 64];
      ssize_t n = recv(fd, r, sizeof r, MSG_DONTWAIT);
      if (n < 32) continue;
      if (((r[12] << 8) | r[13]) != AOE_TYPE || !(r[14] & 0x08) || (r[14] & 0x04) || r[19] != 1) continue;
      if ((unsigned)((r[16] << 8) | r[17]) != major_ || r[18] != minor_) continue;
      memcpy(tgt_mac, r + 6, 6);
      unsigned bufcnt = (r[24] << 8) | r[25];
      unsigned sc = r[28];
      if (bufcnt > 0 && window_ > bufcnt) window_ = bufcnt;
      if (sc > 0 && spf > sc) spf = sc;
      return;
    }
  }
  fprintf(stderr, "aoe-load: e%u.%u did not answer Query Config\n", major_, minor_);
  exit(3);
}

/* The latency (µs) below which pct % of the recorded I/Os fall. */
static double percentile(uint64_t total, int pct) {
  uint64_t want = (total * (uint64_t)pct + 99) / 100, acc = 0;
  if (want == 0) return 0;
  for (uint32_t i = 0; i < FINE_US; i++)
    if ((acc += hist[i]) >= want) return i + 0.5;
  for (uint32_t i = 0; i < COARSE_N; i++)
    if ((acc += hist_coarse[i]) >= want) return FINE_US + i * 100.0 + 50;
  return FINE_US + COARSE_N * 100.0;
}

int main(int argc, char **argv) {
  const char *iface = NULL, *rw = NULL;
  uint32_t bs = 0;
  double seconds = 0;
  int have_target = 0;
  qd = 0;
  window_ = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage("missing value");
    if (!strcmp(a, "--iface")) iface = v;
    else if (!strcmp(a, "--target")) have_target = sscanf(v, "%u.%u", &major_, &minor_) == 2;
    else if (!strcmp(a, "--rw")) rw = v;
    else if (!strcmp(a, "--bs")) bs = (uint32_t)strtoul(v, NULL, 0);
    else if (!strcmp(a, "--qd")) qd = (uint32_t)strtoul(v, NULL, 0);
    else if (!strcmp(a, "--window")) window_ = (uint32_t)strtoul(v, NULL, 0);
    else if (!strcmp(a, "--seconds")) seconds = atof(v);
    else if (!strcmp(a, "--sectors")) region_sectors = strtoull(v, NULL, 0);
    else if (!strcmp(a, "--rto-ms")) rto = atof(v) / 1000;
    else if (!strcmp(a, "--seed")) rng = strtoull(v, NULL, 0) | 1;
    else usage("unknown option");
    i++;
  }
  if (!iface || !have_target || !rw || !bs || bs % 512 || !qd || !window_ || seconds <= 0 || !region_sectors)
    usage("missing or bad option");
  if (!strcmp(rw, "read")) is_write = 0, is_random = 0;
  else if (!strcmp(rw, "write")) is_write = 1, is_random = 0;
  else if (!strcmp(rw, "randread")) is_write = 0, is_random = 1;
  else if (!strcmp(rw, "randwrite")) is_write = 1, is_random = 1;
  else usage("--rw: read, write, randread or randwrite");
  if (window_ > MAX_WINDOW) window_ = MAX_WINDOW;
  io_sectors = bs / 512;
  if (region_sectors < io_sectors) usage("region smaller than one I/O");

  fd = socket(AF_PACKET, SOCK_RAW, htons(AOE_TYPE));
  if (fd < 0) die("socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) die("SIOCGIFINDEX");
  int ifindex = ifr.ifr_ifindex;
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) die("SIOCGIFHWADDR");
  memcpy(my_mac, ifr.ifr_hwaddr.sa_data, 6);
  if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) die("SIOCGIFMTU");
  int mtu = ifr.ifr_mtu;
  spf = (uint32_t)((mtu - HDR_END) / 512);
  if (spf > 255) spf = 255;
  if (spf < 1) usage("MTU too small");
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(AOE_TYPE);
  sll.sll_ifindex = ifindex;
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind");
  int one = 1;
  /* Our own transmitted frames would otherwise come back to this socket (kernel >= 4.20). */
  setsockopt(fd, SOL_PACKET, 23 /* PACKET_IGNORE_OUTGOING */, &one, sizeof one);
  int sz = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);

  query_config();

  ios = calloc(qd, sizeof *ios);
  slots = calloc(window_, sizeof *slots);
  free_slots = calloc(window_, sizeof *free_slots);
  sendq = calloc(qd, sizeof *sendq);
  hist = calloc(FINE_US, sizeof *hist);
  hist_coarse = calloc(COARSE_N, sizeof *hist_coarse);
  if (!ios || !slots || !free_slots || !sendq || !hist || !hist_coarse) die("calloc");
  for (uint32_t i = 0; i < qd; i++) {
    ios[i].buf = malloc(bs);
    if (!ios[i].buf) die("malloc");
    for (uint32_t j = 0; j < bs; j += 4) *(uint32_t *)(ios[i].buf + j) = (i * 0x9e3779b1u) ^ j;
  }
  for (uint32_t s = 0; s < window_; s++) {
    slots[s].io = -1;
    free_slots[n_free++] = (int)(window_ - 1 - s);
  }
  for (int i = 0; i < BATCH; i++) {
    txmsg[i].msg_hdr.msg_iov = &txiov[i];
    txmsg[i].msg_hdr.msg_iovlen = 1;
    rxiov[i].iov_base = rxbuf[i];
    rxiov[i].iov_len = sizeof rxbuf[i];
    rxmsg[i].msg_hdr.msg_iov = &rxiov[i];
    rxmsg[i].msg_hdr.msg_iovlen = 1;
  }

  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  double start = now_s();
  double end = start + seconds;
  double last_check = start;
  for (uint32_t i = 0; i < qd; i++) start_io((int)i, start);
  pump(start);
  flush_tx();
  double drain_until = 0;
  while (in_flight_ios > 0) {
    double t = now_s();
    if (running && t >= end) {
      running = 0;
      drain_until = t + 5;
    }
    if (!running && t >= drain_until) break;
    struct pollfd p = {fd, POLLIN, 0};
    int pr = poll(&p, 1, 10);
    if (pr < 0 && errno != EINTR) die("poll");
    if (pr > 0) {
      for (;;) {
        int n = recvmmsg(fd, rxmsg, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          if (errno == EINTR) continue;
          die("recvmmsg");
        }
        t = now_s();
        for (int k = 0; k < n; k++) on_frame(rxbuf[k], rxmsg[k].msg_len, t);
        pump(t);
        flush_tx();
        if (n < BATCH) break;
      }
    }
    t = now_s();
    if (t - last_check >= 0.01) {
      last_check = t;
      check_timeouts(t);
      pump(t);
      flush_tx();
    }
  }
  double finished = now_s();
  getrusage(RUSAGE_SELF, &ru1);
  double el = finished - start;
  /* percentiles (bucket midpoints) */
  uint64_t total = hist_over;
  for (uint32_t i = 0; i < FINE_US; i++) total += hist[i];
  for (uint32_t i = 0; i < COARSE_N; i++) total += hist_coarse[i];
  double p50 = percentile(total, 50), p99 = percentile(total, 99);
  double cu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) * 1e-6;
  double cs = (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1e-6;
  printf("{\"ios\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"mbps\":%.3f,\"iops\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"frames\":%llu,\"retransmits\":%llu,\"stale\":%llu,\"errors\":%llu,\"unfinished\":%u,\"window\":%u,"
         "\"sectors_per_frame\":%u,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f}\n",
         (unsigned long long)done_ios, (unsigned long long)done_bytes, el, done_bytes / 1e6 / el, done_ios / el, p50,
         p99, (unsigned long long)frames_sent, (unsigned long long)retransmits, (unsigned long long)stale,
         (unsigned long long)errors, in_flight_ios, window_, spf, cu, cs);
  return 0;
}
