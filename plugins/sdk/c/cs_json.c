/*
 * cs_json.c - JSON reader and writer (see cs_json.h for the contract).
 */
#include "cs_json.h"

#pragma STDC FP_CONTRACT OFF /* the double-double arithmetic below needs plain IEEE mul/add */

/* ======================================================================================
 * Numbers. A libc-free strtod/dtoa pair built on double-double arithmetic (~106-bit precision):
 * m * 10^k is evaluated with an error far below half an ulp, so results are correctly rounded
 * except in astronomically rare near-halfway cases. Formatting tries 1..17 significant digits and
 * keeps the first that reads back (with the same reader) to the very same double.
 * ====================================================================================== */

typedef struct {
    double hi, lo;
} dd;

/* Dekker split of a (|a| <= 2^995, so SPLIT*a cannot overflow) into two 26-bit halves. */
static void split(double a, double *hi, double *lo) {
    const double SPLIT = 134217729.0; /* 2^27 + 1 */
    double t = SPLIT * a;
    *hi = t - (t - a);
    *lo = a - *hi;
}

static dd quick_two_sum(double a, double b) {
    double s = a + b;
    dd r = {s, b - (s - a)};
    return r;
}

static dd dd_mul(dd a, dd b) {
    double p = a.hi * b.hi;
    if (!__builtin_isfinite(p) || p == 0) {
        dd r = {p, 0};
        return r;
    }
    if (__builtin_fabs(a.hi) > 0x1p995 || __builtin_fabs(b.hi) > 0x1p995) { /* keep split in range */
        bool big_a = __builtin_fabs(a.hi) > 0x1p995;
        dd s = big_a ? a : b, o = big_a ? b : a;
        s.hi *= 0x1p-64, s.lo *= 0x1p-64;
        dd r = dd_mul(s, o);
        r.hi *= 0x1p64, r.lo *= 0x1p64;
        return r;
    }
    double ah, al, bh, bl;
    split(a.hi, &ah, &al);
    split(b.hi, &bh, &bl);
    double err = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    err += a.hi * b.lo + a.lo * b.hi;
    return quick_two_sum(p, err);
}

/* 10^(2^i) and 10^-(2^i), i = 0..8, as correctly rounded double-doubles. */
static const dd POW10_POS[9] = {
    {0x1.4000000000000p+3, 0x0.0p+0},    {0x1.9000000000000p+6, 0x0.0p+0},
    {0x1.3880000000000p+13, 0x0.0p+0},   {0x1.7d78400000000p+26, 0x0.0p+0},
    {0x1.1c37937e08000p+53, 0x0.0p+0},   {0x1.3b8b5b5056e17p+106, -0x1.3107f00000000p+52},
    {0x1.84f03e93ff9f5p+212, -0x1.2ac340948e389p+157},
    {0x1.27748f9301d32p+425, -0x1.901cc86649e4ap+371},
    {0x1.54fdd7f73bf3cp+850, -0x1.7222446fe4670p+795},
};
static const dd POW10_NEG[9] = {
    {0x1.999999999999ap-4, -0x1.999999999999ap-58},   {0x1.47ae147ae147bp-7, -0x1.eb851eb851eb8p-63},
    {0x1.a36e2eb1c432dp-14, -0x1.6a161e4f765fep-68},  {0x1.5798ee2308c3ap-27, -0x1.03023df2d4c94p-82},
    {0x1.cd2b297d889bcp-54, 0x1.5b4c2ebe68799p-109},  {0x1.9f623d5a8a733p-107, -0x1.a2cc10f3892d4p-161},
    {0x1.50ffd44f4a73dp-213, 0x1.a53f2398d747bp-268}, {0x1.bba08cf8c979dp-426, -0x1.afa9c1a60497dp-480},
    {0x1.8062864ac6f43p-851, 0x1.39fa911155ff0p-906},
};

/* x * 10^k; the biggest factors first, so intermediates move toward the result's range. */
static dd scale10(dd x, int k) {
    const dd *t = k < 0 ? POW10_NEG : POW10_POS;
    unsigned u = k < 0 ? (unsigned)-k : (unsigned)k;
    while (u >= 512) {
        x = dd_mul(x, t[8]);
        u -= 256;
    }
    for (int i = 8; i >= 0; i--)
        if (u & (1u << i)) x = dd_mul(x, t[i]);
    return x;
}

