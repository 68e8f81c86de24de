/*
 * json.c - JSON <-> protobuf codec over protobuf-c descriptors and jansson.
 *
 * Decoding walks the jansson tree along the message descriptor and builds the
 * message with malloc, the way protobuf_c_message_unpack does, so that
 * protobuf_c_message_free_unpacked releases it. A partly built message is
 * always in a state free_unpacked accepts (arrays are counted as elements
 * complete, oneof cases are set after their value), which is how every error
 * path cleans up.
 *
 * Encoding builds a jansson tree. Text is written by a small printer of our
 * own because jansson prints every real with 17 significant digits (0.1 as
 * 0.10000000000000001); ours writes the shortest text that reads back to the
 * same value. Numbers are formatted and parsed in the C numeric locale,
 * which lunamatch never changes.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/text.h"

/* Longest enum name or key quoted back in an error message. */
#define ECHO_MAX 64
/* What an error path shows for a key that is not quoted back. */
#define FIELD_PLACEHOLDER "<field>"

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */

struct dec {
	char path[LM_JSON_PATH_MAX]; /* e.g. "skills[2].weight" */
	size_t plen;
	char *err;
	size_t errlen;
	lm_json_fault fault; /* set where a failure is finer than its code */
	/* lm_json_decode_value: what the message built may take, for a value
	 * of len bytes of text (NULL for lm_json_decode, whose parse has the
	 * budget). */
	lm_decode_budget *budget;
	size_t len, limit;
};

