/* text.c - see text.h. */
#include "text.h"

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }
static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

text_view text_of(const char *p, size_t n) {
    text_view t = {p, n};
    return t;
}

bool text_has_ci(text_view t, size_t at, const char *prefix) {
    size_t k = cs_strlen(prefix);
    if (at > t.n || t.n - at < k) return false;
    for (size_t i = 0; i < k; i++)
        if (lower(t.p[at + i]) != lower(prefix[i])) return false;
    return true;
}

long text_find_ci(text_view t, size_t from, const char *needle) {
    for (size_t i = from; i < t.n; i++)
        if (text_has_ci(t, i, needle)) return (long)i;
    return -1;
}

text_view text_trim_end(text_view t) {
    while (t.n && is_space(t.p[t.n - 1])) t.n--;
    return t;
}

text_view text_trim(text_view t) {
    while (t.n && is_space(t.p[0])) t.p++, t.n--;
    return text_trim_end(t);
}

size_t text_utf8_cut(text_view t, size_t max) {
    if (t.n <= max) return t.n;
    size_t n = max;
    while (n > 0 && ((unsigned char)t.p[n] & 0xC0) == 0x80) n--; /* t.p[n] continues a sequence */
    return n;
}
