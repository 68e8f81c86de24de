/*
 * notify.c - StoreNotify publisher on an nng PUB0 socket; see notify.h.
 */
#include <stdbool.h>
#include <stdlib.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "lunamatch/rpc.h"
#include "lunamatch/v1/store.pb-c.h"
#include "notify.h"

struct lm_notify {
	nng_socket sock;
};

int
lm_notify_open(const char *url, lm_notify **out)
{
	lm_notify *n;
	int e;

	*out = NULL;
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return LM_ENOMEM;
	if ((e = nng_pub0_open(&n->sock)) != 0) {
		lm_error("notify.open", "cannot open PUB socket: %s", nng_strerror(e));
		free(n);
		return lm_err_from_nng(e);
	}
	(void) nng_socket_set_size(n->sock, NNG_OPT_RECVMAXSZ, LM_NOTIFY_RECV_MAX);
	if ((e = nng_listen(n->sock, url, NULL, 0)) != 0) {
		bool unresolved = e == NNG_EADDRINVAL && lm_rpc_url_unresolved(url);
		lm_error("notify.listen", "cannot listen on %s: %s", url,
		    unresolved ? "its host does not resolve" : nng_strerror(e));
		nng_close(n->sock);
		free(n);
		return unresolved ? LM_ENOENT
		       : e == NNG_EADDRINVAL || e == NNG_EINVAL || e == NNG_ENOTSUP
		           ? LM_EINVAL
		           : LM_ENNG;
	}
	*out = n;
	return LM_OK;
}

int
lm_notify_send(lm_notify *n, uint64_t last_seq)
{
	Lunamatch__V1__StoreNotify msg = LUNAMATCH__V1__STORE_NOTIFY__INIT;
	uint8_t buf[16]; /* tag + 10-byte varint at most */
	size_t len;
	int e;

	msg.last_seq = last_seq;
	len = lunamatch__v1__store_notify__pack(&msg, buf);
	e = nng_send(n->sock, buf, len, NNG_FLAG_NONBLOCK);
	if (e == 0 || e == NNG_EAGAIN)
		return LM_OK;
	lm_warn("notify.send", "cannot publish store notification: %s", nng_strerror(e));
	return lm_err_from_nng(e);
}

void
lm_notify_close(lm_notify *n)
{
	if (n == NULL)
		return;
	nng_close(n->sock);
	free(n);
}
