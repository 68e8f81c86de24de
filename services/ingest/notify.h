/*
 * notify.h - store change notifications published by ingest.
 *
 * After each committed batch ingest publishes a serialized
 * lunamatch.v1.StoreNotify {last_seq} on an nng PUB0 socket listening on
 * LUNAMATCH_NOTIFY_URL. Subscribers (match) use it as a hint to read the
 * change log now instead of at their next poll; a lost notification delays
 * nothing by more than one poll period, so sending never blocks and drops
 * the message when a subscriber is slow.
 *
 * Threads: one thread sends; open and close on the same thread.
 */
#ifndef LUNAMATCH_NOTIFY_H
#define LUNAMATCH_NOTIFY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Receive size limit set on the socket (PUB never receives; set anyway). */
#define LM_NOTIFY_RECV_MAX 1024

typedef struct lm_notify lm_notify;

/* Opens a PUB0 socket listening on url (tcp://, ipc://). Returns LM_OK and
 * *out, LM_EINVAL for a malformed URL or an address that cannot be bound
 * here, LM_ENOENT for a host name that does not resolve
 * (lm_rpc_url_unresolved), LM_ENNG (logged) when it cannot listen
 * otherwise, LM_ENOMEM. */
int lm_notify_open(const char *url, lm_notify **out);

/* Publishes StoreNotify {last_seq} without blocking. Returns LM_OK (also
 * when there is no subscriber), LM_ENNG or LM_ENOMEM. */
int lm_notify_send(lm_notify *n, uint64_t last_seq);

/* Closes the socket; NULL is a no-op. */
void lm_notify_close(lm_notify *n);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_NOTIFY_H */
