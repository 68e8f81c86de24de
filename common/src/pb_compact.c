/*
 * pb_compact.c - deep copies of protobuf-c messages in one allocation.
 *
 * protobuf_c_message_unpack allocates every string, array and nested
 * message on its own: a job posting of 600 wire bytes becomes some fifty
 * heap blocks, three times its size with the allocator's headers. A
 * process that keeps a million such records (the match index) keeps them
 * compact instead: the copy is measured first, then laid out in one block,
 * messages and arrays aligned for their widest member, strings packed.
 *
 * The copy is driven by the message descriptors alone, so it follows every
 * field protobuf-c knows: scalars, strings, bytes, nested messages,
 * repeated fields, oneofs (only the member that is set), and the unknown
 * fields. A string or bytes field that holds its descriptor's default value
 * (protobuf-c points it at a static) keeps pointing there.
 *
 * lm_pb_decode_compact unpacks into scratch memory (a chunk on the stack,
 * then heap chunks freed at once) and copies in one pass into a block as
 * large as the scratch memory used, then shrinks it: no per-field heap
 * blocks are allocated and freed, and the record is walked once.
 *
 * lm_pb_share keeps one shared copy of each distinct short text: a
 * million postings name a few thousand skills. The shared texts live in
 * chunks that are never freed, up to LM_PB_SHARED_BYTES in all, found
 * through one map under one mutex; each thread remembers the texts it
 * found last in a small cache of its own, read without the lock (a shared
 * text never moves nor changes).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/pb.h"

/* Alignment of messages and arrays: that of their widest members (64-bit
 * integers, doubles, pointers). Strings and bytes need none. */
#define ALIGN 8

/* Where the copy goes: measuring (base NULL) only adds up `used`. A copy
 * into a block of cap bytes that would not fit turns into measuring. */
struct arena {
	char *base;
	size_t used, cap;
};

/* ---- shared strings ---------------------------------------------------------- */

#define SHARED_CHUNK (1u << 20) /* bytes of a chunk of shared texts */

/* A chunk of shared texts; chunks are never freed. */
struct text_chunk {
	struct text_chunk *prev;
	size_t used;
	char text[];
};

static struct {
	pthread_mutex_t lock;
	lm_hashmap *map;          /* text -> its shared copy (the key too) */
	struct text_chunk *chunk; /* the newest chunk */
	size_t bytes;             /* in chunks, in all */
} shared = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0};

#define SHARED_CACHE 2048 /* texts a thread's cache holds (a power of two) */

struct cached {
	uint64_t h;
	char *text;
};

/* The calling thread's cache (SHARED_CACHE entries, made on first use and
 * freed when the thread ends), NULL when it cannot be had. Thread-specific
 * data rather than _Thread_local, which would tie the client library to
 * the dynamic loader. */
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static bool cache_ok;

static void
cache_init(void)
{
	cache_ok = pthread_key_create(&cache_key, free) == 0;
}

static struct cached *
thread_cache(void)
{
	struct cached *c;

	pthread_once(&cache_once, cache_init);
	if (!cache_ok)
		return NULL;
	if ((c = pthread_getspecific(cache_key)) == NULL &&
	    (c = calloc(SHARED_CACHE, sizeof(*c))) != NULL &&
	    pthread_setspecific(cache_key, c) != 0) {
		free(c);
		c = NULL;
	}
	return c;
}

/* The shared copy of s (strlen n), made when there is none and room is
 * left; NULL when it is not shared. The shared lock is held. */