static dd dd_from_u64(uint64_t m) {
    double hi = (double)m; /* m < 10^19 < 2^64, so (uint64_t)hi cannot overflow */
    dd r = {hi, (double)(int64_t)(m - (uint64_t)hi)};
    return quick_two_sum(r.hi, r.lo);
}

/* m * 10^e10 as the nearest double. Near the ends of the range the work is done on m * 2^-256
 * or m * 2^256 so that no intermediate (nor its low part) overflows or goes subnormal; a subnormal
 * result is rounded once, on its own grid (multiples of 2^-1074), ties to even. */
static double make_double(uint64_t m, int e10) {
    if (m == 0 || e10 < -360) return 0.0;
    if (e10 > 330) return __builtin_inf();
    dd x = dd_from_u64(m);
    if (e10 > 250) {
        x.hi *= 0x1p-256, x.lo *= 0x1p-256;
        return scale10(x, e10).hi * 0x1p256; /* exact, or inf when it really overflows */
    }
    if (e10 >= -200) return scale10(x, e10).hi;
    x.hi *= 0x1p256, x.lo *= 0x1p256;
    dd r = scale10(x, e10);
    if (r.hi >= 0x1p-766) return r.hi * 0x1p-256; /* a normal result: exact scaling */
    double qh = r.hi * 0x1p818, ql = r.lo * 0x1p818; /* the value in units of 2^-1074, < 2^52 */
    double n = __builtin_floor(qh), f = qh - n; /* exact; ql only matters to break a tie */
    if (f > 0.5 || (f == 0.5 && (ql > 0 || (ql == 0 && n - 2 * __builtin_floor(n / 2) == 1)))) n += 1;
    return n * 0x1p-1074;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* End of the JSON number that starts at p (strict grammar), or NULL if there is none. */
static const char *scan_number(const char *p, const char *end) {
    if (p < end && *p == '-') p++;
    if (p >= end || !is_digit(*p)) return NULL;
    if (*p == '0') p++;
    else while (p < end && is_digit(*p)) p++;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    return p;
}

/* Value of a number already validated by scan_number. */
static double number_value(const char *p, const char *end) {
    bool neg = *p == '-';
    if (neg) p++;
    uint64_t m = 0;
    int ndig = 0, e10 = 0;
    bool frac = false;
    for (; p < end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            frac = true;
            continue;
        }
        if (ndig < 19) {
            if (m || *p != '0') ndig++; /* leading zeros are not significant */
            m = m * 10 + (uint64_t)(*p - '0');
            if (frac) e10--;
        } else if (!frac) {
            e10++; /* digits beyond 19 are dropped: scale instead */
        }
    }
    if (p < end) { /* exponent */
        p++;
        bool eneg = *p == '-';
        if (*p == '+' || *p == '-') p++;
        int x = 0;
        for (; p < end; p++)
            if (x < 100000) x = x * 10 + (*p - '0');
        e10 += eneg ? -x : x;
    }
    double v = make_double(m, e10);
    return neg ? -v : v;
}

bool cs_json_parse_double(const char *s, size_t len, double *out) {
    const char *end = s + len;
    if (!s || scan_number(s, end) != end) return false;
    *out = number_value(s, end);
    return true;
}

static size_t u64_to_str(uint64_t v, char *buf) { /* returns length; buf needs 21 bytes */
    char tmp[20];
    size_t n = 0;
    do tmp[n++] = (char)('0' + v % 10); while ((v /= 10));
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return n;
}

static size_t i64_to_str(int64_t v, char *buf) {
    if (v < 0) {
        buf[0] = '-';
        return 1 + u64_to_str((uint64_t)0 - (uint64_t)v, buf + 1);
    }
    return u64_to_str((uint64_t)v, buf);
}

static const uint64_t POW10_U64[20] = {
    1ull,           10ull,           100ull,           1000ull,           10000ull,
    100000ull,      1000000ull,      10000000ull,      100000000ull,      1000000000ull,
    10000000000ull, 100000000000ull, 1000000000000ull, 10000000000000ull, 100000000000000ull,
    1000000000000000ull, 10000000000000000ull, 100000000000000000ull, 1000000000000000000ull,
    10000000000000000000ull};

