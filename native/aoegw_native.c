/*
 * aoegw native addon: batched frame and datagram I/O for Node.js.
 *
 * Why it exists: Node has no AF_PACKET, no TAP, and its dgram module allocates per datagram and
 * cannot batch. Here one uv_poll wakeup drains the socket with recvmmsg into a JS-owned arena and
 * calls JS once per batch with a count; JS writes replies into a second arena and sends them
 * with one sendmmsg. No allocation per frame on either side.
 *
 * Memory rule: every JS buffer this file keeps a pointer to is held by a strong napi_ref for as
 * long as the pointer lives (ArrayBuffer backing stores do not move).
 *
 * Kinds of link: KIND_PACKET (AF_PACKET SOCK_RAW bound to one EtherType on one interface),
 * KIND_TAP (/dev/net/tun with IFF_TAP|IFF_NO_PI; read/write per frame, still one JS call per
 * batch), KIND_UDP (IPv4/IPv6 UDP with source/destination addresses in a side arena).
 *
 * Every open accepts an optional network-namespace path: the socket is created inside that
 * namespace (sockets stay in the namespace they were created in), then the thread returns to its
 * own namespace. Tests use it to drive several namespaces from one process.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <node_api.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stddef.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "aead.h"
#include "io_ring.h"
#include "napi_util.h"
#include "packet_ring.h"
#include "sd_notify.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#ifndef PACKET_QDISC_BYPASS
#define PACKET_QDISC_BYPASS 20
#endif
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif
#define SK_MEMINFO_DROPS_IDX 8
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* UDP segmentation offload (send): one sendmsg carries a run of equal-size datagrams to one
 * destination and the kernel cuts it into datagrams (in the device, or in software just before it).
 * Limits: the kernel's UDP_MAX_SEGMENTS (64 before Linux 6.11, 128 since: we stay at 64) and one IP
 * packet's payload (65535 - 20 - 8 = 65507 for IPv4; IPv6 allows 65527, we use the smaller). */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65507
#define GSO_CBUF CMSG_SPACE(sizeof(uint16_t))
/* After the kernel refused a GSO message whose datagrams then went out one by one, the socket sends
 * without GSO for this long (option gsoRetryMs), then tries again: the cause may pass (a route's MTU,
 * an IPsec policy), and one refused message per period is cheap. A kernel without UDP GSO never gets
 * it back. */
#define GSO_RETRY_MS 10000
/* UDP generic receive offload: a GRO socket may get several datagrams of one source coalesced in
 * one message (each gso_size bytes, the last possibly shorter), up to one IP packet. They are
 * received into a pool of messages this large and split into the JS slots. */
#define GRO_BUF 65536
#define GRO_POOL_MAX 64
#define GRO_CBUF CMSG_SPACE(sizeof(int))

/* Per-slot control buffer for PACKET_AUXDATA (the VLAN tag the kernel stripped). */
#define RX_CBUF CMSG_SPACE(sizeof(struct tpacket_auxdata))

/* Link-control words shared with JS (optional `ctl` Int32Array of CTL_WORDS):
 * [CTL_FLAGS] bits set here, cleared by JS; [CTL_MTU] the MTU the addon last read. */
enum { CTL_FLAGS = 0, CTL_MTU = 1, CTL_WORDS = 4 };
#define CTL_MTU_CHANGED 1 /* a send hit EMSGSIZE: the interface MTU shrank under us */

/* UDP address slot layout shared with JS (src/io/udp-address.ts):
 * [0] family (4 or 6, 0 = none) [1] reserved [2..3] port big-endian [4..19] address bytes
 * (IPv4 uses the first 4) [20..23] IPv6 scope id little-endian. */
#define ADDR_SLOT 24

enum kind { KIND_PACKET = 1, KIND_TAP = 2, KIND_UDP = 3 };

enum arena_ref { REF_RX, REF_RX_LEN, REF_TX, REF_TX_LEN, REF_RX_ADDR, REF_TX_ADDR, REF_CTL, REF_RX_IDX, REF_COUNT };

typedef struct link {
  napi_env env;
  enum kind kind;
  int fd;
  int ctl_fd; /* TAP only: a datagram socket in the device's namespace for interface ioctls */
  int ifindex;
  int mtu;
  int ethertype; /* PACKET only: what bind() and rebind() bind to */
  uint8_t mac[6]; /* PACKET only: the interface's MAC as last read (classifies dropped frames) */
  char ifname[IFNAMSIZ];
  uint32_t batch;     /* slots in each arena */
  uint32_t slot_size; /* bytes per slot */
  uint32_t max_rounds; /* receive batches per wakeup before yielding to the event loop */
  uint32_t busy_poll_us; /* keep polling this long after the last frame before sleeping */
  uint8_t *rx, *tx, *rx_addr, *tx_addr;
  int32_t *rx_len, *tx_len;
  int32_t *ctl; /* optional, CTL_WORDS */
  uint8_t *rx_cbuf; /* PACKET only: batch * RX_CBUF */
  int last_raw; /* frames the last recvmmsg returned, before filtering */
  /* UDP only. Send: tx_msgs are rebuilt per batch, message k covering slots tx_first[k] ..
   * tx_first[k] + tx_nseg[k] - 1 (more than one: a GSO message with a UDP_SEGMENT cmsg in tx_cbuf). */
  bool gso; /* send runs with UDP_SEGMENT now (off when asked to, unsupported, or refused lately) */
  uint64_t gso_retry_ns; /* after a refusal: uv_hrtime() at which to try GSO again (0: never) */
  uint64_t gso_backoff_ns; /* how long GSO stays off after a refusal */
  bool gro; /* UDP_GRO is set: receive through the pool */
  uint32_t *tx_first, *tx_nseg;
  uint8_t *tx_cbuf; /* batch * GSO_CBUF */
  /* Receive pool (gro): gro_n messages of GRO_BUF bytes; gro_have of them hold data from the last
   * recvmmsg, split into slots from message gro_next at byte gro_off (what did not fit in the last
   * delivery waits there for the next one; an idle handle makes sure it comes). */
  uint32_t gro_n, gro_have, gro_next, gro_off;
  uint8_t *gro_buf, *gro_cbuf, *gro_addr; /* gro_n * GRO_BUF, * GRO_CBUF, * ADDR_SLOT */
  uint32_t *gro_seg; /* per received message: segment size (its length when not coalesced) */
  struct mmsghdr *gro_msgs;
  struct iovec *gro_iov;
  struct sockaddr_storage *gro_sa;
  uv_idle_t *idle;
  int idling;
  napi_ref refs[REF_COUNT];
  napi_ref on_batch;
  napi_ref self; /* strong while polling, so an active link is never collected */
  napi_async_context async_ctx;
  uv_poll_t *poll;
  int polling;
  int closed;
  struct mmsghdr *rx_msgs, *tx_msgs;
  struct iovec *rx_iov, *tx_iov;
  struct sockaddr_storage *rx_sa, *tx_sa;
  /* counters (read by stats()) */
  uint64_t rx_frames, rx_batches, rx_truncated, rx_errors, wakeups;
  uint64_t tx_frames, tx_batches, tx_dropped, tx_errors, tx_waits;
  uint64_t kernel_packets, kernel_drops;
  uint64_t rx_vlan_dropped, rx_otherhost_dropped, tx_oversized, link_errors;
  uint64_t tx_calls, rx_calls; /* sendmmsg/sendmsg/write and recvmmsg/read calls made */
  uint64_t gso_sends, gso_segments, gso_fallbacks, gro_messages, gro_segments;
  /* Capture mode (tests, diagnostics): deliver every frame, other VLANs and other hosts included. */
  bool monitor;
  /* PACKET only, optional: a TPACKET_V2 receive ring (packet_ring.c). JS then finds batch frame i
   * at ring frame rx_idx[i] (a view it cached per ring frame) instead of in the rx arena. */
  packet_ring_t *ring;
  int32_t *rx_idx;
  bool qdisc_bypass;
} link_t;

/* ---------- error helpers ---------- */

/* Maps an errno from a given operation to one of the project's stable error codes. */
static void throw_errno(napi_env env, int err, const char *what, const char *ifname) {
  const char *code = "ERR_SYSCALL";
  const char *hint = "";
  if (err == EPERM || err == EACCES) {
    if (strstr(what, "tun") != NULL || strstr(what, "TUNSETIFF") != NULL || strstr(what, "SIOCSIF") != NULL) {
      code = "ERR_NO_CAP_NET_ADMIN";
      hint = " (needs CAP_NET_ADMIN: run as root or grant the capability)";
    } else if (strstr(what, "netns") != NULL || strstr(what, "setns") != NULL) {
      code = "ERR_NETNS";
      hint = " (entering a network namespace needs CAP_SYS_ADMIN)";
    } else {
      code = "ERR_NO_CAP_NET_RAW";
      hint = " (raw packet sockets need CAP_NET_RAW: run as root or `setcap cap_net_raw+ep` on node)";
    }
  } else if (err == ENODEV || err == ENXIO) {
    code = strcmp(what, "send") == 0 ? "ERR_INTERFACE_DOWN" : "ERR_NO_SUCH_INTERFACE";
  } else if (err == ENETDOWN) {
    code = "ERR_INTERFACE_DOWN";
  } else if (err == EMSGSIZE) {
    code = "ERR_FRAME_TOO_LARGE";
  } else if (err == EADDRINUSE || err == EADDRNOTAVAIL) {
    code = "ERR_BIND";
  } else if (strstr(what, "netns") != NULL) {
    code = "ERR_NETNS";
  }
  throw_coded(env, code, "%s%s%s: %s%s", what, ifname && *ifname ? " on " : "", ifname ? ifname : "", strerror(err),
              hint);
}

#define NAPI_OK(call)                                                                                               \
  do {                                                                                                              \
    if ((call) != napi_ok) {                                                                                        \
      const napi_extended_error_info *info__;                                                                       \
      napi_get_last_error_info(env, &info__);                                                                       \
      bool pending__;                                                                                               \
      napi_is_exception_pending(env, &pending__);                                                                   \
      if (!pending__) napi_throw_error(env, "ERR_NATIVE_ARGUMENT", info__ && info__->error_message ? info__->error_message : #call); \
      return NULL;                                                                                                  \
    }                                                                                                               \
  } while (0)

/* ---------- namespace switching ---------- */

/* Enters the network namespace at `path` for the calling thread. Returns the fd of the previous
 * namespace (to restore), -1 if no switch was needed, or -errno-1000 on failure. */
static int netns_enter(const char *path) {
  if (path == NULL || *path == 0) return -1;
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return -errno - 1000;
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(self);
    return -e - 1000;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(self);
    return -e - 1000;
  }
  close(target);
  return self;
}

