/*
 * rpc.c - envelope helpers shared by the RPC server and client; see rpc.h.
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/rpc.h"

static const char *const status_names[] = {
    [LUNAMATCH__V1__STATUS_CODE__OK] = "OK",
    [LUNAMATCH__V1__STATUS_CODE__CANCELLED] = "CANCELLED",
    [LUNAMATCH__V1__STATUS_CODE__UNKNOWN] = "UNKNOWN",
    [LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
    [LUNAMATCH__V1__STATUS_CODE__NOT_FOUND] = "NOT_FOUND",
    [LUNAMATCH__V1__STATUS_CODE__ALREADY_EXISTS] = "ALREADY_EXISTS",
    [LUNAMATCH__V1__STATUS_CODE__PERMISSION_DENIED] = "PERMISSION_DENIED",
    [LUNAMATCH__V1__STATUS_CODE__RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
    [LUNAMATCH__V1__STATUS_CODE__FAILED_PRECONDITION] = "FAILED_PRECONDITION",
    [LUNAMATCH__V1__STATUS_CODE__ABORTED] = "ABORTED",
    [LUNAMATCH__V1__STATUS_CODE__OUT_OF_RANGE] = "OUT_OF_RANGE",
    [LUNAMATCH__V1__STATUS_CODE__UNIMPLEMENTED] = "UNIMPLEMENTED",
    [LUNAMATCH__V1__STATUS_CODE__INTERNAL] = "INTERNAL",
    [LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE] = "UNAVAILABLE",
    [LUNAMATCH__V1__STATUS_CODE__DATA_LOSS] = "DATA_LOSS",
    [LUNAMATCH__V1__STATUS_CODE__UNAUTHENTICATED] = "UNAUTHENTICATED",
};

#define N_STATUS (sizeof(status_names) / sizeof(status_names[0]))

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
lm_rpc_method_name(const char *name, char *buf, size_t len)
{
	size_t n;

	if (name == NULL || buf == NULL || *name == '\0')
		return LM_EINVAL;
	for (n = 0; name[n] != '\0'; n++) {
		char c = name[n];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		        (c >= '0' && c <= '9') || c == '_'))
			return LM_EINVAL;
		if (n > LM_RPC_MAX_METHOD)
			return LM_E2BIG;
	}
	n += strlen(LM_RPC_METHOD_PREFIX);
	if (n > LM_RPC_MAX_METHOD || n + 1 > len)
		return LM_E2BIG;
	snprintf(buf, len, "%s%s", LM_RPC_METHOD_PREFIX, name);
	return LM_OK;
}

const char *
lm_rpc_method_short(const char *full)
{
	size_t p = strlen(LM_RPC_METHOD_PREFIX);

	if (full == NULL || strncmp(full, LM_RPC_METHOD_PREFIX, p) != 0 ||
	    full[p] == '\0')
		return NULL;
	return full + p;
}

const char *
lm_rpc_status_name(int code)
{
	if (code < 0 || (size_t) code >= N_STATUS || status_names[code] == NULL)
		return "UNKNOWN";
	return status_names[code];
}

int
lm_rpc_status_from_err(int err)
{
	switch (err) {
	case LM_OK:
		return LUNAMATCH__V1__STATUS_CODE__OK;
	case LM_ENOENT:
		return LUNAMATCH__V1__STATUS_CODE__NOT_FOUND;
	case LM_EINVAL:
	case LM_EPARSE:
	case LM_ESCHEMA:
	case LM_E2BIG:
		return LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT;
	case LM_ETIMEDOUT:
		return LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED;
	case LM_EBUSY:
	case LM_ENOSPC:
		return LUNAMATCH__V1__STATUS_CODE__RESOURCE_EXHAUSTED;
	case LM_ECLOSED:
		return LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE;
	case LM_ENOTSUP:
		return LUNAMATCH__V1__STATUS_CODE__UNIMPLEMENTED;
	case LM_EEXIST:
		return LUNAMATCH__V1__STATUS_CODE__ALREADY_EXISTS;
	default:
		return LUNAMATCH__V1__STATUS_CODE__INTERNAL;
	}
}

void
lm_rpc_envelope_scan(
    const uint8_t *p, size_t len, char *method, char *reqid, size_t *nmeta)
{
	size_t i = 0;

	method[0] = reqid[0] = '\0';
	if (nmeta != NULL)
		*nmeta = 0;
	while (i < len) {
		uint64_t key, v;
		if (!lm_pb_varint(p, len, &i, &key))
			return;
		switch (key & 7) {
		case 0: /* varint */
			if (!lm_pb_varint(p, len, &i, &v))
				return;
			break;
		case 1:
			i += 8;
			break;
		case 5:
			i += 4;
			break;
		case 2:
			if (!lm_pb_varint(p, len, &i, &v) || v > len - i)
				return;
			if ((key >> 3) == 4 && nmeta != NULL)
				(*nmeta)++;
			if ((key >> 3) == 1 || (key >> 3) == 2) {
				char *dst = (key >> 3) == 1 ? method : reqid;
				size_t cap = (key >> 3) == 1 ? LM_RPC_MAX_METHOD
				                             : LM_RPC_MAX_REQUEST_ID;
				dst[0] = '\0';
				if (v <= cap && memchr(p + i, '\0', v) == NULL &&
				    lm_pb_utf8_valid((const char *) p + i, v)) {
					memcpy(dst, p + i, v);
					dst[v] = '\0';
				}
			}
			i += v;
			break;
		default:
			return;
		}
	}
}

