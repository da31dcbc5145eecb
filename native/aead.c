/*
 * ChaCha20-Poly1305 (RFC 8439, 96-bit nonce) seal and open over OpenSSL's EVP interface, for the
 * tunnel's data path (src/tunnel/crypto-openssl-native.ts; docs/benchmarks.md section (f)).
 *
 * Which OpenSSL: the one already in the process. Node exports its bundled libcrypto's symbols to
 * addons (a Node built against a shared libcrypto has it loaded), so the functions are looked up
 * with dlsym at load instead of linked: when they are missing the addon still loads and aeadInfo()
 * says why, and the tunnel keeps sodium-native. The headers only give the prototypes' types.
 *
 * One pair of EVP contexts (seal, open) per N-API environment, i.e. per thread, created at load and
 * freed by an environment cleanup hook; each call sets key and nonce on its context, and sets an
 * all-zero key when done so no session key stays in OpenSSL's memory between calls (docs/protocol.md,
 * key material). OpenSSL cleanses the Poly1305 state itself when it computes the tag.
 */
#include <dlfcn.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "aead.h"
#include "napi_util.h"

#define KEY_LEN 32
#define TAG_LEN 16
#define NONCE_LEN 12
/* EVP lengths are ints; larger messages are a caller's bug here (the tunnel's are < 64 KiB). */
#define MAX_LEN (1 << 30)

#define EVP_FNS(X)                                                                                      \
  X(EVP_chacha20_poly1305)                                                                              \
  X(EVP_CIPHER_CTX_new)                                                                                 \
  X(EVP_CIPHER_CTX_free)                                                                                \
  X(EVP_CIPHER_CTX_ctrl)                                                                                \
  X(EVP_EncryptInit_ex)                                                                                 \
  X(EVP_EncryptUpdate)                                                                                  \
  X(EVP_EncryptFinal_ex)                                                                                \
  X(EVP_DecryptInit_ex)                                                                                 \
  X(EVP_DecryptUpdate)                                                                                  \
  X(EVP_DecryptFinal_ex)                                                                                \
  X(OPENSSL_cleanse)

static struct {
#define X(f) __typeof__(f) *f;
  EVP_FNS(X)
#undef X
} ssl;
/* NULL when every function was found, otherwise why not. */
static const char *ssl_missing;

/* Once per process (pthread_once: worker threads load the addon too). */
static void ssl_resolve(void) {
#define X(f)                                                                                            \
  ssl.f = (__typeof__(f) *)dlsym(RTLD_DEFAULT, #f);                                                    \
  if (!ssl.f && !ssl_missing) ssl_missing = "this Node exports no OpenSSL symbol " #f " to addons";
  EVP_FNS(X)
#undef X
}

typedef struct {
  EVP_CIPHER_CTX *seal;
  EVP_CIPHER_CTX *open;
} aead_env_t;

static void aead_env_free(void *arg) {
  aead_env_t *a = arg;
  if (a->seal) ssl.EVP_CIPHER_CTX_free(a->seal);
  if (a->open) ssl.EVP_CIPHER_CTX_free(a->open);
  free(a);
}

static const char *aead_env_init(aead_env_t *a) {
  a->seal = ssl.EVP_CIPHER_CTX_new();
  a->open = ssl.EVP_CIPHER_CTX_new();
  if (!a->seal || !a->open) return "EVP_CIPHER_CTX_new failed";
  const EVP_CIPHER *c = ssl.EVP_chacha20_poly1305();
  if (!c || ssl.EVP_EncryptInit_ex(a->seal, c, NULL, NULL, NULL) != 1 ||
      ssl.EVP_DecryptInit_ex(a->open, c, NULL, NULL, NULL) != 1)
    return "this OpenSSL has no ChaCha20-Poly1305";
  return NULL;
}

static const uint8_t zero_key[KEY_LEN], zero_nonce[NONCE_LEN];

/* One Uint8Array argument: its bytes and length. */
static bool get_bytes(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *len) {
  napi_typedarray_type t;
  void *p;
  if (napi_get_typedarray_info(env, v, &t, len, &p, NULL, NULL) != napi_ok || t != napi_uint8_array) {
    throw_coded(env, "ERR_CRYPTO", "%s must be a Uint8Array", what);
    return false;
  }
  *data = p;
  return true;
}

/* An integer offset or length argument, [0, MAX_LEN]. */
static bool get_len(napi_env env, napi_value v, const char *what, size_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= MAX_LEN) || d != (double)(int64_t)d) {
    throw_coded(env, "ERR_CRYPTO", "%s must be an integer in [0, 2^30]", what);
    return false;
  }
  *out = (size_t)d;
  return true;
}

