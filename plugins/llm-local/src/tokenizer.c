/* tokenizer.c - GGUF tokenizers: byte-level BPE (gpt2) and SentencePiece BPE (llama). See tokenizer.h. */
#include "tokenizer.h"
#include "unicode_ranges.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lists ------------------------------------------------------------------------------------ */

bool tok_list_push(tok_list *l, int32_t id) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        int32_t *ids = realloc(l->ids, sizeof(int32_t) * (size_t)cap);
        if (!ids) return false;
        l->ids = ids;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return true;
}

void tok_list_free(tok_list *l) {
    free(l->ids);
    memset(l, 0, sizeof *l);
}

/* ---- unicode ---------------------------------------------------------------------------------- */

enum { CP_L = 'L', CP_N = 'N', CP_S = 'S', CP_O = 'O' };

static int cp_kind(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CP_L;
        if (cp >= '0' && cp <= '9') return CP_N;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CP_S;
        return CP_O;
    }
    if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
        cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return CP_S;
    int lo = 0, hi = UNI_RANGES - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < UNI[mid].lo) hi = mid - 1;
        else if (cp > UNI[mid].hi) lo = mid + 1;
        else return UNI[mid].kind;
    }
    return CP_O;
}

/* Decodes one UTF-8 sequence at s[0..n); invalid bytes decode as themselves, one at a time
 * (0xDC00 + byte, an unpaired surrogate: classified as "other"). */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *len) {
    unsigned char c = s[0];
    uint32_t cp;
    size_t need;
    if (c < 0x80) { *len = 1; return c; }
    if (c >= 0xC2 && c <= 0xDF) { need = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; cp = c & 0x07; }
    else { *len = 1; return 0xDC00u + c; }
    if (need > n) { *len = 1; return 0xDC00u + c; }
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) { *len = 1; return 0xDC00u + c; }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        *len = 1;
        return 0xDC00u + c;
    }
    *len = need;
    return cp;
}

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
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

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the 68 others for U+0100.. */
static uint32_t BYTE_CP[256];
static int16_t CP_BYTE[512];
static bool byte_map_ready;

