/* sd_notify: datagrams to the service manager's $NOTIFY_SOCKET (sd_notify.c). */
#ifndef AOEGW_SD_NOTIFY_H
#define AOEGW_SD_NOTIFY_H

#include <node_api.h>

/* Adds notifySend, and the test-side notifyListen/notifyRecv/notifyClose, to the addon's exports. */
void sd_notify_register(napi_env env, napi_value exports);

#endif