/* [off, off + len) inside a buffer of `size` bytes. */
static bool check_range(napi_env env, size_t size, size_t off, size_t len, const char *what) {
  if (off > size || len > size - off) {
    throw_coded(env, "ERR_CRYPTO", "%s: range [%zu, +%zu) outside %zu bytes", what, off, len, size);
    return false;
  }
  return true;
}

/* Exact in-place is fine (the stream reads each byte before writing it); a partial overlap is not. */
static bool check_overlap(napi_env env, const uint8_t *a, const uint8_t *b, size_t len) {
  if (a != b && a < b + len && b < a + len) {
    throw_coded(env, "ERR_CRYPTO", "AEAD output partially overlaps its input");
    return false;
  }
  return true;
}

/* Arguments of seal and open: (out, outOff, key, counter | nonce, ad | null, in, inOff, inLen). */
typedef struct {
  aead_env_t *a;
  uint8_t *out;
  uint8_t *key;
  uint8_t nonce[NONCE_LEN];
  uint8_t *ad;
  size_t ad_len;
  uint8_t *in;
  size_t in_len;
  size_t out_size, out_off;
} aead_args_t;

static bool get_args(napi_env env, napi_callback_info info, aead_args_t *x) {
  size_t argc = 8;
  napi_value argv[8];
  void *data;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, &data) != napi_ok) return false;
  x->a = data;
  if (argc != 8) {
    throw_coded(env, "ERR_CRYPTO", "expected 8 arguments, got %zu", argc);
    return false;
  }
  size_t key_len, in_size, in_off;
  if (!get_bytes(env, argv[0], "output", &x->out, &x->out_size) ||
      !get_len(env, argv[1], "output offset", &x->out_off) ||
      !get_bytes(env, argv[2], "AEAD key", &x->key, &key_len))
    return false;
  if (key_len != KEY_LEN) {
    throw_coded(env, "ERR_CRYPTO", "AEAD key must be %d bytes, got %zu", KEY_LEN, key_len);
    return false;
  }
  uint64_t counter;
  bool lossless;
  napi_status st = napi_get_value_bigint_uint64(env, argv[3], &counter, &lossless);
  if (st == napi_ok && lossless) {
    /* The Noise/WireGuard nonce: 4 zero bytes, then the counter as u64 little-endian. */
    memset(x->nonce, 0, 4);
    for (int i = 0; i < 8; i++) x->nonce[4 + i] = (uint8_t)(counter >> (8 * i));
  } else {
    /* Or a whole 12-byte nonce: the load-time self-test's RFC 8439 vector has a non-zero prefix. */
    uint8_t *nonce;
    size_t nonce_len;
    napi_typedarray_type t;
    if (st != napi_bigint_expected ||
        napi_get_typedarray_info(env, argv[3], &t, &nonce_len, (void **)&nonce, NULL, NULL) != napi_ok ||
        t != napi_uint8_array || nonce_len != NONCE_LEN) {
      throw_coded(env, "ERR_CRYPTO", "AEAD counter must be a bigint in [0, 2^64) (or a 12-byte nonce)");
      return false;
    }
    memcpy(x->nonce, nonce, NONCE_LEN);
  }
  napi_valuetype t;
  napi_typeof(env, argv[4], &t);
  x->ad = NULL;
  x->ad_len = 0;
  if (t != napi_null && t != napi_undefined && !get_bytes(env, argv[4], "associated data", &x->ad, &x->ad_len))
    return false;
  uint8_t *in;
  if (!get_bytes(env, argv[5], "input", &in, &in_size) || !get_len(env, argv[6], "input offset", &in_off) ||
      !get_len(env, argv[7], "input length", &x->in_len) ||
      !check_range(env, in_size, in_off, x->in_len, "input"))
    return false;
  x->in = in + in_off;
  if (x->ad_len > MAX_LEN) {
    throw_coded(env, "ERR_CRYPTO", "associated data longer than 2^30 bytes");
    return false;
  }
  return true;
}

