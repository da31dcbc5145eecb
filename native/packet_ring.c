/*
 * TPACKET_V2 receive ring for AF_PACKET links.
 *
 * Why V2 and not V3: a V3 ring wakes its reader only when a whole block is retired (full, or
 * after the block timeout of at least a millisecond), which batches well for capture but adds that
 * delay to every request of a request/reply protocol at low load. V2 has one status word per
 * fixed-size frame: the kernel wakes the reader per frame as recvmmsg does, a busy-polling reader
 * sees a frame by reading memory (no syscall per poll), and fixed frame positions let JS keep one
 * cached view per frame.
 *
 * Lifetime: the mapping has holders (the link, and every ArrayBuffer JS got over it); it is
 * unmapped when the last lets go, so a JS view can never point at unmapped memory. Closing the
 * socket first is safe: the kernel stops writing, the pages stay mapped until munmap.
 */
#define _GNU_SOURCE
#include "packet_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define RING_BLOCK 65536u

packet_ring_t *packet_ring_open(int fd, uint32_t snap, size_t bytes, uint32_t min_frames, int *err) {
  /* Where the kernel puts the MAC header of an Ethernet frame (af_packet.c tpacket_rcv, SOCK_RAW):
   * netoff = TPACKET_ALIGN(TPACKET2_HDRLEN + max(maclen, 16)), macoff = netoff - maclen. */
  uint32_t hdrlen = TPACKET_ALIGN(sizeof(struct tpacket2_hdr)) + sizeof(struct sockaddr_ll);
  uint32_t data_off = TPACKET_ALIGN(hdrlen + 16) - 14;
  uint32_t frame = TPACKET_ALIGN(data_off + snap);
  /* A power of two (so a multiple of the page size): the kernel maps each block as 2^order
   * pages, so other sizes would leave gaps between blocks in the mapping. */
  uint32_t block = RING_BLOCK;
  while (block < frame) block <<= 1;
  uint32_t per_block = block / frame;
  size_t blocks = (bytes + block - 1) / block;
  if (blocks * per_block < min_frames) blocks = (min_frames + per_block - 1) / per_block;
  if (blocks < 2) blocks = 2;
  if (blocks > 65536) blocks = 65536;

  int v = TPACKET_V2;
  if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) {
    *err = errno;
    return NULL;
  }
  struct tpacket_req req = {.tp_block_size = block,
                            .tp_block_nr = (unsigned)blocks,
                            .tp_frame_size = frame,
                            .tp_frame_nr = (unsigned)(blocks * per_block)};
  if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
    *err = errno;
    v = TPACKET_V1;
    setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v);
    return NULL;
  }
  size_t len = (size_t)block * blocks;
  void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  packet_ring_t *r = mem == MAP_FAILED ? NULL : calloc(1, sizeof *r);
  if (r == NULL) {
    *err = mem == MAP_FAILED ? errno : ENOMEM;
    if (mem != MAP_FAILED) munmap(mem, len);
    memset(&req, 0, sizeof req); /* tear the ring down again so the socket can go back to V1 */
    setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req);
    v = TPACKET_V1;
    setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v);
    return NULL;
  }
  r->mem = mem;
  r->bytes = len;
  r->block_size = block;
  r->frame_size = frame;
  r->per_block = per_block;
  r->frames = (uint32_t)(blocks * per_block);
  r->data_off = data_off;
  r->holders = 1;
  return r;
}

void packet_ring_release(packet_ring_t *r) {
  for (uint32_t k = 0; k < r->held; k++) {
    struct tpacket2_hdr *h = packet_ring_frame(r, (r->head + k) % r->frames);
    /* Release: our reads of the frame are done before the kernel may write it again. */
    __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
  }
  r->head = (r->head + r->held) % r->frames;
  r->held = 0;
}

void packet_ring_unref(packet_ring_t *r) {
  if (--r->holders > 0) return;
  munmap(r->mem, r->bytes);
  free(r);
}

static void ring_buffer_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  packet_ring_unref(hint);
}

napi_status packet_ring_buffer(napi_env env, packet_ring_t *r, napi_value *out) {
  napi_status st = napi_create_external_arraybuffer(env, r->mem, r->bytes, ring_buffer_finalize, r, out);
  if (st == napi_ok) r->holders++;
  return st;
}
