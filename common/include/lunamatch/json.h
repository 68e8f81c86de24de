/*
 * json.h - JSON <-> protobuf codec, driven by protobuf-c's descriptors.
 *
 * Every lunamatch message has one JSON form, used by producers that write
 * JSON to Kafka, by the CLI (--json), by data files and by tests:
 *
 * - An object whose keys are the field names exactly as in the .proto
 *   (snake_case). Unknown keys are an error; JSON null means "unset".
 * - int32/uint32/sint32/fixed32/sfixed32 and int64/sint64/sfixed64 are JSON
 *   integers; uint64/fixed64 are JSON integers up to 2^63-1 and decimal
 *   strings above (JSON integers beyond 2^63-1 cannot be read by jansson).
 *   Decoding accepts for every integer field a JSON integer, a real with an
 *   integral value below 2^53 in magnitude (above, a real may be the
 *   rounding of another integer), or a decimal string ("-12"); out-of-range
 *   values are rejected.
 * - float and double are JSON numbers and must be finite; encoding writes
 *   the shortest text that reads back to the same value.
 * - bool is true/false; string is a UTF-8 string without NUL characters;
 *   bytes is standard base64 with padding (decoding also accepts it without
 *   padding).
 * - enums are the value name ("EMPLOYMENT_TYPE_FULL_TIME"); a value the
 *   enum lacks (proto3 keeps unknown numbers) is written as its number.
 *   Decoding also accepts any number in the int32 range, defined or not, so
 *   that such a value reads back; names the enum lacks and numbers outside
 *   int32 are rejected (whether a value is defined is the record
 *   validation's business, as for protobuf input).
 * - nested messages are objects, repeated fields arrays (null elements are
 *   rejected), a oneof is its one set member; two members of one oneof in
 *   the input are an error.
 * - proto3 fields with their zero value are left out on encode unless
 *   LM_JSON_EMIT_DEFAULTS is given. Unset message fields and unset oneofs are
 *   always left out.
 *
 * Errors name the offending field by its path, e.g.
 * "skills[2].weight: expected a number, got string". A key of the input is
 * quoted in the path only when it is 1..64 characters of [A-Za-z0-9_];
 * another key is written as "<field>" ("<field>: unknown field"). An error
 * message is valid UTF-8 without control characters, whatever the input.
 *
 * Thread-safety: all functions are reentrant; they share no state.
 */
#ifndef LUNAMATCH_JSON_H
#define LUNAMATCH_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest JSON text lm_json_decode accepts, in bytes. */
#define LM_JSON_MAX_BYTES (4u << 20)
/* Memory jansson may take to parse a text of n bytes for lm_json_decode:
 * LM_JSON_DECODE_FLOOR + LM_JSON_DECODE_FACTOR * n (each allocation charged
 * 16 bytes above its size). A parsed value costs tens of bytes, so a text of
 * many tiny values (1 MiB of empty objects: about 100 MB) is refused; the
 * densest records the services accept take a small part of it. */
#define LM_JSON_DECODE_FLOOR  ((size_t) 1 << 20)
#define LM_JSON_DECODE_FACTOR 16u
/* Deepest nesting of JSON objects and arrays that decoding accepts. */
#define LM_JSON_MAX_DEPTH 32
/* Longest field path quoted in an error message; longer paths are cut. */
#define LM_JSON_PATH_MAX 256

/* Encoding flags. */
#define LM_JSON_PRETTY        0x1u /* indent by two spaces, one member per line */
#define LM_JSON_EMIT_DEFAULTS 0x2u /* also write fields that hold their zero value */
/* Write a NaN or infinite float or double as the string "NaN", "Infinity" or
 * "-Infinity" (the proto3 JSON mapping's form) instead of failing: for output
 * that people and other JSON readers read, such as lunamatch watch --json.
 * lm_json_decode refuses these strings. */
#define LM_JSON_NONFINITE_STRINGS 0x4u

/*
 * Parses len bytes of JSON text (no NUL needed) into a new message of type
 * desc. On LM_OK *out is a message allocated with malloc exactly as
 * protobuf_c_message_unpack would allocate it: the caller owns it and frees
 * it with protobuf_c_message_free_unpacked(*out, NULL).
 * Returns LM_OK; LM_EPARSE if the text is not JSON (err gives jansson's
 * reason with line and column); LM_ESCHEMA if it is JSON that does not fit
 * desc (err gives the field path and the reason) or that holds a number
 * beyond the int64 or the double range (err gives line and column);
 * LM_E2BIG if the text is longer than LM_JSON_MAX_BYTES, nested deeper than
 * LM_JSON_MAX_DEPTH or would take more memory to parse than
 * LM_JSON_DECODE_FLOOR + LM_JSON_DECODE_FACTOR * len bytes; LM_ENOMEM;
 * LM_EINVAL for NULL arguments. On error *out is NULL.
 * err (errlen bytes, may be NULL when errlen is 0) always receives a
 * NUL-terminated message, empty on success.
 */
