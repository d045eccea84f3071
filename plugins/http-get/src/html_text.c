/* html_text.c - see html_text.h. */
#include "html_text.h"

/* ---- small string helpers ---------------------------------------------------------------- */

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_name_char(char c) { return is_alpha(c) || is_digit(c) || c == '-' || c == ':' || c == '_'; }

/* Case-insensitive: does s (n bytes) start with the lowercase ASCII word w? */
static bool starts_with_ci(const char *s, size_t n, const char *w) {
    size_t i = 0;
    for (; w[i]; i++)
        if (i >= n || lower(s[i]) != w[i]) return false;
    return true;
}

static bool in_list(const char *name, const char *const *list) {
    for (; *list; list++)
        if (cs_streq(name, *list)) return true;
    return false;
}

/* ---- entities ------------------------------------------------------------------------------ */

static size_t utf8_encode(uint32_t cp, char out[8]) {
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The named references pages actually use; others stay as written. 0 means "drops out". */
static const struct { const char *name; uint32_t cp; } NAMED[] = {
    {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", ' '},
    {"ensp", ' '}, {"emsp", ' '}, {"thinsp", ' '}, {"shy", 0}, {"zwnj", 0}, {"zwj", 0}, {"lrm", 0},
    {"rlm", 0}, {"copy", 0xA9}, {"reg", 0xAE}, {"trade", 0x2122}, {"hellip", 0x2026},
    {"mdash", 0x2014}, {"ndash", 0x2013}, {"minus", 0x2212}, {"lsquo", 0x2018}, {"rsquo", 0x2019},
    {"sbquo", 0x201A}, {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"bdquo", 0x201E}, {"laquo", 0xAB},
    {"raquo", 0xBB}, {"lsaquo", 0x2039}, {"rsaquo", 0x203A}, {"bull", 0x2022}, {"middot", 0xB7},
    {"deg", 0xB0}, {"plusmn", 0xB1}, {"times", 0xD7}, {"divide", 0xF7}, {"frac12", 0xBD},
    {"frac14", 0xBC}, {"frac34", 0xBE}, {"sup2", 0xB2}, {"sup3", 0xB3}, {"micro", 0xB5},
    {"euro", 0x20AC}, {"pound", 0xA3}, {"yen", 0xA5}, {"cent", 0xA2}, {"sect", 0xA7},
    {"para", 0xB6}, {"iexcl", 0xA1}, {"iquest", 0xBF}, {"larr", 0x2190}, {"rarr", 0x2192},
    {"uarr", 0x2191}, {"darr", 0x2193}, {"harr", 0x2194}, {"le", 0x2264}, {"ge", 0x2265},
    {"ne", 0x2260}, {"asymp", 0x2248}, {"infin", 0x221E}, {"check", 0x2713}, {"dagger", 0x2020},
    {"agrave", 0xE0}, {"aacute", 0xE1}, {"acirc", 0xE2}, {"atilde", 0xE3}, {"auml", 0xE4},
    {"aring", 0xE5}, {"aelig", 0xE6}, {"ccedil", 0xE7}, {"egrave", 0xE8}, {"eacute", 0xE9},
    {"ecirc", 0xEA}, {"euml", 0xEB}, {"igrave", 0xEC}, {"iacute", 0xED}, {"icirc", 0xEE},
    {"iuml", 0xEF}, {"ntilde", 0xF1}, {"ograve", 0xF2}, {"oacute", 0xF3}, {"ocirc", 0xF4},
    {"otilde", 0xF5}, {"ouml", 0xF6}, {"oslash", 0xF8}, {"ugrave", 0xF9}, {"uacute", 0xFA},
    {"ucirc", 0xFB}, {"uuml", 0xFC}, {"yacute", 0xFD}, {"yuml", 0xFF}, {"szlig", 0xDF},
    {"Agrave", 0xC0}, {"Aacute", 0xC1}, {"Acirc", 0xC2}, {"Auml", 0xC4}, {"Aring", 0xC5},
    {"Ccedil", 0xC7}, {"Egrave", 0xC8}, {"Eacute", 0xC9}, {"Ntilde", 0xD1}, {"Oacute", 0xD3},
    {"Ouml", 0xD6}, {"Oslash", 0xD8}, {"Uacute", 0xDA}, {"Uuml", 0xDC},
};

size_t html_entity(const char *s, size_t n, char utf8[8], size_t *out_len) {
    *out_len = 0;
    if (n < 3 || s[0] != '&') return 0;
    if (s[1] == '#') { /* &#123; &#x1F600; - the ';' may be missing, as browsers allow */
        bool hex = n > 2 && (s[2] == 'x' || s[2] == 'X');
        size_t i = hex ? 3 : 2, start = i;
        uint32_t cp = 0;
        for (; i < n && i < start + 8; i++) {
            char c = s[i];
            uint32_t d;
            if (is_digit(c)) d = (uint32_t)(c - '0');
            else if (hex && lower(c) >= 'a' && lower(c) <= 'f') d = (uint32_t)(lower(c) - 'a' + 10);
            else break;
            cp = cp * (hex ? 16 : 10) + d;
        }
        if (i == start) return 0;
        if (cp == 0xA0) cp = ' ';
        *out_len = utf8_encode(cp, utf8);
        return i < n && s[i] == ';' ? i + 1 : i;
    }
    size_t i = 1;
    while (i < n && i < 10 && (is_alpha(s[i]) || is_digit(s[i]))) i++;
    if (i == 1 || i >= n || s[i] != ';') return 0;
    for (size_t k = 0; k < sizeof NAMED / sizeof NAMED[0]; k++) {
        const char *name = NAMED[k].name;
        size_t len = cs_strlen(name);
        if (len == i - 1 && cs_memcmp(name, s + 1, len) == 0) {
            *out_len = NAMED[k].cp ? utf8_encode(NAMED[k].cp, utf8) : 0;
            return i + 1;
        }
    }
    return 0;
}

/* Text with its character references decoded, into the sink (collapsing whitespace or not). */
static void put_text(text_sink *out, const char *s, size_t n, bool pre) {
    size_t run = 0; /* start of the pending run of plain bytes */
    for (size_t i = 0; i < n;) {
        if (s[i] != '&') { i++; continue; }
        char utf8[8];
        size_t len, used = html_entity(s + i, n - i, utf8, &len);
        if (used == 0) { i++; continue; }
        if (pre) sink_raw(out, s + run, i - run); else sink_text(out, s + run, i - run);
        if (len) {
            if (pre) sink_raw(out, utf8, len); else sink_text(out, utf8, len);
        }
        i += used;
        run = i;
    }
    if (pre) sink_raw(out, s + run, n - run); else sink_text(out, s + run, n - run);
}

/* ---- tags ------------------------------------------------------------------------------------ */

typedef struct {
    char name[16];  /* lowercase; "" when the '<' does not start a tag */
    bool closing;
    size_t end;     /* offset just past the '>' */
} tag;

/* Reads the tag at s[at] == '<'. Attribute values may contain '>' inside quotes. */
static tag read_tag(const char *s, size_t n, size_t at) {
    tag t = {{0}, false, at + 1};
    size_t i = at + 1;
    if (i < n && s[i] == '/') { t.closing = true; i++; }
    if (i >= n || !is_alpha(s[i])) return t;
    size_t k = 0;
    for (; i < n && is_name_char(s[i]); i++)
        if (k < sizeof t.name - 1) t.name[k++] = lower(s[i]);
    char quote = 0;
    for (; i < n; i++) {
        if (quote) { if (s[i] == quote) quote = 0; }
        else if (s[i] == '"' || s[i] == '\'') quote = s[i];
        else if (s[i] == '>') break;
    }
    t.end = i < n ? i + 1 : n;
    return t;
}

/* Offset just past `</name ...>` (case-insensitive) from `from`, or n if it never closes. */
static size_t skip_to_close(const char *s, size_t n, size_t from, const char *name) {
    size_t len = cs_strlen(name);
    for (size_t i = from; i + 1 < n; i++) {
        if (s[i] == '<' && s[i + 1] == '/' && starts_with_ci(s + i + 2, n - i - 2, name) &&
            (i + 2 + len >= n || !is_name_char(s[i + 2 + len]))) {
            for (i += 2 + len; i < n && s[i] != '>'; i++) {}
            return i < n ? i + 1 : n;
        }
    }
    return n;
}

/* Offset just past the next `terminator` from `from`, or n. */
static size_t skip_past(const char *s, size_t n, size_t from, const char *terminator) {
    size_t len = cs_strlen(terminator);
    for (size_t i = from; i + len <= n; i++)
        if (cs_memcmp(s + i, terminator, len) == 0) return i + len;
    return n;
}

/* Elements whose whole content is dropped. */
static const char *const DROPPED[] = {"script", "style", "noscript", "template", "svg", "math", "iframe",
                                      "object", "canvas", "title", "select", "button", NULL};
/* Elements that leave an empty line around them. */
static const char *const PARAGRAPHS[] = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
                                         "table", "ul", "ol", "dl", "section", "article", "header",
                                         "footer", "nav", "aside", "main", "figure", "form", "fieldset",
                                         "address", "details", "hr", "body", NULL};
/* Elements that end a line. */
static const char *const LINES[] = {"br", "div", "li", "tr", "dt", "dd", "figcaption", "summary", "caption",
                                    "legend", "option", "center", "label", NULL};
/* Body-only elements: one of them ends a <head> whose </head> is missing. */
static const char *const BODY_START[] = {"body", "p", "div", "h1", "h2", "h3", "main", "article", "section",
                                         "header", "nav", "table", "ul", "ol", "span", "a", "img", NULL};

void html_title(const char *s, size_t n, text_sink *out) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '<') continue;
        if (starts_with_ci(s + i, n - i, "<!--")) { i = skip_past(s, n, i + 4, "-->") - 1; continue; }
        tag t = read_tag(s, n, i);
        if (t.closing || !t.name[0]) continue;
        if (cs_streq(t.name, "script") || cs_streq(t.name, "style")) { i = skip_to_close(s, n, t.end, t.name) - 1; continue; }
        if (cs_streq(t.name, "body")) return; /* a <title> inside the body is not the page's */
        if (cs_streq(t.name, "title")) {
            size_t end = t.end;
            while (end < n && !(s[end] == '<' && starts_with_ci(s + end, n - end, "</title"))) end++;
            put_text(out, s + t.end, end - t.end, false);
            return;
        }
        i = t.end - 1;
    }
}

