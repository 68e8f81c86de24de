/*
 * get_record.c - a stored posting or profile as the service holds it,
 * normalized (GetPosting, GetProfile).
 *
 *   cc get_record.c $(pkg-config --cflags --libs lunamatch-client)
 *   ./a.out tcp://127.0.0.1:7700 posting job-dfs-sr-mgr-ml
 *   ./a.out tcp://127.0.0.1:7700 profile cand-ml-lead-chicago
 *
 * Exit status: 0 ok, 1 the server answered with an error (NOT_FOUND when there
 * is no such record), 2 usage (bad arguments, or a URL the client cannot use),
 * 3 no answer (the server could not be reached, or the client failed locally).
 */
#include <stdio.h>
#include <string.h>

#include <lunamatch/client.h>
#include <lunamatch/error.h>

int
main(int argc, char **argv)
{
	const ProtobufCEnumValue *code;
	lm_client *client = NULL;
	char msg[1024]; /* a server's reason is at most 1023 bytes */
	int status = 0, rv;
	int posting = argc == 4 && strcmp(argv[2], "posting") == 0;

	if (argc != 4 || (!posting && strcmp(argv[2], "profile") != 0)) {
		fprintf(stderr, "usage: %s URL posting|profile ID\n", argv[0]);
		return 2;
	}
	if ((rv = lm_client_open(argv[1], NULL, &client)) != LM_OK) {
		/* LM_EINVAL: a URL the client cannot use (the reason is logged). */
		fprintf(stderr, "open %s: %s\n", argv[1], lm_strerror(rv));
		return rv == LM_EINVAL ? 2 : 3;
	}
	if (posting) {
		Lunamatch__V1__GetPostingRequest req =
		    LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
		Lunamatch__V1__GetPostingResponse *resp = NULL;
		req.id = argv[3];
		rv = lm_client_get_posting(
		    client, &req, 2000, &resp, &status, msg, sizeof(msg));
		if (rv == LM_OK && status == LUNAMATCH__V1__STATUS_CODE__OK) {
			const Lunamatch__V1__JobPosting *p = resp->posting;
			if (p == NULL) {
				fprintf(stderr, "answer without a posting\n");
				protobuf_c_message_free_unpacked(&resp->base, NULL);
				lm_client_close(client);
				return 1;
			}
			printf("posting %s version %llu: %s at %s, %zu skills\n", p->id,
			    (unsigned long long) p->version, p->title, p->company,
			    p->n_skills);
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
	} else {
		Lunamatch__V1__GetProfileRequest req =
		    LUNAMATCH__V1__GET_PROFILE_REQUEST__INIT;
		Lunamatch__V1__GetProfileResponse *resp = NULL;
		req.id = argv[3];
		rv = lm_client_get_profile(
		    client, &req, 2000, &resp, &status, msg, sizeof(msg));
		if (rv == LM_OK && status == LUNAMATCH__V1__STATUS_CODE__OK) {
			const Lunamatch__V1__CandidateProfile *c = resp->profile;
			if (c == NULL) {
				fprintf(stderr, "answer without a profile\n");
				protobuf_c_message_free_unpacked(&resp->base, NULL);
				lm_client_close(client);
				return 1;
			}
			printf("profile %s version %llu: %s, %zu skills\n", c->id,
			    (unsigned long long) c->version, c->headline, c->n_skills);
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
	}
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
	return 0;
}