static void netns_leave(int saved) {
  if (saved >= 0) {
    if (setns(saved, CLONE_NEWNET) < 0) {
      /* Cannot happen for a namespace we were just in; if it does, continuing in the wrong
       * namespace would silently misroute every later socket. */
      perror("aoegw: setns back to the original network namespace failed");
      abort();
    }
    close(saved);
  }
}

/* ---------- argument helpers ---------- */

static bool get_prop(napi_env env, napi_value obj, const char *name, napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return false;
  if (napi_get_named_property(env, obj, name, out) != napi_ok) return false;
  napi_valuetype t;
  napi_typeof(env, *out, &t);
  return t != napi_undefined && t != napi_null;
}

static bool is_present(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t != napi_undefined && t != napi_null;
}

/* Like get_string, but a present-and-invalid value (not a string, too long) throws ERR_NETNS instead
 * of silently meaning "no namespace" (which would open the socket in the wrong namespace). */
static bool get_netns(napi_env env, napi_value obj, char *buf, size_t cap) {
  napi_value v;
  buf[0] = 0;
  if (!get_prop(env, obj, "netns", &v)) return true;
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len == 0 || len >= cap) {
    throw_coded(env, "ERR_NETNS", "netns must be a namespace path of 1..%zu characters", cap - 1);
    return false;
  }
  napi_get_value_string_utf8(env, v, buf, cap, &len);
  return true;
}

static bool get_string(napi_env env, napi_value obj, const char *name, char *buf, size_t cap) {
  napi_value v;
  buf[0] = 0;
  if (!get_prop(env, obj, name, &v)) return false;
  size_t len = 0;
  /* Refuse rather than truncate: a truncated interface name could name another interface. */
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len >= cap) return false;
  if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok) return false;
  return true;
}

static int64_t get_int(napi_env env, napi_value obj, const char *name, int64_t dflt) {
  napi_value v;
  if (!get_prop(env, obj, name, &v)) return dflt;
  int64_t out = dflt;
  if (napi_get_value_int64(env, v, &out) != napi_ok) return dflt;
  return out;
}

/* Takes a strong reference to an ArrayBuffer or typed array property and returns its data. */
static void *take_arena(napi_env env, napi_value obj, const char *name, size_t need, napi_ref *ref) {
  napi_value v;
  if (!get_prop(env, obj, name, &v)) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "option %s is required", name);
    return NULL;
  }
  void *data = NULL;
  size_t len = 0;
  bool is_ab = false, is_ta = false;
  napi_is_arraybuffer(env, v, &is_ab);
  napi_is_typedarray(env, v, &is_ta);
  if (is_ab) {
    napi_get_arraybuffer_info(env, v, &data, &len);
  } else if (is_ta) {
    napi_typedarray_type type;
    size_t elems, off;
    napi_value ab;
    napi_get_typedarray_info(env, v, &type, &elems, &data, &ab, &off);
    size_t esz = (type == napi_int32_array || type == napi_uint32_array || type == napi_float32_array) ? 4
                 : (type == napi_int16_array || type == napi_uint16_array)                              ? 2
                 : (type == napi_float64_array || type == napi_bigint64_array || type == napi_biguint64_array) ? 8
                                                                                                               : 1;
    len = elems * esz;
  } else {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "option %s must be an ArrayBuffer or typed array", name);
    return NULL;
  }
  if (len < need) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "option %s is %zu bytes, needs %zu", name, len, need);
    return NULL;
  }
  if (napi_create_reference(env, v, 1, ref) != napi_ok) return NULL;
  return data;
}

/* ---------- interface lookup ---------- */

typedef struct {
  int index, mtu, flags;
  unsigned char mac[6];
} ifinfo_t;

/* Looks an interface up through `sock` (ioctls resolve names in the socket's namespace). */
static int if_lookup(int sock, const char *name, ifinfo_t *out) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (strlen(name) >= IFNAMSIZ) return -ENODEV;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(sock, SIOCGIFINDEX, &ifr) < 0) return -errno;
  out->index = ifr.ifr_ifindex;
  if (ioctl(sock, SIOCGIFMTU, &ifr) < 0) return -errno;
  out->mtu = ifr.ifr_mtu;
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) return -errno;
  out->flags = ifr.ifr_flags;
  if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0) return -errno;
  memcpy(out->mac, ifr.ifr_hwaddr.sa_data, 6);
  return 0;
}

static napi_value ifinfo_to_js(napi_env env, const char *name, const ifinfo_t *ii) {
  napi_value o, v;
  NAPI_OK(napi_create_object(env, &o));
  NAPI_OK(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v));
  NAPI_OK(napi_set_named_property(env, o, "name", v));
  NAPI_OK(napi_create_int32(env, ii->index, &v));
  NAPI_OK(napi_set_named_property(env, o, "index", v));
  NAPI_OK(napi_create_int32(env, ii->mtu, &v));
  NAPI_OK(napi_set_named_property(env, o, "mtu", v));
  void *p;
  NAPI_OK(napi_create_buffer_copy(env, 6, ii->mac, &p, &v));
  NAPI_OK(napi_set_named_property(env, o, "mac", v));
  NAPI_OK(napi_get_boolean(env, (ii->flags & IFF_UP) != 0, &v));
  NAPI_OK(napi_set_named_property(env, o, "up", v));
  NAPI_OK(napi_get_boolean(env, (ii->flags & IFF_RUNNING) != 0, &v));
  NAPI_OK(napi_set_named_property(env, o, "running", v));
  return o;
}

/* Reads the optional netns argument `v` into ns (cap 4096) and opens a datagram socket inside that
 * namespace for interface ioctls. Returns the socket, or -1 with an exception pending. AF_UNIX:
 * the SIOC[GS]IF* ioctls work on a socket of any family, and a service restricted to AF_PACKET and
 * AF_UNIX (deploy/systemd/aoegw-target.service) must still read and set its interfaces. */
static int ctl_socket_in(napi_env env, napi_value v, bool present, char *ns, size_t cap) {
  size_t len = 0;
  ns[0] = 0;
  if (present && is_present(env, v) && (napi_get_value_string_utf8(env, v, ns, cap, &len) != napi_ok || len >= cap - 1)) {
    throw_coded(env, "ERR_NETNS", "netns must be a namespace path shorter than %zu characters", cap - 1);
    return -1;
  }
  int saved = netns_enter(ns);
  if (saved < -1) {
    throw_errno(env, -(saved + 1000), "enter netns", ns);
    return -1;
  }
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int e = s < 0 ? errno : 0;
  netns_leave(saved);
  if (s < 0) throw_errno(env, e, "socket", NULL);
  return s;
}

/* interfaceInfo(name, netnsPath?) -> { name, index, mtu, mac, up, running } */
static napi_value js_interface_info(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[64] = {0}, ns[4096] = {0};
  size_t len;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "interfaceInfo(name[, netns]) needs an interface name");
    return NULL;
  }
  int s = ctl_socket_in(env, argv[1], argc > 1, ns, sizeof ns);
  if (s < 0) return NULL;
  ifinfo_t ii;
  int r = if_lookup(s, name, &ii);
  close(s);
  if (r < 0) {
    throw_coded(env, "ERR_NO_SUCH_INTERFACE", "no interface named %s%s%s: %s", name, *ns ? " in " : "", ns,
                strerror(-r));
    return NULL;
  }
  return ifinfo_to_js(env, name, &ii);
}

/* setInterface(name, { up?: bool, mtu?: number, mac?: Buffer(6) }, netnsPath?) — TAP devices we
 * own, and a link's service MAC (an address that moves with a failover). */
static napi_value js_set_interface(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[64] = {0}, ns[4096] = {0};
  size_t len;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "setInterface(name, opts[, netns])");
    return NULL;
  }
  if (strlen(name) >= IFNAMSIZ) {
    throw_coded(env, "ERR_NO_SUCH_INTERFACE", "interface name '%s' is longer than %d characters", name, IFNAMSIZ - 1);
    return NULL;
  }
  int64_t mtu = get_int(env, argv[1], "mtu", -1);
  napi_value upv;
  int up = -1;
  if (get_prop(env, argv[1], "up", &upv)) {
    bool b;
    napi_get_value_bool(env, upv, &b);
    up = b ? 1 : 0;
  }
  napi_value macv;
  void *mac = NULL;
  size_t mac_len = 0;
  if (get_prop(env, argv[1], "mac", &macv)) {
    bool is_buf = false;
    napi_is_buffer(env, macv, &is_buf);
    if (!is_buf || napi_get_buffer_info(env, macv, &mac, &mac_len) != napi_ok || mac_len != 6) {
      throw_coded(env, "ERR_NATIVE_ARGUMENT", "setInterface: mac must be a 6-byte Buffer");
      return NULL;
    }
  }
  int s = ctl_socket_in(env, argc > 2 ? argv[2] : NULL, argc > 2, ns, sizeof ns);
  if (s < 0) return NULL;
  int e;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (mac != NULL) {
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
    if (ioctl(s, SIOCSIFHWADDR, &ifr) < 0) {
      e = errno;
      close(s);
      throw_errno(env, e, "SIOCSIFHWADDR", name);
      return NULL;
    }
  }
  if (mtu > 0) {
    ifr.ifr_mtu = (int)mtu;
    if (ioctl(s, SIOCSIFMTU, &ifr) < 0) {
      e = errno;
      close(s);
      throw_errno(env, e, "SIOCSIFMTU", name);
      return NULL;
    }
  }
  if (up >= 0) {
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
      e = errno;
      close(s);
      throw_errno(env, e, "SIOCGIFFLAGS", name);
      return NULL;
    }
    if (up) ifr.ifr_flags |= IFF_UP;
    else ifr.ifr_flags &= ~IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
      e = errno;
      close(s);
      throw_errno(env, e, "SIOCSIFFLAGS", name);
      return NULL;
    }
  }
  close(s);
  return NULL;
}

/* ---------- link lifecycle ---------- */

static void link_free_buffers(link_t *l) {
  free(l->rx_msgs);
  free(l->tx_msgs);
  free(l->rx_iov);
  free(l->tx_iov);
  free(l->rx_sa);
  free(l->tx_sa);
  free(l->rx_cbuf);
  l->rx_cbuf = NULL;
  free(l->tx_first);
  free(l->tx_nseg);
  free(l->tx_cbuf);
  l->tx_first = l->tx_nseg = NULL;
  l->tx_cbuf = NULL;
  free(l->gro_buf);
  free(l->gro_cbuf);
  free(l->gro_addr);
  free(l->gro_seg);
  free(l->gro_msgs);
  free(l->gro_iov);
  free(l->gro_sa);
  l->gro_buf = l->gro_cbuf = l->gro_addr = NULL;
  l->gro_seg = NULL;
  l->gro_msgs = NULL;
  l->gro_iov = NULL;
  l->gro_sa = NULL;
  l->gro_n = l->gro_have = l->gro_next = l->gro_off = 0;
  l->rx_msgs = l->tx_msgs = NULL;
  l->rx_iov = l->tx_iov = NULL;
  l->rx_sa = l->tx_sa = NULL;
}


