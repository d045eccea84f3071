/* url.c - see url.h. */
#include "url.h"

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }
static bool is_host_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

static bool has_prefix_ci(const char *s, size_t n, const char *p) {
    size_t i = 0;
    for (; p[i]; i++)
        if (i >= n || lower(s[i]) != p[i]) return false;
    return true;
}

/* Strips one layer of wrapping; returns whether it did. */
static bool unwrap(const char **s, size_t *n) {
    static const char *const pairs[] = {"<>", "\"\"", "''", "``", "()", "[]", "{}", NULL};
    const char *p = *s;
    size_t len = *n;
    while (len && is_space(*p)) { p++; len--; }
    while (len && is_space(p[len - 1])) len--;
    bool changed = p != *s || len != *n;
    /* [text](url) */
    if (len > 4 && p[0] == '[' && p[len - 1] == ')') {
        for (size_t i = 1; i + 1 < len; i++) {
            if (p[i] == ']' && p[i + 1] == '(') {
                p += i + 2;
                len -= i + 3;
                *s = p, *n = len;
                return true;
            }
        }
    }
    for (int k = 0; pairs[k]; k++) {
        if (len >= 2 && p[0] == pairs[k][0] && p[len - 1] == pairs[k][1]) {
            *s = p + 1, *n = len - 2;
            return true;
        }
    }
    /* trailing punctuation of the sentence the URL was in */
    if (len && (p[len - 1] == '.' || p[len - 1] == ',' || p[len - 1] == ';')) {
        *s = p, *n = len - 1;
        return true;
    }
    *s = p, *n = len;
    return changed;
}

char *url_clean(const char *text, size_t n, const char **why, bool *quote_input) {
    const char *s = text;
    *quote_input = true;
    for (int rounds = 0; rounds < 16 && unwrap(&s, &n); rounds++) {}
    if (n == 0) {
        *why = "empty URL: give a full address such as https://example.com/page";
        *quote_input = false;
        return NULL;
    }

    const char *prefix = "";
    size_t scheme_len = 0;
    if (has_prefix_ci(s, n, "https://")) scheme_len = 8;
    else if (has_prefix_ci(s, n, "http://")) scheme_len = 7;
    else if (n >= 2 && s[0] == '/' && s[1] == '/') prefix = "https:";
    else {
        size_t i = 0;
        while (i < n && (is_host_char(s[i]) || s[i] == ':')) i++;
        bool has_dot = false;
        for (size_t k = 0; k < i; k++) has_dot |= s[k] == '.';
        bool bare_host = i > 0 && (i == n || s[i] == '/' || s[i] == '?' || s[i] == '#') &&
                         (has_dot || has_prefix_ci(s, n, "localhost")) && is_host_char(s[0]);
        for (size_t k = 0; bare_host && k < i; k++) /* a ':' may only start the port */
            if (s[k] == ':') for (size_t d = k + 1; d < i; d++) bare_host &= s[d] >= '0' && s[d] <= '9';
        if (!bare_host) {
            bool has_scheme = false;
            for (size_t k = 0; k < n && k < 32; k++) if (s[k] == ':') { has_scheme = k > 0; break; }
            *why = has_scheme ? "only http:// and https:// URLs can be fetched, not "
                              : "not a URL (expected something like https://example.com/page): ";
            return NULL;
        }
        prefix = "https://";
    }

    size_t plen = cs_strlen(prefix), spaces = 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F) { *why = "the URL contains control characters: "; return NULL; }
        spaces += s[i] == ' ';
    }
    char *url = (char *)cs_malloc(plen + n + 2 * spaces + 1);
    if (!url) { *why = "out of memory reading the URL "; return NULL; }
    size_t k = 0;
    for (size_t i = 0; i < plen; i++) url[k++] = prefix[i];
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') { url[k++] = '%'; url[k++] = '2'; url[k++] = '0'; }
        else url[k++] = i < scheme_len ? lower(s[i]) : s[i];
    }
    url[k] = 0;

    char *host = url_authority(url);
    bool no_host = !host || !host[0] || host[0] == ':';
    cs_free(host);
    if (no_host) { cs_free(url); *why = "the URL has no host: "; return NULL; }
    return url;
}

char *url_authority(const char *url) {
    const char *p = url;
    while (*p && !(p[0] == ':' && p[1] == '/' && p[2] == '/')) p++;
    p = *p ? p + 3 : url;
    const char *end = p;
    while (*end && *end != '/' && *end != '?' && *end != '#') end++;
    for (const char *at = p; at < end; at++)
        if (*at == '@') p = at + 1; /* user:password@ is not part of the host */
    return cs_strndup(p, (size_t)(end - p));
}

char *url_grant_entry(const char *url) {
    char *host = url_authority(url);
    if (!host) return NULL;
    bool plain = has_prefix_ci(url, cs_strlen(url), "http://");
    size_t n = cs_strlen(host);
    bool quote = plain;
    for (size_t i = 0; i < n; i++) quote |= !is_host_char(host[i]) && host[i] != ':';
    const char *scheme = plain ? "http://" : "";
    size_t sn = cs_strlen(scheme), k = 0;
    char *entry = (char *)cs_malloc(n + sn + 3);
    if (entry) {
        if (quote) entry[k++] = '"';
        for (size_t i = 0; i < sn; i++) entry[k++] = scheme[i];
        for (size_t i = 0; i < n; i++) entry[k++] = lower(host[i]); /* as the host compares names */
        if (quote) entry[k++] = '"';
        entry[k] = 0;
    }
    cs_free(host);
    return entry;
}
