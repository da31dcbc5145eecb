/*
 * sd_notify without libsystemd: one datagram on an AF_UNIX SOCK_DGRAM socket to $NOTIFY_SOCKET.
 * The protocol is stable and public (systemd's sd_notify(3), "NOTIFY_SOCKET"): newline-separated
 * KEY=VALUE assignments in one datagram; the service manager learns the sender's PID from the
 * kernel's SCM_CREDENTIALS, so nothing else is sent. Node's dgram has no AF_UNIX, hence C.
 *
 * notifySend(path, message): path is a file-system socket or "@name" for the abstract namespace.
 * Throws ERR_NATIVE_ARGUMENT for a path that cannot be an AF_UNIX address, ERR_SYSCALL (with the
 * errno name in the message and `errno` set) when the datagram cannot be sent.
 *
 * notifyListen(path) / notifyRecv(fd) / notifyClose(fd): a bound, non-blocking receiving socket
 * for tests (the service manager's side), so they need no python or socat.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "napi_util.h"
#include "sd_notify.h"

#define NOTIFY_MAX 4096

/* Fills `sa` from a JS string argument; returns the address length, 0 after throwing. */
static socklen_t unix_address(napi_env env, napi_value v, const char *fn, struct sockaddr_un *sa) {
  char path[sizeof sa->sun_path + 1];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, path, sizeof path, &len) != napi_ok) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "%s(path, ...): path must be a string", fn);
    return 0;
  }
  if (len == 0 || (len == 1 && path[0] == '@')) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "%s: '%s' is not a socket path or @abstract name", fn, path);
    return 0;
  }
  /* A path that filled the buffer may have been cut: refuse rather than send elsewhere. */
  if (len >= sizeof sa->sun_path) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "%s: socket path longer than %zu bytes", fn, sizeof sa->sun_path - 1);
    return 0;
  }
  if (path[0] != '/' && path[0] != '@') {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "%s: '%s' is neither an absolute path nor @abstract", fn, path);
    return 0;
  }
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, path, len);
  /* Abstract names: a leading NUL, and the length counts exactly the name's bytes (no trailing NUL). */
  if (path[0] == '@') {
    sa->sun_path[0] = '\0';
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  }
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

static void throw_errno(napi_env env, int err, const char *fn) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", fn, strerror(err));
  napi_value m, code, e, n;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, "ERR_SYSCALL", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, m, &e);
  napi_create_int32(env, err, &n);
  napi_set_named_property(env, e, "errno", n);
  napi_throw(env, e);
}

static napi_value js_notify_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  struct sockaddr_un sa;
  if (argc < 2) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "notifySend(path, message)");
    return NULL;
  }
  socklen_t salen = unix_address(env, argv[0], "notifySend", &sa);
  if (salen == 0) return NULL;
  char msg[NOTIFY_MAX + 1];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[1], msg, sizeof msg, &len) != napi_ok || len == 0 || len >= NOTIFY_MAX) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "notifySend: message must be a string of 1..%d bytes", NOTIFY_MAX - 1);
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "notifySend: socket");
    return NULL;
  }
  /* The receiver is the service manager, which empties its queue quickly; a full queue is an error
   * for the caller to count, never a reason to block the event loop. */
  ssize_t n;
  do n = sendto(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, salen);
  while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (n < 0) {
    throw_errno(env, err, "notifySend: sendto");
    return NULL;
  }
  return NULL;
}

static napi_value js_notify_listen(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  struct sockaddr_un sa;
  if (argc < 1) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "notifyListen(path)");
    return NULL;
  }
  socklen_t salen = unix_address(env, argv[0], "notifyListen", &sa);
  if (salen == 0) return NULL;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    throw_errno(env, errno, "notifyListen: socket");
    return NULL;
  }
  if (bind(fd, (struct sockaddr *)&sa, salen) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "notifyListen: bind");
    return NULL;
  }
  napi_create_int32(env, fd, &out);
  return out;
}

/* One datagram as a string, or null when none is queued. */
static napi_value js_notify_recv(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "notifyRecv(fd)");
    return NULL;
  }
  char buf[NOTIFY_MAX];
  ssize_t n;
  do n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      napi_get_null(env, &out);
      return out;
    }
    throw_errno(env, errno, "notifyRecv: recv");
    return NULL;
  }
  napi_create_string_utf8(env, buf, (size_t)n, &out);
  return out;
}

static napi_value js_notify_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    throw_coded(env, "ERR_NATIVE_ARGUMENT", "notifyClose(fd)");
    return NULL;
  }
  close(fd);
  return NULL;
}

void sd_notify_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"notifySend", NULL, js_notify_send, NULL, NULL, NULL, napi_default, NULL},
      {"notifyListen", NULL, js_notify_listen, NULL, NULL, NULL, napi_default, NULL},
      {"notifyRecv", NULL, js_notify_recv, NULL, NULL, NULL, napi_default, NULL},
      {"notifyClose", NULL, js_notify_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
