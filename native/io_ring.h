/* io_ring: block I/O through io_uring, off the event loop (io_ring.c). */
#ifndef AOEGW_IO_RING_H
#define AOEGW_IO_RING_H

#include <node_api.h>

/* Adds the ring* functions and RING_* constants to the addon's exports. */
void io_ring_register(napi_env env, napi_value exports);

#endif
