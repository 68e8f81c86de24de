/*
 * pb.c - checked protobuf decoding: size limit, a wire-format walk that
 * explains malformed input and enforces UTF-8 strings, then protobuf-c's
 * unpacker. Encoding is a malloc'd protobuf_c_message_pack.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/fault.h"
#include "lunamatch/pb.h"

/* Allocations of lm_pb_decode that tests make fail (lm_pb_fail_allocs). */
static atomic_uint fail_allocs;

#define PATH_MAX_LEN 256

/* One level of the path to the field being read. */
struct level {
	const ProtobufCFieldDescriptor *f; /* NULL for a field the type lacks */
	uint64_t num;
};

/* The path is kept as the fields of each level and written out only when
 * an error names it: well-formed input never formats anything. */
struct walk {
	struct level path[LM_PB_MAX_DEPTH + 1];
	unsigned depth; /* levels of path in use */
	char *err;
	size_t errlen;
};

static int bad(struct walk *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
bad(struct walk *w, int code, const char *fmt, ...)
{
	char path[PATH_MAX_LEN];
	size_t plen = 0;

	if (w->errlen == 0)
		return code;
	path[0] = '\0';
	for (unsigned i = 0; i < w->depth && plen < sizeof(path) - 1; i++) {
		const struct level *l = &w->path[i];
		int k = l->f ? snprintf(path + plen, sizeof(path) - plen, "%s%s",
		                   i ? "." : "", l->f->name)
		             : snprintf(path + plen, sizeof(path) - plen, "%sfield %llu",
		                   i ? "." : "", (unsigned long long) l->num);
		plen += k >= 0 && (size_t) k < sizeof(path) - plen
		            ? (size_t) k
		            : sizeof(path) - 1 - plen;
	}
	int n = plen > 0 ? snprintf(w->err, w->errlen, "%s: ", path) : 0;
	if (n < 0 || (size_t) n >= w->errlen)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->err + n, w->errlen - (size_t) n, fmt, ap);
	va_end(ap);
	return code;
}

