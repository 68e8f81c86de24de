/*
 * text.h - the one rule of lunamatch for control characters in text.
 *
 * Text that reaches a terminal, a log line, a header or a data file may not
 * carry control characters: C0 (below 0x20), DEL (0x7f) and C1 (U+0080 to
 * U+009F, the bytes 0xc2 0x80 to 0xc2 0x9f in UTF-8; U+009B alone starts a
 * terminal escape sequence as ESC '[' does). Every place that refuses,
 * escapes or replaces them asks this module which they are: the data-file
 * loaders, the JSON writer and decoder's messages, the log, the dead-letter
 * error header, the ops port's reasons, the store's ids and the CLI.
 */
#ifndef LUNAMATCH_TEXT_H
#define LUNAMATCH_TEXT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The length in bytes of the control character s[0..n) starts with: 1 (C0,
 * DEL), 2 (C1), or 0 when it starts with none (or n is 0). */
size_t lm_text_control(const void *s, size_t n);

/* True (non-zero) when the NUL-terminated s holds a control character. */
int lm_text_has_control(const char *s);

/* Makes the NUL-terminated s, in place, valid UTF-8 without control
 * characters: each control character and each byte that is not part of a
 * well-formed UTF-8 character becomes '?'. Never lengthens s; returns its
 * new length. For messages that quote input. */
size_t lm_text_clean(char *s);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_TEXT_H */
