/*
 * url.h - turns what an LLM passes as a URL into one http_fetch accepts, or says why it cannot.
 */
#ifndef URL_H
#define URL_H

#include "cs_mem.h"

/* A cleaned http(s) URL (malloc'ed, NUL-terminated): surrounding whitespace, quotes, backticks,
 * <angle brackets>, a Markdown link `[text](url)` and trailing sentence punctuation are removed,
 * spaces become %20, and a bare host ("example.com/x") gets "https://". NULL when the text is not
 * an http(s) URL: *why then says what is wrong (static text), and *quote_input whether the
 * message expects the text as given to follow it. */
char *url_clean(const char *text, size_t n, const char **why, bool *quote_input);

/* The host[:port] of a cleaned URL, as the app grants it (malloc'ed). */
char *url_authority(const char *url);

#endif
