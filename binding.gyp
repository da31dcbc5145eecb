{
  "targets": [
    {
      "target_name": "aoegw_native",
      "sources": ["native/aoegw_native.c", "native/io_ring.c", "native/packet_ring.c", "native/aead.c", "native/sd_notify.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"],
      "libraries": ["-ldl"]
    }
  ]
}