static void byte_map_init(void) {
    if (byte_map_ready) return;
    int n = 0;
    for (int i = 0; i < 512; i++) CP_BYTE[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        BYTE_CP[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        CP_BYTE[BYTE_CP[b]] = (int16_t)b;
    }
    byte_map_ready = true;
}

/* ---- hashing ---------------------------------------------------------------------------------- */

static uint32_t fnv1a(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static uint32_t mix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

int32_t tok_lookup(const tokenizer *t, const char *text, size_t len) {
    if (!t->vhash) return -1;
    for (uint32_t h = fnv1a(text, len) & t->vmask;; h = (h + 1) & t->vmask) {
        int32_t id = t->vhash[h];
        if (id < 0) return -1;
        if (t->tokens[id].len == len && memcmp(t->tokens[id].str, text, len) == 0) return id;
    }
}

static void merge_find(const tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *res) {
    *rank = -1;
    if (!t->mkeys || a < 0 || b < 0) return;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint32_t h = mix64(key) & t->mmask;; h = (h + 1) & t->mmask) {
        if (t->mrank[h] < 0) return;
        if (t->mkeys[h] == key) {
            *rank = t->mrank[h];
            *res = t->mres[h];
            return;
        }
    }
}

/* ---- setup ------------------------------------------------------------------------------------ */

static int cmp_special_len(const void *pa, const void *pb, const tokenizer *t) {
    uint64_t la = t->tokens[*(const int32_t *)pa].len, lb = t->tokens[*(const int32_t *)pb].len;
    return la < lb ? 1 : la > lb ? -1 : 0;
}

static void sort_specials(tokenizer *t) { /* insertion sort: a few dozen entries */
    for (int i = 1; i < t->n_specials; i++) {
        int32_t v = t->specials[i];
        int j = i - 1;
        while (j >= 0 && cmp_special_len(&t->specials[j], &v, t) > 0) {
            t->specials[j + 1] = t->specials[j];
            j--;
        }
        t->specials[j + 1] = v;
    }
}

static int32_t meta_id(const gguf_file *g, const char *key, int n_vocab) {
    uint64_t v;
    if (gguf_get_u64(g, key, &v) && v < (uint64_t)n_vocab) return (int32_t)v;
    return -1;
}

bool tok_init(tokenizer *t, const gguf_file *g, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    byte_map_init();
    const char *model = gguf_get_str(g, "tokenizer.ggml.model");
    if (!model) {
        snprintf(err, errlen, "the model file has no tokenizer (tokenizer.ggml.model is missing)");
        return false;
    }
    if (strcmp(model, "gpt2") == 0) t->kind = TOK_GPT2;
    else if (strcmp(model, "llama") == 0) t->kind = TOK_SPM;
    else {
        snprintf(err, errlen, "tokenizer.ggml.model is \"%s\"; llm-local reads \"gpt2\" (byte-level BPE) and "
                              "\"llama\" (SentencePiece)", model);
        return false;
    }
    const char *pre = gguf_get_str(g, "tokenizer.ggml.pre");
    t->pre = PRE_GPT2;
    if (pre && (strcmp(pre, "smollm") == 0 || strcmp(pre, "starcoder") == 0 || strcmp(pre, "refact") == 0 ||
                strcmp(pre, "codeshell") == 0 || strcmp(pre, "command-r") == 0))
        t->pre = PRE_DIGITS;

    uint64_t n;
    t->tokens = gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &n);
    if (!t->tokens || n == 0 || n > (1u << 24)) {
        snprintf(err, errlen, "the model file has no token list (tokenizer.ggml.tokens)");
        return false;
    }
    t->n_vocab = (int)n;
    t->types = malloc(sizeof(int32_t) * n);
    t->scores = calloc(n, sizeof(float));
    uint32_t size = 1;
    while (size < 2 * n) size <<= 1;
    t->vmask = size - 1;
    t->vhash = malloc(sizeof(int32_t) * size);
    if (!t->types || !t->scores || !t->vhash) goto nomem;
    uint64_t nt;
    const int32_t *types = gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &nt);
    for (uint64_t i = 0; i < n; i++) t->types[i] = types && nt == n ? types[i] : TT_NORMAL;
    const float *scores = gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &nt);
    if (scores && nt == n) memcpy(t->scores, scores, sizeof(float) * n);
    memset(t->vhash, 0xFF, sizeof(int32_t) * size);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const gguf_string *s = &t->tokens[id];
        if (tok_lookup(t, s->str, s->len) >= 0) continue; /* duplicates: the first id wins */
        uint32_t h = fnv1a(s->str, s->len) & t->vmask;
        while (t->vhash[h] >= 0) h = (h + 1) & t->vmask;
        t->vhash[h] = id;
    }

    if (t->kind == TOK_GPT2) {
        uint64_t nm = 0;
        const gguf_string *merges = gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &nm);
        if (!merges) {
            snprintf(err, errlen, "a gpt2 tokenizer needs tokenizer.ggml.merges, which the model file lacks");
            tok_free(t);
            return false;
        }
        size = 1;
        while (size < 2 * nm + 2) size <<= 1;
        t->mmask = size - 1;
        t->mkeys = malloc(sizeof(uint64_t) * size);
        t->mrank = malloc(sizeof(int32_t) * size);
        t->mres = malloc(sizeof(int32_t) * size);
        if (!t->mkeys || !t->mrank || !t->mres) goto nomem;
        memset(t->mrank, 0xFF, sizeof(int32_t) * size);
        char *buf = NULL;
        size_t bufcap = 0;
        for (uint64_t r = 0; r < nm; r++) {
            const gguf_string *m = &merges[r];
            const char *sp = m->len > 1 ? memchr(m->str + 1, ' ', m->len - 1) : NULL;
            if (!sp) continue;
            size_t la = (size_t)(sp - m->str), lb = m->len - la - 1;
            int32_t a = tok_lookup(t, m->str, la), b = tok_lookup(t, sp + 1, lb);
            if (a < 0 || b < 0) continue;
            if (la + lb > bufcap) {
                bufcap = (la + lb) * 2;
                char *nb = realloc(buf, bufcap);
                if (!nb) { free(buf); goto nomem; }
                buf = nb;
            }
            memcpy(buf, m->str, la);
            memcpy(buf + la, sp + 1, lb);
            int32_t res = tok_lookup(t, buf, la + lb);
            if (res < 0) continue;
            int32_t old, oldres;
            merge_find(t, a, b, &old, &oldres);
            if (old >= 0) continue; /* the first (lowest) rank wins */
            uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
            uint32_t h = mix64(key) & t->mmask;
            while (t->mrank[h] >= 0) h = (h + 1) & t->mmask;
            t->mkeys[h] = key;
            t->mrank[h] = (int32_t)r;
            t->mres[h] = res;
        }
        free(buf);
    }

    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        int32_t id = tok_lookup(t, hex, 6);
        if (id < 0 && t->kind == TOK_GPT2) {
            char ch[4];
            id = tok_lookup(t, ch, utf8_put(BYTE_CP[b], ch));
        }
        t->byte_tok[b] = id;
    }

    t->specials = malloc(sizeof(int32_t) * n);
    if (!t->specials) goto nomem;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->types[id] == TT_CONTROL || t->types[id] == TT_USER) && t->tokens[id].len > 0)
            t->specials[t->n_specials++] = id;
    sort_specials(t);

    t->bos = meta_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab);
    t->eos = meta_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab);
    t->eot = meta_id(g, "tokenizer.ggml.eot_token_id", t->n_vocab);
    t->unk = meta_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab);
    t->im_start = tok_lookup(t, "<|im_start|>", 12);
    t->im_end = tok_lookup(t, "<|im_end|>", 10);
    t->endoftext = tok_lookup(t, "<|endoftext|>", 13);
    uint64_t flag;
    t->add_bos = gguf_get_u64(g, "tokenizer.ggml.add_bos_token", &flag) ? flag != 0 : t->kind == TOK_SPM;
    t->add_space_prefix = gguf_get_u64(g, "tokenizer.ggml.add_space_prefix", &flag) ? flag != 0 : t->kind == TOK_SPM;
    if (t->bos < 0) t->add_bos = false;
    return true;