static char *
share_locked(const char *s, size_t n)
{
	struct text_chunk *c = shared.chunk;
	char *p;

	if (shared.map == NULL && lm_hashmap_new(&shared.map) != LM_OK)
		return NULL;
	if ((p = lm_hashmap_get(shared.map, s)) != NULL)
		return p;
	if (c == NULL || SHARED_CHUNK - c->used < n + 1) {
		if (shared.bytes + SHARED_CHUNK > LM_PB_SHARED_BYTES ||
		    (c = malloc(sizeof(*c) + SHARED_CHUNK)) == NULL)
			return NULL;
		c->prev = shared.chunk;
		c->used = 0;
		shared.chunk = c;
		shared.bytes += SHARED_CHUNK;
	}
	p = c->text + c->used;
	memcpy(p, s, n + 1);
	if (lm_hashmap_put(shared.map, p, p) != LM_OK)
		return NULL; /* the room is taken again by the next text */
	c->used += n + 1;
	return p;
}

/* share_locked through the thread's cache (cache may be NULL). */
static char *
share_text(struct cached *cache, const char *s, size_t n)
{
	uint64_t h = lm_hash_bytes(s, n);
	struct cached *e = cache != NULL ? &cache[h & (SHARED_CACHE - 1)] : NULL;
	char *p;

	if (e != NULL && e->text != NULL && e->h == h && memcmp(e->text, s, n + 1) == 0)
		return e->text;
	pthread_mutex_lock(&shared.lock);
	p = share_locked(s, n);
	pthread_mutex_unlock(&shared.lock);
	if (p != NULL && e != NULL) {
		e->h = h;
		e->text = p;
	}
	return p;
}

/* Room for n bytes at a multiple of align (a power of two); NULL while
 * measuring. */
static void *
take(struct arena *a, size_t n, size_t align)
{
	void *p;

	a->used = (a->used + align - 1) & ~(align - 1);
	if (a->base != NULL && (a->used > a->cap || n > a->cap - a->used))
		a->base = NULL;
	p = a->base != NULL ? a->base + a->used : NULL;
	a->used += n;
	return p;
}

static ProtobufCMessage *copy_msg(struct arena *a, const ProtobufCMessage *m);

/* Copies the string s (a field's value; d its default) and returns the
 * pointer the copy's field gets. */
static char *
copy_str(struct arena *a, const char *s, const void *d)
{
	size_t n;
	char *p;

	if (s == NULL || s == d || s == protobuf_c_empty_string)
		return (char *) s;
	n = strlen(s) + 1;
	if ((p = take(a, n, 1)) != NULL)
		memcpy(p, s, n);
	return p;
}

/* Copies the data of the bytes value v (d its field's default) and returns
 * the pointer the copy's value gets. */
static uint8_t *
copy_bytes(struct arena *a, const ProtobufCBinaryData *v, const void *d)
{
	const ProtobufCBinaryData *def = d;
	uint8_t *p;

	if (v->data == NULL || (def != NULL && v->data == def->data))
		return v->data;
	if (v->len == 0)
		return NULL; /* never a pointer into the source */
	if ((p = take(a, v->len, 1)) != NULL)
		memcpy(p, v->data, v->len);
	return p;
}

/* Deep-copies what the value sv of one field f (or one element of a
 * repeated one) points to, and points the copy's value dv there (dv NULL
 * while measuring). Scalars are copied with their message. */
static void
copy_value(struct arena *a, const ProtobufCFieldDescriptor *f, const void *sv, void *dv)
{
	const ProtobufCMessage *sm;
	ProtobufCMessage *cm;
	char *s;
	uint8_t *b;

	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		s = copy_str(a, *(char *const *) sv, f->default_value);
		if (dv != NULL)
			*(char **) dv = s;
		break;
	case PROTOBUF_C_TYPE_BYTES:
		b = copy_bytes(a, sv, f->default_value);
		if (dv != NULL)
			((ProtobufCBinaryData *) dv)->data = b;
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		if ((sm = *(ProtobufCMessage *const *) sv) == NULL)
			break;
		cm = copy_msg(a, sm);
		if (dv != NULL)
			*(ProtobufCMessage **) dv = cm;
		break;
	default:
		break;
	}
}

/* Whether values of type t point to something that is copied apart. */
static bool
has_pointer(ProtobufCType t)
{
	return t == PROTOBUF_C_TYPE_STRING || t == PROTOBUF_C_TYPE_BYTES ||
	       t == PROTOBUF_C_TYPE_MESSAGE;
}