static int fail(struct dec *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True when s is short and made of [A-Za-z0-9_], so it can be quoted back
 * in an error message without carrying arbitrary input into logs. */
static bool
echoable(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (n >= ECHO_MAX ||
		    !((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
		        (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
			return false;
	return n > 0;
}

/*
 * Writes "<path>: <reason>" (or the reason alone at the top) and returns code.
 * The message is valid UTF-8 without control characters whatever the input
 * was: a message cut to fit err ends before a character it would cut, and
 * in what jansson quotes from the text (byte by byte, so that its quote can
 * end inside a character) a control character, and each byte that is not
 * part of a well-formed UTF-8 character, is written as '?'.
 */
static int
fail(struct dec *d, int code, const char *fmt, ...)
{
	if (d->errlen == 0)
		return code;
	int n = d->plen > 0 ? snprintf(d->err, d->errlen, "%s: ", d->path) : 0;
	if (n >= 0 && (size_t) n < d->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(d->err + n, d->errlen - (size_t) n, fmt, ap);
		va_end(ap);
	}
	size_t len = strlen(d->err);
	if (len == d->errlen - 1)
		d->err[lm_pb_utf8_fit(d->err, len)] = '\0';
	lm_text_clean(d->err);
	return code;
}

/* Charges an allocation of n bytes of the message being built to d's
 * budget, if any; false after reporting LM_E2BIG. */
static bool
charge(struct dec *d, size_t n)
{
	if (d->budget == NULL || lm_decode_budget_charge(d->budget, n))
		return true;
	d->plen = 0;
	d->path[0] = '\0';
	fail(d, LM_E2BIG,
	    "a JSON value of %zu bytes would take more than %zu bytes of memory to "
	    "decode (too many values)",
	    d->len, d->limit);
	return false;
}

/*
 * Appends to the path; returns the length to restore with path_pop. A name
 * that echoable() refuses (input text that is long, not ASCII or holds
 * punctuation or control characters) is written as FIELD_PLACEHOLDER, so the
 * path holds only ASCII letters, digits and "_.[]<>".
 */
static size_t
path_push(struct dec *d, const char *name, size_t index, bool is_index)
{
	size_t saved = d->plen, room = sizeof(d->path) - d->plen;
	int k = is_index ? snprintf(d->path + d->plen, room, "[%zu]", index)
	                 : snprintf(d->path + d->plen, room, "%s%s", d->plen ? "." : "",
	                       echoable(name) ? name : FIELD_PLACEHOLDER);
	d->plen += k >= 0 && (size_t) k < room ? (size_t) k : room - 1;
	return saved;
}

static void
path_pop(struct dec *d, size_t saved)
{
	d->plen = saved;
	d->path[saved] = '\0';
}

static const char *
kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

/* True when containers nest more than LM_JSON_MAX_DEPTH levels below v
 * (v itself counting as the first). Stops descending at the limit. */
static bool
too_deep(const json_t *v, int depth)
{
	if (!json_is_object(v) && !json_is_array(v))
		return false;
	if (depth >= LM_JSON_MAX_DEPTH)
		return true;
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			if (too_deep(json_array_get(v, i), depth + 1))
				return true;
		return false;
	}
	const char *key;
	json_t *child;
	json_object_foreach((json_t *) v, key, child)
	{
		if (too_deep(child, depth + 1))
			return true;
	}
	return false;
}

/*
 * Reads a JSON integer, an integral real below 2^53 in magnitude or a
 * decimal string as a sign and a magnitude, so that both the int64 and the
 * uint64 ranges fit. -0 is 0.
 */
static int
get_integer(struct dec *d, const json_t *v, bool *neg, uint64_t *mag)
{
	if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);
		*neg = x < 0;
		*mag = x < 0 ? (uint64_t) (-(x + 1)) + 1 : (uint64_t) x;
		return LM_OK;
	}
	if (json_is_real(v)) {
		double x = json_real_value(v);
		if (x != floor(x))
			return fail(d, LM_ESCHEMA, "expected an integer, got a fraction");
		if (fabs(x) >= 18446744073709551616.0)
			return fail(d, LM_ESCHEMA, "integer out of range");
		/* From 2^53 up, x may be the rounding of another integer than
		 * the text wrote (9223372036854775807.0 reads as 2^63). */
		if (fabs(x) >= 0x1p53)
			return fail(d, LM_ESCHEMA,
			    "integer written as a real must be below 2^53; write it "
			    "without a fraction or exponent, or as a string");
		*neg = x < 0;
		*mag = (uint64_t) fabs(x);
		if (*mag == 0)
			*neg = false;
		return LM_OK;
	}
	if (!json_is_string(v))
		return fail(d, LM_ESCHEMA, "expected an integer, got %s", kind(v));
	const char *s = json_string_value(v);
	size_t len = json_string_length(v), i = 0;
	*neg = len > 0 && s[0] == '-';
	i = *neg ? 1 : 0;
	if (i == len)
		return fail(
		    d, LM_ESCHEMA, "expected an integer, got a string that is not one");
	uint64_t x = 0;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return fail(d, LM_ESCHEMA,
			    "expected an integer, got a string that is not one");
		unsigned digit = (unsigned) (s[i] - '0');
		if (x > (UINT64_MAX - digit) / 10)
			return fail(d, LM_ESCHEMA, "integer out of range");
		x = x * 10 + digit;
	}
	*mag = x;
	if (x == 0)
		*neg = false;
	return LM_OK;
}

static int64_t
to_i64(bool neg, uint64_t mag)
{
	return neg ? -(int64_t) (mag - 1) - 1 : (int64_t) mag;
}

/* Standard base64, padding optional. Returns LM_OK, LM_ESCHEMA or
 * LM_ENOMEM; an empty input gives data NULL, len 0. */
static int
b64_decode(const char *s, size_t n, ProtobufCBinaryData *out)
{
	out->data = NULL;
	out->len = 0;
	if (n % 4 == 0 && n >= 1 && s[n - 1] == '=')
		n -= (n >= 2 && s[n - 2] == '=') ? 2 : 1;
	if (n % 4 == 1)
		return LM_ESCHEMA;
	size_t olen = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
	if (olen == 0)
		return LM_OK;
	uint8_t *buf = malloc(olen);
	if (!buf)
		return LM_ENOMEM;
	uint32_t acc = 0;
	size_t bits = 0, o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		unsigned v;
		if (c >= 'A' && c <= 'Z')
			v = (unsigned) (c - 'A');
		else if (c >= 'a' && c <= 'z')
			v = (unsigned) (c - 'a') + 26;
		else if (c >= '0' && c <= '9')
			v = (unsigned) (c - '0') + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else {
			free(buf);
			return LM_ESCHEMA;
		}
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t) (acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	out->data = buf;
	out->len = olen;
	return LM_OK;
}

static int dec_message(struct dec *d, const ProtobufCMessageDescriptor *desc,
    const json_t *v, ProtobufCMessage **out);

/* Decodes one value (a singular field or one array element) of field f into
 * dst, which has the field's C type. Writes dst only on success. */
static int
dec_value(struct dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
	bool neg;
	uint64_t mag;
	int rc;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if ((rc = get_integer(d, v, &neg, &mag)) != LM_OK)
			return rc;
		if (mag > (neg ? (uint64_t) INT32_MAX + 1 : (uint64_t) INT32_MAX))
			return fail(d, LM_ESCHEMA, "integer out of range for int32");
		*(int32_t *) dst = (int32_t) to_i64(neg, mag);
		return LM_OK;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if ((rc = get_integer(d, v, &neg, &mag)) != LM_OK)
			return rc;
		if (neg || mag > UINT32_MAX)
			return fail(d, LM_ESCHEMA, "integer out of range for uint32");
		*(uint32_t *) dst = (uint32_t) mag;
		return LM_OK;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if ((rc = get_integer(d, v, &neg, &mag)) != LM_OK)
			return rc;
		if (mag > (neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX))
			return fail(d, LM_ESCHEMA, "integer out of range for int64");
		*(int64_t *) dst = to_i64(neg, mag);
		return LM_OK;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if ((rc = get_integer(d, v, &neg, &mag)) != LM_OK)
			return rc;
		if (neg)
			return fail(d, LM_ESCHEMA, "integer out of range for uint64");
		*(uint64_t *) dst = mag;
		return LM_OK;
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE: {
		if (!json_is_number(v))
			return fail(d, LM_ESCHEMA, "expected a number, got %s", kind(v));
		double x = json_number_value(v);
		if (!isfinite(x))
			return fail(d, LM_ESCHEMA, "number is not finite");
		if (f->type == PROTOBUF_C_TYPE_DOUBLE) {
			*(double *) dst = x;
			return LM_OK;
		}
		/* From here on a double rounds to infinity as a float. */
		if (fabs(x) >= 0x1.ffffffp+127)
			return fail(d, LM_ESCHEMA, "number out of range for float");
		*(float *) dst = (float) x;
		return LM_OK;
	}
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			return fail(d, LM_ESCHEMA, "expected a boolean, got %s", kind(v));
		*(protobuf_c_boolean *) dst = json_is_true(v);
		return LM_OK;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		const ProtobufCEnumValue *ev;
		/* A number need not be one of ed: proto3 enums are open, and the
		 * encoder writes a value the schema lacks as its number. */
		if (json_is_number(v)) {
			if ((rc = get_integer(d, v, &neg, &mag)) != LM_OK)
				return rc;
			if (mag >
			    (neg ? (uint64_t) INT32_MAX + 1 : (uint64_t) INT32_MAX)) {
				d->fault = LM_JSON_FAULT_ENUM;
				return fail(
				    d, LM_ESCHEMA, "unknown value of enum %s", ed->name);
			}
			*(int32_t *) dst = (int32_t) to_i64(neg, mag);
			return LM_OK;
		}
		if (json_is_string(v)) {
			const char *name = json_string_value(v);
			ev = strlen(name) == json_string_length(v)
			         ? protobuf_c_enum_descriptor_get_value_by_name(ed, name)
			         : NULL;
			if (!ev) {
				d->fault = LM_JSON_FAULT_ENUM;
				if (echoable(name))
					return fail(d, LM_ESCHEMA,
					    "unknown value \"%s\" of enum %s", name,
					    ed->name);
				return fail(
				    d, LM_ESCHEMA, "unknown value of enum %s", ed->name);
			}
		} else
			return fail(
			    d, LM_ESCHEMA, "expected an enum name, got %s", kind(v));
		*(int32_t *) dst = ev->value;
		return LM_OK;
	}
	case PROTOBUF_C_TYPE_STRING: {
		if (!json_is_string(v))
			return fail(d, LM_ESCHEMA, "expected a string, got %s", kind(v));
		size_t len = json_string_length(v);
		const char *s = json_string_value(v);
		if (memchr(s, '\0', len))
			return fail(d, LM_ESCHEMA, "string contains a NUL character");
		if (!charge(d, len + 1))
			return LM_E2BIG;
		char *copy = malloc(len + 1);
		if (!copy)
			return fail(d, LM_ENOMEM, "out of memory");
		memcpy(copy, s, len + 1);
		*(char **) dst = copy;
		return LM_OK;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		if (!json_is_string(v))
			return fail(
			    d, LM_ESCHEMA, "expected a base64 string, got %s", kind(v));
		ProtobufCBinaryData b;
		if (!charge(d, json_string_length(v) / 4 * 3 + 3))
			return LM_E2BIG;
		rc = b64_decode(json_string_value(v), json_string_length(v), &b);
		if (rc == LM_ESCHEMA)
			return fail(d, rc, "invalid base64");
		if (rc != LM_OK)
			return fail(d, rc, "out of memory");
		*(ProtobufCBinaryData *) dst = b;
		return LM_OK;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		ProtobufCMessage *sub;
		if ((rc = dec_message(d, f->descriptor, v, &sub)) != LM_OK)
			return rc;
		*(ProtobufCMessage **) dst = sub;
		return LM_OK;
	}
	}
	return fail(d, LM_EINTERNAL, "field type %d is not supported", (int) f->type);
}