/* round(|v| * 10^(18-e)): 19 significant digits when e is v's decimal exponent - two more than a
 * double needs. *dir tells on which side of that integer the exact product lies (-1, 0, +1), which
 * settles the candidates that look like ties at 19 digits. */
static uint64_t digits19(double v, int e, int *dir) {
    dd x = {v, 0};
    if (v < 0x1p-900) { /* keep tiny values (and their low parts) clear of the subnormal range */
        x.hi *= 0x1p256;
        x = scale10(x, 18 - e);
        x.hi *= 0x1p-256, x.lo *= 0x1p-256;
    } else {
        x = scale10(x, 18 - e);
    }
    *dir = 0;
    if (x.hi >= 1e19) return POW10_U64[19]; /* e was one too small; also keeps the cast in range */
    uint64_t n = (uint64_t)x.hi;
    double f = x.lo + (x.hi - (double)n); /* fraction (exact part of x.hi is 0 when x.hi >= 2^53) */
    double k = __builtin_floor(f + 0.5);
    if (k >= 0) n += (uint64_t)k;
    else n -= (uint64_t)-k;
    f -= k;
    *dir = f > 0 ? 1 : f < 0 ? -1 : 0;
    return n;
}

size_t cs_json_format_double(double v, char buf[32]) {
    char *o = buf;
    if (!__builtin_isfinite(v)) {
        cs_memcpy(buf, "null", 5);
        return 4;
    }
    if (__builtin_signbit(v)) *o++ = '-';
    v = __builtin_fabs(v);
    if (v == 0) {
        *o++ = '0';
        *o = 0;
        return (size_t)(o - buf);
    }
    if (v < 0x1p53 && v == __builtin_floor(v)) {
        o += u64_to_str((uint64_t)v, o);
        return (size_t)(o - buf);
    }
    /* decimal exponent e with 10^e <= v < 10^(e+1); the binary estimate is off by at most one */
    uint64_t bits;
    cs_memcpy(&bits, &v, 8);
    int e2 = (int)((bits >> 52) & 0x7ff) - 1023;
    if (e2 == -1023) e2 = -1074 + (63 - __builtin_clzll(bits & ((1ull << 52) - 1))); /* subnormal */
    int e = (int)__builtin_floor(e2 * 0.30102999566398120);
    int dir;
    uint64_t n19 = digits19(v, e, &dir);
    if (n19 >= POW10_U64[19]) n19 = digits19(v, ++e, &dir);
    else if (n19 < POW10_U64[18]) n19 = digits19(v, --e, &dir);
    if (n19 >= POW10_U64[19]) { /* rounded up to 10^19 */
        n19 /= 10;
        e++;
    }
    /* shortest: for p = 1..17 digits, try the two p-digit neighbours of v (nearest first) until
     * one reads back as v */
    uint64_t d = (n19 + 50) / 100;
    int x = e - 16; /* v ~= d * 10^x */
    for (int p = 1; p <= 17; p++) {
        uint64_t div = POW10_U64[19 - p], lo = n19 / div, rem = n19 % div;
        bool up = rem * 2 > div || (rem * 2 == div && (dir > 0 || (dir == 0 && (lo & 1))));
        uint64_t first = up ? lo + 1 : lo, second = up ? lo : lo + 1;
        if (make_double(first, e - p + 1) == v) d = first;
        else if (rem && make_double(second, e - p + 1) == v) d = second;
        else continue;
        x = e - p + 1;
        break;
    }
    char dig[24];
    size_t k = u64_to_str(d, dig);
    while (k > 1 && dig[k - 1] == '0') k--, x++;
    int n = x + (int)k; /* v = 0.dig * 10^n */
    if ((int)k <= n && n <= 21) {
        cs_memcpy(o, dig, k), o += k;
        for (int i = (int)k; i < n; i++) *o++ = '0';
    } else if (0 < n && n <= 21) {
        cs_memcpy(o, dig, (size_t)n), o += n;
        *o++ = '.';
        cs_memcpy(o, dig + n, k - (size_t)n), o += k - (size_t)n;
    } else if (-6 < n && n <= 0) {
        *o++ = '0', *o++ = '.';
        for (int i = n; i < 0; i++) *o++ = '0';
        cs_memcpy(o, dig, k), o += k;
    } else {
        *o++ = dig[0];
        if (k > 1) {
            *o++ = '.';
            cs_memcpy(o, dig + 1, k - 1), o += k - 1;
        }
        *o++ = 'e';
        *o++ = n - 1 < 0 ? '-' : '+';
        o += u64_to_str((uint64_t)(n - 1 < 0 ? 1 - n : n - 1), o);
    }
    *o = 0;
    return (size_t)(o - buf);
}

