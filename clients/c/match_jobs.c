/*
 * match_jobs.c - the smallest complete MatchService client: the top jobs for
 * a stored candidate, with each match's summary.
 *
 *   cc match_jobs.c $(pkg-config --cflags --libs lunamatch-client) -o match_jobs
 *   ./match_jobs tcp://127.0.0.1:7700 cand-ml-lead-chicago
 *
 * Exit status: 0 ok, 1 the server answered with an error, 2 usage (bad
 * arguments, or a URL the client cannot use), 3 no answer (the server could not
 * be reached, or the client failed locally).
 */
#include <stdio.h>

#include <lunamatch/client.h>
#include <lunamatch/error.h>

int
main(int argc, char **argv)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *resp = NULL;
	lm_client *client = NULL;
	char msg[1024]; /* a server's reason is at most 1023 bytes */
	int status, rv;

	if (argc != 3) {
		fprintf(stderr, "usage: %s URL CANDIDATE_ID\n", argv[0]);
		return 2;
	}
	if ((rv = lm_client_open(argv[1], NULL, &client)) != LM_OK) {
		/* LM_EINVAL: a URL the client cannot use (the reason is logged). */
		fprintf(stderr, "open %s: %s\n", argv[1], lm_strerror(rv));
		return rv == LM_EINVAL ? 2 : 3;
	}
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = argv[2];
	req.top_k = 5;
	rv = lm_client_match_jobs(client, &req, 2000, &resp, &status, msg, sizeof(msg));
	lm_client_close(client);
	if (rv != LM_OK) {
		fprintf(stderr, "no answer: %s (%s)\n", lm_strerror(rv), msg);
		return 3;
	}
	if (status != LUNAMATCH__V1__STATUS_CODE__OK) {
		const ProtobufCEnumValue *code = protobuf_c_enum_descriptor_get_value(
		    &lunamatch__v1__status_code__descriptor, status);
		fprintf(stderr, "%s: %s\n", code ? code->name : "error", msg);
		return 1;
	}
	for (size_t i = 0; i < resp->n_matches; i++) {
		const Lunamatch__V1__Match *m = resp->matches[i];
		printf("%u. %.3f %s %s\n", m->rank, m->score, m->job_id,
		    m->explanation ? m->explanation->summary : "");
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}