bool
lm_pb_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned i = 0; i < 10 && *pos < len; i++) {
		uint8_t b = p[(*pos)++];
		x |= (uint64_t) (b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

/* The wire type a field of this type has when it is not packed. */
static unsigned
wire_type_of(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 1;
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return 5;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return 2;
	default:
		return 0;
	}
}

/*
 * True when v, the varint of an enum field, is a value of int32 (a negative
 * one is sign-extended to 64 bits on the wire). protobuf-c keeps the low 32
 * bits of any other, so that 2^32 + 1 would be read as 1.
 */
static bool
enum_in_range(uint64_t v)
{
	return v <= (uint64_t) INT32_MAX || v >= (uint64_t) (int64_t) INT32_MIN;
}

#define ENUM_RANGE "enum value %llu " LM_PB_MSG_ENUM_RANGE

/* Checks the body of a packed repeated field of fixed or varint elements. */
static int
check_packed(
    struct walk *w, const ProtobufCFieldDescriptor *f, const uint8_t *p, size_t len)
{
	unsigned wt = wire_type_of(f->type);
	size_t width = wt == 1 ? 8 : wt == 5 ? 4 : 0;
	if (width != 0) {
		if (len % width != 0)
			return bad(w, LM_EPARSE,
			    "packed length %zu is not a multiple of %zu", len, width);
		return LM_OK;
	}
	for (size_t pos = 0; pos < len;) {
		uint64_t v;
		if (!lm_pb_varint(p, len, &pos, &v))
			return bad(w, LM_EPARSE, "truncated varint in packed field");
		if (f->type == PROTOBUF_C_TYPE_BOOL && v > 1)
			return bad(w, LM_EPARSE, "packed boolean is neither 0 nor 1");
		if (f->type == PROTOBUF_C_TYPE_ENUM && !enum_in_range(v))
			return bad(w, LM_EPARSE, ENUM_RANGE, (unsigned long long) v);
	}
	return LM_OK;
}

/*
 * Walks one message's wire data: every tag, length and known field's wire
 * type, every string for UTF-8 and NUL bytes, every enum value for the
 * int32 range, every known sub-message
 * recursively (unknown fields are skipped, not entered). p is at offset base
 * of the whole input, for the byte positions in messages. Returns LM_OK,
 * LM_EPARSE or LM_E2BIG with the reason in w->err.
 */
static int
walk(struct walk *w, const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len,
    size_t base, unsigned depth)
{
	if (depth > LM_PB_MAX_DEPTH)
		return bad(w, LM_E2BIG, "messages nested deeper than %d levels",
		    LM_PB_MAX_DEPTH);
	size_t pos = 0;
	while (pos < len) {
		size_t at = base + pos;
		w->depth = depth - 1; /* the path of this message */
		uint64_t tag, n;
		if (!lm_pb_varint(p, len, &pos, &tag))
			return bad(w, LM_EPARSE, "truncated field tag at byte %zu", at);
		uint64_t num = tag >> 3;
		unsigned wt = (unsigned) (tag & 7);
		if (num == 0 || num > 536870911u)
			return bad(w, LM_EPARSE, "invalid field number at byte %zu", at);
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field(desc, (unsigned) num);

		w->path[depth - 1] = (struct level){f, num};
		w->depth = depth;

		if (wt != 0 && wt != 1 && wt != 2 && wt != 5)
			return bad(
			    w, LM_EPARSE, "unsupported wire type %u at byte %zu", wt, at);
		bool packed = false;
		if (f && wt != wire_type_of(f->type)) {
			packed = wt == 2 && f->label == PROTOBUF_C_LABEL_REPEATED &&
			         wire_type_of(f->type) != 2;
			if (!packed)
				return bad(w, LM_EPARSE,
				    "wire type %u does not match the field's type", wt);
		}
		int rc = LM_OK;
		size_t vat = base + pos; /* where the value starts */
		switch (wt) {
		case 0:
			if (!lm_pb_varint(p, len, &pos, &n))
				return bad(
				    w, LM_EPARSE, "truncated varint at byte %zu", vat);
			if (f && f->type == PROTOBUF_C_TYPE_ENUM && !enum_in_range(n))
				return bad(w, LM_EPARSE, ENUM_RANGE " at byte %zu",
				    (unsigned long long) n, vat);
			break;
		case 1:
		case 5: {
			size_t width = wt == 1 ? 8 : 4;
			if (len - pos < width)
				return bad(w, LM_EPARSE,
				    "truncated %zu-byte value at byte %zu", width, vat);
			pos += width;
			break;
		}
		case 2: {
			if (!lm_pb_varint(p, len, &pos, &n))
				return bad(
				    w, LM_EPARSE, "truncated length at byte %zu", vat);
			if (n > len - pos)
				return bad(w, LM_EPARSE,
				    "length %llu at byte %zu runs past the end of the "
				    "data",
				    (unsigned long long) n, at);
			const uint8_t *body = p + pos;
			pos += (size_t) n;
			if (!f)
				break;
			if (packed)
				rc = check_packed(w, f, body, (size_t) n);
			else if (f->type == PROTOBUF_C_TYPE_STRING) {
				if (memchr(body, 0, (size_t) n))
					return bad(
					    w, LM_EPARSE, "string contains a NUL byte");
				if (!lm_pb_utf8_valid((const char *) body, (size_t) n))
					return bad(w, LM_EPARSE, LM_PB_MSG_BAD_UTF8);
			} else if (f->type == PROTOBUF_C_TYPE_MESSAGE)
				rc = walk(w, f->descriptor, body, (size_t) n,
				    base + (size_t) (body - p), depth + 1);
			break;
		}
		}
		if (rc != LM_OK)
			return rc;
	}
	w->depth = depth - 1;
	return LM_OK;
}

int
lm_pb_decode_with(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
    size_t max_len, ProtobufCAllocator *a, ProtobufCMessage **out, char *err,
    size_t errlen)
{
	struct walk w = {.depth = 0, .err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	else
		w.errlen = 0;
	if (out)
		*out = NULL;
	if (!desc || !out || (!data && len > 0))
		return bad(&w, LM_EINVAL, "missing message type, data or output");
	if (len > max_len)
		return bad(&w, LM_E2BIG, "%zu bytes exceed the limit of %zu bytes", len,
		    max_len);
	int rc = walk(&w, desc, data, len, 0, 1);
	if (rc != LM_OK)
		return rc;
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, a, len, data);
	if (!m)
		return bad(&w, LM_EPARSE,
		    "%s: cannot unpack (missing required field or out of "
		    "memory)",
		    desc->name);
	*out = m;
	return LM_OK;
}

void
lm_decode_budget_init(lm_decode_budget *b, size_t floor, size_t factor, size_t len)
{
	b->left = factor > 0 && len > (SIZE_MAX - floor) / factor ? SIZE_MAX
	                                                          : floor + factor * len;
	b->over = false;
}

bool
lm_decode_budget_charge(lm_decode_budget *b, size_t n)
{
	if (n > b->left || b->left - n < LM_DECODE_BUDGET_OVERHEAD) {
		b->over = true;
		return false;
	}
	b->left -= n + LM_DECODE_BUDGET_OVERHEAD;
	return true;
}

/*
 * The allocator of a decode: it charges each allocation to the decode's
 * budget (lm_decode_budget) and notes an allocation that failed (malloc,
 * or the test seam fail_allocs), so that running out of memory is told
 * apart from bad input, which must not be rejected for good for it (to a
 * dead-letter topic or as a corrupt entry).
 */
struct decode_alloc {
	lm_decode_budget budget;
	bool failed; /* an allocation failed */
};

static void *
budget_alloc(void *arg, size_t n)
{
	struct decode_alloc *b = arg;
	void *p;

	if (!lm_decode_budget_charge(&b->budget, n))
		return NULL;
	if ((p = lm_fault_take(&fail_allocs) ? NULL : malloc(n > 0 ? n : 1)) == NULL)
		b->failed = true;
	return p;
}

static void
budget_free(void *arg, void *p)
{
	(void) arg;
	free(p); /* as protobuf-c's own allocator: *out is freed with it */
}

/* lm_pb_decode_with within a budget of floor + factor * len bytes. */
static int
decode_within(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
    size_t max_len, size_t floor, size_t factor, ProtobufCMessage **out, char *err,
    size_t errlen)
{
	struct decode_alloc b = {.failed = false};
	ProtobufCAllocator a = {budget_alloc, budget_free, &b};
	size_t limit;
	int rc;

	lm_decode_budget_init(&b.budget, floor, factor, len);
	limit = b.budget.left;
	if ((rc = lm_pb_decode_with(desc, data, len, max_len, &a, out, err, errlen)) ==
	    LM_OK)
		return LM_OK;
	if (b.failed) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: out of memory", desc->name);
		return LM_ENOMEM;
	}
	if (b.budget.over) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			    "%zu bytes would take more than %zu bytes of memory to "
			    "decode (too many fields)",
			    len, limit);
		return LM_E2BIG;
	}
	return rc;
}