/* ======================================================================================
 * Documents: an arena of chunks owning every node, plus the (in-place decoded) text copy.
 * ====================================================================================== */

typedef struct achunk {
    struct achunk *next;
    size_t used, cap;
    size_t pad_; /* keeps the data that follows 16-aligned */
} achunk;

struct cs_json_doc {
    cs_json *root;
    char *text;
    achunk *chunks;
    size_t next_cap;
};

#define ARENA_FIRST 4096u
#define ARENA_MAX (1u << 20)

void *cs_json_doc_alloc(cs_json_doc *d, size_t n) {
    if (!d || n > (size_t)0x7fff0000u) return NULL;
    n = (n + 7u) & ~(size_t)7u;
    achunk *c = d->chunks;
    if (!c || c->cap - c->used < n) {
        if (n >= d->next_cap / 2) { /* big: its own chunk, kept behind the current one */
            achunk *b = (achunk *)cs_malloc(sizeof(achunk) + n);
            if (!b) return NULL;
            b->used = b->cap = n;
            if (c) b->next = c->next, c->next = b;
            else b->next = NULL, d->chunks = b, b->used = b->cap; /* full: next alloc opens one */
            return (char *)(b + 1);
        }
        achunk *nc = (achunk *)cs_malloc(sizeof(achunk) + d->next_cap);
        if (!nc) return NULL;
        nc->cap = d->next_cap;
        nc->used = 0;
        nc->next = c;
        d->chunks = c = nc;
        if (d->next_cap < ARENA_MAX) d->next_cap *= 2;
    }
    void *p = (char *)(c + 1) + c->used;
    c->used += n;
    return p;
}

void cs_json_doc_free(cs_json_doc *d) {
    if (!d) return;
    for (achunk *c = d->chunks, *n; c; c = n) {
        n = c->next;
        cs_free(c);
    }
    cs_free(d->text);
    cs_free(d);
}

const cs_json *cs_json_root(const cs_json_doc *d) { return d ? d->root : NULL; }

/* ======================================================================================
 * Reader.
 * ====================================================================================== */

typedef struct {
    cs_json_doc *doc;
    char *p, *start, *end;
    const char *err;
} reader;

static void skip_ws(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t')) r->p++;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static char *put_utf8(char *d, uint32_t cp) {
    if (cp < 0x80) *d++ = (char)cp;
    else if (cp < 0x800) {
        *d++ = (char)(0xC0 | (cp >> 6));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xE0 | (cp >> 12));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (char)(0xF0 | (cp >> 18));
        *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    }
    return d;
}

/* Decode the string at r->p (on the opening quote) in place. The decoded form is never longer
 * than the escaped one, so it fits where the source was; the NUL lands at or before the quote. */
static bool read_string(reader *r, const char **out, size_t *len) {
    char *s = ++r->p, *d = s;
    for (;;) {
        if (s >= r->end) {
            r->err = "unterminated string";
            return false;
        }
        unsigned char c = (unsigned char)*s;
        if (c == '"') break;
        if (c < 0x20) {
            r->p = s;
            r->err = "control character in string";
            return false;
        }
        if (c != '\\') {
            *d++ = (char)c;
            s++;
            continue;
        }
        if (s + 1 >= r->end) {
            r->err = "unterminated string";
            return false;
        }
        char e = s[1];
        s += 2;
        switch (e) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '/': *d++ = '/'; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'u': {
            int cp = r->end - s >= 4 ? hex4(s) : -1;
            if (cp < 0) {
                r->p = s;
                r->err = "bad \\u escape";
                return false;
            }
            s += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && r->end - s >= 6 && s[0] == '\\' && s[1] == 'u') {
                int lo = hex4(s + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    s += 6;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* lone surrogate */
            d = put_utf8(d, (uint32_t)cp);
            break;
        }
        default:
            r->p = s - 1;
            r->err = "bad escape";
            return false;
        }
    }
    *d = 0;
    *out = r->p;
    *len = (size_t)(d - r->p);
    r->p = s + 1;
    return true;
}