/* Stops polling, closes the fd and drops every reference. Safe to call twice. */
static void link_close(napi_env env, link_t *l) {
  if (l->closed) return;
  l->closed = 1;
  if (l->poll) {
    if (l->polling) uv_poll_stop(l->poll);
    uv_close((uv_handle_t *)l->poll, free_closed_handle);
    l->poll = NULL;
  }
  l->polling = 0;
  if (l->idle) {
    if (l->idling) uv_idle_stop(l->idle);
    uv_close((uv_handle_t *)l->idle, free_closed_handle);
    l->idle = NULL;
  }
  l->idling = 0;
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
  if (l->ctl_fd >= 0) close(l->ctl_fd);
  l->ctl_fd = -1;
  for (int i = 0; i < REF_COUNT; i++) {
    if (l->refs[i]) napi_delete_reference(env, l->refs[i]);
    l->refs[i] = NULL;
  }
  l->rx = l->tx = l->rx_addr = l->tx_addr = NULL;
  l->rx_len = l->tx_len = NULL;
  l->ctl = NULL;
  l->rx_idx = NULL;
  if (l->ring) packet_ring_unref(l->ring);
  l->ring = NULL;
  if (l->on_batch) napi_delete_reference(env, l->on_batch);
  l->on_batch = NULL;
  if (l->self) napi_delete_reference(env, l->self);
  l->self = NULL;
  if (l->async_ctx) napi_async_destroy(env, l->async_ctx);
  l->async_ctx = NULL;
  link_free_buffers(l);
}

static void link_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  link_t *l = data;
  link_close(env, l);
  free(l);
}

static link_t *get_link(napi_env env, napi_value v) {
  link_t *l = NULL;
  if (napi_get_value_external(env, v, (void **)&l) != napi_ok || l == NULL) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "not a link handle");
    return NULL;
  }
  if (l->closed) {
    throw_coded(env, "ERR_CLOSED", "link is closed");
    return NULL;
  }
  return l;
}

/* Reads the common arena options and prepares the mmsghdr arrays. */
static bool link_setup_arenas(napi_env env, link_t *l, napi_value opts) {
  l->batch = (uint32_t)get_int(env, opts, "batch", 64);
  l->slot_size = (uint32_t)get_int(env, opts, "slotSize", 9216);
  l->max_rounds = (uint32_t)get_int(env, opts, "maxBatchesPerWakeup", 16);
  l->busy_poll_us = (uint32_t)get_int(env, opts, "busyPollUs", 0);
  if (l->busy_poll_us > 1000) l->busy_poll_us = 1000;
  if (l->batch < 1 || l->batch > 1024 || l->slot_size < 64 || l->slot_size > 131072) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "batch must be 1..1024 and slotSize 64..131072 (got %u, %u)", l->batch,
                l->slot_size);
    return false;
  }
  size_t bytes = (size_t)l->batch * l->slot_size;
  if (!(l->rx = take_arena(env, opts, "rx", bytes, &l->refs[REF_RX]))) return false;
  if (!(l->rx_len = take_arena(env, opts, "rxLen", l->batch * 4, &l->refs[REF_RX_LEN]))) return false;
  if (!(l->tx = take_arena(env, opts, "tx", bytes, &l->refs[REF_TX]))) return false;
  if (!(l->tx_len = take_arena(env, opts, "txLen", l->batch * 4, &l->refs[REF_TX_LEN]))) return false;
  if (l->kind == KIND_UDP) {
    if (!(l->rx_addr = take_arena(env, opts, "rxAddr", l->batch * ADDR_SLOT, &l->refs[REF_RX_ADDR]))) return false;
    if (!(l->tx_addr = take_arena(env, opts, "txAddr", l->batch * ADDR_SLOT, &l->refs[REF_TX_ADDR]))) return false;
  }
  napi_value ctlv;
  if (get_prop(env, opts, "ctl", &ctlv) && !(l->ctl = take_arena(env, opts, "ctl", CTL_WORDS * 4, &l->refs[REF_CTL])))
    return false;
  if (l->kind == KIND_PACKET && !(l->rx_cbuf = calloc(l->batch, RX_CBUF))) {
    throw_coded(env, "ERR_SYSCALL", "out of memory");
    return false;
  }
  if (l->kind == KIND_UDP) {
    l->tx_first = calloc(l->batch, sizeof *l->tx_first);
    l->tx_nseg = calloc(l->batch, sizeof *l->tx_nseg);
    l->tx_cbuf = calloc(l->batch, GSO_CBUF);
    if (!l->tx_first || !l->tx_nseg || !l->tx_cbuf) {
      throw_coded(env, "ERR_SYSCALL", "out of memory");
      return false;
    }
  }
  l->rx_msgs = calloc(l->batch, sizeof *l->rx_msgs);
  l->tx_msgs = calloc(l->batch, sizeof *l->tx_msgs);
  l->rx_iov = calloc(l->batch, sizeof *l->rx_iov);
  l->tx_iov = calloc(l->batch, sizeof *l->tx_iov);
  l->rx_sa = calloc(l->batch, sizeof *l->rx_sa);
  l->tx_sa = calloc(l->batch, sizeof *l->tx_sa);
  if (!l->rx_msgs || !l->tx_msgs || !l->rx_iov || !l->tx_iov || !l->rx_sa || !l->tx_sa) {
    throw_coded(env, "ERR_SYSCALL", "out of memory");
    return false;
  }
  for (uint32_t i = 0; i < l->batch; i++) {
    l->rx_iov[i].iov_base = l->rx + (size_t)i * l->slot_size;
    l->rx_iov[i].iov_len = l->slot_size;
    l->rx_msgs[i].msg_hdr.msg_iov = &l->rx_iov[i];
    l->rx_msgs[i].msg_hdr.msg_iovlen = 1;
    l->tx_iov[i].iov_base = l->tx + (size_t)i * l->slot_size;
    l->tx_msgs[i].msg_hdr.msg_iov = &l->tx_iov[i];
    l->tx_msgs[i].msg_hdr.msg_iovlen = 1;
    if (l->kind == KIND_UDP) {
      l->rx_msgs[i].msg_hdr.msg_name = &l->rx_sa[i];
      l->tx_msgs[i].msg_hdr.msg_name = &l->tx_sa[i];
    }
    if (l->kind == KIND_PACKET) {
      /* The sockaddr_ll says who the frame was for (sll_pkttype); the auxdata carries the VLAN tag. */
      l->rx_msgs[i].msg_hdr.msg_name = &l->rx_sa[i];
      l->rx_msgs[i].msg_hdr.msg_control = l->rx_cbuf + (size_t)i * RX_CBUF;
    }
  }
  return true;
}

/* A fresh, unopened link of `kind` (fds -1), or NULL with an exception pending. */
static link_t *link_new(napi_env env, enum kind kind) {
  link_t *l = calloc(1, sizeof *l);
  if (!l) {
    throw_coded(env, "ERR_SYSCALL", "out of memory");
    return NULL;
  }
  l->env = env;
  l->kind = kind;
  l->fd = -1;
  l->ctl_fd = -1;
  return l;
}

/* Undoes a failed open: releases what link_new and the partial open acquired. */
static void link_discard(napi_env env, link_t *l) {
  link_close(env, l);
  free(l);
}

static napi_value link_wrap(napi_env env, link_t *l) {
  napi_value ext, name;
  if (napi_create_external(env, l, link_finalize, NULL, &ext) != napi_ok) {
    link_discard(env, l);
    return NULL;
  }
  NAPI_OK(napi_create_string_utf8(env, "aoegw-link", NAPI_AUTO_LENGTH, &name));
  NAPI_OK(napi_async_init(env, ext, name, &l->async_ctx));
  return ext;
}

static void set_bufsizes(int fd, int64_t rcvbuf, int64_t sndbuf) {
  /* The FORCE variants ignore net.core.*mem_max (root only); fall back to the capped ones. */
  if (rcvbuf > 0) {
    int v = (int)rcvbuf;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  }
  if (sndbuf > 0) {
    int v = (int)sndbuf;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
  }
}

/* openPacket({ ifname, netns?, ethertype?, batch, slotSize, rx, rxLen, tx, txLen, rcvbuf?, sndbuf? })
 * -> handle. Binds an AF_PACKET raw socket to one EtherType on one interface. */
