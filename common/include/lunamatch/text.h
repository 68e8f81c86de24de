/*
 * text.h - the one rule of lunamatch for control characters in text, and
 * the one list of blanks that input text is trimmed of.
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

/* The length in bytes of the blank s[0..n) starts with, or 0 when it
 * starts with none. Blanks are ASCII white space (space, \t, \n, \v, \f,
 * \r), the Unicode space separators (U+00A0, U+1680, U+2000 to U+200A,
 * U+202F, U+205F, U+3000), the line and paragraph separators (U+2028,
 * U+2029) and the invisible U+200B and U+FEFF. Input text is trimmed of
 * them and names are compared without them: text pasted from a web page
 * brings no-break spaces, which must not make "Python" another skill. */
size_t lm_text_blank(const void *s, size_t n);

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
