/*
 * test_rpc.c - lm_rpc_envelope_scan, the server's reading of a request
 * envelope before it is decoded: the method and request id are each
 * field's last occurrence, "" when over its limit, holding a NUL or not
 * UTF-8; metadata entries are counted; the scan stops where the bytes stop
 * being well-formed (a varint cut off or longer than 10 bytes, a length
 * past the end, an unknown wire type), keeping what it read before.
 * fuzz_envelope checks the scan against the decoder on arbitrary input.
 * lm_rpc_port_ok, the one rule for TCP ports.
 */
#include <netdb.h>
#include <stdint.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/rpc.h"

/* An envelope under construction. */
struct env {
	uint8_t b[1024];
	size_t n;
};

static void
put_byte(struct env *e, uint8_t v)
{
	assert_true(e->n < sizeof(e->b));
	e->b[e->n++] = v;
}

/* A length-delimited field of number num holding s (len bytes). */
static void
put_bytes(struct env *e, unsigned num, const char *s, size_t len)
{
	size_t n = len;

	put_byte(e, (uint8_t) (num << 3 | 2));
	for (; len >= 0x80; len >>= 7)
		put_byte(e, (uint8_t) (len | 0x80));
	put_byte(e, (uint8_t) len);
	assert_true(e->n + n <= sizeof(e->b));
	memcpy(e->b + e->n, s, n);
	e->n += n;
}

static void
put_str(struct env *e, unsigned num, const char *s)
{
	put_bytes(e, num, s, strlen(s));
}

struct scan {
	char method[LM_RPC_MAX_METHOD + 1], reqid[LM_RPC_MAX_REQUEST_ID + 1];
	size_t nmeta;
};

static struct scan
scan(const struct env *e)
{
	struct scan s;
	memset(&s, 'x', sizeof(s));
	lm_rpc_envelope_scan(e->b, e->n, s.method, s.reqid, &s.nmeta);
	return s;
}

static void
test_fields(void **state)
{
	struct env e = {.n = 0};
	struct scan s;

	(void) state;
	put_str(&e, 1, "lunamatch.v1.Match/MatchJobs");
	put_str(&e, 2, "req-1");
	put_byte(&e, 3 << 3 | 0); /* timeout_ms = 300 */
	put_byte(&e, 0xac);
	put_byte(&e, 0x02);
	put_str(&e, 4, "\x0a\x01k\x12\x01v"); /* a metadata entry */
	put_str(&e, 4, "");
	put_str(&e, 5, "payload");
	s = scan(&e);
	assert_string_equal(s.method, "lunamatch.v1.Match/MatchJobs");
	assert_string_equal(s.reqid, "req-1");
	assert_int_equal(s.nmeta, 2);

	/* The last occurrence wins, as in a decoder; one over its limit, with a
	 * NUL or not UTF-8 reads as "". */
	put_str(&e, 1, "lunamatch.v1.Match/Check");
	put_str(&e, 2, "req-2");
	s = scan(&e);
	assert_string_equal(s.method, "lunamatch.v1.Match/Check");
	assert_string_equal(s.reqid, "req-2");
	char big[LM_RPC_MAX_REQUEST_ID + 2];
	memset(big, 'r', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put_str(&e, 2, big);
	assert_string_equal(scan(&e).reqid, "");
	put_bytes(&e, 2, "a\0b", 3);
	assert_string_equal(scan(&e).reqid, "");
	put_str(&e, 1, "bad\xff");
	assert_string_equal(scan(&e).method, "");

	/* Nothing at all. */
	e.n = 0;
	s = scan(&e);
	assert_string_equal(s.method, "");
	assert_string_equal(s.reqid, "");
	assert_int_equal(s.nmeta, 0);
}

/* Malformed bytes end the scan with what came before them. */
static void
test_stops_at_malformed(void **state)
{
	struct env e = {.n = 0}, base;
	struct scan s;

	(void) state;
	put_str(&e, 1, "m1");
	put_str(&e, 4, "");
	base = e;

	/* A varint value of 11 bytes: a decoder refuses the envelope there,
	 * so the fields after it are not read (before, the scan stepped over
	 * it and read them). */
	put_byte(&e, 3 << 3 | 0);
	for (int i = 0; i < 10; i++)
		put_byte(&e, 0x80);
	put_byte(&e, 0x01);
	put_str(&e, 1, "m2");
	put_str(&e, 2, "r2");
	s = scan(&e);
	assert_string_equal(s.method, "m1");
	assert_string_equal(s.reqid, "");
	assert_int_equal(s.nmeta, 1);

	/* A key of 11 bytes. */
	e = base;
	for (int i = 0; i < 10; i++)
		put_byte(&e, 0x88);
	put_byte(&e, 0x01);
	put_str(&e, 1, "m2");
	assert_string_equal(scan(&e).method, "m1");

	/* A length past the end. */
	e = base;
	put_byte(&e, 2 << 3 | 2);
	put_byte(&e, 50);
	put_byte(&e, 'r');
	s = scan(&e);
	assert_string_equal(s.method, "m1");
	assert_string_equal(s.reqid, "");

	/* A varint cut off by the end. */
	e = base;
	put_byte(&e, 3 << 3 | 0);
	put_byte(&e, 0x80);
	assert_string_equal(scan(&e).method, "m1");

	/* An unknown wire type (3, a group start). */
	e = base;
	put_byte(&e, 6 << 3 | 3);
	put_str(&e, 1, "m2");
	s = scan(&e);
	assert_string_equal(s.method, "m1");
	assert_int_equal(s.nmeta, 1);
}

/* A TCP port: 1..65535 to dial, 0 too to listen; to dial also a service
 * name the system knows. */
static void
test_port_ok(void **state)
{
	(void) state;
	static const struct {
		const char *port;
		bool dial, listen;
	} cases[] = {
	    {"1", true, true},
	    {"80", true, true},
	    {"65535", true, true},
	    {"0", false, true},
	    {"00000", false, true},
	    {"65536", false, false},
	    {"99999", false, false},
	    {"123456", false, false},
	    {"", false, false},
	    {"7x00", false, false},
	    {"-1", false, false},
	    {"+80", false, false},
	    {" 80", false, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (lm_rpc_port_ok(cases[i].port, false) != cases[i].dial ||
		    lm_rpc_port_ok(cases[i].port, true) != cases[i].listen)
			fail_msg("port \"%s\"", cases[i].port);
	}
	assert_false(lm_rpc_port_ok(NULL, true));
	/* Service names: to dial when the system knows them (a machine
	 * without /etc/services knows none), never to listen. */
	assert_false(lm_rpc_port_ok("no-such-service-lunamatch", false));
	assert_false(lm_rpc_port_ok("http ", false));
	assert_false(lm_rpc_port_ok("0x50", false));
	assert_false(lm_rpc_port_ok("http", true));
	if (getservbyname("http", "tcp") != NULL)
		assert_true(lm_rpc_port_ok("http", false));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fields),
	    cmocka_unit_test(test_stops_at_malformed),
	    cmocka_unit_test(test_port_ok),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
