/*
 * nng_close_stall.c - an LD_PRELOAD shim for test_shutdown.c: once the file
 * named by LMT_STALL_REQ_CLOSE exists, nng_close of a REQ socket never
 * returns, as nng 1.5.2's nng_close was seen to block for good on the
 * self-probe's REQ socket of a lunamatch-match that had been stopped
 * (SIGSTOP) and continued (nng #1543). Before it blocks, it creates the
 * file named by LMT_STALL_REQ_CLOSE with ".stuck" appended, so that a test
 * knows when a close is stuck. With LMT_STALL_ALL set, every nng_close
 * blocks once the file exists, as all do once a close holds nng 1.5.2's
 * one reaper thread (a connection closed in the middle of a large
 * transfer; docs/rpc.md). Every other call goes to nng.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

int
nng_close(nng_socket s)
{
	static int (*real)(nng_socket);
	const char *flag = getenv("LMT_STALL_REQ_CLOSE");
	char *proto = NULL;

	if (real == NULL)
		*(void **) &real = dlsym(RTLD_NEXT, "nng_close");
	if (flag != NULL && access(flag, F_OK) == 0 &&
	    nng_socket_get_string(s, NNG_OPT_PROTONAME, &proto) == 0) {
		bool req = strcmp(proto, "req") == 0 || getenv("LMT_STALL_ALL") != NULL;
		nng_strfree(proto);
		if (req) {
			char stuck[4096];
			FILE *f;
			snprintf(stuck, sizeof(stuck), "%s.stuck", flag);
			if ((f = fopen(stuck, "w")) != NULL)
				fclose(f);
		}
		while (req)
			sleep(3600);
	}
	return real(s);
}