/* Copies m into the arena, or measures it (a->base NULL: returns NULL). */
static ProtobufCMessage *
copy_msg(struct arena *a, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	ProtobufCMessage *c = take(a, d->sizeof_message, ALIGN);
	const char *sm = (const char *) m;
	char *cm = (char *) c;

	if (c != NULL)
		memcpy(c, m, d->sizeof_message);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		void *dv = cm != NULL ? cm + f->offset : NULL;

		if (f->label != PROTOBUF_C_LABEL_REPEATED) {
			if (!has_pointer(f->type) ||
			    ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
			        *(const uint32_t *) (sm + f->quantifier_offset) != f->id))
				continue; /* a scalar, or the union holds another member
				           */
			copy_value(a, f, sm + f->offset, dv);
			continue;
		}
		size_t n = *(const size_t *) (sm + f->quantifier_offset);
		size_t es = lm_pb_elem_size(f->type);
		const char *src = *(char *const *) (sm + f->offset);
		char *arr;

		if (n == 0 || src == NULL) {
			if (dv != NULL) /* never a pointer into the source */
				*(char **) dv = NULL;
			continue;
		}
		if ((arr = take(a, n * es, ALIGN)) != NULL) {
			memcpy(arr, src, n * es);
			*(char **) dv = arr;
		}
		if (has_pointer(f->type))
			for (size_t k = 0; k < n; k++)
				copy_value(a, f, src + k * es,
				    arr != NULL ? arr + k * es : NULL);
	}
	if (m->n_unknown_fields > 0) {
		ProtobufCMessageUnknownField *u =
		    take(a, m->n_unknown_fields * sizeof(*m->unknown_fields), ALIGN);
		for (unsigned k = 0; k < m->n_unknown_fields; k++) {
			const ProtobufCMessageUnknownField *su = &m->unknown_fields[k];
			uint8_t *data = take(a, su->len, 1);
			if (u != NULL && data != NULL) {
				u[k] = *su;
				u[k].data = data;
				memcpy(data, su->data, su->len);
			}
		}
		if (c != NULL)
			c->unknown_fields = u;
	}
	return c;
}

/* lm_pb_compact with a guess of the bytes needed (0: none): a copy into a
 * block of that size, shrunk to fit, in one pass when the guess is large
 * enough; else measured first. */
static int
compact(const ProtobufCMessage *msg, size_t guess, ProtobufCMessage **out, size_t *size)
{
	struct arena a = {NULL, 0, 0};
	char *block;

	if (guess > 0) {
		if ((a.base = malloc(guess)) == NULL)
			return LM_ENOMEM;
		a.cap = guess;
		block = a.base;
		*out = copy_msg(&a, msg);
		if (a.base != NULL) {
			/* Shrinking keeps a heap block where it is; should it
			 * move (the copy's pointers would point into the
			 * old block), the copy is made again, measured. A
			 * failed shrink leaves the block as it was. */
			char *fit = realloc(block, a.used > 0 ? a.used : 1);
			if (fit == block || fit == NULL) {
				if (size != NULL)
					*size = fit == NULL ? guess : a.used;
				return LM_OK;
			}
			block = fit;
		}
		free(block);
		*out = NULL;
		a = (struct arena){NULL, 0, 0};
	}
	(void) copy_msg(&a, msg);
	if ((a.base = malloc(a.used > 0 ? a.used : 1)) == NULL)
		return LM_ENOMEM;
	if (size != NULL)
		*size = a.used;
	a.cap = a.used;
	a.used = 0;
	*out = copy_msg(&a, msg);
	return LM_OK;
}

int
lm_pb_compact(const ProtobufCMessage *msg, ProtobufCMessage **out, size_t *size)
{
	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (msg == NULL)
		return LM_EINVAL;
	return compact(msg, 0, out, size);
}

/*
 * The scratch memory lm_pb_decode_compact unpacks into: a first chunk on
 * the caller's stack, which holds a typical record, then heap chunks, all
 * released at once. protobuf-c's free calls are no-ops.
 */
