/* text_sink.c - see text_sink.h. */
#include "text_sink.h"

void sink_init(text_sink *s, size_t limit) {
    cs_memset(s, 0, sizeof *s);
    cs_jw_init(&s->out);
    s->limit = limit;
}

void sink_free(text_sink *s) { cs_jw_free(&s->out); }

bool sink_empty(const text_sink *s) { return s->kept == 0 && s->dropped == 0; }

/* One byte of output: a lead byte starts a code point that is kept while there is room. */
static void put_byte(text_sink *s, char c) {
    if (((unsigned char)c & 0xC0) != 0x80) {
        s->writing = s->kept < s->limit;
        if (s->writing) s->kept++;
        else s->dropped++;
    }
    if (s->writing) cs_jw_append(&s->out, &c, 1);
}

/* Pays what is owed (breaks or a space) before a visible character. */
static void settle(text_sink *s) {
    if (sink_empty(s)) {
        s->pending_breaks = 0;
        s->pending_space = false;
        return;
    }
    if (s->pending_breaks) {
        for (int i = 0; i < s->pending_breaks; i++) put_byte(s, '\n');
    } else if (s->pending_space) {
        put_byte(s, ' ');
    }
    s->pending_breaks = 0;
    s->pending_space = false;
}

void sink_raw(text_sink *s, const char *bytes, size_t n) {
    if (n == 0) return;
    settle(s);
    for (size_t i = 0; i < n; i++) put_byte(s, bytes[i]);
}

static bool is_space(const char *p, size_t left, size_t *width) {
    unsigned char c = (unsigned char)p[0];
    *width = 1;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') return true;
    if (c == 0xC2 && left > 1 && (unsigned char)p[1] == 0xA0) { /* U+00A0 no-break space */
        *width = 2;
        return true;
    }
    return false;
}

void sink_text(text_sink *s, const char *bytes, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t width;
        if (is_space(bytes + i, n - i, &width)) {
            s->pending_space = true;
            i += width;
            continue;
        }
        settle(s);
        put_byte(s, bytes[i++]);
    }
}

void sink_break(text_sink *s, int breaks) {
    if (s->one_line) {
        s->pending_space = true;
        return;
    }
    if (breaks > s->pending_breaks) s->pending_breaks = breaks;
    s->pending_space = false;
}

static void append_decimal(cs_jw *w, size_t v) {
    char digits[24];
    int n = 0;
    do digits[n++] = (char)('0' + v % 10); while ((v /= 10) && n < 24);
    while (n) cs_jw_append(w, &digits[--n], 1);
}

void sink_finish(text_sink *s, bool style_full) {
    if (s->dropped == 0) return;
    if (style_full) {
        cs_jw_append(&s->out, "\n\xE2\x80\xA6[truncated ", 15);
        append_decimal(&s->out, s->dropped);
        cs_jw_append(&s->out, " chars]", 7);
    } else {
        cs_jw_append(&s->out, "\xE2\x80\xA6", 3);
    }
}