static bool match_word(reader *r, const char *w, size_t n) {
    if ((size_t)(r->end - r->p) < n || cs_memcmp(r->p, w, n) != 0) return false;
    r->p += n;
    return true;
}

/* Attach v as the newest child of parent (children are prepended while parsing and put back in
 * order when the container closes: O(1) appends without a tail pointer). */
static void attach(cs_json *parent, cs_json *v) {
    v->parent = parent;
    if (parent) {
        v->next = parent->child;
        parent->child = v;
        parent->len++;
    }
}

static void close_container(cs_json *c) {
    cs_json *prev = NULL, *cur = c->child;
    while (cur) {
        cs_json *n = cur->next;
        cur->next = prev;
        prev = cur;
        cur = n;
    }
    c->child = prev;
}

static cs_json *parse_all(reader *r) {
    cs_json *root = NULL, *cur = NULL; /* cur: innermost open array/object */
    for (;;) {
        /* ---- one value (preceded by "key": inside an object) ---- */
        skip_ws(r);
        const char *key = NULL;
        size_t key_len = 0;
        if (cur && cur->type == CS_JSON_OBJECT) {
            if (r->p >= r->end || *r->p != '"') {
                r->err = "expected a string key";
                return NULL;
            }
            if (!read_string(r, &key, &key_len)) return NULL;
            skip_ws(r);
            if (r->p >= r->end || *r->p != ':') {
                r->err = "expected ':'";
                return NULL;
            }
            r->p++;
            skip_ws(r);
        }
        if (r->p >= r->end) {
            r->err = "unexpected end of input";
            return NULL;
        }
        cs_json *v = (cs_json *)cs_json_doc_alloc(r->doc, sizeof(cs_json));
        if (!v) {
            r->err = "out of memory";
            return NULL;
        }
        cs_memset(v, 0, sizeof *v);
        v->key = key;
        v->key_len = key_len;
        bool open = false;
        char c = *r->p;
        if (c == '{' || c == '[') {
            v->type = c == '{' ? CS_JSON_OBJECT : CS_JSON_ARRAY;
            r->p++;
            skip_ws(r);
            if (r->p < r->end && *r->p == (c == '{' ? '}' : ']')) r->p++;
            else open = true;
        } else if (c == '"') {
            v->type = CS_JSON_STRING;
            if (!read_string(r, &v->str, &v->len)) return NULL;
        } else if (c == '-' || is_digit(c)) {
            const char *e = scan_number(r->p, r->end);
            if (!e) {
                r->err = "bad number";
                return NULL;
            }
            v->type = CS_JSON_NUMBER;
            v->str = r->p;
            v->len = (size_t)(e - r->p);
            v->number = number_value(r->p, e);
            r->p = (char *)e;
        } else if (match_word(r, "true", 4)) {
            v->type = CS_JSON_BOOL;
            v->boolean = true;
        } else if (match_word(r, "false", 5)) {
            v->type = CS_JSON_BOOL;
        } else if (match_word(r, "null", 4)) {
            v->type = CS_JSON_NULL;
        } else {
            r->err = "unexpected character";
            return NULL;
        }
        attach(cur, v);
        if (!root) root = v;
        if (open) {
            cur = v;
            continue;
        }
        /* ---- after a value: ',' for the next one, or close containers ---- */
        for (;;) {
            if (!cur) return root;
            skip_ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                break;
            }
            if (r->p < r->end && *r->p == (cur->type == CS_JSON_OBJECT ? '}' : ']')) {
                r->p++;
                close_container(cur);
                cur = cur->parent;
                continue;
            }
            r->err = r->p >= r->end ? "unexpected end of input" : "expected ',' or a closing bracket";
            return NULL;
        }
    }
}

cs_json_doc *cs_json_parse(const char *text, size_t len, cs_json_error *err) {
    reader r;
    cs_json_doc *d = (cs_json_doc *)cs_calloc(1, sizeof(cs_json_doc));
    if (d) {
        d->next_cap = ARENA_FIRST;
        d->text = cs_strndup(text ? text : "", text ? len : 0);
    }
    if (!d || !d->text) {
        cs_json_doc_free(d);
        if (err) err->msg = "out of memory", err->offset = 0;
        return NULL;
    }
    r.doc = d;
    r.start = r.p = d->text;
    r.end = d->text + (text ? len : 0);
    r.err = NULL;
    d->root = parse_all(&r);
    if (d->root) {
        skip_ws(&r);
        if (r.p != r.end) r.err = "trailing characters after the value";
    }
    if (r.err) {
        if (err) err->msg = r.err, err->offset = (size_t)(r.p - r.start);
        cs_json_doc_free(d);
        return NULL;
    }
    return d;
}