/* Decodes a JSON array into repeated field f of m. */
static int
dec_repeated(struct dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
    const json_t *v)
{
	if (!json_is_array(v))
		return fail(d, LM_ESCHEMA, "expected an array, got %s", kind(v));
	size_t n = json_array_size(v);
	if (n == 0)
		return LM_OK;
	size_t es = lm_pb_elem_size(f->type);
	if (!charge(d, n > SIZE_MAX / es ? SIZE_MAX : n * es))
		return LM_E2BIG;
	char *arr = calloc(n, es);
	if (!arr)
		return fail(d, LM_ENOMEM, "out of memory");
	size_t *count = (size_t *) ((char *) m + f->quantifier_offset);
	*(void **) ((char *) m + f->offset) = arr;
	*count = 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(v, i);
		size_t saved = path_push(d, NULL, i, true);
		int rc = json_is_null(e)
		             ? fail(d, LM_ESCHEMA, "null is not allowed in an array")
		             : dec_value(d, f, e, arr + i * es);
		if (rc != LM_OK)
			return rc; /* elements 0..*count-1 are complete and freeable */
		path_pop(d, saved);
		(*count)++;
	}
	return LM_OK;
}

/* Decodes a non-null JSON value into field f of m. */
static int
dec_field(struct dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
    const json_t *v)
{
	char *base = (char *) m;
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return dec_repeated(d, m, f, v);
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = (uint32_t *) (base + f->quantifier_offset);
		if (*which != 0) {
			const ProtobufCFieldDescriptor *other =
			    protobuf_c_message_descriptor_get_field(
			        m->descriptor, *which);
			return fail(d, LM_ESCHEMA,
			    "only one member of a oneof may be set, and %s is already "
			    "set",
			    other ? other->name : "another member");
		}
		int rc = dec_value(d, f, v, base + f->offset);
		if (rc == LM_OK)
			*which = f->id;
		return rc;
	}
	int rc = dec_value(d, f, v, base + f->offset);
	if (rc == LM_OK && f->label == PROTOBUF_C_LABEL_OPTIONAL &&
	    f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
		*(protobuf_c_boolean *) (base + f->quantifier_offset) = 1;
	return rc;
}