int
lm_pb_decode_capped(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
    size_t max_len, ProtobufCMessage **out, char *err, size_t errlen)
{
	return decode_within(desc, data, len, max_len, LM_PB_DECODE_FLOOR,
	    LM_PB_DECODE_FACTOR, out, err, errlen);
}

int
lm_pb_decode(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
    size_t max_len, ProtobufCMessage **out, char *err, size_t errlen)
{
	return decode_within(desc, data, len, max_len, SIZE_MAX, 0, out, err, errlen);
}

void
lm_pb_fail_allocs(unsigned n)
{
	atomic_store(&fail_allocs, n);
}

int
lm_pb_encode(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
	if (!msg || !out || !len)
		return LM_EINVAL;
	*out = NULL;
	*len = 0;
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n > 0 ? n : 1);
	if (!buf)
		return LM_ENOMEM;
	if (protobuf_c_message_pack(msg, buf) != n) {
		free(buf);
		return LM_EINTERNAL;
	}
	*out = buf;
	*len = n;
	return LM_OK;
}

/* Frees p as allocator a (NULL: protobuf-c's default, malloc) would. */
static void
release(ProtobufCAllocator *a, void *p)
{
	if (a == NULL)
		free(p);
	else
		a->free(a->allocator_data, p);
}

size_t
lm_pb_strip_unknown(ProtobufCMessage *msg, ProtobufCAllocator *a)
{
	const ProtobufCMessageDescriptor *desc;
	size_t n;

	if (msg == NULL)
		return 0;
	n = msg->n_unknown_fields;
	for (size_t i = 0; i < msg->n_unknown_fields; i++)
		release(a, msg->unknown_fields[i].data);
	release(a, msg->unknown_fields);
	msg->unknown_fields = NULL;
	msg->n_unknown_fields = 0;

	desc = msg->descriptor;
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		const char *base = (const char *) msg;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t count = *(const size_t *) (base + f->quantifier_offset);
			ProtobufCMessage *const *v =
			    *(ProtobufCMessage *const *const *) (base + f->offset);
			for (size_t k = 0; k < count; k++)
				n += lm_pb_strip_unknown(v[k], a);
			continue;
		}
		/* A oneof's members share their storage: only the member set
		 * is a message. */
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
		    *(const uint32_t *) (base + f->quantifier_offset) != f->id)
			continue;
		n += lm_pb_strip_unknown(
		    *(ProtobufCMessage *const *) (base + f->offset), a);
	}
	return n;
}

