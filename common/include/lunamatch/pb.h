/*
 * pb.h - checked protobuf decoding and encoding of lunamatch messages, and
 * compact copies of decoded ones.
 *
 * protobuf_c_message_unpack says only "NULL" when it fails and accepts
 * strings that are not UTF-8. lm_pb_decode puts a size limit in front of it,
 * walks the wire format first to explain what is wrong with bad input, and
 * rejects any string field (at any depth) that is not valid UTF-8 or that
 * contains a NUL byte, so that every decoded message honours the project's
 * guarantee: strings are UTF-8 C strings.
 *
 * Thread-safety: all functions are reentrant; they share no state but the
 * count of lm_pb_fail_allocs, a test seam.
 */
#ifndef LUNAMATCH_PB_H
#define LUNAMATCH_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Deepest nesting of messages lm_pb_decode accepts. */
#define LM_PB_MAX_DEPTH 32

/* What lm_pb_decode's message err says for the two faults a caller may
 * want to tell apart: a string that is not UTF-8 (the message ends with
 * it) and an enum number outside the int32 range (the message holds it).
 * Its messages are made of descriptor names, numbers and pb.c's own
 * wording, never of input bytes, so input cannot forge either. */
#define LM_PB_MSG_BAD_UTF8   "string is not valid UTF-8"
#define LM_PB_MSG_ENUM_RANGE "is outside the int32 range"

/*
 * Decodes len bytes of protobuf wire data into a new message of type desc.
 * On LM_OK the caller owns *out and frees it with
 * protobuf_c_message_free_unpacked(*out, NULL). Fields unknown to desc are
 * kept as protobuf-c unknown fields (they are not checked for UTF-8;
 * lm_pb_strip_unknown removes them).
 * Returns LM_OK; LM_E2BIG if len > max_len or messages nest deeper than
 * LM_PB_MAX_DEPTH; LM_EPARSE for malformed data, with the reason and the
 * field path in err (e.g. "skills.name: string is not valid UTF-8");
 * LM_ENOMEM; LM_EINVAL for NULL arguments. On error *out is NULL.
 * err (errlen bytes, may be NULL when errlen is 0) always receives a
 * NUL-terminated message, empty on success.
 */
int lm_pb_decode(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
    size_t max_len, ProtobufCMessage **out, char *err, size_t errlen);

/*
 * Reads the base-128 varint at p[*pos..len) into *v and moves *pos past it.
 * Returns false, with *pos past the bytes read and *v untouched, if the
 * varint is cut off by len or longer than the 10 bytes a 64-bit value takes.
 */
bool lm_pb_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v);

/* Test seam (fault.h): the next n allocations of lm_pb_decode fail, as
 * malloc would. */
void lm_pb_fail_allocs(unsigned n);

/*
 * Memory protobuf-c may allocate to decode a message of n bytes that came
 * from outside (a request, a Kafka message): LM_PB_DECODE_FLOOR +
 * LM_PB_DECODE_FACTOR * n, counted as the total of its allocations, each
 * charged 16 bytes above its size. Two bytes on the wire (an empty
 * sub-message or string) cost a decoded message tens of bytes, so a message
 * of many such fields could otherwise make a service allocate many times
 * what it received. The densest records and requests the services accept
 * take far less (a request of three 1000-entry filter lists, a posting
 * with 100 skills and 20 requirement groups of 20: under 256 KiB).
 */
#define LM_PB_DECODE_FLOOR  ((size_t) 1 << 20)
#define LM_PB_DECODE_FACTOR 4u

/*
 * The budget of one decode of len bytes from outside, shared by the
 * protobuf and the JSON decoders: at most floor + factor * len bytes of
 * allocations, each charged LM_DECODE_BUDGET_OVERHEAD bytes above its size
 * for the heap's bookkeeping. Memory freed meanwhile is not given back, so
 * the charge is what the decode allocated in all, an upper bound of what it
 * held at once.
 */
#define LM_DECODE_BUDGET_OVERHEAD 16u

typedef struct lm_decode_budget {
	size_t left; /* bytes that may still be charged */
	bool over;   /* a charge was refused */
} lm_decode_budget;

void lm_decode_budget_init(lm_decode_budget *b, size_t floor, size_t factor, size_t len);

/* Charges an allocation of n bytes; false (and b->over) when it does not
 * fit. */
bool lm_decode_budget_charge(lm_decode_budget *b, size_t n);

/* lm_pb_decode within that budget: LM_E2BIG, with the reason in err, when
 * the decode would allocate more. The caller frees *out with
 * protobuf_c_message_free_unpacked(*out, NULL). */
int lm_pb_decode_capped(const ProtobufCMessageDescriptor *desc, const void *data,
    size_t len, size_t max_len, ProtobufCMessage **out, char *err, size_t errlen);

/* lm_pb_decode unpacking with allocator a (NULL: protobuf-c's, malloc):
 * the caller frees *out with protobuf_c_message_free_unpacked(*out, a). */
