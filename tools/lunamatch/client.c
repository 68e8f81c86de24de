/*
 * client.c - how the commands of the `lunamatch` tool reach the match
 * service: one way to open the C client from the configuration, and one
 * mapping of a call's outcome to an exit status and an error message (see
 * cli.h).
 */
#include <string.h>

#include "cli.h"
#include "lunamatch/error.h"
#include "lunamatch/rpc.h"
#include "lunamatch/v1/rpc.pb-c.h"

int
lm_cli_client_open(const char *cmd, const lm_config *cfg, lm_client **out)
{
	lm_client_opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.tls_cert = cfg->tls_cert;
	o.tls_key = cfg->tls_key;
	o.tls_ca = cfg->tls_ca;
	o.default_timeout_ms = cfg->default_timeout_ms;
	o.caller = "lunamatch-cli"; /* recorded by the service's decision log */
	if ((rc = lm_client_open(cfg->rpc_url, &o, out)) != LM_OK) {
		lm_cli_error(cmd, "cannot use %s: %s", cfg->rpc_url, lm_strerror(rc));
		return LM_CLI_EXIT_USAGE;
	}
	return LM_CLI_EXIT_OK;
}

int
lm_cli_call_status(
    const char *cmd, const lm_config *cfg, int rc, int status, const char *errmsg)
{
	if (rc != LM_OK) {
		/* No answer from the server. */
		lm_cli_error(cmd, "%s: %s%s%s", cfg->rpc_url, lm_rpc_status_name(status),
		    errmsg[0] ? ": " : "", errmsg);
		if (rc == LM_EINVAL ||
		    status == LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT)
			return LM_CLI_EXIT_USAGE;
		return status == LUNAMATCH__V1__STATUS_CODE__INTERNAL
		           ? LM_CLI_EXIT_FAIL
		           : LM_CLI_EXIT_UNAVAILABLE;
	}
	if (status == LUNAMATCH__V1__STATUS_CODE__OK)
		return LM_CLI_EXIT_OK;
	lm_cli_error(
	    cmd, "%s%s%s", lm_rpc_status_name(status), errmsg[0] ? ": " : "", errmsg);
	if (status == LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE ||
	    status == LUNAMATCH__V1__STATUS_CODE__RESOURCE_EXHAUSTED)
		return LM_CLI_EXIT_UNAVAILABLE;
	return LM_CLI_EXIT_FAIL;
}
