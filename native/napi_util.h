/* Small N-API and libuv helpers shared by the addon's source files (static inline: each file keeps
 * its own copy in the object code, the source has one). */
#ifndef AOEGW_NAPI_UTIL_H
#define AOEGW_NAPI_UTIL_H

#include <node_api.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

/* Throws an Error with a stable `code` (ERR_...) and a printf-formatted message. */
static inline void throw_coded(napi_env env, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void throw_coded(napi_env env, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_throw_error(env, code, msg);
}

/* o[k] = v (a stats field). */
static inline void set_num(napi_env env, napi_value o, const char *k, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, o, k, x);
}

/* uv_close callback for a handle allocated with malloc. */
static inline void free_closed_handle(uv_handle_t *h) { free(h); }

#endif
