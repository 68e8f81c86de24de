/*
 * explain_match.c - why a candidate and a posting match or do not
 * (ExplainMatch): the score, each feature's contribution, the skills
 * matched and missing, the vetoes and the suggested improvements.
 *
 *   cc explain_match.c $(pkg-config --cflags --libs lunamatch-client)
 *   ./a.out tcp://127.0.0.1:7700 cand-ml-lead-chicago job-dfs-sr-mgr-ml
 *
 * Exit status: 0 ok (eligible or not), 1 the server answered with an error
 * (NOT_FOUND for an unknown id), 2 usage (bad arguments, or a URL the client
 * cannot use), 3 no answer (the server could not be reached, or the client
 * failed locally).
 */
#include <stdio.h>

#include <lunamatch/client.h>
#include <lunamatch/error.h>

int
main(int argc, char **argv)
{
	Lunamatch__V1__ExplainMatchRequest req =
	    LUNAMATCH__V1__EXPLAIN_MATCH_REQUEST__INIT;
	Lunamatch__V1__ExplainMatchResponse *resp = NULL;
	const Lunamatch__V1__Explanation *e;
	const ProtobufCEnumValue *code;
	lm_client *client = NULL;
	char msg[1024]; /* a server's reason is at most 1023 bytes */
	int status, rv;

	if (argc != 4) {
		fprintf(stderr, "usage: %s URL CANDIDATE_ID JOB_ID\n", argv[0]);
		return 2;
	}
	if ((rv = lm_client_open(argv[1], NULL, &client)) != LM_OK) {
		/* LM_EINVAL: a URL the client cannot use (the reason is logged). */
		fprintf(stderr, "open %s: %s\n", argv[1], lm_strerror(rv));
		return rv == LM_EINVAL ? 2 : 3;
	}
	req.candidate_id = argv[2];
	req.job_id = argv[3];
	rv =
	    lm_client_explain_match(client, &req, 2000, &resp, &status, msg, sizeof(msg));
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
	if (resp->match == NULL || resp->match->explanation == NULL) {
		fprintf(stderr, "answer without an explanation\n");
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return 1;
	}
	e = resp->match->explanation;
	printf("%s: score %.3f, %s\n", resp->eligible ? "eligible" : "not eligible",
	    resp->match->score, e->summary);
	for (size_t i = 0; i < e->n_features; i++)
		printf("  feature %-12s value %.2f weight %.2f contribution %.3f  %s\n",
		    e->features[i]->feature, e->features[i]->value,
		    e->features[i]->weight, e->features[i]->contribution,
		    e->features[i]->detail);
	for (size_t i = 0; i < e->n_matched_skills; i++)
		printf("  has     %s\n", e->matched_skills[i]->name);
	for (size_t i = 0; i < e->n_missing_skills; i++)
		printf("  missing %s\n", e->missing_skills[i]->name);
	for (size_t i = 0; i < e->n_vetoes; i++)
		printf("  veto    %s: %s\n", e->vetoes[i]->code, e->vetoes[i]->reason);
	for (size_t i = 0; i < e->n_improvements; i++)
		printf("  improve %s (+%.3f)\n", e->improvements[i]->action,
		    e->improvements[i]->score_gain);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}
