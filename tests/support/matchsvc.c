/*
 * matchsvc.c - a match service for a CLI test (see matchsvc.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "matchsvc.h"
#include "records.h"
#include "svctest.h"

#define ARGS_MAX 30

void
lmt_matchsvc_start(lmt_matchsvc *m, const char *tag)
{
	const char *argv[] = {lmt_bin("lunamatch-match"), NULL};
	char matches[128];

	m->dir = lmt_tmpdir(tag);
	snprintf(m->data, sizeof(m->data), "%s/data", m->dir);
	snprintf(m->log, sizeof(m->log), "%s/match.log", m->dir);
	snprintf(m->http, sizeof(m->http), "127.0.0.1:%d", lmt_free_port());
	snprintf(m->rpc_url, sizeof(m->rpc_url), "tcp://127.0.0.1:%d", lmt_free_port());
	snprintf(matches, sizeof(matches), "lmtest.%s.matches", tag);
	const lmt_topic topics[] = {{"LUNAMATCH_TOPIC_MATCHES", matches}};
	lmt_broker_open(&m->broker, 1, topics, 1);
	lmt_env_add(&m->env, "LUNAMATCH_BROKERS=%s", m->broker.brokers);
	lmt_env_add(&m->env, "LUNAMATCH_TOPIC_MATCHES=%s", matches);
	lmt_env_add(&m->env, "LUNAMATCH_DATA_DIR=%s", m->data);
	lmt_env_add(&m->env, "LUNAMATCH_NOTIFY_URL=ipc://%s/notify.ipc", m->dir);
	lmt_env_add(&m->env, "LUNAMATCH_HTTP_ADDR=%s", m->http);
	lmt_env_add(&m->env, "LUNAMATCH_RPC_URL=%s", m->rpc_url);
	lmt_env_add(&m->env, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
	lmt_env_add(&m->env, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
	lmt_env_add(
	    &m->env, "LUNAMATCH_MODEL_FILE=%s", lmt_src("data/model/default.json"));
	lmt_env_add(&m->env, "LUNAMATCH_POLL_MS=100");
	lmt_env_add(&m->env, "LUNAMATCH_LOG_LEVEL=info");
	assert_int_equal(lmt_proc_start_ex(argv, m->env.vec, m->log, &m->proc), LM_OK);
	lmt_wait_ready(
	    m->proc, m->http, "lunamatch-match", m->log, LMT_MATCHSVC_START_MS);
}

void
lmt_matchsvc_stop(lmt_matchsvc *m)
{
	if (m->proc != NULL)
		lmt_proc_stop(&m->proc, LMT_MATCHSVC_START_MS);
	lmt_broker_close(&m->broker);
	lmt_env_free(&m->env);
	lmt_rmtree(m->dir);
	free(m->dir);
	memset(m, 0, sizeof(*m));
}

/* Fills argv (ARGS_MAX + 6 entries) with the command line of
 * lmt_matchsvc_cli and err (600 bytes) with its stderr file. */
static void
cli_argv(const lmt_matchsvc *m, const char *const args[], const char **argv, char *err)
{
	size_t n = 0;

	argv[n++] = lmt_bin("lunamatch");
	for (size_t i = 0; args[i] != NULL; i++) {
		assert_true(i < ARGS_MAX);
		argv[n++] = args[i];
	}
	argv[n++] = "--url";
	argv[n++] = m->rpc_url;
	argv[n++] = "--data-dir";
	argv[n++] = m->data;
	argv[n] = NULL;
	snprintf(err, 600, "%s/cli.err", m->dir);
}

lmt_run_result
lmt_matchsvc_cli(const lmt_matchsvc *m, const char *const args[])
{
	const char *argv[ARGS_MAX + 6];
	const char *env[] = {"LUNAMATCH_LOG_LEVEL=warn", NULL};
	char err[600];

	cli_argv(m, args, argv, err);
	return lmt_run(argv, env, err, LMT_MATCHSVC_CLI_MS);
}

void
lmt_matchsvc_cli_unwritten(const lmt_matchsvc *m, const char *const args[])
{
	const char *argv[ARGS_MAX + 6];
	const char *env[] = {"LUNAMATCH_LOG_LEVEL=warn", NULL};
	char err[600];

	cli_argv(m, args, argv, err);
	lmt_expect_unwritten(argv, env, err, LMT_MATCHSVC_CLI_MS);
}

struct load {
	lmt_records *r;
	lm_store_txn *t;
	lm_kind kind;
	size_t n;
};

static void
load_one(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	struct load *l = arg;
	lm_reject why = LM_REJECT_NONE;
	uint8_t *buf = NULL;
	size_t n = 0;
	char err[256];
	(void) line;
	(void) len;

	if (lmt_record_prepare(&l->r->ctx, m, &why, err, sizeof(err)) != LM_OK)
		fail_msg("sample line %zu: %s", no, err);
	assert_int_equal(lm_pb_encode(m, &buf, &n), LM_OK);
	uint64_t version = l->kind == LM_KIND_POSTING
	                       ? ((Lunamatch__V1__JobPosting *) m)->version
	                       : ((Lunamatch__V1__CandidateProfile *) m)->version;
	assert_int_equal(
	    lm_store_put(l->t, l->kind, lmt_record_id(m), version, buf, n), LM_OK);
	l->n++;
	free(buf);
	protobuf_c_message_free_unpacked(m, NULL);
}

void
lmt_matchsvc_load_samples(lmt_matchsvc *m, size_t *postings, size_t *profiles)
{
	lmt_records r;
	struct load l = {.r = &r};
	lm_store *s = NULL;

	lmt_records_open(&r, 384);
	assert_int_equal(lm_store_open(m->data, NULL, &s), LM_OK);
	assert_int_equal(lm_store_begin(s, &l.t), LM_OK);
	l.kind = LM_KIND_POSTING;
	lmt_jsonl_foreach(
	    LMT_SAMPLE_POSTINGS, &lunamatch__v1__job_posting__descriptor, load_one, &l);
	if (postings != NULL)
		*postings = l.n;
	l.n = 0;
	l.kind = LM_KIND_PROFILE;
	lmt_jsonl_foreach(LMT_SAMPLE_PROFILES,
	    &lunamatch__v1__candidate_profile__descriptor, load_one, &l);
	if (profiles != NULL)
		*profiles = l.n;
	assert_int_equal(lm_store_commit(l.t, NULL), LM_OK);
	lm_store_close(s);
	lmt_records_close(&r);
}
