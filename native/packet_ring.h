/*
 * TPACKET_V2 receive ring for AF_PACKET links (see packet_ring.c). Only the ring's memory and
 * geometry live here; what a frame means (filtering, lengths for JS) stays in aoegw_native.c.
 */
#ifndef AOEGW_PACKET_RING_H
#define AOEGW_PACKET_RING_H

#include <linux/if_packet.h>
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

typedef struct packet_ring {
  uint8_t *mem;        /* mmap of block_nr * block_size bytes */
  size_t bytes;
  uint32_t block_size; /* bytes per block (a multiple of the page size) */
  uint32_t frame_size; /* bytes per frame: header, sockaddr_ll, padding, then the Ethernet frame */
  uint32_t per_block;  /* frames per block (frames never straddle blocks) */
  uint32_t frames;     /* frames in the ring */
  uint32_t data_off;   /* where the kernel puts the Ethernet header in every frame (tp_mac) */
  uint32_t head;       /* next frame to look at */
  uint32_t held;       /* frames from head on that user space still holds (returned by release) */
  int holders;         /* the link, plus one per ArrayBuffer handed to JS */
} packet_ring_t;

/* Switches `fd` to TPACKET_V2 and maps a receive ring of about `bytes` (at least `min_frames`
 * frames) whose frames hold `snap` bytes of Ethernet frame each. Returns NULL with *err = errno when the kernel refuses (the socket
 * is then back at TPACKET_V1 with no ring: the recvmmsg path still works). */
packet_ring_t *packet_ring_open(int fd, uint32_t snap, size_t bytes, uint32_t min_frames, int *err);

static inline struct tpacket2_hdr *packet_ring_frame(const packet_ring_t *r, uint32_t i) {
  return (struct tpacket2_hdr *)(r->mem + (size_t)(i / r->per_block) * r->block_size +
                                 (size_t)(i % r->per_block) * r->frame_size);
}

/* Hands the `held` frames back to the kernel and moves head past them. */
void packet_ring_release(packet_ring_t *r);

/* Drops one holder (the link on close, an ArrayBuffer on finalisation); unmaps at zero. */
void packet_ring_unref(packet_ring_t *r);

/* An external ArrayBuffer over the ring's memory (a new holder). */
napi_status packet_ring_buffer(napi_env env, packet_ring_t *r, napi_value *out);

#endif