/* Decodes a JSON object into a new message; on error frees what it built
 * and leaves *out NULL. */
static int
dec_message(struct dec *d, const ProtobufCMessageDescriptor *desc, const json_t *v,
    ProtobufCMessage **out)
{
	*out = NULL;
	if (!json_is_object(v))
		return fail(d, LM_ESCHEMA, "expected an object, got %s", kind(v));
	if (!charge(d, desc->sizeof_message))
		return LM_E2BIG;
	ProtobufCMessage *m = malloc(desc->sizeof_message);
	if (!m)
		return fail(d, LM_ENOMEM, "out of memory");
	protobuf_c_message_init(desc, m);
	int rc = LM_OK;
	const char *key;
	json_t *value;
	json_object_foreach((json_t *) v, key, value)
	{
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(desc, key);
		size_t saved = path_push(d, key, 0, false);
		if (!f)
			rc = fail(d, LM_ESCHEMA, "unknown field");
		else if (!json_is_null(value))
			rc = dec_field(d, m, f, value);
		if (rc != LM_OK)
			goto out;
		path_pop(d, saved);
	}
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		if (f->label != PROTOBUF_C_LABEL_REQUIRED)
			continue;
		const json_t *fv = json_object_get(v, f->name);
		if (!fv || json_is_null(fv)) {
			size_t saved = path_push(d, f->name, 0, false);
			rc = fail(d, LM_ESCHEMA, "missing required field");
			path_pop(d, saved);
			goto out;
		}
	}
out:
	if (rc != LM_OK) {
		protobuf_c_message_free_unpacked(m, NULL);
		return rc;
	}
	*out = m;
	return LM_OK;
}

/* json_dump_callback's output, counted, not kept: stops the dump once it
 * passes LM_JSON_MAX_BYTES. */
static int
count_text(const char *buffer, size_t size, void *data)
{
	size_t *n = data;

	(void) buffer;
	*n += size;
	return *n > LM_JSON_MAX_BYTES ? -1 : 0;
}

/* lm_json_decode_value into the decoder state d; with b, within a budget
 * set up in b for the compact text of value. */
