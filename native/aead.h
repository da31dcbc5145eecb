/* aead: ChaCha20-Poly1305 over the process's OpenSSL (aead.c). */
#ifndef AOEGW_AEAD_H
#define AOEGW_AEAD_H

#include <node_api.h>

/* Adds aeadInfo, and aeadSeal/aeadOpen when OpenSSL is usable, to the addon's exports. */
void aead_register(napi_env env, napi_value exports);

#endif