static napi_value js_open_packet(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts;
  NAPI_OK(napi_get_cb_info(env, info, &argc, &opts, NULL, NULL));
  link_t *l = link_new(env, KIND_PACKET);
  if (!l) return NULL;
  char ns[4096];
  get_string(env, opts, "ifname", l->ifname, sizeof l->ifname);
  if (!get_netns(env, opts, ns, sizeof ns)) goto fail;
  int ethertype = (int)get_int(env, opts, "ethertype", 0x88A2);
  l->monitor = get_int(env, opts, "monitor", 0) != 0;
  if (!link_setup_arenas(env, l, opts)) goto fail;

  int saved = netns_enter(ns);
  if (saved < -1) {
    throw_errno(env, -(saved + 1000), "enter netns", ns);
    goto fail;
  }
  /* Protocol 0 at creation, the EtherType at bind: no frame from another interface can slip in
   * between socket() and bind(). */
  l->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int e = l->fd < 0 ? errno : 0;
  netns_leave(saved);
  if (l->fd < 0) {
    throw_errno(env, e, "socket(AF_PACKET)", l->ifname);
    goto fail;
  }
  ifinfo_t ii;
  int r = if_lookup(l->fd, l->ifname, &ii);
  if (r < 0) {
    throw_coded(env, "ERR_NO_SUCH_INTERFACE", "no interface named '%s'%s%s: %s", l->ifname, *ns ? " in " : "", ns,
                strerror(-r));
    goto fail;
  }
  if (!(ii.flags & IFF_UP)) {
    throw_coded(env, "ERR_INTERFACE_DOWN", "interface %s is down (ip link set %s up)", l->ifname, l->ifname);
    goto fail;
  }
  l->ifindex = ii.index;
  l->mtu = ii.mtu;
  l->ethertype = ethertype;
  memcpy(l->mac, ii.mac, 6);
  if (l->ctl) l->ctl[CTL_MTU] = l->mtu;
  if ((uint32_t)l->mtu + 14 > l->slot_size) {
    throw_coded(env, "ERR_FRAME_TOO_LARGE", "interface %s has MTU %d but slots hold only %u bytes", l->ifname, l->mtu,
                l->slot_size);
    goto fail;
  }
  int one = 1;
  setsockopt(l->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one); /* best effort: kernel >= 4.20 */
  /* The kernel strips an 802.1Q tag before a packet socket sees the frame; only the auxdata tells
   * a frame from another VLAN apart from a native one. Without it we cannot filter: refuse. */
  if (setsockopt(l->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) {
    throw_errno(env, errno, "setsockopt(PACKET_AUXDATA)", l->ifname);
    goto fail;
  }
  int64_t rcvbuf = get_int(env, opts, "rcvbuf", 4 << 20);
  set_bufsizes(l->fd, rcvbuf, get_int(env, opts, "sndbuf", 4 << 20));
  /* Transmit straight to the driver, skipping the qdisc layer (no queueing discipline applies to
   * these frames; a full driver queue shows as ENOBUFS/EAGAIN, which send() already waits on). */
  if (get_int(env, opts, "qdiscBypass", 0) != 0)
    l->qdisc_bypass = setsockopt(l->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) == 0;
  /* Receive ring: asked for by passing rxIdx (and rxRing != 0). A kernel that refuses it leaves the
   * recvmmsg path in place; ringInfo() then returns null and JS keeps using the rx arena. Set up
   * before bind, so no frame is queued on the socket's ordinary receive queue meanwhile. */
  napi_value idxv;
  if (get_int(env, opts, "rxRing", 1) != 0 && get_prop(env, opts, "rxIdx", &idxv)) {
    if (!(l->rx_idx = take_arena(env, opts, "rxIdx", l->batch * 4, &l->refs[REF_RX_IDX]))) goto fail;
    int rerr = 0;
    /* At least two batches: the frames of one batch stay held while its handler (and the
     * microtasks after it) run, and the next batch arrives meanwhile. */
    l->ring = packet_ring_open(l->fd, l->slot_size, rcvbuf > 0 ? (size_t)rcvbuf : (size_t)4 << 20, 2 * l->batch, &rerr);
    if (!l->ring) l->rx_idx = NULL;
  }
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons((uint16_t)ethertype);
  sll.sll_ifindex = ii.index;
  if (bind(l->fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    throw_errno(env, errno, "bind(AF_PACKET)", l->ifname);
    goto fail;
  }
  return link_wrap(env, l);
fail:
  link_discard(env, l);
  return NULL;
}

/* openTap({ name?, netns?, batch, slotSize, rx, rxLen, tx, txLen }) -> handle; the kernel picks a
 * name if none is given (read it back with linkInfo). The device is left down: the caller sets
 * MTU and brings it up with setInterface. */
static napi_value js_open_tap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts;
  NAPI_OK(napi_get_cb_info(env, info, &argc, &opts, NULL, NULL));
  link_t *l = link_new(env, KIND_TAP);
  if (!l) return NULL;
  char ns[4096];
  get_string(env, opts, "name", l->ifname, sizeof l->ifname);
  if (!get_netns(env, opts, ns, sizeof ns)) goto fail;
  if (!link_setup_arenas(env, l, opts)) goto fail;
  int saved = netns_enter(ns);
  if (saved < -1) {
    throw_errno(env, -(saved + 1000), "enter netns", ns);
    goto fail;
  }
  l->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  int e = l->fd < 0 ? errno : 0;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", l->ifname);
  /* TUNSETIFF creates the device in the thread's current namespace, so it runs before leaving. */
  if (l->fd >= 0 && ioctl(l->fd, TUNSETIFF, &ifr) < 0) e = errno;
  if (l->fd >= 0 && e == 0) l->ctl_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  netns_leave(saved);
  if (l->fd < 0) {
    throw_errno(env, e, "open /dev/net/tun", l->ifname);
    goto fail;
  }
  if (e != 0) {
    throw_errno(env, e, "TUNSETIFF", l->ifname);
    goto fail;
  }
  memcpy(l->ifname, ifr.ifr_name, IFNAMSIZ);
  l->ifname[IFNAMSIZ - 1] = 0;
  return link_wrap(env, l);
fail:
  link_discard(env, l);
  return NULL;
}

static int sa_from_slot(const uint8_t *slot, struct sockaddr_storage *sa) {
  memset(sa, 0, sizeof *sa);
  uint16_t port = (uint16_t)((slot[2] << 8) | slot[3]);
  if (slot[0] == 4) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    memcpy(&s4->sin_addr, slot + 4, 4);
    return sizeof *s4;
  }
  if (slot[0] == 6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    memcpy(&s6->sin6_addr, slot + 4, 16);
    s6->sin6_scope_id = (uint32_t)slot[20] | ((uint32_t)slot[21] << 8) | ((uint32_t)slot[22] << 16) |
                        ((uint32_t)slot[23] << 24);
    return sizeof *s6;
  }
  return 0;
}

static void sa_to_slot(const struct sockaddr_storage *sa, uint8_t *slot) {
  memset(slot, 0, ADDR_SLOT);
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    uint16_t port = ntohs(s4->sin_port);
    slot[0] = 4;
    slot[2] = port >> 8;
    slot[3] = port & 0xff;
    memcpy(slot + 4, &s4->sin_addr, 4);
  } else if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    uint16_t port = ntohs(s6->sin6_port);
    slot[0] = 6;
    slot[2] = port >> 8;
    slot[3] = port & 0xff;
    memcpy(slot + 4, &s6->sin6_addr, 16);
    uint32_t sc = s6->sin6_scope_id;
    slot[20] = sc & 0xff;
    slot[21] = (sc >> 8) & 0xff;
    slot[22] = (sc >> 16) & 0xff;
    slot[23] = (sc >> 24) & 0xff;
  }
}

/* Turns UDP segmentation offload (send) and generic receive offload (receive) on as asked and as
 * far as the kernel knows them (UDP_SEGMENT: Linux 4.18, UDP_GRO: 5.0). GSO needs nothing on the
 * socket (each message carries its segment size), but setting a segment size of 0 tells whether the
 * kernel knows the option at all. GRO needs the receive pool; a kernel that refuses the option
 * leaves the link on direct receive. Returns false (exception pending) only when out of memory. */
static bool udp_setup_offloads(napi_env env, link_t *l, bool want_gso, bool want_gro) {
  int zero = 0, one = 1;
  l->gso = want_gso && setsockopt(l->fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
  if (!want_gro || setsockopt(l->fd, SOL_UDP, UDP_GRO, &one, sizeof one) < 0) return true;
  uint32_t n = l->batch < GRO_POOL_MAX ? l->batch : GRO_POOL_MAX;
  /* Pages of the pool are only touched as datagrams land in them. */
  l->gro_buf = malloc((size_t)n * GRO_BUF);
  l->gro_cbuf = calloc(n, GRO_CBUF);
  l->gro_addr = calloc(n, ADDR_SLOT);
  l->gro_seg = calloc(n, sizeof *l->gro_seg);
  l->gro_msgs = calloc(n, sizeof *l->gro_msgs);
  l->gro_iov = calloc(n, sizeof *l->gro_iov);
  l->gro_sa = calloc(n, sizeof *l->gro_sa);
  if (!l->gro_buf || !l->gro_cbuf || !l->gro_addr || !l->gro_seg || !l->gro_msgs || !l->gro_iov || !l->gro_sa) {
    throw_coded(env, "ERR_SYSCALL", "out of memory");
    return false;
  }
  for (uint32_t i = 0; i < n; i++) {
    l->gro_iov[i].iov_base = l->gro_buf + (size_t)i * GRO_BUF;
    l->gro_iov[i].iov_len = GRO_BUF;
    l->gro_msgs[i].msg_hdr.msg_iov = &l->gro_iov[i];
    l->gro_msgs[i].msg_hdr.msg_iovlen = 1;
    l->gro_msgs[i].msg_hdr.msg_name = &l->gro_sa[i];
    l->gro_msgs[i].msg_hdr.msg_control = l->gro_cbuf + (size_t)i * GRO_CBUF;
  }
  l->gro_n = n;
  l->gro = true;
  return true;
}

/* openUdp({ family: 4|6, address?, port, netns?, batch, slotSize, rx, rxLen, tx, txLen, rxAddr, txAddr,
 *           rcvbuf?, sndbuf?, gso?: 0|1 (default 1), gro?: 0|1 (default 1), gsoRetryMs? }) -> handle */
static napi_value js_open_udp(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts;
  NAPI_OK(napi_get_cb_info(env, info, &argc, &opts, NULL, NULL));
  link_t *l = link_new(env, KIND_UDP);
  if (!l) return NULL;
  char ns[4096], addr[INET6_ADDRSTRLEN + 1];
  if (!get_netns(env, opts, ns, sizeof ns)) goto fail;
  if (!get_string(env, opts, "address", addr, sizeof addr)) addr[0] = 0;
  int family = (int)get_int(env, opts, "family", 4);
  int port = (int)get_int(env, opts, "port", 0);
  snprintf(l->ifname, sizeof l->ifname, "udp%d", family);
  if (!link_setup_arenas(env, l, opts)) goto fail;
  struct sockaddr_storage sa;
  memset(&sa, 0, sizeof sa);
  socklen_t salen;
  if (family == 6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    if (*addr && inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) {
      throw_coded(env, "ERR_BIND", "'%s' is not an IPv6 address", addr);
      goto fail;
    }
    salen = sizeof *s6;
  } else if (family == 4) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (*addr && inet_pton(AF_INET, addr, &s4->sin_addr) != 1) {
      throw_coded(env, "ERR_BIND", "'%s' is not an IPv4 address", addr);
      goto fail;
    }
    salen = sizeof *s4;
  } else {
    throw_coded(env, "ERR_BIND", "family must be 4 or 6, got %d", family);
    goto fail;
  }
  int saved = netns_enter(ns);
  if (saved < -1) {
    throw_errno(env, -(saved + 1000), "enter netns", ns);
    goto fail;
  }
  l->fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int e = l->fd < 0 ? errno : 0;
  netns_leave(saved);
  if (l->fd < 0) {
    throw_errno(env, e, "socket(UDP)", NULL);
    goto fail;
  }
  if (family == 6) {
    int only = 1; /* one socket per family: predictable, no v4-mapped surprises */
    setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only);
  }
  set_bufsizes(l->fd, get_int(env, opts, "rcvbuf", 4 << 20), get_int(env, opts, "sndbuf", 4 << 20));
  if (!udp_setup_offloads(env, l, get_int(env, opts, "gso", 1) != 0, get_int(env, opts, "gro", 1) != 0)) goto fail;
  int64_t retry_ms = get_int(env, opts, "gsoRetryMs", GSO_RETRY_MS);
  l->gso_backoff_ns = (uint64_t)(retry_ms < 1 ? 1 : retry_ms > 3600000 ? 3600000 : retry_ms) * 1000000ull;
  if (bind(l->fd, (struct sockaddr *)&sa, salen) < 0) {
    e = errno;
    throw_coded(env, "ERR_BIND", "cannot bind UDP %s%s%s:%d: %s", family == 6 ? "[" : "", *addr ? addr : (family == 6 ? "::" : "0.0.0.0"),
                family == 6 ? "]" : "", port, strerror(e));
    goto fail;
  }
  return link_wrap(env, l);