nomem:
    snprintf(err, errlen, "out of memory building the tokenizer");
    tok_free(t);
    return false;
}

void tok_free(tokenizer *t) {
    free(t->types);
    free(t->scores);
    free(t->vhash);
    free(t->mkeys);
    free(t->mrank);
    free(t->mres);
    free(t->specials);
    memset(t, 0, sizeof *t);
}

bool tok_is_eog(const tokenizer *t, int32_t id) {
    return id >= 0 && (id == t->eos || id == t->eot || id == t->im_end || id == t->endoftext);
}

/* ---- BPE merging with a heap of candidate pairs ------------------------------------------------ */

typedef struct {
    float key;      /* smaller first: the rank (gpt2) or minus the score (spm) */
    int32_t left, right;
    int32_t res;    /* gpt2: the merged id; spm: the merged byte length */
} cand;

typedef struct {
    cand *items;
    int n, cap;
} heap;

static bool cand_less(const cand *a, const cand *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static bool heap_push(heap *h, cand c) {
    if (h->n == h->cap) {
        int cap = h->cap ? h->cap * 2 : 64;
        cand *items = realloc(h->items, sizeof(cand) * (size_t)cap);
        if (!items) return false;
        h->items = items;
        h->cap = cap;
    }
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(&c, &h->items[p])) break;
        h->items[i] = h->items[p];
        i = p;
    }
    h->items[i] = c;
    return true;
}

static cand heap_pop(heap *h) {
    cand top = h->items[0], last = h->items[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < h->n && cand_less(&h->items[l], best)) { m = l; best = &h->items[l]; }
        if (r < h->n && cand_less(&h->items[r], best)) { m = r; }
        if (m == i) break;
        h->items[i] = h->items[m];
        i = m;
    }
    if (h->n > 0) h->items[i] = last;
    return top;
}

typedef struct {
    int32_t *id;            /* gpt2: token id (< 0: a byte with no token, -1 - byte) */
    int32_t *start, *len;   /* spm: byte range in the text */
    int32_t *prev, *next;
    int n;
} symbols;