static int
decode_value(struct dec *d, const ProtobufCMessageDescriptor *desc, const json_t *value,
    ProtobufCMessage **out, lm_decode_budget *b)
{
	size_t n = 0;

	if (!desc || !value || !out ||
	    desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
		return fail(d, LM_EINVAL, "missing message type, value or output");
	if (too_deep(value, 0))
		return fail(
		    d, LM_E2BIG, "JSON nested deeper than %d levels", LM_JSON_MAX_DEPTH);
	if (b != NULL) {
		if (json_dump_callback(
		        value, count_text, &n, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
			if (n <= LM_JSON_MAX_BYTES)
				return fail(d, LM_ENOMEM, "out of memory");
			return fail(d, LM_E2BIG,
			    "the text of the JSON value exceeds the limit of %u bytes",
			    LM_JSON_MAX_BYTES);
		}
		lm_decode_budget_init(b, LM_JSON_DECODE_FLOOR, LM_JSON_DECODE_FACTOR, n);
		d->budget = b;
		d->len = n;
		d->limit = b->left;
	}
	return dec_message(d, desc, value, out);
}

int
lm_json_decode_value(const ProtobufCMessageDescriptor *desc, const json_t *value,
    ProtobufCMessage **out, char *err, size_t errlen)
{
	struct dec d = {.path = "", .plen = 0, .err = err, .errlen = err ? errlen : 0};
	lm_decode_budget b;

	if (d.errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	return decode_value(&d, desc, value, out, &b);
}

/*
 * The memory jansson may take to parse one text of lm_json_decode
 * (LM_JSON_DECODE_FLOOR, lm_decode_budget): a JSON value costs tens of
 * bytes parsed ("{}" is an object with its table), so a text of many tiny
 * values could make a service allocate a hundred times what it received
 * (1 MiB of empty objects: about 100 MB). jansson's allocator is the
 * process's (json_set_alloc_funcs, set before main); it charges a parse on
 * this thread to its budget and leaves every other use of jansson alone.
 */
static _Thread_local lm_decode_budget *tl_budget;

static void *
budget_malloc(size_t n)
{
	lm_decode_budget *b = tl_budget;

	return b != NULL && !lm_decode_budget_charge(b, n) ? NULL : malloc(n);
}

static void
budget_free(void *p)
{
	free(p);
}

__attribute__((constructor)) static void
json_alloc_init(void)
{
	json_set_alloc_funcs(budget_malloc, budget_free);
}

json_t *
lm_json_loadb_capped(const char *text, size_t len, size_t flags, size_t max_mem,
    json_error_t *je, bool *over)
{
	lm_decode_budget b;
	json_t *root;

	if (over != NULL)
		*over = false;
	if (text == NULL && len > 0) {
		if (je != NULL)
			snprintf(
			    je->text, sizeof(je->text), "no text for %zu bytes", len);
		return NULL;
	}
	lm_decode_budget_init(&b, max_mem, 0, len);
	tl_budget = &b;
	root = json_loadb(text ? text : "", len, flags, je);
	tl_budget = NULL;
	if (over != NULL)
		*over = b.over;
	return root;
}

/* json_loadb of text within its budget, of *limit bytes; *over tells that
 * the budget, not the text, failed the parse. */
static json_t *
parse(const char *text, size_t len, json_error_t *je, bool *over, size_t *limit)
{
	lm_decode_budget b;

	lm_decode_budget_init(&b, LM_JSON_DECODE_FLOOR, LM_JSON_DECODE_FACTOR, len);
	*limit = b.left;
	return lm_json_loadb_capped(text, len, JSON_REJECT_DUPLICATES, b.left, je, over);
}

/* The start of jansson's message for a \u escape of a surrogate that is not
 * one half of a pair (jansson 2.x, load.c). */
#define LONE_SURROGATE "invalid Unicode '\\u"

int
lm_json_decode_fault(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
    ProtobufCMessage **out, char *err, size_t errlen, lm_json_fault *fault)
{
	struct dec d = {.path = "", .plen = 0, .err = err, .errlen = err ? errlen : 0};
	if (d.errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	int rc;
	json_t *root = NULL;
	json_error_t je;
	bool over = false;
	size_t limit = 0;
	if (!desc || !out || (!text && len > 0))
		rc = fail(&d, LM_EINVAL, "missing message type, text or output");
	else if (len > LM_JSON_MAX_BYTES)
		rc = fail(&d, LM_E2BIG,
		    "JSON text of %zu bytes exceeds the limit of %u bytes", len,
		    LM_JSON_MAX_BYTES);
	else if ((root = parse(text, len, &je, &over, &limit)) == NULL && over)
		rc = fail(&d, LM_E2BIG,
		    "%zu bytes of JSON would take more than %zu bytes of memory to "
		    "parse (too many values)",
		    len, limit);
	else if (root == NULL) {
		switch (json_error_code(&je)) {
		case json_error_out_of_memory:
			rc = fail(&d, LM_ENOMEM, "out of memory");
			break;
		case json_error_stack_overflow:
			rc = fail(&d, LM_E2BIG, "JSON nested deeper than %d levels",
			    LM_JSON_MAX_DEPTH);
			break;
		case json_error_numeric_overflow:
			/* JSON, with a number beyond json_int_t or double. */
			rc = fail(&d, LM_ESCHEMA,
			    "number out of range at line %d, column %d: %s", je.line,
			    je.column, je.text);
			break;
		case json_error_duplicate_key:
			/* JSON, with a key twice in an object: it does not fit
			 * the record (which value would be the field's?). */
			rc = fail(&d, LM_ESCHEMA,
			    "duplicate key at line %d, column %d: %s", je.line, je.column,
			    je.text);
			break;
		case json_error_invalid_syntax:
			/* An escape of half a surrogate pair (\ud800 alone) is
			 * the text's way to spell what is not UTF-8, as the bytes
			 * ed a0 80 are: jansson gives it this syntax error and no
			 * code of its own, so its message tells it apart. */
			if (strncmp(je.text, LONE_SURROGATE, strlen(LONE_SURROGATE)) == 0)
				d.fault = LM_JSON_FAULT_UTF8;
			rc = fail(&d, LM_EPARSE, "invalid JSON at line %d, column %d: %s",
			    je.line, je.column, je.text);
			break;
		case json_error_invalid_utf8:
			d.fault = LM_JSON_FAULT_UTF8;
			/* fall through */
		default:
			rc = fail(&d, LM_EPARSE, "invalid JSON at line %d, column %d: %s",
			    je.line, je.column, je.text);
			break;
		}
	} else {
		rc = decode_value(&d, desc, root, out, NULL);
		json_decref(root);
	}
	if (fault)
		*fault = rc == LM_OK ? LM_JSON_FAULT_OTHER : d.fault;
	return rc;
}

int
lm_json_decode(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
    ProtobufCMessage **out, char *err, size_t errlen)
{
	return lm_json_decode_fault(desc, text, len, out, err, errlen, NULL);
}

/* ------------------------------------------------------------------------ */
/* Encoding to a jansson tree                                               */

/* The shortest decimal text of f that reads back (through a double, as the
 * decoder reads it) to f, returned as that double. */
static double
float_shortest(float f)
{
	char buf[32];
	for (int p = 1; p <= 9; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, (double) f);
		double x = strtod(buf, NULL);
		if ((float) x == f)
			return x;
	}
	return (double) f;
}

static char *
b64_encode(const uint8_t *p, size_t n, size_t *outlen)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t olen = (n + 2) / 3 * 4;
	char *out = malloc(olen + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t) p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t) p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* True when a proto3 field holds its zero value, exactly as protobuf-c's
 * packer decides to leave it out. */
static bool
zeroish(const ProtobufCFieldDescriptor *f, const void *member)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_BOOL:
		return *(const protobuf_c_boolean *) member == 0;
	case PROTOBUF_C_TYPE_FLOAT:
		return *(const float *) member == 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		return *(const double *) member == 0;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *) member;
		return s == NULL || s[0] == '\0';
	}
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *) member)->len == 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(const void *const *) member == NULL;
	default:
		return lm_pb_elem_size(f->type) == 8 ? *(const uint64_t *) member == 0
		                                     : *(const uint32_t *) member == 0;
	}
}