fail:
  link_discard(env, l);
  return NULL;
}

/* ---------- receive ---------- */

/* True when the kernel stripped an 802.1Q/802.1ad tag from this frame: it came from a VLAN, not
 * from the native (untagged) segment this link serves. Kernels that still pass the tag in the
 * auxdata are caught here; newer ones re-mark such frames PACKET_OTHERHOST (see packet_filter). */
static bool frame_was_tagged(struct msghdr *mh) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
    if (c->cmsg_len < CMSG_LEN(sizeof(struct tpacket_auxdata))) continue;
    struct tpacket_auxdata aux;
    memcpy(&aux, CMSG_DATA(c), sizeof aux);
    /* VID 0 is a priority tag on a native frame (802.1Q): newer kernels pass those as native too. */
    return (aux.tp_vlan_tci & 0x0fff) != 0;
  }
  return false;
}

/* Drops (and counts) the frames of a packet-socket batch that this host must not act on: frames
 * from another VLAN, and frames for another host's MAC (seen in promiscuous mode, or through a
 * bridge flooding unknown unicast). The kept frames are moved down so slots 0..k-1 stay dense;
 * copying only happens after a dropped frame, i.e. on attack traffic. Returns k. */
static int packet_filter(link_t *l, int n) {
  int k = 0;
  for (int i = 0; i < n; i++) {
    struct msghdr *mh = &l->rx_msgs[i].msg_hdr;
    const struct sockaddr_ll *sll = (const struct sockaddr_ll *)&l->rx_sa[i];
    uint32_t len = l->rx_msgs[i].msg_len;
    if (l->monitor) goto keep;
    if (frame_was_tagged(mh)) {
      l->rx_vlan_dropped++;
      continue;
    }
    if (mh->msg_namelen >= offsetof(struct sockaddr_ll, sll_pkttype) + 1 && sll->sll_pkttype != PACKET_HOST &&
        sll->sll_pkttype != PACKET_BROADCAST && sll->sll_pkttype != PACKET_MULTICAST) {
      /* Newer kernels hand a frame of a VLAN that has no device here to protocol sockets untagged
       * but re-marked PACKET_OTHERHOST. The Ethernet layer only marks a frame OTHERHOST when its
       * destination is another unicast MAC, so OTHERHOST with our MAC or a group address as the
       * destination can only be such a VLAN frame: count it as one. */
      const uint8_t *dst = l->rx + (size_t)i * l->slot_size;
      bool vlan = sll->sll_pkttype == PACKET_OTHERHOST && len >= 6 && ((dst[0] & 1) || memcmp(dst, l->mac, 6) == 0);
      if (vlan) l->rx_vlan_dropped++;
      else l->rx_otherhost_dropped++;
      continue;
    }
  keep:;
    bool trunc = len > l->slot_size || (mh->msg_flags & MSG_TRUNC);
    if (trunc) l->rx_truncated++;
    if (k != i && !trunc) memcpy(l->rx + (size_t)k * l->slot_size, l->rx + (size_t)i * l->slot_size, len);
    /* A negative length tells JS "this slot held a truncated frame of that size": skip it. */
    l->rx_len[k++] = trunc ? -(int32_t)(len > 0x7fffffff ? 0x7fffffff : len) : (int32_t)len;
  }
  return k;
}

/* Receive from the TPACKET_V2 ring: the frames the kernel handed over since head (at most
 * `batch`), filtered like packet_filter, their ring indices in rx_idx and lengths in rx_len. No
 * syscall and no copy: JS reads the frames in place. They stay ours until packet_ring_release
 * (after the JS call, or at the next receive). Returns the count kept; last_raw says how many
 * frames were taken. */
static int ring_recv(link_t *l) {
  packet_ring_t *r = l->ring;
  packet_ring_release(r);
  uint32_t n = 0, max = l->batch < r->frames ? l->batch : r->frames; /* never the same frame twice */
  int k = 0;
  while (n < max) {
    uint32_t idx = (r->head + n) % r->frames;
    struct tpacket2_hdr *h = packet_ring_frame(r, idx);
    uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    if (!(st & TP_STATUS_USER)) break;
    n++;
    const struct sockaddr_ll *sll = (const struct sockaddr_ll *)((uint8_t *)h + TPACKET_ALIGN(sizeof *h));
    uint32_t len = h->tp_len, snap = h->tp_snaplen;
    if (h->tp_mac != r->data_off) {
      /* Not where every other frame's data starts (and the cached views point): move it there
       * when it fits, else the frame is unusable. Never seen on Ethernet; here for safety. */
      if (h->tp_mac < r->data_off || (size_t)r->data_off + snap > r->frame_size) {
        l->rx_errors++;
        continue;
      }
      memmove((uint8_t *)h + r->data_off, (uint8_t *)h + h->tp_mac, snap);
    }
    const uint8_t *dst = (const uint8_t *)h + r->data_off;
    if (!l->monitor) {
      if ((st & TP_STATUS_VLAN_VALID) && (h->tp_vlan_tci & 0x0fff) != 0) {
        l->rx_vlan_dropped++;
        continue;
      }
      if (sll->sll_pkttype != PACKET_HOST && sll->sll_pkttype != PACKET_BROADCAST &&
          sll->sll_pkttype != PACKET_MULTICAST) {
        /* As in packet_filter: OTHERHOST to our MAC or a group address is another VLAN's frame. */
        bool vlan = sll->sll_pkttype == PACKET_OTHERHOST && snap >= 6 && ((dst[0] & 1) || memcmp(dst, l->mac, 6) == 0);
        if (vlan) l->rx_vlan_dropped++;
        else l->rx_otherhost_dropped++;
        continue;
      }
    }
    bool trunc = snap < len || len > l->slot_size;
    if (trunc) l->rx_truncated++;
    l->rx_idx[k] = (int32_t)idx;
    l->rx_len[k++] = trunc ? -(int32_t)(len > 0x7fffffff ? 0x7fffffff : len) : (int32_t)len;
  }
  r->held = n;
  l->last_raw = (int)n;
  return k;
}

/* Splits what the pool holds into slots k.. (one datagram per slot, each with its message's source
 * address) until the slots or the pool run out. Returns the new k. */
static uint32_t gro_drain(link_t *l, uint32_t k) {
  while (l->gro_next < l->gro_have && k < l->batch) {
    uint32_t m = l->gro_next;
    uint32_t len = l->gro_msgs[m].msg_len;
    uint32_t seg = l->gro_seg[m];
    uint32_t sl = len - l->gro_off < seg ? len - l->gro_off : seg;
    const uint8_t *src = l->gro_buf + (size_t)m * GRO_BUF + l->gro_off;
    bool last = l->gro_off + sl >= len;
    /* A datagram longer than a slot, or the tail of a message the pool cut (cannot happen with
     * kernel limits as they are): a negative length tells JS to skip it, as on direct receive. */
    bool trunc = sl > l->slot_size || (last && (l->gro_msgs[m].msg_hdr.msg_flags & MSG_TRUNC));
    if (trunc) {
      l->rx_truncated++;
      l->rx_len[k] = -(int32_t)sl;
    } else {
      memcpy(l->rx + (size_t)k * l->slot_size, src, sl);
      l->rx_len[k] = (int32_t)sl;
    }
    memcpy(l->rx_addr + (size_t)k * ADDR_SLOT, l->gro_addr + (size_t)m * ADDR_SLOT, ADDR_SLOT);
    k++;
    if (last) {
      l->gro_next++;
      l->gro_off = 0;
    } else {
      l->gro_off += sl;
    }
  }
  return k;
}

static bool gro_pending(const link_t *l) { return l->gro && l->gro_next < l->gro_have; }

/* Receive for a GRO socket: first what an earlier recvmmsg left in the pool, then as many messages as
 * there are free slots (each holds at least one datagram), split. Whatever does not fit stays in the
 * pool for the next call: nothing is dropped here. */
static int udp_recv_gro(link_t *l) {
  uint32_t k = gro_drain(l, 0);
  int err = 0;
  while (k < l->batch) {
    uint32_t want = l->batch - k < l->gro_n ? l->batch - k : l->gro_n;
    for (uint32_t i = 0; i < want; i++) {
      l->gro_msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
      l->gro_msgs[i].msg_hdr.msg_controllen = GRO_CBUF;
      l->gro_msgs[i].msg_hdr.msg_flags = 0;
    }
    int n;
    do {
      n = recvmmsg(l->fd, l->gro_msgs, want, MSG_DONTWAIT, NULL);
      l->rx_calls++;
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      break;
    }
    for (int i = 0; i < n; i++) {
      struct msghdr *mh = &l->gro_msgs[i].msg_hdr;
      uint32_t len = l->gro_msgs[i].msg_len, seg = 0;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
          int g;
          memcpy(&g, CMSG_DATA(c), sizeof g);
          if (g > 0) seg = (uint32_t)g;
        }
      }
      if (seg == 0 || seg >= len) {
        seg = len > 0 ? len : 1; /* one datagram (a zero-length one is delivered as such) */
      } else {
        uint32_t segs = (len + seg - 1) / seg;
        l->gro_messages++;
        l->gro_segments += segs;
      }
      l->gro_seg[i] = seg;
      sa_to_slot(&l->gro_sa[i], l->gro_addr + (size_t)i * ADDR_SLOT);
    }
    l->gro_have = (uint32_t)n;
    l->gro_next = 0;
    l->gro_off = 0;
    k = gro_drain(l, k);
    if ((uint32_t)n < want) break;
  }
  l->last_raw = (int)k;
  if (k == 0 && err) return -err;
  return (int)k;
}

/* Fills up to `batch` slots. Returns the count, 0 when nothing is waiting (or everything received
 * was filtered: see last_raw), or -errno. */