static bool syms_alloc(symbols *s, int n) {
    s->n = n;
    s->id = malloc(sizeof(int32_t) * (size_t)n);
    s->start = malloc(sizeof(int32_t) * (size_t)n);
    s->len = malloc(sizeof(int32_t) * (size_t)n);
    s->prev = malloc(sizeof(int32_t) * (size_t)n);
    s->next = malloc(sizeof(int32_t) * (size_t)n);
    return s->id && s->start && s->len && s->prev && s->next;
}

static void syms_free(symbols *s) {
    free(s->id);
    free(s->start);
    free(s->len);
    free(s->prev);
    free(s->next);
}

static bool push_byte(const tokenizer *t, unsigned char b, tok_list *out) {
    if (t->byte_tok[b] >= 0) return tok_list_push(out, t->byte_tok[b]);
    if (t->unk >= 0) return tok_list_push(out, t->unk);
    return true; /* no way to say this byte: dropped (a vocabulary without bytes or <unk>) */
}

static bool gpt2_pair(const tokenizer *t, const symbols *s, int a, heap *h) {
    int b = s->next[a];
    if (a < 0 || b < 0) return true;
    int32_t rank, res;
    merge_find(t, s->id[a], s->id[b], &rank, &res);
    if (rank < 0) return true;
    cand c = {(float)rank, a, b, res};
    return heap_push(h, c);
}

static bool bpe_gpt2(const tokenizer *t, const unsigned char *p, size_t n, tok_list *out) {
    if (n == 0) return true;
    symbols s;
    heap h = {0};
    bool ok = syms_alloc(&s, (int)n);
    for (int i = 0; ok && i < (int)n; i++) {
        s.id[i] = t->byte_tok[p[i]] >= 0 ? t->byte_tok[p[i]] : -1 - p[i];
        s.prev[i] = i - 1;
        s.next[i] = i + 1 < (int)n ? i + 1 : -1;
        s.len[i] = 1;
    }
    for (int i = 0; ok && i + 1 < (int)n; i++) ok = gpt2_pair(t, &s, i, &h);
    while (ok && h.n > 0) {
        cand c = heap_pop(&h);
        /* stale: a side was merged away or changed since this pair was queued */
        if (s.len[c.left] == 0 || s.len[c.right] == 0 || s.next[c.left] != c.right) continue;
        int32_t rank, res;
        merge_find(t, s.id[c.left], s.id[c.right], &rank, &res);
        if (rank < 0 || (float)rank != c.key) continue;
        s.id[c.left] = res;
        s.len[c.left] += s.len[c.right];
        s.len[c.right] = 0;
        s.next[c.left] = s.next[c.right];
        if (s.next[c.left] >= 0) s.prev[s.next[c.left]] = c.left;
        if (s.prev[c.left] >= 0) ok = gpt2_pair(t, &s, s.prev[c.left], &h);
        ok = ok && gpt2_pair(t, &s, c.left, &h);
    }
    for (int i = 0; ok && i >= 0 && i < (int)n; i = s.next[i])
        ok = s.id[i] >= 0 ? tok_list_push(out, s.id[i]) : push_byte(t, (unsigned char)(-1 - s.id[i]), out);
    syms_free(&s);
    free(h.items);
    return ok;
}

static bool spm_pair(const tokenizer *t, const symbols *s, const char *text, int a, heap *h) {
    if (a < 0 || s->next[a] < 0) return true;
    int b = s->next[a];
    int32_t id = tok_lookup(t, text + s->start[a], (size_t)(s->len[a] + s->len[b]));
    if (id < 0) return true;
    cand c = {-t->scores[id], a, b, s->len[a] + s->len[b]};
    return heap_push(h, c);
}