int
lm_pb_copy(const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	uint8_t *buf;
	size_t len;
	int rc;

	if (out != NULL)
		*out = NULL;
	if (msg == NULL || out == NULL)
		return LM_EINVAL;
	if ((rc = lm_pb_encode(msg, &buf, &len)) != LM_OK)
		return rc;
	/* Bytes this process packed unpack unless memory runs out. */
	*out = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
	free(buf);
	return *out == NULL ? LM_ENOMEM : LM_OK;
}

bool
lm_pb_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t i = 0;
	while (i < len) {
		unsigned c = p[i];
		uint64_t x;
		/* Eight ASCII bytes at a time: most text is ASCII. */
		if (len - i >= 8 && (memcpy(&x, p + i, 8), !(x & 0x8080808080808080u))) {
			i += 8;
			continue;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t need;
		unsigned lo = 0x80, hi = 0xbf; /* range of the second byte */
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0; /* no overlong forms */
			else if (c == 0xed)
				hi = 0x9f; /* no surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90; /* no overlong forms */
			else if (c == 0xf4)
				hi = 0x8f; /* nothing above U+10FFFF */
		} else
			return false;
		if (len - i - 1 < need)
			return false;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= need; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		i += need + 1;
	}
	return true;
}

size_t
lm_pb_utf8_fit(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t lead = n, need;

	/* Back over the continuation bytes at the end (a character has at
	 * most three) to the byte that begins the last character. */
	while (lead > 0 && n - lead < 3 && (p[lead - 1] & 0xc0) == 0x80)
		lead--;
	if (lead == 0)
		return n;
	lead--;
	need = p[lead] >= 0xf0 ? 4 : p[lead] >= 0xe0 ? 3 : p[lead] >= 0xc0 ? 2 : 1;
	return n - lead < need ? lead : n;
}

size_t
lm_pb_elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}
