/*
 * health_check.c - whether a match service serves calls, and what its index
 * holds (Check, in the manner of grpc.health.v1).
 *
 *   cc health_check.c $(pkg-config --cflags --libs lunamatch-client)
 *   ./a.out tcp://127.0.0.1:7700
 *
 * Exit status: 0 SERVING, 1 any other answer (loading, draining, an error),
 * 2 usage (bad arguments, or a URL the client cannot use), 3 no answer (the
 * server could not be reached, or the client failed locally).
 */
#include <stdio.h>

#include <lunamatch/client.h>
#include <lunamatch/error.h>

int
main(int argc, char **argv)
{
	Lunamatch__V1__HealthCheckRequest req = LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
	Lunamatch__V1__HealthCheckResponse *resp = NULL;
	const ProtobufCEnumValue *v;
	lm_client *client = NULL;
	char msg[1024]; /* a server's reason is at most 1023 bytes */
	int status, rv, serving;

	if (argc != 2) {
		fprintf(stderr, "usage: %s URL\n", argv[0]);
		return 2;
	}
	if ((rv = lm_client_open(argv[1], NULL, &client)) != LM_OK) {
		/* LM_EINVAL: a URL the client cannot use (the reason is logged). */
		fprintf(stderr, "open %s: %s\n", argv[1], lm_strerror(rv));
		return rv == LM_EINVAL ? 2 : 3;
	}
	rv = lm_client_check(client, &req, 2000, &resp, &status, msg, sizeof(msg));
	lm_client_close(client);
	if (rv != LM_OK) {
		fprintf(stderr, "no answer: %s (%s)\n", lm_strerror(rv), msg);
		return 3;
	}
	if (status != LUNAMATCH__V1__STATUS_CODE__OK) {
		v = protobuf_c_enum_descriptor_get_value(
		    &lunamatch__v1__status_code__descriptor, status);
		fprintf(stderr, "%s: %s\n", v ? v->name : "error", msg);
		return 1;
	}
	v = protobuf_c_enum_descriptor_get_value(
	    &lunamatch__v1__health_check_response__serving_status__descriptor,
	    (int) resp->status);
	printf("%s: %llu postings, %llu profiles, index at %llu, model %s\n",
	    v ? v->name : "UNKNOWN", (unsigned long long) resp->postings,
	    (unsigned long long) resp->profiles, (unsigned long long) resp->index_seq,
	    resp->model_version);
	serving =
	    resp->status == LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return serving ? 0 : 1;
}