static napi_value num(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

/* aeadSeal(out, outOff, key, counter, ad, pt, ptOff, ptLen): ciphertext || tag at out[outOff..],
 * returns ptLen + 16. */
static napi_value js_aead_seal(napi_env env, napi_callback_info info) {
  aead_args_t x;
  if (!get_args(env, info, &x)) return NULL;
  if (!check_range(env, x.out_size, x.out_off, x.in_len + TAG_LEN, "ciphertext output")) return NULL;
  uint8_t *out = x.out + x.out_off;
  if (!check_overlap(env, out, x.in, x.in_len)) return NULL;
  EVP_CIPHER_CTX *c = x.a->seal;
  int n, f;
  if (ssl.EVP_EncryptInit_ex(c, NULL, NULL, x.key, x.nonce) != 1 ||
      (x.ad_len && ssl.EVP_EncryptUpdate(c, NULL, &n, x.ad, (int)x.ad_len) != 1) ||
      ssl.EVP_EncryptUpdate(c, out, &n, x.in, (int)x.in_len) != 1 ||
      ssl.EVP_EncryptFinal_ex(c, out + n, &f) != 1 || (size_t)(n + f) != x.in_len ||
      ssl.EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, out + x.in_len) != 1) {
    ssl.OPENSSL_cleanse(out, x.in_len + TAG_LEN);
    ssl.EVP_EncryptInit_ex(c, NULL, NULL, zero_key, zero_nonce);
    throw_coded(env, "ERR_CRYPTO", "OpenSSL ChaCha20-Poly1305 seal failed");
    return NULL;
  }
  ssl.EVP_EncryptInit_ex(c, NULL, NULL, zero_key, zero_nonce);
  return num(env, (int64_t)(x.in_len + TAG_LEN));
}

/* aeadOpen(out, outOff, key, counter, ad, ct, ctOff, ctLen): the plaintext at out[outOff..] and its
 * length, or -1 when ct is shorter than a tag or fails authentication; then the plaintext range of
 * out is zeroed (what libsodium does), so no unauthenticated byte is left behind. */
static napi_value js_aead_open(napi_env env, napi_callback_info info) {
  aead_args_t x;
  if (!get_args(env, info, &x)) return NULL;
  if (x.in_len < TAG_LEN) return num(env, -1);
  size_t pt_len = x.in_len - TAG_LEN;
  if (!check_range(env, x.out_size, x.out_off, pt_len, "plaintext output")) return NULL;
  uint8_t *out = x.out + x.out_off;
  if (!check_overlap(env, out, x.in, pt_len)) return NULL;
  /* Copied first: an output just past the ciphertext may cover the tag. */
  uint8_t tag[TAG_LEN];
  memcpy(tag, x.in + pt_len, TAG_LEN);
  EVP_CIPHER_CTX *c = x.a->open;
  int n, f;
  if (ssl.EVP_DecryptInit_ex(c, NULL, NULL, x.key, x.nonce) != 1 ||
      (x.ad_len && ssl.EVP_DecryptUpdate(c, NULL, &n, x.ad, (int)x.ad_len) != 1) ||
      ssl.EVP_DecryptUpdate(c, out, &n, x.in, (int)pt_len) != 1 ||
      ssl.EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) != 1 ||
      ssl.EVP_DecryptFinal_ex(c, out + n, &f) != 1 || (size_t)(n + f) != pt_len) {
    ssl.OPENSSL_cleanse(out, pt_len);
    ssl.EVP_DecryptInit_ex(c, NULL, NULL, zero_key, zero_nonce);
    return num(env, -1);
  }
  ssl.EVP_DecryptInit_ex(c, NULL, NULL, zero_key, zero_nonce);
  return num(env, (int64_t)pt_len);
}

/* aeadInfo(): { available, why? }. */
static napi_value js_aead_info(napi_env env, napi_callback_info info) {
  void *data;
  napi_get_cb_info(env, info, NULL, NULL, NULL, &data);
  const char *why = data;
  napi_value o, v;
  napi_create_object(env, &o);
  napi_get_boolean(env, why == NULL, &v);
  napi_set_named_property(env, o, "available", v);
  if (why) {
    napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, o, "why", v);
  }
  return o;
}

void aead_register(napi_env env, napi_value exports) {
  static pthread_once_t resolved = PTHREAD_ONCE_INIT;
  pthread_once(&resolved, ssl_resolve);
  const char *why = ssl_missing;
  aead_env_t *a = NULL;
  if (!why) {
    a = calloc(1, sizeof *a);
    if (!a) why = "out of memory";
    else if ((why = aead_env_init(a)) != NULL) {
      aead_env_free(a);
      a = NULL;
    } else {
      napi_add_env_cleanup_hook(env, aead_env_free, a);
    }
  }
  napi_property_descriptor props[] = {
      {"aeadInfo", NULL, js_aead_info, NULL, NULL, NULL, napi_default, (void *)why},
  };
  napi_define_properties(env, exports, 1, props);
  if (a) {
    napi_property_descriptor fns[] = {
        {"aeadSeal", NULL, js_aead_seal, NULL, NULL, NULL, napi_default, a},
        {"aeadOpen", NULL, js_aead_open, NULL, NULL, NULL, napi_default, a},
    };
    napi_define_properties(env, exports, 2, fns);
  }
}