/* Whether singular field f of m is written, mirroring protobuf-c's packer. */
static bool
present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, unsigned flags)
{
	const char *base = (const char *) m;
	const void *member = base + f->offset;
	bool pointer =
	    f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE;
	const void *ptr = pointer ? *(const void *const *) member : NULL;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		if (*(const uint32_t *) (base + f->quantifier_offset) != f->id)
			return false;
		return !pointer || (ptr != NULL && ptr != f->default_value);
	}
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
		if (pointer)
			return ptr != NULL && ptr != f->default_value;
		return *(const protobuf_c_boolean *) (base + f->quantifier_offset);
	}
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return ptr != NULL;
	if (f->label == PROTOBUF_C_LABEL_REQUIRED || (flags & LM_JSON_EMIT_DEFAULTS))
		return true;
	return !zeroish(f, member);
}

static int enc_message(const ProtobufCMessage *m, unsigned flags, json_t **out);

/* A NaN or infinite x as LM_JSON_NONFINITE_STRINGS writes it, or LM_EINVAL
 * without that flag. */
static int
enc_nonfinite(double x, unsigned flags, json_t **out)
{
	if (!(flags & LM_JSON_NONFINITE_STRINGS))
		return LM_EINVAL;
	*out = json_string(isnan(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
	return *out != NULL ? LM_OK : LM_ENOMEM;
}

/* Encodes one value of field f stored at member. */
static int
enc_value(
    const ProtobufCFieldDescriptor *f, const void *member, unsigned flags, json_t **out)
{
	json_t *v = NULL;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		v = json_integer(*(const int32_t *) member);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		v = json_integer(*(const uint32_t *) member);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		v = json_integer(*(const int64_t *) member);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: {
		v = lm_json_uint64(*(const uint64_t *) member);
		break;
	}
	case PROTOBUF_C_TYPE_FLOAT: {
		float x = *(const float *) member;
		if (!isfinite(x))
			return enc_nonfinite(x, flags, out);
		v = json_real(float_shortest(x));
		break;
	}
	case PROTOBUF_C_TYPE_DOUBLE: {
		double x = *(const double *) member;
		if (!isfinite(x))
			return enc_nonfinite(x, flags, out);
		v = json_real(x);
		break;
	}
	case PROTOBUF_C_TYPE_BOOL:
		v = json_boolean(*(const protobuf_c_boolean *) member);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		int32_t x = *(const int32_t *) member;
		const ProtobufCEnumValue *ev =
		    protobuf_c_enum_descriptor_get_value(f->descriptor, x);
		v = ev ? json_string(ev->name) : json_integer(x);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *) member;
		if (!s)
			s = "";
		size_t len = strlen(s);
		if (!lm_pb_utf8_valid(s, len))
			return LM_EINVAL;
		v = json_stringn_nocheck(s, len);
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = member;
		size_t len;
		char *text = b64_encode(b->data, b->len, &len);
		if (!text)
			return LM_ENOMEM;
		v = json_stringn_nocheck(text, len);
		free(text);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(const ProtobufCMessage *const *) member;
		if (!sub)
			return LM_EINVAL; /* a NULL element of a repeated field */
		return enc_message(sub, flags, out);
	}
	}
	if (!v)
		return LM_ENOMEM;
	*out = v;
	return LM_OK;
}