int lm_json_decode(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
    ProtobufCMessage **out, char *err, size_t errlen);

/* What a failed decode found, finer than its return code, for callers that
 * sort bad input by kind without reading the error message. */
typedef enum lm_json_fault {
	LM_JSON_FAULT_OTHER = 0, /* nothing finer than the return code */
	LM_JSON_FAULT_UTF8,      /* LM_EPARSE: the text is not valid UTF-8, or an
	                            escape names a lone surrogate (U+D800..U+DFFF) */
	LM_JSON_FAULT_ENUM,      /* LM_ESCHEMA: an enum name the enum lacks, or a
	                          * number outside int32 */
} lm_json_fault;

/*
 * lm_json_decode that also stores in *fault (fault may be NULL) what the
 * failure was, as far as lm_json_fault tells; LM_JSON_FAULT_OTHER on LM_OK.
 */
int lm_json_decode_fault(const ProtobufCMessageDescriptor *desc, const char *text,
    size_t len, ProtobufCMessage **out, char *err, size_t errlen, lm_json_fault *fault);

/*
 * Same as lm_json_decode, from an already parsed jansson value (for example
 * one element of a JSON array, or one line of a JSON-lines file). value is
 * borrowed, not modified. Nesting deeper than LM_JSON_MAX_DEPTH gives
 * LM_E2BIG; strings containing NUL characters give LM_ESCHEMA. The limits
 * of lm_json_decode hold for the value's compact JSON text of n bytes: more
 * than LM_JSON_MAX_BYTES gives LM_E2BIG, and so does a message that would
 * take more than LM_JSON_DECODE_FLOOR + LM_JSON_DECODE_FACTOR * n bytes to
 * build (each allocation charged 16 bytes above its size), as many empty
 * messages would.
 */
int lm_json_decode_value(const ProtobufCMessageDescriptor *desc, const json_t *value,
    ProtobufCMessage **out, char *err, size_t errlen);

/*
 * json_loadb(text, len, flags, je) for input from outside that no message
 * type describes (a data file of the CLI): the parse may allocate at most
 * max_mem bytes, counted as lm_decode_budget (lunamatch/pb.h) counts them (each
 * allocation charged LM_DECODE_BUDGET_OVERHEAD bytes above its size, memory freed during
 * the parse not given back), so that a text of many tiny values cannot take tens of times
 * its size. Returns a new reference the caller releases with json_decref, or NULL: when
 * the limit failed the parse, *over is true and je tells nothing useful (jansson's
 * reports of a failed allocation are unreliable); otherwise *over is false and je is
 * jansson's reason (je and over may be NULL). text NULL with len > 0 is
 * refused (NULL, *over false). Only this call's parse is charged: jansson on other
 * threads, and json_* calls after it returns, are not limited.
 */
json_t *lm_json_loadb_capped(const char *text, size_t len, size_t flags, size_t max_mem,
    json_error_t *je, bool *over);

/*
 * Encodes msg as JSON text. On LM_OK *out is a malloc'd NUL-terminated string
 * the caller frees. flags: LM_JSON_PRETTY, LM_JSON_EMIT_DEFAULTS,
 * LM_JSON_NONFINITE_STRINGS.
 * Returns LM_OK; LM_EINVAL if msg holds something JSON cannot carry (a NaN
 * or infinite float without LM_JSON_NONFINITE_STRINGS, a string that is not
 * valid UTF-8) or for NULL arguments; LM_ENOMEM. On error *out is NULL.
 */
int lm_json_encode(const ProtobufCMessage *msg, unsigned flags, char **out);

/*
 * Writes v as JSON text the way lm_json_encode does (flags: LM_JSON_PRETTY):
 * every control character escaped (C0, DEL and C1, lm_text_control),
 * the shortest reals that read back the same. v is borrowed; on LM_OK *out
 * is a malloc'd NUL-terminated string the caller frees. Returns LM_OK,
 * LM_EINVAL (NULL arguments) or LM_ENOMEM; on error *out is NULL.
 */
int lm_json_dumps(const json_t *v, unsigned flags, char **out);

/*
 * Encodes msg as a jansson object (flags: LM_JSON_EMIT_DEFAULTS,
 * LM_JSON_NONFINITE_STRINGS; PRETTY is ignored). Returns a new reference the caller
 * releases with json_decref, or NULL when lm_json_encode would fail.
 */
json_t *lm_json_encode_value(const ProtobufCMessage *msg, unsigned flags);

/*
 * A uint64 as the project's JSON form writes it: a number up to INT64_MAX
 * (what jansson holds), a decimal string above. Returns a new reference or
 * NULL when out of memory.
 */
json_t *lm_json_uint64(uint64_t u);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_JSON_H */