static bool bpe_spm(const tokenizer *t, const char *text, size_t n, tok_list *out) {
    if (n == 0) return true;
    symbols s;
    heap h = {0};
    bool ok = syms_alloc(&s, (int)n);
    int count = 0;
    for (size_t i = 0; ok && i < n;) {
        size_t len;
        utf8_next((const unsigned char *)text + i, n - i, &len);
        s.start[count] = (int32_t)i;
        s.len[count] = (int32_t)len;
        s.prev[count] = count - 1;
        s.next[count] = -1;
        if (count > 0) s.next[count - 1] = count;
        count++;
        i += len;
    }
    for (int i = 0; ok && i + 1 < count; i++) ok = spm_pair(t, &s, text, i, &h);
    while (ok && h.n > 0) {
        cand c = heap_pop(&h);
        if (s.len[c.left] == 0 || s.len[c.right] == 0 || s.next[c.left] != c.right ||
            s.len[c.left] + s.len[c.right] != c.res)
            continue;
        s.len[c.left] += s.len[c.right];
        s.len[c.right] = 0;
        s.next[c.left] = s.next[c.right];
        if (s.next[c.left] >= 0) s.prev[s.next[c.left]] = c.left;
        if (s.prev[c.left] >= 0) ok = spm_pair(t, &s, text, s.prev[c.left], &h);
        ok = ok && spm_pair(t, &s, text, c.left, &h);
    }
    for (int i = 0; ok && i >= 0 && i < count; i = s.next[i]) {
        int32_t id = tok_lookup(t, text + s.start[i], (size_t)s.len[i]);
        if (id >= 0) ok = tok_list_push(out, id);
        else
            for (int j = 0; ok && j < s.len[i]; j++) ok = push_byte(t, (unsigned char)text[s.start[i] + j], out);
    }
    syms_free(&s);
    free(h.items);
    return ok;
}

/* ---- pre-tokenization (gpt2) ------------------------------------------------------------------ */

typedef struct {
    const unsigned char *p;
    size_t n;
    uint32_t *cp;
    uint32_t *off; /* byte offset of each code point, plus one past the end */
    size_t count;
} cps;

static bool cps_decode(cps *c, const char *text, size_t n) {
    c->p = (const unsigned char *)text;
    c->n = n;
    c->cp = malloc(sizeof(uint32_t) * (n + 1));
    c->off = malloc(sizeof(uint32_t) * (n + 1));
    if (!c->cp || !c->off) return false;
    c->count = 0;
    for (size_t i = 0; i < n;) {
        size_t len;
        c->cp[c->count] = utf8_next(c->p + i, n - i, &len);
        c->off[c->count++] = (uint32_t)i;
        i += len;
    }
    c->off[c->count] = (uint32_t)n;
    return true;
}

static bool is_contraction(const cps *c, size_t i, size_t end, size_t *len) {
    if (c->cp[i] != '\'' || i + 1 >= end) return false;
    uint32_t a = c->cp[i + 1], b = i + 2 < end ? c->cp[i + 2] : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') { *len = 2; return true; }
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) { *len = 3; return true; }
    return false;
}

/* Splits code points [i, end) by the GPT-2 pattern and encodes each piece. */
static bool gpt2_split(const tokenizer *t, const cps *c, size_t i, size_t end, tok_list *out) {
    bool ok = true;
    while (ok && i < end) {
        size_t start = i, len;
        if (is_contraction(c, i, end, &len)) {
            i += len;
        } else {
            size_t j = i;
            if (c->cp[j] == ' ' && j + 1 < end && cp_kind(c->cp[j + 1]) != CP_S) j++;
            int k = cp_kind(c->cp[j]);
            if (k != CP_S) {
                /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' */
                while (j < end && cp_kind(c->cp[j]) == k) j++;
                i = j;
            } else {
                /* '\s+(?!\S)' then '\s+' */
                while (j < end && cp_kind(c->cp[j]) == CP_S) j++;
                if (j == end || j - i == 1) i = j;
                else i = j - 1;
            }
        }
        ok = bpe_gpt2(t, c->p + c->off[start], c->off[i] - c->off[start], out);
    }
    return ok;
}