static int link_recv(link_t *l) {
  if (l->ring) return ring_recv(l);
  if (l->kind == KIND_UDP && l->gro) return udp_recv_gro(l);
  if (l->kind == KIND_TAP) {
    uint32_t n = 0;
    uint8_t spare;
    while (n < l->batch) {
      /* tun read() returns only what it copied, so a frame longer than the slot would look
       * whole: read one spare byte past the slot, and if it is used the frame was truncated. */
      struct iovec iov[2] = {{l->rx + (size_t)n * l->slot_size, l->slot_size}, {&spare, 1}};
      ssize_t r = readv(l->fd, iov, 2);
      l->rx_calls++;
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return n > 0 ? (int)n : -errno;
      }
      if ((size_t)r > l->slot_size) {
        l->rx_len[n++] = -(int32_t)r; /* at least this long; the true length is unknown */
        l->rx_truncated++;
      } else {
        l->rx_len[n++] = (int32_t)r;
      }
    }
    return (int)n;
  }
  if (l->kind == KIND_UDP || l->kind == KIND_PACKET) {
    for (uint32_t i = 0; i < l->batch; i++) {
      l->rx_msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
      l->rx_msgs[i].msg_hdr.msg_flags = 0;
      if (l->kind == KIND_PACKET) l->rx_msgs[i].msg_hdr.msg_controllen = RX_CBUF;
    }
  }
  int n;
  do {
    /* MSG_TRUNC makes packet sockets report a frame's real length even when it did not fit. */
    n = recvmmsg(l->fd, l->rx_msgs, l->batch, MSG_DONTWAIT | (l->kind == KIND_PACKET ? MSG_TRUNC : 0), NULL);
    l->rx_calls++;
  } while (n < 0 && errno == EINTR);
  l->last_raw = n > 0 ? n : 0;
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
  if (l->kind == KIND_PACKET) return packet_filter(l, n);
  for (int i = 0; i < n; i++) {
    uint32_t len = l->rx_msgs[i].msg_len;
    bool trunc = len > l->slot_size || (l->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC);
    /* A negative length tells JS "this slot held a truncated frame of that size": skip it. */
    l->rx_len[i] = trunc ? -(int32_t)(len > 0x7fffffff ? 0x7fffffff : len) : (int32_t)len;
    if (trunc) l->rx_truncated++;
    if (l->kind == KIND_UDP) sa_to_slot(&l->rx_sa[i], l->rx_addr + (size_t)i * ADDR_SLOT);
  }
  return n;
}

/* Calls the JS batch handler with (count, errno). Exceptions are surfaced as uncaught exceptions
 * (the JS wrapper catches its own; this is the last line of defence). */
static void call_js(link_t *l, int count, int err) {
  napi_env env = l->env;
  napi_value cb, recv, argv[2], result;
  if (!l->on_batch || napi_get_reference_value(env, l->on_batch, &cb) != napi_ok || cb == NULL) return;
  napi_get_undefined(env, &recv);
  napi_create_int32(env, count, &argv[0]);
  napi_create_int32(env, err, &argv[1]);
  napi_value resource;
  napi_get_reference_value(env, l->self, &resource);
  napi_status st = napi_make_callback(env, l->async_ctx, resource ? resource : recv, cb, 2, argv, &result);
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
}

static void on_idle(uv_idle_t *h);

/* Runs rx_rounds again on the next event-loop iteration, socket readable or not. */
static void idle_arm(link_t *l) {
  if (l->idling) return;
  if (!l->idle) {
    uv_loop_t *loop;
    l->idle = malloc(sizeof *l->idle);
    if (!l->idle) return;
    if (napi_get_uv_event_loop(l->env, &loop) != napi_ok || uv_idle_init(loop, l->idle) != 0) {
      free(l->idle);
      l->idle = NULL;
      return;
    }
    l->idle->data = l;
  }
  if (uv_idle_start(l->idle, on_idle) == 0) l->idling = 1;
}

/* Receive batches and deliver them to JS: up to max_rounds per wakeup (see busy_poll_us). */
static void rx_rounds(link_t *l) {
  uint64_t spin_until = 0;
  for (uint32_t round = 0; round < l->max_rounds && !l->closed && l->polling; round++) {
    int n = link_recv(l);
    if (n == 0 && l->last_raw > 0) {
      /* Everything in this batch was filtered out: more may be waiting, and the round still
       * counts against max_rounds, so a flood of foreign frames cannot starve the loop. */
      spin_until = 0;
      if ((uint32_t)l->last_raw < l->batch && l->busy_poll_us == 0) break;
      continue;
    }
    if (n == 0) {
      /* Busy-poll briefly before sleeping in epoll: a request/reply peer usually answers within
       * microseconds, and a sleep + wakeup costs more than that. Bounded by busy_poll_us. */
      if (l->busy_poll_us == 0) break;
      uint64_t now = uv_hrtime();
      if (spin_until == 0) spin_until = now + (uint64_t)l->busy_poll_us * 1000;
      if (now >= spin_until) break;
      round--;
      continue;
    }
    spin_until = 0;
    if (n < 0) {
      l->rx_errors++;
      call_js(l, -1, -n);
      break;
    }
    l->rx_frames += (uint64_t)n;
    l->rx_batches++;
    call_js(l, n, 0);
    if (l->ring) packet_ring_release(l->ring); /* the views were only lent for the call */
    if ((uint32_t)n < l->batch && l->busy_poll_us == 0) break;
  }
  /* Nothing may stay held while we sleep: a held frame keeps the ring's fd readable. */
  if (l->ring) packet_ring_release(l->ring);
  /* Datagrams a GRO receive took from the socket but that did not fit in this wakeup's batches:
   * the socket may not wake us again, so come back on the next loop iteration (an idle handle
   * also keeps the loop from sleeping in epoll until then). */
  bool more = gro_pending(l) && l->polling && !l->closed;
  if (more) idle_arm(l);
  else if (l->idling) {
    uv_idle_stop(l->idle);
    l->idling = 0;
  }
}

static void on_idle(uv_idle_t *h) {
  link_t *l = h->data;
  napi_handle_scope scope;
  if (napi_open_handle_scope(l->env, &scope) != napi_ok) return;
  l->wakeups++;
  rx_rounds(l);
  napi_close_handle_scope(l->env, scope);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  link_t *l = h->data;
  napi_env env = l->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  l->wakeups++;
  if (status < 0) {
    /* libuv saw EPOLLERR (status is then always UV_EBADF) and stopped this handle. For a socket,
     * the real cause is its pending error (ENETDOWN when the interface goes down or away): read
     * it, which also clears it, and re-arm so the link keeps receiving once the interface is back.
     * Without this the handle stays stopped, the event loop empties and the process exits. */
    int err = -status;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    bool is_socket = l->kind != KIND_TAP && getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0;
    if (is_socket && soerr != 0) err = soerr;
    if (is_socket && soerr == 0) {
      /* No pending error: then EPOLLERR came from the error queue. Drain it, or re-arming would
       * wake us again at once, forever. */
      char cbuf[256], dbuf[64];
      struct iovec iov = {dbuf, sizeof dbuf};
      for (int i = 0; i < 64; i++) {
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        if (recvmsg(l->fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
      }
    }
    l->link_errors++;
    if (is_socket && l->polling && !l->closed && uv_poll_start(l->poll, UV_READABLE, on_poll) != 0) l->polling = 0;
    call_js(l, -1, err);
  } else {
    rx_rounds(l);
  }
  napi_close_handle_scope(env, scope);
}

/* start(handle, onBatch(count, errno)) */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  if (argc > 1) {
    if (l->on_batch) napi_delete_reference(env, l->on_batch);
    l->on_batch = NULL;
    NAPI_OK(napi_create_reference(env, argv[1], 1, &l->on_batch));
  }
  if (l->polling) return NULL;
  if (!l->poll) {
    uv_loop_t *loop;
    NAPI_OK(napi_get_uv_event_loop(env, &loop));
    l->poll = malloc(sizeof *l->poll);
    if (!l->poll || uv_poll_init(loop, l->poll, l->fd) != 0) {
      free(l->poll);
      l->poll = NULL;
      throw_coded(env, "ERR_SYSCALL", "uv_poll_init failed");
      return NULL;
    }
    l->poll->data = l;
  }
  if (!l->self) NAPI_OK(napi_create_reference(env, argv[0], 1, &l->self));
  int r = uv_poll_start(l->poll, UV_READABLE, on_poll);
  if (r != 0) {
    throw_coded(env, "ERR_SYSCALL", "uv_poll_start: %s", uv_strerror(r));
    return NULL;
  }
  l->polling = 1;
  /* Datagrams left in the GRO pool when receiving was paused: deliver them without waiting for
   * the socket to become readable again. */
  if (gro_pending(l)) idle_arm(l);
  return NULL;
}

/* stop(handle): pauses receiving (backpressure); start() resumes. */
static napi_value js_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  if (l->polling) uv_poll_stop(l->poll);
  l->polling = 0;
  if (l->idling) uv_idle_stop(l->idle);
  l->idling = 0;
  return NULL;
}

/* poll(handle) -> count: one synchronous receive batch without the event loop (benchmarks, tests). */
static napi_value js_recv_now(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  int n = link_recv(l);
  if (n < 0) {
    throw_errno(env, -n, "recv", l->ifname);
    return NULL;
  }
  l->rx_frames += (uint64_t)n;
  if (n > 0) l->rx_batches++;
  NAPI_OK(napi_create_int32(env, n, &out));
  return out;
}

/* ---------- send ---------- */

/* Waits up to `ms` for the socket to accept more. Sends are bounded-blocking on purpose: a full
 * socket buffer on a local link drains within microseconds, and dropping instead would turn a
 * momentary burst into a retransmission timeout at the initiator. */
static bool wait_writable(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  return poll(&p, 1, ms) > 0;
}

/* Largest frame the link may send now: the slot, and for packet sockets MTU + Ethernet header. */
static uint32_t link_max_len(const link_t *l) {
  uint32_t m = l->slot_size;
  if (l->kind == KIND_PACKET && l->mtu > 0 && (uint32_t)l->mtu + 14 < m) m = (uint32_t)l->mtu + 14;
  return m;
}

/* Re-reads the interface MTU (after EMSGSIZE) and flags the change for JS. */
static void link_reread_mtu(link_t *l) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", l->ifname);
  if (ioctl(l->fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0) l->mtu = ifr.ifr_mtu;
  if (l->ctl) {
    l->ctl[CTL_MTU] = l->mtu;
    l->ctl[CTL_FLAGS] |= CTL_MTU_CHANGED;
  }
}

/* A UDP send error that is one datagram's own problem (its destination is bad or unreachable, or a
 * firewall refused it): that datagram is counted and skipped, the batch goes on. */
static bool udp_datagram_error(int e) {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EINVAL || e == EAFNOSUPPORT ||
         e == EPERM || e == EMSGSIZE;
}

/* Errors with which a kernel refuses a GSO message whose datagrams it may still take one by one:
 * EIO (device or route cannot, e.g. IPsec), EINVAL (segment larger than the route's MTU, checksums
 * off), ENOPROTOOPT/EOPNOTSUPP (no UDP GSO at all). */
static bool gso_refusal(int e) {
  return e == EIO || e == EINVAL || e == ENOPROTOOPT || e == EOPNOTSUPP || e == EMSGSIZE;
}