int lm_pb_decode_with(const ProtobufCMessageDescriptor *desc, const void *data,
    size_t len, size_t max_len, ProtobufCAllocator *a, ProtobufCMessage **out, char *err,
    size_t errlen);

/*
 * Serializes msg. On LM_OK *out is a malloc'd buffer of *len bytes (never
 * NULL, even for an empty message) that the caller frees.
 * Returns LM_OK, LM_ENOMEM or LM_EINVAL for NULL arguments.
 */
int lm_pb_encode(const ProtobufCMessage *msg, uint8_t **out, size_t *len);

/*
 * Removes the fields unknown to their type (kept by protobuf-c's unpacker,
 * packed again by lm_pb_encode) from msg and from every message in it, at
 * any depth, so that msg packs to the fields of its schema and nothing else.
 * msg must have been unpacked with allocator a (NULL: protobuf-c's, as for
 * lm_pb_decode), never be a compact message (lm_pb_compact). NULL msg is a
 * no-op. Returns the number of unknown fields removed.
 */
size_t lm_pb_strip_unknown(ProtobufCMessage *msg, ProtobufCAllocator *a);

/*
 * A deep copy of msg through its wire form: the same message, field for
 * field (unknown fields included), with protobuf-c's usual allocations, so
 * that the copy can be changed or handed on while msg stays untouched. On
 * LM_OK the caller owns *out and frees it with
 * protobuf_c_message_free_unpacked(*out, NULL). Returns LM_OK, LM_EINVAL
 * (NULL arguments) or an error of lm_pb_encode (LM_ENOMEM, LM_EINTERNAL);
 * LM_ENOMEM also when the copy cannot be unpacked. *out is NULL on error.
 */
int lm_pb_copy(const ProtobufCMessage *msg, ProtobufCMessage **out);

/*
 * A deep copy of msg in one allocation (pb_compact.c): the same message,
 * field for field (unknown fields included; it packs to the same bytes),
 * with every string, array and nested message laid out in a single block
 * instead of one heap block each. Strings that hold their field's default
 * value keep pointing at protobuf-c's static default. On LM_OK the caller
 * owns *out and frees it with free(*out), never with
 * protobuf_c_message_free_unpacked; *size (may be NULL) receives the bytes
 * of the block. Returns LM_OK, LM_ENOMEM or LM_EINVAL (NULL arguments).
 */
int lm_pb_compact(const ProtobufCMessage *msg, ProtobufCMessage **out, size_t *size);

/*
 * lm_pb_decode with the same checks and errors, giving a compact message
 * (lm_pb_compact) that the caller frees with free(). The unpacker's many
 * small allocations go to scratch memory released before it returns, so a
 * process decoding many records into long-lived compact copies leaves no
 * freed holes behind in its heap.
 */
int lm_pb_decode_compact(const ProtobufCMessageDescriptor *desc, const void *data,
    size_t len, size_t max_len, ProtobufCMessage **out, char *err, size_t errlen);

/*
 * lm_pb_decode_compact without its checks, for bytes that a checked decode
 * of this process accepted before (a record read back, at the version it
 * had then, from a store whose writer decoded it with the checks): the
 * walk that checks limits and UTF-8 and words its errors costs about as
 * much as the unpacking and would only find what it found then.
 * protobuf-c's unpacker still refuses malformed bytes, so damaged input
 * gives LM_EPARSE, never a crash. Returns LM_OK, LM_EPARSE, LM_ENOMEM or
 * LM_EINVAL (NULL arguments).
 */
int lm_pb_unpack_compact(const ProtobufCMessageDescriptor *desc, const void *data,
    size_t len, ProtobufCMessage **out);

/*
 * The shared copy of s: each distinct text of at most LM_PB_SHARED_LEN
 * bytes is kept once for the life of the process, up to LM_PB_SHARED_BYTES
 * of texts in all, for a process that keeps many short texts that repeat
 * (the match index's skill ids, cities, currencies). Made when there is
 * none and room is left. NULL when s is NULL, longer than LM_PB_SHARED_LEN
 * bytes or the shared texts are full (then the caller keeps its own copy).
 * A text once shared is found again by every later call; nobody may write
 * to it. Thread-safe.
 */
#define LM_PB_SHARED_LEN   64
#define LM_PB_SHARED_BYTES ((size_t) 64 << 20)

const char *lm_pb_share(const char *s);

/*
 * True when s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). NUL bytes are well-formed UTF-8; the
 * caller rejects them separately where they matter.
 */
bool lm_pb_utf8_valid(const char *s, size_t len);

/*
 * The length of s[0..n) less a character cut short at its end: text that
 * is UTF-8 and was cut at byte n (a copy into a field of a hard maximum,
 * snprintf into a buffer too small) stays UTF-8 when cut at the length
 * this returns instead. Reads s[0..n) only.
 */
size_t lm_pb_utf8_fit(const char *s, size_t n);

/* Bytes of one element of a repeated field of type t in protobuf-c's
 * arrays (the size of the field itself when it is not repeated). */
size_t lm_pb_elem_size(ProtobufCType t);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_PB_H */