/* ---- lookups ---- */

bool cs_json_is(const cs_json *v, cs_json_type t) { return v && v->type == t; }

const cs_json *cs_json_get(const cs_json *obj, const char *key) {
    if (!cs_json_is(obj, CS_JSON_OBJECT) || !key) return NULL;
    size_t n = cs_strlen(key);
    for (const cs_json *c = obj->child; c; c = c->next)
        if (c->key_len == n && cs_memcmp(c->key, key, n) == 0) return c;
    return NULL;
}

const cs_json *cs_json_at(const cs_json *arr, size_t i) {
    if (!cs_json_is(arr, CS_JSON_ARRAY)) return NULL;
    const cs_json *c = arr->child;
    while (c && i--) c = c->next;
    return c;
}

const char *cs_json_string(const cs_json *v) { return cs_json_is(v, CS_JSON_STRING) ? v->str : NULL; }

const char *cs_json_get_string(const cs_json *obj, const char *key) {
    return cs_json_string(cs_json_get(obj, key));
}

bool cs_json_int64(const cs_json *v, int64_t *out) {
    if (!cs_json_is(v, CS_JSON_NUMBER)) return false;
    const char *p = v->str, *end = v->str + v->len;
    bool neg = p < end && *p == '-';
    if (neg) p++;
    uint64_t m = 0;
    const char *q = p;
    for (; q < end && is_digit(*q); q++) {
        if (m > (UINT64_MAX - 9) / 10) break; /* too long: fall back to the double */
        m = m * 10 + (uint64_t)(*q - '0');
    }
    if (q == end && (neg ? m <= (uint64_t)INT64_MAX + 1 : m <= (uint64_t)INT64_MAX)) {
        *out = neg ? (int64_t)(0 - m) : (int64_t)m;
        return true;
    }
    double d = v->number;
    if (d == __builtin_floor(d) && __builtin_fabs(d) < 0x1p53) {
        *out = (int64_t)d;
        return true;
    }
    return false;
}

/* ======================================================================================
 * Writer.
 * ====================================================================================== */

void cs_jw_init(cs_jw *w) {
    w->data = NULL;
    w->len = w->cap = 0;
    w->failed = false;
    w->need_comma = false;
}

void cs_jw_free(cs_jw *w) {
    cs_free(w->data);
    cs_jw_init(w);
}

bool cs_jw_ok(const cs_jw *w) { return !w->failed; }

/* Make room for n more bytes plus the trailing NUL. */
static bool reserve(cs_jw *w, size_t n) {
    if (w->failed) return false;
    if (w->cap - w->len > n) return true;
    if (n > (size_t)0x7ff00000u - w->len) {
        w->failed = true;
        return false;
    }
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->len <= n) cap *= 2;
    char *d = (char *)cs_realloc(w->data, cap);
    if (!d) {
        w->failed = true;
        return false;
    }
    w->data = d;
    w->cap = cap;
    return true;
}

void cs_jw_append(cs_jw *w, const void *bytes, size_t n) {
    if (!reserve(w, n)) return;
    if (n) cs_memcpy(w->data + w->len, bytes, n);
    w->len += n;
    w->data[w->len] = 0;
}

static void put(cs_jw *w, const char *s, size_t n) { cs_jw_append(w, s, n); }

static void put_c(cs_jw *w, char c) { cs_jw_append(w, &c, 1); }

/* Every value starts here: the comma before it if a sibling precedes it. */
static void value_prefix(cs_jw *w) {
    if (w->need_comma) put_c(w, ',');
    w->need_comma = true;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0xC2) return 0; /* continuation byte or overlong lead */
    if (c < 0xE0) len = 2, cp = c & 0x1F, min = 0x80;
    else if (c < 0xF0) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c < 0xF5) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

