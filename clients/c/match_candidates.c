/*
 * match_candidates.c - the best candidates for a stored posting, with each
 * match's score and summary (MatchCandidates).
 *
 *   cc match_candidates.c $(pkg-config --cflags --libs lunamatch-client)
 *   ./a.out tcp://127.0.0.1:7700 job-dfs-sr-mgr-ml [TOP_K]
 *
 * TOP_K, the number of matches asked for, is 1..1000 as the service takes
 * it (default 5).
 *
 * Exit status: 0 ok, 1 the server answered with an error, 2 usage (bad
 * arguments, or a URL the client cannot use), 3 no answer (the server could not
 * be reached, or the client failed locally).
 */
#include <stdint.h>
#include <stdio.h>

#include <lunamatch/client.h>
#include <lunamatch/error.h>

/* The most matches the service gives for one request (docs/api.md). */
#define TOP_K_MAX 1000

/* Sets *top_k to the decimal number s when it is 1..TOP_K_MAX, digits only;
 * returns 0, or -1 for anything else. */
static int
parse_top_k(const char *s, uint32_t *top_k)
{
	uint32_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (uint32_t) (*s - '0');
		if (v > TOP_K_MAX)
			return -1;
	}
	if (v == 0)
		return -1;
	*top_k = v;
	return 0;
}

int
main(int argc, char **argv)
{
	Lunamatch__V1__MatchCandidatesRequest req =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesResponse *resp = NULL;
	const ProtobufCEnumValue *code;
	lm_client *client = NULL;
	char msg[1024]; /* a server's reason is at most 1023 bytes */
	int status, rv;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s URL JOB_ID [TOP_K]\n", argv[0]);
		return 2;
	}
	req.top_k = 5;
	if (argc == 4 && parse_top_k(argv[3], &req.top_k) != 0) {
		fprintf(stderr, "TOP_K \"%s\" is not a number in 1..%d\n", argv[3],
		    TOP_K_MAX);
		return 2;
	}
	if ((rv = lm_client_open(argv[1], NULL, &client)) != LM_OK) {
		/* LM_EINVAL: a URL the client cannot use (the reason is logged). */
		fprintf(stderr, "open %s: %s\n", argv[1], lm_strerror(rv));
		return rv == LM_EINVAL ? 2 : 3;
	}
	req.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	req.job_id = argv[2];
	req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY;
	rv = lm_client_match_candidates(
	    client, &req, 2000, &resp, &status, msg, sizeof(msg));
	lm_client_close(client);
	if (rv != LM_OK) {
		fprintf(stderr, "no answer: %s (%s)\n", lm_strerror(rv), msg);
		return 3;
	}
	if (status != LUNAMATCH__V1__STATUS_CODE__OK) {
		code = protobuf_c_enum_descriptor_get_value(
		    &lunamatch__v1__status_code__descriptor, status);
		fprintf(stderr, "%s: %s\n", code ? code->name : "error", msg);
		return 1;
	}
	printf("%zu matches of %llu profiles scored (model %s)\n", resp->n_matches,
	    (unsigned long long) resp->considered, resp->model_version);
	for (size_t i = 0; i < resp->n_matches; i++) {
		const Lunamatch__V1__Match *m = resp->matches[i];
		printf("%u. %.3f %s %s\n", m->rank, m->score, m->candidate_id,
		    m->explanation ? m->explanation->summary : "");
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}