#define SCRATCH_STACK 16384

struct chunk {
	struct chunk *next;
	size_t cap, used;
	max_align_t data[];
};

struct scratch {
	struct chunk *heap; /* chunks beyond the stack one, newest first */
	char *stack;
	size_t stack_used, stack_cap;
	bool failed;
};

static void *
chunk_take(char *base, size_t *used, size_t cap, size_t n)
{
	size_t at = (*used + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);

	if (at > cap || n > cap - at)
		return NULL;
	*used = at + n;
	return base + at;
}

static void *
scratch_alloc(void *arg, size_t n)
{
	struct scratch *s = arg;
	struct chunk *c;
	void *p;
	size_t cap;

	if ((p = chunk_take(s->stack, &s->stack_used, s->stack_cap, n)) != NULL)
		return p;
	if (s->heap != NULL && (p = chunk_take((char *) s->heap->data, &s->heap->used,
	                            s->heap->cap, n)) != NULL)
		return p;
	cap = n > SCRATCH_STACK ? n : SCRATCH_STACK;
	if ((c = malloc(sizeof(*c) + cap)) == NULL) {
		s->failed = true;
		return NULL;
	}
	c->cap = cap;
	c->used = 0;
	c->next = s->heap;
	s->heap = c;
	return chunk_take((char *) c->data, &c->used, c->cap, n);
}

static void
scratch_free(void *arg, void *p)
{
	(void) arg;
	(void) p;
}

/* lm_pb_decode_compact (checked) and lm_pb_unpack_compact (not): the
 * unpacking into scratch memory and the compact copy they share. */
static int
decode_compact(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
    size_t max_len, bool checked, ProtobufCMessage **out, char *err, size_t errlen)
{
	max_align_t stack[SCRATCH_STACK / sizeof(max_align_t)];
	struct scratch s = {NULL, (char *) stack, 0, sizeof(stack), false};
	ProtobufCAllocator a = {scratch_alloc, scratch_free, &s};
	ProtobufCMessage *m = NULL;
	size_t used = 0;
	int rc;

	if (checked)
		rc = lm_pb_decode_with(desc, data, len, max_len, &a, &m, err, errlen);
	else
		rc = (m = protobuf_c_message_unpack(desc, &a, len, data)) != NULL
		         ? LM_OK
		         : LM_EPARSE;
	if (rc == LM_EPARSE && s.failed)
		rc = LM_ENOMEM; /* the unpacker says only "failed" */
	/* What the unpacker took is more than the compact copy needs (every
	 * part it allocated, each rounded up further): the copy's guess. */
	used = s.stack_used;
	for (const struct chunk *c = s.heap; c != NULL; c = c->next)
		used += c->used;
	if (rc == LM_OK && (rc = compact(m, used, out, NULL)) != LM_OK && err && errlen)
		snprintf(err, errlen, "%s", lm_strerror(rc));
	while (s.heap != NULL) {
		struct chunk *c = s.heap;
		s.heap = c->next;
		free(c);
	}
	return rc;
}

int
lm_pb_decode_compact(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
    size_t max_len, ProtobufCMessage **out, char *err, size_t errlen)
{
	if (out == NULL) /* the error and its reason */
		return lm_pb_decode_with(
		    desc, data, len, max_len, NULL, NULL, err, errlen);
	*out = NULL;
	return decode_compact(desc, data, len, max_len, true, out, err, errlen);
}

int
lm_pb_unpack_compact(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
    ProtobufCMessage **out)
{
	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (desc == NULL || (data == NULL && len > 0))
		return LM_EINVAL;
	return decode_compact(desc, data, len, len, false, out, NULL, 0);
}

const char *
lm_pb_share(const char *s)
{
	size_t n;

	if (s == NULL || (n = strlen(s)) > LM_PB_SHARED_LEN)
		return NULL;
	return share_text(thread_cache(), s, n);
}