/* Plans tx_msgs[m..] for the sendable datagrams of slots from..end-1 (0 < length <= max_len; their
 * iovecs and addresses are already set) and returns the message count. With gso, a run of
 * consecutive datagrams to the same address with the same length (the last may be shorter) becomes
 * one message with a UDP_SEGMENT cmsg, within the kernel's limits; otherwise one message each. */
static uint32_t udp_plan(link_t *l, int32_t from, int32_t end, uint32_t m, uint32_t max_len, bool gso) {
  for (int32_t i = from; i < end;) {
    int32_t len = l->tx_len[i];
    if (len <= 0 || (uint32_t)len > max_len) {
      i++;
      continue;
    }
    uint32_t n = 1;
    if (gso) {
      const uint8_t *a = l->tx_addr + (size_t)i * ADDR_SLOT;
      uint32_t total = (uint32_t)len;
      while (i + (int32_t)n < end && n < GSO_MAX_SEGS) {
        int32_t nl = l->tx_len[i + (int32_t)n];
        if (nl <= 0 || nl > len || total + (uint32_t)nl > GSO_MAX_BYTES) break;
        if (memcmp(l->tx_addr + (size_t)(i + (int32_t)n) * ADDR_SLOT, a, ADDR_SLOT) != 0) break;
        total += (uint32_t)nl;
        n++;
        if (nl < len) break; /* only the last segment may be shorter */
      }
    }
    struct msghdr *mh = &l->tx_msgs[m].msg_hdr;
    mh->msg_name = &l->tx_sa[i];
    mh->msg_namelen = l->tx_sa[i].ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    mh->msg_iov = &l->tx_iov[i];
    mh->msg_iovlen = n;
    mh->msg_flags = 0;
    if (n > 1) {
      struct cmsghdr *c = (struct cmsghdr *)(l->tx_cbuf + (size_t)m * GSO_CBUF);
      uint16_t gso_size = (uint16_t)len;
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof gso_size);
      memcpy(CMSG_DATA(c), &gso_size, sizeof gso_size);
      mh->msg_control = c;
      mh->msg_controllen = GSO_CBUF;
    } else {
      mh->msg_control = NULL;
      mh->msg_controllen = 0;
    }
    l->tx_first[m] = (uint32_t)i;
    l->tx_nseg[m] = n;
    m++;
    i += (int32_t)n;
  }
  return m;
}

/* Sends the planned datagrams of slots first..end-1 of a UDP link in as few sendmmsg calls as the
 * socket allows. Returns the datagrams sent; *hard_err is set when a socket error stopped the batch,
 * *complete when every message was tried. A GSO message that fails is not retried as such: the rest
 * of the batch is re-planned without GSO, and if its datagrams then go out one by one the kernel
 * has refused GSO on this socket or route, so GSO is off for the socket (gsoFallbacks) for
 * gso_backoff_ns, or for good when the kernel has no UDP GSO at all. */
static int32_t udp_send(link_t *l, int32_t first, int32_t end, uint32_t max_len, int *hard_err, bool *complete) {
  if (!l->gso && l->gso_retry_ns != 0 && uv_hrtime() >= l->gso_retry_ns) {
    l->gso = true;
    l->gso_retry_ns = 0;
  }
  uint32_t nmsg = udp_plan(l, first, end, 0, max_len, l->gso);
  uint32_t m = 0;
  int32_t sent = 0;
  int waits = 0;
  int refused = 0; /* errno of a refused GSO message whose datagrams are being retried plain */
  while (m < nmsg) {
    int r = sendmmsg(l->fd, l->tx_msgs + m, nmsg - m, MSG_DONTWAIT);
    l->tx_calls++;
    if (r > 0) {
      if (refused) {
        l->gso = false;
        l->gso_fallbacks++;
        l->gso_retry_ns = refused == ENOPROTOOPT || refused == EOPNOTSUPP ? 0 : uv_hrtime() + l->gso_backoff_ns;
        refused = 0;
      }
      for (uint32_t k = m; k < m + (uint32_t)r; k++) {
        sent += (int32_t)l->tx_nseg[k];
        if (l->tx_nseg[k] > 1) {
          l->gso_sends++;
          l->gso_segments += l->tx_nseg[k];
        }
      }
      m += (uint32_t)r;
      continue;
    }
    int e = errno;
    if (e == EINTR) continue;
    if ((e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) && waits < 20) {
      waits++;
      l->tx_waits++;
      wait_writable(l->fd, 1);
      continue;
    }
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) break; /* still full after ~20 ms: drop the rest */
    if (l->tx_nseg[m] > 1) {
      refused = gso_refusal(e) ? e : 0;
      nmsg = udp_plan(l, (int32_t)l->tx_first[m], end, m, max_len, false);
      continue;
    }
    refused = 0;
    if (udp_datagram_error(e)) {
      /* A bad or unreachable destination is that datagram's problem, not the batch's. */
      l->tx_errors++;
      m++;
      continue;
    }
    *hard_err = e;
    break;
  }
  *complete = m >= nmsg;
  return sent;
}

/* send(handle, count[, first]) -> frames sent. Frames are tx slots first..first+count-1 with
 * lengths in txLen (and destinations in txAddr for UDP). On a UDP link a datagram of length <= 0 is
 * counted (txErrors) and skipped; on the others it is a caller error. */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  int32_t count = 0, first = 0;
  napi_get_value_int32(env, argv[1], &count);
  if (argc > 2) napi_get_value_int32(env, argv[2], &first);
  if (count < 0 || first < 0 || (uint32_t)first + (uint32_t)count > l->batch) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "send: slots %d..%d outside the %u-slot arena", first, first + count, l->batch);
    return NULL;
  }
  /* An oversized frame is that frame's problem, never the batch's: it is dropped and counted, and
   * the frames around it still go out. Oversized against the MTU we know is caught here; against
   * an MTU lowered under us, by the kernel's EMSGSIZE, which also makes us re-read the MTU and tell
   * JS (CTL_MTU_CHANGED) so the layers above can shrink what they send. */
  uint32_t max_len = link_max_len(l);
  int32_t pos = first, end = first + count;
  int32_t ok_sent = 0, oversized = 0, empty = 0;
  int hard_err = 0;
  bool complete = true;
  for (int32_t i = first; i < end; i++) {
    if (l->tx_len[i] <= 0) {
      if (l->kind == KIND_UDP) {
        empty++;
        continue;
      }
      throw_coded(env, "ERR_NATIVE_ARGUMENT", "send: frame in slot %d has length %d", i, l->tx_len[i]);
      return NULL;
    }
    l->tx_iov[i].iov_len = (size_t)l->tx_len[i];
    if (l->kind == KIND_UDP) {
      if ((uint32_t)l->tx_len[i] > max_len) continue;
      int salen = sa_from_slot(l->tx_addr + (size_t)i * ADDR_SLOT, &l->tx_sa[i]);
      if (salen == 0) {
        throw_coded(env, "ERR_NATIVE_ARGUMENT", "send: slot %d has no destination address", i);
        return NULL;
      }
    }
  }
  if (l->kind == KIND_UDP) {
    for (int32_t i = first; i < end; i++)
      if ((uint32_t)l->tx_len[i] > max_len && l->tx_len[i] > 0) oversized++;
    l->tx_errors += (uint64_t)empty;
    ok_sent = udp_send(l, first, end, max_len, &hard_err, &complete);
  } else {
    int waits = 0;
    while (pos < end) {
      if ((uint32_t)l->tx_len[pos] > max_len) {
        oversized++;
        pos++;
        continue;
      }
      int32_t run = 1;
      while (pos + run < end && (uint32_t)l->tx_len[pos + run] <= max_len) run++;
      int r;
      if (l->kind == KIND_TAP) {
        ssize_t w = write(l->fd, l->tx + (size_t)pos * l->slot_size, (size_t)l->tx_len[pos]);
        r = w < 0 ? -1 : 1;
      } else {
        r = sendmmsg(l->fd, l->tx_msgs + pos, (unsigned)run, MSG_DONTWAIT);
      }
      l->tx_calls++;
      if (r > 0) {
        pos += r;
        ok_sent += r;
        continue;
      }
      int e = errno;
      if (e == EINTR) continue;
      if ((e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) && waits < 20) {
        waits++;
        l->tx_waits++;
        wait_writable(l->fd, 1);
        continue;
      }
      if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) break; /* still full after ~20 ms: drop the rest */
      if (e == EMSGSIZE && l->kind == KIND_PACKET) {
        oversized++;
        pos++;
        link_reread_mtu(l);
        max_len = link_max_len(l);
        continue;
      }
      hard_err = e;
      break;
    }
    complete = pos >= end;
  }
  l->tx_oversized += (uint64_t)oversized;
  if (ok_sent < count) l->tx_dropped += (uint64_t)(count - ok_sent);
  l->tx_frames += (uint64_t)ok_sent;
  l->tx_batches++;
  if (hard_err && ok_sent == 0) {
    l->tx_errors++;
    throw_errno(env, hard_err, "send", l->ifname);
    return NULL;
  }
  if (hard_err) l->tx_errors++;
  if (oversized > 0 && ok_sent == 0 && complete) {
    throw_coded(env, "ERR_FRAME_TOO_LARGE", "send: %d frame(s) larger than %s allows (%u bytes) dropped", oversized,
                l->ifname, max_len);
    return NULL;
  }
  NAPI_OK(napi_create_int32(env, ok_sent, &out));
  return out;
}

/* ---------- info and stats ---------- */