static void put_escaped(cs_jw *w, const char *str, size_t n) {
    static const char HEX[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    put_c(w, '"');
    size_t run = 0; /* bytes that need no escaping, copied in one go */
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++, run++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq(s + i, n - i);
            if (k) {
                i += k, run += k;
                continue;
            }
        }
        put(w, (const char *)s + i - run, run);
        run = 0;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        switch (c) {
        case '"': esc[1] = '"'; put(w, esc, 2); break;
        case '\\': esc[1] = '\\'; put(w, esc, 2); break;
        case '\n': esc[1] = 'n'; put(w, esc, 2); break;
        case '\r': esc[1] = 'r'; put(w, esc, 2); break;
        case '\t': esc[1] = 't'; put(w, esc, 2); break;
        case '\b': esc[1] = 'b'; put(w, esc, 2); break;
        case '\f': esc[1] = 'f'; put(w, esc, 2); break;
        default:
            if (c < 0x20) {
                esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = HEX[c >> 4], esc[5] = HEX[c & 15];
                put(w, esc, 6);
            } else {
                put(w, "\xEF\xBF\xBD", 3); /* invalid UTF-8 byte -> U+FFFD */
            }
        }
        i++;
    }
    put(w, (const char *)s + n - run, run);
    put_c(w, '"');
}

void cs_jw_object_begin(cs_jw *w) {
    value_prefix(w);
    put_c(w, '{');
    w->need_comma = false;
}

void cs_jw_object_end(cs_jw *w) {
    put_c(w, '}');
    w->need_comma = true;
}

void cs_jw_array_begin(cs_jw *w) {
    value_prefix(w);
    put_c(w, '[');
    w->need_comma = false;
}

void cs_jw_array_end(cs_jw *w) {
    put_c(w, ']');
    w->need_comma = true;
}

void cs_jw_key_n(cs_jw *w, const char *key, size_t n) {
    value_prefix(w);
    put_escaped(w, key, n);
    put_c(w, ':');
    w->need_comma = false;
}

void cs_jw_key(cs_jw *w, const char *key) { cs_jw_key_n(w, key ? key : "", cs_strlen(key)); }

void cs_jw_string_n(cs_jw *w, const char *s, size_t n) {
    value_prefix(w);
    put_escaped(w, s ? s : "", s ? n : 0);
}

void cs_jw_string(cs_jw *w, const char *s) {
    if (!s) cs_jw_null(w);
    else cs_jw_string_n(w, s, cs_strlen(s));
}

void cs_jw_int(cs_jw *w, int64_t v) {
    char buf[24];
    value_prefix(w);
    put(w, buf, i64_to_str(v, buf));
}

void cs_jw_double(cs_jw *w, double v) {
    char buf[32];
    value_prefix(w);
    put(w, buf, cs_json_format_double(v, buf));
}

void cs_jw_bool(cs_jw *w, bool v) {
    value_prefix(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void cs_jw_null(cs_jw *w) {
    value_prefix(w);
    put(w, "null", 4);
}

void cs_jw_raw(cs_jw *w, const char *json, size_t n) {
    value_prefix(w);
    put(w, json, n);
}

/* Iterative walk (parent/next links), so deep documents cannot overflow the stack. */
void cs_jw_value(cs_jw *w, const cs_json *v) {
    if (!v) {
        cs_jw_null(w);
        return;
    }
    const cs_json *n = v;
    for (;;) {
        if (n != v && n->parent->type == CS_JSON_OBJECT) cs_jw_key_n(w, n->key, n->key_len);
        switch (n->type) {
        case CS_JSON_NULL: cs_jw_null(w); break;
        case CS_JSON_BOOL: cs_jw_bool(w, n->boolean); break;
        case CS_JSON_NUMBER: cs_jw_raw(w, n->str, n->len); break;
        case CS_JSON_STRING: cs_jw_string_n(w, n->str, n->len); break;
        case CS_JSON_ARRAY:
        case CS_JSON_OBJECT:
            if (n->type == CS_JSON_ARRAY) cs_jw_array_begin(w);
            else cs_jw_object_begin(w);
            if (n->child) {
                n = n->child;
                continue;
            }
            if (n->type == CS_JSON_ARRAY) cs_jw_array_end(w);
            else cs_jw_object_end(w);
            break;
        }
        /* climb until there is a next sibling, closing finished containers */
        while (n != v && !n->next) {
            n = n->parent;
            if (n->type == CS_JSON_ARRAY) cs_jw_array_end(w);
            else cs_jw_object_end(w);
        }
        if (n == v) return;
        n = n->next;
    }
}