static bool
key_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	       c == '.';
}

int
lm_rpc_request_check(const Lunamatch__V1__RpcRequest *req, char *err, size_t errlen)
{
	size_t n;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (req == NULL)
		return LM_EINVAL;
	n = req->method ? strlen(req->method) : 0;
	if (n == 0) {
		seterr(err, errlen, "method is empty");
		return LM_EINVAL;
	}
	if (n > LM_RPC_MAX_METHOD) {
		seterr(err, errlen, "method is longer than %d bytes", LM_RPC_MAX_METHOD);
		return LM_EINVAL;
	}
	n = req->request_id ? strlen(req->request_id) : 0;
	if (n > LM_RPC_MAX_REQUEST_ID) {
		seterr(err, errlen, "request_id is longer than %d bytes",
		    LM_RPC_MAX_REQUEST_ID);
		return LM_EINVAL;
	}
	if (req->n_metadata > LM_RPC_MAX_METADATA) {
		seterr(err, errlen, "more than %d metadata entries", LM_RPC_MAX_METADATA);
		return LM_EINVAL;
	}
	for (size_t i = 0; i < req->n_metadata; i++) {
		const Lunamatch__V1__MetadataEntry *e = req->metadata[i];
		const char *k = e && e->key ? e->key : "";
		size_t kl = strlen(k);
		if (kl == 0) {
			seterr(err, errlen, "metadata[%zu]: empty key", i);
			return LM_EINVAL;
		}
		if (kl > LM_RPC_MAX_METADATA_KEY) {
			seterr(err, errlen, "metadata key longer than %d bytes",
			    LM_RPC_MAX_METADATA_KEY);
			return LM_EINVAL;
		}
		for (size_t j = 0; j < kl; j++) {
			if (!key_char_ok(k[j])) {
				seterr(err, errlen,
				    "metadata[%zu]: key must be lower case [a-z0-9._-]",
				    i);
				return LM_EINVAL;
			}
		}
		if (e->value != NULL && strlen(e->value) > LM_RPC_MAX_METADATA_VALUE) {
			seterr(err, errlen, "metadata value longer than %d bytes",
			    LM_RPC_MAX_METADATA_VALUE);
			return LM_EINVAL;
		}
	}
	return LM_OK;
}

bool
lm_rpc_url_is_tls(const char *url)
{
	/* nng reads a scheme in any case. */
	return url != NULL && strncasecmp(url, "tls+tcp", 7) == 0 &&
	       (strncmp(url + 7, "://", 3) == 0 || strncmp(url + 7, "4://", 4) == 0 ||
	           strncmp(url + 7, "6://", 4) == 0);
}