static int
enc_message(const ProtobufCMessage *m, unsigned flags, json_t **out)
{
	const ProtobufCMessageDescriptor *desc = m->descriptor;
	const char *base = (const char *) m;
	if (!desc || desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
		return LM_EINVAL;
	json_t *obj = json_object();
	if (!obj)
		return LM_ENOMEM;
	int rc = LM_OK;
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		json_t *v = NULL;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *) (base + f->quantifier_offset);
			const char *arr = *(const char *const *) (base + f->offset);
			if (n == 0 && !(flags & LM_JSON_EMIT_DEFAULTS))
				continue;
			if (n > 0 && !arr) {
				rc = LM_EINVAL;
				goto out;
			}
			if (!(v = json_array())) {
				rc = LM_ENOMEM;
				goto out;
			}
			size_t es = lm_pb_elem_size(f->type);
			for (size_t k = 0; k < n; k++) {
				json_t *e;
				if ((rc = enc_value(f, arr + k * es, flags, &e)) !=
				    LM_OK) {
					json_decref(v);
					goto out;
				}
				if (json_array_append_new(v, e) != 0) {
					json_decref(v);
					rc = LM_ENOMEM;
					goto out;
				}
			}
		} else {
			if (!present(m, f, flags))
				continue;
			if ((rc = enc_value(f, base + f->offset, flags, &v)) != LM_OK)
				goto out;
		}
		if (json_object_set_new_nocheck(obj, f->name, v) != 0) {
			rc = LM_ENOMEM; /* set_new released v */
			goto out;
		}
	}
out:
	if (rc != LM_OK) {
		json_decref(obj);
		return rc;
	}
	*out = obj;
	return LM_OK;
}

json_t *
lm_json_encode_value(const ProtobufCMessage *msg, unsigned flags)
{
	json_t *v = NULL;
	if (!msg || enc_message(msg, flags, &v) != LM_OK)
		return NULL;
	return v;
}

/* ------------------------------------------------------------------------ */
/* Printing                                                                 */