/* stats(handle) -> counters, including kernel drops (PACKET_STATISTICS resets on read, so they are
 * accumulated here). */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], o;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  if (l->kind == KIND_PACKET) {
    struct tpacket_stats st;
    socklen_t sl = sizeof st;
    if (getsockopt(l->fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0) {
      l->kernel_packets += st.tp_packets;
      l->kernel_drops += st.tp_drops;
    }
  } else if (l->kind == KIND_UDP) {
    uint32_t mem[16];
    socklen_t sl = sizeof mem;
    memset(mem, 0, sizeof mem);
    if (getsockopt(l->fd, SOL_SOCKET, SO_MEMINFO, mem, &sl) == 0 && sl > SK_MEMINFO_DROPS_IDX * 4)
      l->kernel_drops = mem[SK_MEMINFO_DROPS_IDX]; /* cumulative already */
  }
  NAPI_OK(napi_create_object(env, &o));
  set_num(env, o, "rxFrames", (double)l->rx_frames);
  set_num(env, o, "rxBatches", (double)l->rx_batches);
  set_num(env, o, "rxTruncated", (double)l->rx_truncated);
  set_num(env, o, "rxErrors", (double)l->rx_errors);
  set_num(env, o, "wakeups", (double)l->wakeups);
  set_num(env, o, "txFrames", (double)l->tx_frames);
  set_num(env, o, "txBatches", (double)l->tx_batches);
  set_num(env, o, "txDropped", (double)l->tx_dropped);
  set_num(env, o, "txErrors", (double)l->tx_errors);
  set_num(env, o, "txWaits", (double)l->tx_waits);
  set_num(env, o, "kernelDrops", (double)l->kernel_drops);
  set_num(env, o, "rxVlanDropped", (double)l->rx_vlan_dropped);
  set_num(env, o, "rxOtherHostDropped", (double)l->rx_otherhost_dropped);
  set_num(env, o, "txOversized", (double)l->tx_oversized);
  set_num(env, o, "linkErrors", (double)l->link_errors);
  set_num(env, o, "rxRingFrames", l->ring ? (double)l->ring->frames : 0);
  set_num(env, o, "qdiscBypass", l->qdisc_bypass ? 1 : 0);
  set_num(env, o, "txCalls", (double)l->tx_calls);
  set_num(env, o, "rxCalls", (double)l->rx_calls);
  if (l->kind == KIND_UDP) {
    set_num(env, o, "gsoSends", (double)l->gso_sends);
    set_num(env, o, "gsoSegments", (double)l->gso_segments);
    set_num(env, o, "gsoFallbacks", (double)l->gso_fallbacks);
    set_num(env, o, "groMessages", (double)l->gro_messages);
    set_num(env, o, "groSegments", (double)l->gro_segments);
  }
  return o;
}

/* linkInfo(handle) -> { name, index, mtu, mac, up, running } (re-read: MTU may have changed), or
 * { port, address, family, gso, gro } for UDP (gso: still sending with UDP_SEGMENT; gro: UDP_GRO on). */
static napi_value js_link_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  if (l->kind == KIND_UDP) {
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    if (getsockname(l->fd, (struct sockaddr *)&sa, &sl) < 0) {
      throw_errno(env, errno, "getsockname", NULL);
      return NULL;
    }
    uint8_t slot[ADDR_SLOT];
    sa_to_slot(&sa, slot);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(sa.ss_family, slot + 4, text, sizeof text);
    napi_value o, v;
    NAPI_OK(napi_create_object(env, &o));
    set_num(env, o, "family", slot[0]);
    set_num(env, o, "port", (slot[2] << 8) | slot[3]);
    NAPI_OK(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v));
    NAPI_OK(napi_set_named_property(env, o, "address", v));
    NAPI_OK(napi_get_boolean(env, l->gso, &v));
    NAPI_OK(napi_set_named_property(env, o, "gso", v));
    NAPI_OK(napi_get_boolean(env, l->gro, &v));
    NAPI_OK(napi_set_named_property(env, o, "gro", v));
    return o;
  }
  ifinfo_t ii;
  int r = if_lookup(l->kind == KIND_TAP ? l->ctl_fd : l->fd, l->ifname, &ii);
  if (r < 0) {
    throw_errno(env, -r, "interface lookup", l->ifname);
    return NULL;
  }
  if (l->kind == KIND_PACKET) {
    l->mtu = ii.mtu;
    memcpy(l->mac, ii.mac, 6);
    if (l->ctl) l->ctl[CTL_MTU] = l->mtu;
  }
  return ifinfo_to_js(env, l->ifname, &ii);
}

/* rebind(handle) -> { name, index, mtu, mac, up, running }: binds a packet socket again to the
 * interface now carrying its name (in the socket's namespace). A deleted and re-created interface
 * has a new ifindex, and the kernel unbinds a socket whose interface is unregistered; rebinding the
 * same socket keeps its fd, poll handle and arenas. */
static napi_value js_rebind(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  if (l->kind != KIND_PACKET) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "rebind: only packet links can be re-bound");
    return NULL;
  }
  ifinfo_t ii;
  int r = if_lookup(l->fd, l->ifname, &ii);
  if (r < 0) {
    throw_errno(env, -r, "interface lookup", l->ifname);
    return NULL;
  }
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons((uint16_t)l->ethertype);
  sll.sll_ifindex = ii.index;
  if (bind(l->fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    throw_errno(env, errno, "bind(AF_PACKET)", l->ifname);
    return NULL;
  }
  /* A bind to an interface that is not up leaves ENETDOWN pending; clear it, JS knows the state. */
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  l->ifindex = ii.index;
  l->mtu = ii.mtu;
  memcpy(l->mac, ii.mac, 6);
  if (l->ctl) l->ctl[CTL_MTU] = l->mtu;
  return ifinfo_to_js(env, l->ifname, &ii);
}

/* ringInfo(handle) -> { buffer, frames, frameSize, perBlock, blockSize, dataOffset } for a packet
 * link receiving through a ring, else null. `buffer` is an external ArrayBuffer over the ring (it
 * keeps the mapping alive); ring frame i starts at (i / perBlock) * blockSize + (i % perBlock) *
 * frameSize, its Ethernet frame at dataOffset from there. Call once per link. */
static napi_value js_ring_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], o, ab;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  link_t *l = get_link(env, argv[0]);
  if (!l) return NULL;
  if (!l->ring) {
    NAPI_OK(napi_get_null(env, &o));
    return o;
  }
  if (packet_ring_buffer(env, l->ring, &ab) != napi_ok) {
    throw_coded(env, "ERR_SYSCALL", "ringInfo: external ArrayBuffers are not allowed in this runtime");
    return NULL;
  }
  NAPI_OK(napi_create_object(env, &o));
  NAPI_OK(napi_set_named_property(env, o, "buffer", ab));
  set_num(env, o, "frames", l->ring->frames);
  set_num(env, o, "frameSize", l->ring->frame_size);
  set_num(env, o, "perBlock", l->ring->per_block);
  set_num(env, o, "blockSize", l->ring->block_size);
  set_num(env, o, "dataOffset", l->ring->data_off);
  return o;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  link_t *l = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&l) == napi_ok && l) link_close(env, l);
  return NULL;
}

/* ---------- aligned memory for O_DIRECT ---------- */

static void free_aligned(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* allocAligned(size, align) -> ArrayBuffer whose memory starts on an `align` boundary (O_DIRECT
 * needs buffers aligned to the device's logical block size; JS cannot ask for that). */
static napi_value js_alloc_aligned(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t size = 0, align = 4096;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &size) != napi_ok || size <= 0 || size > (1LL << 31)) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "allocAligned(size[, align]): size must be 1..2^31");
    return NULL;
  }
  if (argc > 1) napi_get_value_int64(env, argv[1], &align);
  if (align < 16 || (align & (align - 1)) != 0 || align > 65536) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "allocAligned: align must be a power of two in 16..65536");
    return NULL;
  }
  void *mem = NULL;
  if (posix_memalign(&mem, (size_t)align, (size_t)size) != 0 || mem == NULL) {
    throw_coded(env, "ERR_SYSCALL", "allocAligned: out of memory");
    return NULL;
  }
  memset(mem, 0, (size_t)size);
  if (napi_create_external_arraybuffer(env, mem, (size_t)size, free_aligned, NULL, &out) != napi_ok) {
    free(mem);
    throw_coded(env, "ERR_SYSCALL", "allocAligned: external ArrayBuffers are not allowed in this runtime");
    return NULL;
  }
  return out;
}

/* tryLock(fd) -> true when this process now holds an exclusive flock on fd, false when another
 * does. The lock goes with the process (also on SIGKILL): a daemon's lock file cannot go stale. */
static napi_value js_try_lock(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "tryLock(fd)");
    return NULL;
  }
  int r;
  do r = flock(fd, LOCK_EX | LOCK_NB);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EWOULDBLOCK) {
    throw_errno(env, errno, "flock", NULL);
    return NULL;
  }
  napi_value out;
  napi_get_boolean(env, r == 0, &out);
  return out;
}

/* writeNoWait(fd, buffer, offset, length) -> bytes written (>= 0), or -errno when the kernel would
 * not take them now (EAGAIN: the reader is behind; EOPNOTSUPP: this kind of fd cannot say so, e.g.
 * a terminal or a file; EPIPE: nobody reads any more; others as they come). RWF_NOWAIT asks for
 * non-blocking behaviour on this one call, unlike O_NONBLOCK, which would change the open file
 * description every process sharing the pipe or socket sees. Throws only for bad arguments. */
static napi_value js_write_no_wait(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1, off = -1, len = -1;
  napi_typedarray_type type;
  size_t size = 0;
  void *data = NULL;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_typedarray_info(env, argv[1], &type, &size, &data, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      napi_get_value_int32(env, argv[2], &off) != napi_ok || napi_get_value_int32(env, argv[3], &len) != napi_ok ||
      off < 0 || len < 0 || (size_t)off + (size_t)len > size) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "writeNoWait(fd, buffer, offset, length) with offset + length inside buffer");
    return NULL;
  }
  struct iovec iov = {(char *)data + off, (size_t)len};
  ssize_t r;
  /* EINTR: a signal arrived before anything was written; nothing was lost, so ask again. */
  do r = pwritev2(fd, &iov, 1, -1, RWF_NOWAIT);
  while (r < 0 && errno == EINTR);
  napi_value out;
  napi_create_int64(env, r < 0 ? -(int64_t)errno : (int64_t)r, &out);
  return out;
}

/* ---------- module ---------- */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"interfaceInfo", NULL, js_interface_info, NULL, NULL, NULL, napi_default, NULL},
      {"setInterface", NULL, js_set_interface, NULL, NULL, NULL, napi_default, NULL},
      {"openPacket", NULL, js_open_packet, NULL, NULL, NULL, napi_default, NULL},
      {"openTap", NULL, js_open_tap, NULL, NULL, NULL, napi_default, NULL},
      {"openUdp", NULL, js_open_udp, NULL, NULL, NULL, napi_default, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, js_stop, NULL, NULL, NULL, napi_default, NULL},
      {"recvNow", NULL, js_recv_now, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
      {"linkInfo", NULL, js_link_info, NULL, NULL, NULL, napi_default, NULL},
      {"rebind", NULL, js_rebind, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"ringInfo", NULL, js_ring_info, NULL, NULL, NULL, napi_default, NULL},
      {"allocAligned", NULL, js_alloc_aligned, NULL, NULL, NULL, napi_default, NULL},
      {"tryLock", NULL, js_try_lock, NULL, NULL, NULL, napi_default, NULL},
      {"writeNoWait", NULL, js_write_no_wait, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value v;
  napi_create_int32(env, ADDR_SLOT, &v);
  napi_set_named_property(env, exports, "ADDR_SLOT", v);
  napi_create_int32(env, CTL_WORDS, &v);
  napi_set_named_property(env, exports, "CTL_WORDS", v);
  io_ring_register(env, exports);
  aead_register(env, exports);
  sd_notify_register(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
