/*
 * client_methods.h - which MatchService methods the C client sends again.
 *
 * Internal (not installed, not exported by liblunamatch-client): the table
 * is in client.c, where lm_client_call consults it; tests check it against
 * the service descriptor, so that a method added to match.proto is not
 * sent again until someone decided that it is read-only.
 */
#ifndef LUNAMATCH_CLIENT_METHODS_H
#define LUNAMATCH_CLIENT_METHODS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lm_client_method_kind {
	LM_CLIENT_METHOD_UNLISTED,  /* not in the table: sent once */
	LM_CLIENT_METHOD_ONCE,      /* listed, with side effects: sent once */
	LM_CLIENT_METHOD_READ_ONLY, /* listed, read-only: may be sent again */
} lm_client_method_kind;

/* What the client's table says of method (short name, e.g. "MatchJobs",
 * compared exactly); NULL is LM_CLIENT_METHOD_UNLISTED. Any thread. */
lm_client_method_kind lm_client_method_kind_of(const char *method);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_CLIENT_METHODS_H */