bool
lm_rpc_url_unresolved(const char *url)
{
	struct addrinfo hints, *ai = NULL;
	nng_url *u = NULL;
	bool bad = false;
	int gai;

	if (nng_url_parse(&u, url) != 0)
		return false;
	if (u->u_hostname != NULL && u->u_hostname[0] != '\0') {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		gai = getaddrinfo(u->u_hostname, NULL, &hints, &ai);
		bad = gai != 0 && gai != EAI_AGAIN && gai != EAI_SYSTEM &&
		      gai != EAI_MEMORY;
		if (ai != NULL)
			freeaddrinfo(ai);
	}
	nng_url_free(u);
	return bad;
}

/* Longest service name lm_rpc_port_ok looks up. */
#define SERVICE_NAME_MAX 64

bool
lm_rpc_port_ok(const char *port, bool listen)
{
	size_t n = port != NULL ? strnlen(port, SERVICE_NAME_MAX + 1) : 0;
	struct addrinfo hints, *ai = NULL;
	long v;

	if (n == 0 || n > SERVICE_NAME_MAX)
		return false;
	if (strspn(port, "0123456789") == n) {
		if (n > 5)
			return false;
		v = strtol(port, NULL, 10);
		return v <= 65535 && (v > 0 || listen);
	}
	/* A name: a letter, then letters, digits, '-' and '_' (not a number
	 * in another form, which getaddrinfo would read: "+80", " 80"). */
	if (listen || !isalpha((unsigned char) port[0]) ||
	    strspn(port,
	        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != n)
		return false;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(NULL, port, &hints, &ai) != 0)
		return false;
	freeaddrinfo(ai);
	return true;
}

/* Reads a whole PEM file into a NUL-terminated malloc'd buffer. */
static int
read_pem(const char *what, const char *path, char **out, char *err, size_t errlen)
{
	FILE *f;
	char *buf;
	size_t n;

	*out = NULL;
	f = fopen(path, "rb");
	if (f == NULL) {
		int e = errno;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s file %s: %s", what, path, strerror(e));
		return LM_EINVAL;
	}
	buf = malloc(LM_RPC_MAX_PEM + 1);
	if (buf == NULL) {
		fclose(f);
		return LM_ENOMEM;
	}
	n = fread(buf, 1, LM_RPC_MAX_PEM + 1, f);
	if (ferror(f)) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s file %s: read error", what, path);
		fclose(f);
		free(buf);
		return LM_EINVAL;
	}
	fclose(f);
	if (n > LM_RPC_MAX_PEM) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s file %s: larger than %u bytes", what,
			    path, LM_RPC_MAX_PEM);
		free(buf);
		return LM_E2BIG;
	}
	if (n == 0 || memchr(buf, '\0', n) != NULL) {
		if (err != NULL && errlen > 0)
			snprintf(
			    err, errlen, "%s file %s: empty or not PEM text", what, path);
		free(buf);
		return LM_EINVAL;
	}
	buf[n] = '\0';
	*out = buf;
	return LM_OK;
}

static bool
given(const char *s)
{
	return s != NULL && *s != '\0';
}