struct out {
	char *p;
	size_t len, cap;
	bool oom;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (n + 1 > o->cap - o->len) {
		size_t cap = o->cap ? o->cap : 256;
		while (n + 1 > cap - o->len) {
			if (cap > SIZE_MAX / 2) {
				o->oom = true;
				return;
			}
			cap *= 2;
		}
		char *p = realloc(o->p, cap);
		if (!p) {
			o->oom = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
put_str(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void
put_indent(struct out *o, unsigned flags, int level)
{
	if (!(flags & LM_JSON_PRETTY))
		return;
	put(o, "\n", 1);
	for (int i = 0; i < level; i++)
		put(o, "  ", 2);
}

/* Writes s[0..n) as a JSON string. Control characters are escaped, C0 as
 * JSON requires and DEL and C1 (U+0080 to U+009F, whose U+009B a terminal
 * may take for CSI) too, so that the text printed cannot drive a terminal;
 * it reads back the same. */
static void
put_string(struct out *o, const char *s, size_t n)
{
	put(o, "\"", 1);
	size_t run = 0; /* bytes copied as they are, pending */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char) s[i];
		char esc[8];
		const char *e = NULL;
		size_t skip = 0; /* bytes escaped beyond s[i] */
		size_t ctl = lm_text_control(s + i, n - i);
		if (ctl == 2) { /* C1: its code point is the second byte */
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned char) s[i + 1]);
			e = esc;
			skip = 1;
		} else if (c == '"')
			e = "\\\"";
		else if (c == '\\')
			e = "\\\\";
		else if (c == '\n')
			e = "\\n";
		else if (c == '\r')
			e = "\\r";
		else if (c == '\t')
			e = "\\t";
		else if (c == '\b')
			e = "\\b";
		else if (c == '\f')
			e = "\\f";
		else if (ctl == 1) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			e = esc;
		}
		if (!e) {
			run++;
			continue;
		}
		put(o, s + i - run, run);
		run = 0;
		put_str(o, e);
		i += skip;
	}
	put(o, s + n - run, run);
	put(o, "\"", 1);
}

/* The shortest text that strtod reads back to x, always with a '.' or an
 * exponent so that it reads back as a real (and -0.0 keeps its sign). */
static void
put_real(struct out *o, double x)
{
	char buf[40];
	for (int p = 1; p <= 17; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	if (!strpbrk(buf, ".eE"))
		strcat(buf, ".0");
	put_str(o, buf);
}

static void
dump(struct out *o, const json_t *v, unsigned flags, int level)
{
	char buf[32];
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		if (json_object_size(v) == 0) {
			put_str(o, "{}");
			return;
		}
		put(o, "{", 1);
		const char *key;
		json_t *child;
		bool first = true;
		json_object_foreach((json_t *) v, key, child)
		{
			if (!first)
				put(o, ",", 1);
			first = false;
			put_indent(o, flags, level + 1);
			put_string(o, key, strlen(key));
			put_str(o, (flags & LM_JSON_PRETTY) ? ": " : ":");
			dump(o, child, flags, level + 1);
		}
		put_indent(o, flags, level);
		put(o, "}", 1);
		return;
	}
	case JSON_ARRAY:
		if (json_array_size(v) == 0) {
			put_str(o, "[]");
			return;
		}
		put(o, "[", 1);
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (i > 0)
				put(o, ",", 1);
			put_indent(o, flags, level + 1);
			dump(o, json_array_get(v, i), flags, level + 1);
		}
		put_indent(o, flags, level);
		put(o, "]", 1);
		return;
	case JSON_STRING:
		put_string(o, json_string_value(v), json_string_length(v));
		return;
	case JSON_INTEGER:
		snprintf(
		    buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		put_str(o, buf);
		return;
	case JSON_REAL:
		put_real(o, json_real_value(v));
		return;
	case JSON_TRUE:
		put_str(o, "true");
		return;
	case JSON_FALSE:
		put_str(o, "false");
		return;
	case JSON_NULL:
		put_str(o, "null");
		return;
	}
}

int
lm_json_encode(const ProtobufCMessage *msg, unsigned flags, char **out)
{
	if (!out)
		return LM_EINVAL;
	*out = NULL;
	if (!msg)
		return LM_EINVAL;
	json_t *root = NULL;
	int rc = enc_message(msg, flags, &root);
	if (rc != LM_OK)
		return rc;
	rc = lm_json_dumps(root, flags, out);
	json_decref(root);
	return rc;
}

int
lm_json_dumps(const json_t *v, unsigned flags, char **out)
{
	struct out o = {0};

	if (!out)
		return LM_EINVAL;
	*out = NULL;
	if (!v)
		return LM_EINVAL;
	dump(&o, v, flags, 0);
	if (o.oom) {
		free(o.p);
		return LM_ENOMEM;
	}
	*out = o.p;
	return LM_OK;
}

json_t *
lm_json_uint64(uint64_t u)
{
	char buf[24];

	if (u <= INT64_MAX)
		return json_integer((json_int_t) u);
	snprintf(buf, sizeof(buf), "%" PRIu64, u);
	return json_string(buf);
}
