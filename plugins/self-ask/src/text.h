/* text.h - small byte-string helpers for parsing model output (ASCII case folding, trimming). */
#ifndef SELF_ASK_TEXT_H
#define SELF_ASK_TEXT_H

#include "cs_mem.h"

/* A view into someone else's bytes. */
typedef struct {
    const char *p;
    size_t n;
} text_view;

text_view text_of(const char *p, size_t n);
/* Offset of the first ASCII-case-insensitive occurrence of needle in t at or after `from`, or -1. */
long text_find_ci(text_view t, size_t from, const char *needle);
/* True when t starts (ASCII case-insensitively) with `prefix` at offset `at`. */
bool text_has_ci(text_view t, size_t at, const char *prefix);
/* t without leading and trailing spaces, tabs, CR and LF. */
text_view text_trim(text_view t);
/* t without trailing whitespace. */
text_view text_trim_end(text_view t);
/* The longest prefix of t of at most max bytes that does not split a UTF-8 sequence. */
size_t text_utf8_cut(text_view t, size_t max);

#endif
