/*
 * bench:tunnel phase (f): what one ChaCha20-Poly1305 seal and open cost in C, without Node: the
 * floor under the tunnel's per-datagram AEAD. Built and run by bench/tunnel.ts when a C compiler and
 * the libraries are there:
 *   cc -O2 -I<node include dir> aead-floor.c -l:libsodium.so.23 -l:libcrypto.so.3
 * (libsodium's prototypes are declared here: its headers need not be installed; OpenSSL's come with
 * Node's headers.) Usage: aead-floor SIZE... ; prints "size sodiumSeal sodiumOpen evpSeal evpOpen" in
 * µs per message, best of 7 runs. EVP keeps one context with the key set and sets only the nonce per
 * message, as a per-batch native seal would.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int sodium_init(void);
int crypto_aead_chacha20poly1305_ietf_encrypt(unsigned char *c, unsigned long long *clen, const unsigned char *m,
                                              unsigned long long mlen, const unsigned char *ad,
                                              unsigned long long adlen, const unsigned char *nsec,
                                              const unsigned char *npub, const unsigned char *k);
int crypto_aead_chacha20poly1305_ietf_decrypt(unsigned char *m, unsigned long long *mlen, unsigned char *nsec,
                                              const unsigned char *c, unsigned long long clen,
                                              const unsigned char *ad, unsigned long long adlen,
                                              const unsigned char *npub, const unsigned char *k);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static unsigned char m[65536], c[65536 + 16], k[32], n[12], tag[16];

static int evp_seal(EVP_CIPHER_CTX *x, int len) {
  int ol, fl;
  EVP_EncryptInit_ex(x, NULL, NULL, NULL, n);
  EVP_EncryptUpdate(x, c, &ol, m, len);
  EVP_EncryptFinal_ex(x, c + ol, &fl);
  EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, c + ol + fl);
  return ol + fl + 16;
}

static int evp_open(EVP_CIPHER_CTX *x, int clen) {
  int ol, fl;
  EVP_DecryptInit_ex(x, NULL, NULL, NULL, n);
  EVP_DecryptUpdate(x, m, &ol, c, clen - 16);
  memcpy(tag, c + clen - 16, 16);
  EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, tag);
  return EVP_DecryptFinal_ex(x, m + ol, &fl) > 0 ? ol + fl : -1;
}

int main(int argc, char **argv) {
  if (sodium_init() < 0) return 1;
  memset(m, 0x5a, sizeof m);
  memset(k, 7, sizeof k);
  EVP_CIPHER_CTX *ex = EVP_CIPHER_CTX_new(), *dx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ex, EVP_chacha20_poly1305(), NULL, k, NULL);
  EVP_DecryptInit_ex(dx, EVP_chacha20_poly1305(), NULL, k, NULL);
  for (int a = 1; a < argc; a++) {
    int len = atoi(argv[a]);
    if (len < 0 || len > 65536) return 2;
    int iters = len > 2000 ? 20000 : 100000;
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    unsigned long long cl, ml;
    for (int rep = 0; rep < 7; rep++) {
      double t[5];
      t[0] = now();
      for (int i = 0; i < iters; i++) {
        n[0] = (unsigned char)i;
        crypto_aead_chacha20poly1305_ietf_encrypt(c, &cl, m, (unsigned long long)len, NULL, 0, NULL, n, k);
      }
      t[1] = now();
      for (int i = 0; i < iters; i++)
        if (crypto_aead_chacha20poly1305_ietf_decrypt(m, &ml, NULL, c, cl, NULL, 0, n, k) != 0) return 3;
      t[2] = now();
      int clen = 0;
      for (int i = 0; i < iters; i++) {
        n[0] = (unsigned char)i;
        clen = evp_seal(ex, len);
      }
      t[3] = now();
      for (int i = 0; i < iters; i++)
        if (evp_open(dx, clen) != len) return 4;
      t[4] = now();
      for (int j = 0; j < 4; j++) {
        double per = (t[j + 1] - t[j]) / iters;
        if (per < best[j]) best[j] = per;
      }
    }
    printf("%d %.4f %.4f %.4f %.4f\n", len, best[0] * 1e6, best[1] * 1e6, best[2] * 1e6, best[3] * 1e6);
  }
  EVP_CIPHER_CTX_free(ex);
  EVP_CIPHER_CTX_free(dx);
  return 0;
}
