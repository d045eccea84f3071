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

/* The host[:port] of a cleaned URL (malloc'ed). */
char *url_authority(const char *url);

/* The grant.hosts entry that admits a cleaned URL's origin, as the app config takes it (malloc'ed):
 * the bare host[:port] for https (a bare entry means https), "http://host[:port]" for plain http,
 * lower-cased, in double quotes when YAML would not read it as one plain string. */
char *url_grant_entry(const char *url);

#endif