static bool encode_gpt2(const tokenizer *t, const char *text, size_t n, tok_list *out) {
    cps c;
    bool ok = cps_decode(&c, text, n);
    size_t seg = 0;
    if (ok && t->pre == PRE_DIGITS) {
        for (size_t i = 0; ok && i < c.count; i++) {
            if (cp_kind(c.cp[i]) != CP_N) continue;
            ok = gpt2_split(t, &c, seg, i, out) && bpe_gpt2(t, c.p + c.off[i], c.off[i + 1] - c.off[i], out);
            seg = i + 1;
        }
    }
    ok = ok && gpt2_split(t, &c, seg, c.count, out);
    free(c.cp);
    free(c.off);
    return ok;
}

static bool encode_spm(const tokenizer *t, const char *text, size_t n, bool first, tok_list *out) {
    /* spaces become U+2581; the first fragment gets a leading one */
    size_t extra = 0;
    for (size_t i = 0; i < n; i++) extra += text[i] == ' ';
    bool prefix = first && t->add_space_prefix;
    char *buf = malloc(n + 2 * extra + 4);
    if (!buf) return false;
    size_t m = 0;
    if (prefix) { memcpy(buf, "\xE2\x96\x81", 3); m = 3; }
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') { memcpy(buf + m, "\xE2\x96\x81", 3); m += 3; }
        else buf[m++] = text[i];
    }
    bool ok = bpe_spm(t, buf, m, out);
    free(buf);
    return ok;
}

static bool encode_text(const tokenizer *t, const char *text, size_t n, bool first, tok_list *out) {
    if (n == 0) return true;
    return t->kind == TOK_GPT2 ? encode_gpt2(t, text, n, out) : encode_spm(t, text, n, first, out);
}

bool tok_encode(const tokenizer *t, const char *text, size_t len, bool parse_special, tok_list *out) {
    size_t seg = 0, i = 0;
    bool ok = true, first = true;
    while (ok && i < len) {
        int32_t match = -1;
        for (int k = 0; k < t->n_specials; k++) {
            int32_t id = t->specials[k];
            const gguf_string *s = &t->tokens[id];
            if (!parse_special && t->types[id] != TT_USER) continue;
            if (s->len <= len - i && (unsigned char)s->str[0] == (unsigned char)text[i] &&
                memcmp(s->str, text + i, s->len) == 0) {
                match = id;
                break;
            }
        }
        if (match < 0) {
            i++;
            continue;
        }
        ok = encode_text(t, text + seg, i - seg, first, out) && tok_list_push(out, match);
        first = false;
        i += t->tokens[match].len;
        seg = i;
    }
    return ok && encode_text(t, text + seg, len - seg, first, out);
}

/* ---- decoding --------------------------------------------------------------------------------- */

size_t tok_piece(const tokenizer *t, int32_t id, bool special, char *buf, size_t cap) {
    if (id < 0 || id >= t->n_vocab || cap < 8) return 0;
    int type = t->types[id];
    const gguf_string *s = &t->tokens[id];
    if ((type == TT_CONTROL && !special) || type == TT_UNUSED) return 0;
    if (type == TT_BYTE && s->len == 6 && memcmp(s->str, "<0x", 3) == 0) {
        unsigned v = (unsigned)strtoul(s->str + 3, NULL, 16);
        buf[0] = (char)v;
        return 1;
    }
    size_t m = 0;
    if (type == TT_CONTROL || type == TT_USER || type == TT_UNKNOWN) {
        m = s->len < cap ? s->len : cap;
        memcpy(buf, s->str, m);
        return m;
    }
    if (t->kind == TOK_SPM) {
        for (size_t i = 0; i < s->len && m + 4 <= cap;) {
            if (i + 3 <= s->len && memcmp(s->str + i, "\xE2\x96\x81", 3) == 0) { buf[m++] = ' '; i += 3; }
            else buf[m++] = s->str[i++];
        }
        return m;
    }
    for (size_t i = 0; i < s->len && m + 4 <= cap;) {
        size_t len;
        uint32_t cp = utf8_next((const unsigned char *)s->str + i, s->len - i, &len);
        if (cp < 512 && CP_BYTE[cp] >= 0) buf[m++] = (char)CP_BYTE[cp];
        else if (cp >= 0xDC00 && cp <= 0xDCFF) buf[m++] = (char)(cp - 0xDC00);
        else m += utf8_put(cp, buf + m);
        i += len;
    }
    return m;
}
