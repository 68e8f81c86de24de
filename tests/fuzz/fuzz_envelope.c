/*
 * fuzz_envelope.c - the bytes of an RPC request envelope as the match
 * server reads them before a worker decodes them: lm_rpc_envelope_scan
 * (the method and request id of early answers, the metadata count), then
 * lm_pb_decode of RpcRequest and lm_rpc_request_check, as the worker does.
 *
 * Input: an RpcRequest's wire bytes.
 *
 * Asserts, besides no crash, leak or undefined behaviour: the scan's
 * strings are "" or NUL-terminated UTF-8 within their limits; when the
 * envelope decodes, the scan agrees with the decoder: the same method and
 * request id (or "" for one over its limit) and the same number of
 * metadata entries; lm_rpc_request_check answers LM_OK or LM_EINVAL with
 * a reason.
 */
#include <string.h>

#include "fuzzsupport.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/rpc.h"
#include "lunamatch/v1/rpc.pb-c.h"

/* What the scan must have read for the decoded string s of limit cap. */
static const char *
expected(const char *s, size_t cap)
{
	return s != NULL && strlen(s) <= cap ? s : "";
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char method[LM_RPC_MAX_METHOD + 1], reqid[LM_RPC_MAX_REQUEST_ID + 1], err[256];
	ProtobufCMessage *m = NULL;
	Lunamatch__V1__RpcRequest *req;
	size_t nmeta = 0;
	int rc;

	lm_rpc_envelope_scan(data, size, method, reqid, &nmeta);
	LMF_CHECK(lm_pb_utf8_valid(method, strlen(method)));
	LMF_CHECK(lm_pb_utf8_valid(reqid, strlen(reqid)));
	if (lm_pb_decode(&lunamatch__v1__rpc_request__descriptor, data, size,
	        LM_RPC_DEFAULT_MAX_REQUEST, &m, err, sizeof(err)) != LM_OK)
		return 0;
	req = (Lunamatch__V1__RpcRequest *) m;
	if (strcmp(method, expected(req->method, LM_RPC_MAX_METHOD)) != 0)
		lmf_fail("scanned method \"%s\", decoded \"%s\"", method, req->method);
	if (strcmp(reqid, expected(req->request_id, LM_RPC_MAX_REQUEST_ID)) != 0)
		lmf_fail(
		    "scanned request id \"%s\", decoded \"%s\"", reqid, req->request_id);
	if (nmeta != req->n_metadata)
		lmf_fail(
		    "scanned %zu metadata entries, decoded %zu", nmeta, req->n_metadata);
	err[0] = '\0';
	rc = lm_rpc_request_check(req, err, sizeof(err));
	LMF_CHECK(rc == LM_OK || (rc == LM_EINVAL && err[0] != '\0'));
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