int
lm_rpc_tls_config(nng_tls_config **out, int mode, const char *cert, const char *key,
    const char *ca, char *err, size_t errlen)
{
	nng_tls_config *cfg = NULL;
	char *cert_pem = NULL, *key_pem = NULL, *ca_pem = NULL;
	int rv, nrv;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (out == NULL || (mode != NNG_TLS_MODE_SERVER && mode != NNG_TLS_MODE_CLIENT))
		return LM_EINVAL;
	*out = NULL;
	if (given(cert) != given(key)) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			    "TLS certificate and key go together: "
			    "give both or neither");
		return LM_EINVAL;
	}
	if (mode == NNG_TLS_MODE_SERVER && !given(cert)) {
		if (err != NULL && errlen > 0)
			snprintf(
			    err, errlen, "a TLS server needs a certificate and a key");
		return LM_EINVAL;
	}
	if (given(cert) &&
	    ((rv = read_pem("certificate", cert, &cert_pem, err, errlen)) != LM_OK ||
	        (rv = read_pem("key", key, &key_pem, err, errlen)) != LM_OK))
		goto fail;
	if (given(ca) && (rv = read_pem("CA", ca, &ca_pem, err, errlen)) != LM_OK)
		goto fail;

	nrv = nng_tls_config_alloc(&cfg, (nng_tls_mode) mode);
	if (nrv != 0) {
		rv = nrv == NNG_ENOMEM ? LM_ENOMEM : LM_ENOTSUP;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "TLS config: %s", nng_strerror(nrv));
		goto fail;
	}
	if (cert_pem != NULL &&
	    (nrv = nng_tls_config_own_cert(cfg, cert_pem, key_pem, NULL)) != 0) {
		rv = nrv == NNG_ENOMEM ? LM_ENOMEM : LM_EINVAL;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "TLS certificate %s / key %s: %s", cert,
			    key, nng_strerror(nrv));
		goto fail;
	}
	if (ca_pem != NULL && (nrv = nng_tls_config_ca_chain(cfg, ca_pem, NULL)) != 0) {
		rv = nrv == NNG_ENOMEM ? LM_ENOMEM : LM_EINVAL;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "TLS CA %s: %s", ca, nng_strerror(nrv));
		goto fail;
	}
	nrv = nng_tls_config_auth_mode(
	    cfg, ca_pem != NULL ? NNG_TLS_AUTH_MODE_REQUIRED : NNG_TLS_AUTH_MODE_NONE);
	if (nrv != 0) {
		rv = LM_EINVAL;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "TLS auth mode: %s", nng_strerror(nrv));
		goto fail;
	}
	free(cert_pem);
	/* The key was copied by nng; do not leave it lying in the heap. */
	if (key_pem != NULL) {
		explicit_bzero(key_pem, strlen(key_pem));
		free(key_pem);
	}
	free(ca_pem);
	*out = cfg;
	return LM_OK;
fail:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	free(cert_pem);
	if (key_pem != NULL) {
		explicit_bzero(key_pem, strlen(key_pem));
		free(key_pem);
	}
	free(ca_pem);
	return rv;
}

/* ---- bounded close ------------------------------------------------------ */

/*
 * One nng_close that may outlive its caller (lm_rpc_close_bounded): the
 * close runs on its own detached thread and the caller waits a bounded
 * time. The closer and the caller each hold a reference; the last one
 * frees it.
 */
struct closer {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* done was set; monotonic clock */
	nng_socket sock;
	bool done;
	int refs;
};

static void
closer_release(struct closer *c)
{
	bool last;

	pthread_mutex_lock(&c->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (last) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
	}
}

static void *
closer_main(void *arg)
{
	struct closer *c = arg;

	nng_close(c->sock);
	pthread_mutex_lock(&c->mu);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	closer_release(c);
	return NULL;
}

bool
lm_rpc_close_bounded(nng_socket sock, unsigned timeout_ms)
{
	struct closer *c = calloc(1, sizeof(*c));
	struct timespec until = lm_clock_deadline(timeout_ms);
	pthread_t t;
	bool done;

	if (c == NULL || pthread_mutex_init(&c->mu, NULL) != 0)
		goto unbounded;
	if (lm_cond_init_monotonic(&c->cv) != LM_OK) {
		pthread_mutex_destroy(&c->mu);
		goto unbounded;
	}
	c->sock = sock;
	c->refs = 2;
	if (pthread_create(&t, NULL, closer_main, c) != 0) {
		c->refs = 1;
		closer_release(c);
		c = NULL;
		goto unbounded;
	}
	pthread_detach(t);
	pthread_mutex_lock(&c->mu);
	while (!c->done)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT)
			break;
	done = c->done;
	pthread_mutex_unlock(&c->mu);
	closer_release(c);
	return done;

unbounded:
	free(c);
	nng_close(sock);
	return true;
}