void html_text(const char *s, size_t n, text_sink *out) {
    bool in_head = false;
    int pre = 0;
    size_t i = 0, run = 0; /* run: start of the text not yet written */
    while (i < n) {
        if (s[i] != '<') { i++; continue; }
        size_t markup_end;
        tag t = {{0}, false, 0};
        if (starts_with_ci(s + i, n - i, "<!--")) markup_end = skip_past(s, n, i + 4, "-->");
        else if (starts_with_ci(s + i, n - i, "<![cdata[")) markup_end = skip_past(s, n, i + 9, "]]>");
        else if (i + 1 < n && (s[i + 1] == '!' || s[i + 1] == '?')) markup_end = skip_past(s, n, i + 2, ">");
        else {
            t = read_tag(s, n, i);
            if (!t.name[0]) { i++; continue; } /* a lone '<' is text */
            markup_end = t.end;
        }
        if (!in_head && i > run) put_text(out, s + run, i - run, pre > 0);
        if (!in_head && starts_with_ci(s + i, n - i, "<![cdata["))
            sink_raw(out, s + i + 9, (markup_end == n ? n : markup_end - 3) - (i + 9));
        i = run = markup_end;
        if (!t.name[0]) continue;

        if (cs_streq(t.name, "head")) { in_head = !t.closing; continue; }
        if (!t.closing && in_list(t.name, DROPPED)) {
            bool self_closed = t.end >= 2 && s[t.end - 2] == '/';
            if (!self_closed) i = run = skip_to_close(s, n, t.end, t.name);
            continue;
        }
        if (in_head) {
            if (t.closing || !in_list(t.name, BODY_START)) continue;
            in_head = false; /* </head> is optional */
        }
        if (cs_streq(t.name, "pre")) pre += t.closing ? (pre > 0 ? -1 : 0) : 1;
        if (in_list(t.name, PARAGRAPHS)) sink_break(out, 2);
        else if (in_list(t.name, LINES)) sink_break(out, 1);
        else if (!t.closing && (cs_streq(t.name, "td") || cs_streq(t.name, "th") || cs_streq(t.name, "img")))
            sink_text(out, " ", 1);
        if (!t.closing && cs_streq(t.name, "li")) sink_raw(out, "- ", 2);
    }
    if (!in_head && n > run) put_text(out, s + run, n - run, pre > 0);
}
