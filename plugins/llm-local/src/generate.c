/* generate.c - chat template, sampling and the generation loop (see generate.h). */
#include "generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- chat template ---------------------------------------------------------------------------- */

int chat_resolve(const tokenizer *t, int tpl) {
    if (tpl != TPL_AUTO) return tpl;
    return t->im_start >= 0 && t->im_end >= 0 ? TPL_CHATML : TPL_NONE;
}

static bool encode_parts(const tokenizer *t, const char *a, size_t na, const char *b, size_t nb, const char *c,
                         size_t nc, tok_list *out) {
    char *buf = malloc(na + nb + nc + 1);
    if (!buf) return false;
    memcpy(buf, a, na);
    memcpy(buf + na, b, nb);
    memcpy(buf + na + nb, c, nc);
    bool ok = tok_encode(t, buf, na + nb + nc, false, out);
    free(buf);
    return ok;
}

bool chat_prompt(const tokenizer *t, int tpl, const char *default_system, const chat_msg *msgs, int n,
                 tok_list *out) {
    tpl = chat_resolve(t, tpl);
    bool ok = true;
    if (t->add_bos && t->bos >= 0 && !(tpl == TPL_CHATML && t->bos == t->im_start)) ok = tok_list_push(out, t->bos);
    if (tpl != TPL_CHATML) {
        for (int i = 0; ok && i < n; i++)
            ok = encode_parts(t, i ? "\n" : "", i ? 1 : 0, msgs[i].content, msgs[i].content_len, "", 0, out);
        return ok;
    }
    bool has_system = n > 0 && msgs[0].role_len == 6 && memcmp(msgs[0].role, "system", 6) == 0;
    if (!has_system && default_system && *default_system) {
        ok = ok && tok_list_push(out, t->im_start) &&
             encode_parts(t, "system\n", 7, default_system, strlen(default_system), "", 0, out) &&
             tok_list_push(out, t->im_end) && tok_encode(t, "\n", 1, false, out);
    }
    for (int i = 0; ok && i < n; i++) {
        ok = tok_list_push(out, t->im_start) &&
             encode_parts(t, msgs[i].role, msgs[i].role_len, "\n", 1, msgs[i].content, msgs[i].content_len, out) &&
             tok_list_push(out, t->im_end) && tok_encode(t, "\n", 1, false, out);
    }
    return ok && tok_list_push(out, t->im_start) && tok_encode(t, "assistant\n", 10, false, out);
}

char *chat_default_system(const char *tmpl) {
    if (!tmpl) return NULL;
    const char *p = strstr(tmpl, "<|im_start|>system");
    if (!p) return NULL;
    p += 18;
    if (p[0] == '\n') p += 1;
    else if (p[0] == '\\' && p[1] == 'n') p += 2;
    else return NULL;
    const char *end = strstr(p, "<|im_end|>");
    if (!end || end == p) return NULL;
    for (const char *c = p; c < end; c++)
        if (*c == '{' || *c == '}' || *c == '\'' || *c == '"' || *c == '\\' || *c == '\n') return NULL; /* an expression */
    size_t n = (size_t)(end - p);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* ---- sampling --------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static float rng_unit(uint64_t *s) { /* xorshift64*, [0, 1) */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    uint32_t r = (uint32_t)((*s * 0x2545F4914F6CDD1Dull) >> 40);
    return (float)r / 16777216.0f;
}

bool sampler_init(sampler *s, int vocab, uint64_t seed) {
    s->state = splitmix64(seed);
    if (s->state == 0) s->state = 1;
    s->cap = vocab;
    s->idx = malloc(sizeof(int32_t) * (size_t)vocab);
    s->prob = malloc(sizeof(float) * (size_t)vocab);
    return s->idx && s->prob;
}

void sampler_free(sampler *s) {
    free(s->idx);
    free(s->prob);
    memset(s, 0, sizeof *s);
}

static const float *g_sort_prob;

static int by_prob(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    float pi = g_sort_prob[i], pj = g_sort_prob[j];
    if (pi != pj) return pi > pj ? -1 : 1;
    return i < j ? -1 : i > j;
}

int32_t sampler_pick(sampler *s, const float *logits, int n, float temperature, float top_p) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0.0f || top_p <= 0.0f || n > s->cap) return best;
    float max = logits[best], sum = 0.0f;
    for (int i = 0; i < n; i++) {
        s->prob[i] = expf((logits[i] - max) / temperature);
        sum += s->prob[i];
    }
    for (int i = 0; i < n; i++) s->prob[i] /= sum;
    float r = rng_unit(&s->state);
    if (top_p >= 1.0f) {
        float cum = 0.0f;
        for (int i = 0; i < n; i++) {
            cum += s->prob[i];
            if (r < cum) return i;
        }
        return best;
    }
    /* only tokens with p >= (1 - top_p) / (n - 1) can be in the nucleus */
    float cutoff = n > 1 ? (1.0f - top_p) / (float)(n - 1) : 0.0f;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (s->prob[i] >= cutoff) s->idx[m++] = i;
    g_sort_prob = s->prob;
    qsort(s->idx, (size_t)m, sizeof(int32_t), by_prob);
    float cum = 0.0f;
    int last = m - 1;
    for (int i = 0; i < m; i++) {
        cum += s->prob[s->idx[i]];
        if (cum >= top_p) {
            last = i;
            break;
        }
    }
    float target = r * cum, acc = 0.0f;
    for (int i = 0; i <= last; i++) {
        acc += s->prob[s->idx[i]];
        if (target < acc) return s->idx[i];
    }
    return s->idx[last];
}

/* ---- generation ------------------------------------------------------------------------------- */

static bool append(gen_result *r, const char *s, size_t n) {
    if (r->len + n + 1 > r->cap) {
        size_t cap = (r->len + n + 1) * 2;
        char *t = realloc(r->text, cap < 256 ? 256 : cap);
        if (!t) return false;
        r->text = t;
        r->cap = cap < 256 ? 256 : cap;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = '\0';
    return true;
}

/* One UTF-8 sequence at s[0..n): 1 valid (*len bytes), 0 invalid (*len bytes, the maximal subpart,
 * to replace with one U+FFFD, as Python and WHATWG decoders do), -1 a valid but incomplete start. */
static int utf8_take(const unsigned char *s, size_t n, size_t *len) {
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80) { *len = 1; return 1; }
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; lo = c == 0xE0 ? 0xA0 : 0x80; hi = c == 0xED ? 0x9F : 0xBF; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; lo = c == 0xF0 ? 0x90 : 0x80; hi = c == 0xF4 ? 0x8F : 0xBF; }
    else { *len = 1; return 0; }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) { *len = i; return -1; }
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF)) { *len = i; return 0; }
    }
    *len = need;
    return 1;
}

/* Appends the bytes of a token to the answer, which stays valid UTF-8: invalid bytes become U+FFFD,
 * an incomplete sequence waits in `pend` for the next token. */
static bool append_utf8(gen_result *r, unsigned char *pend, size_t *npend, const char *piece, size_t n) {
    unsigned char work[520];
    size_t m = *npend;
    memcpy(work, pend, m);
    if (n > sizeof work - m) n = sizeof work - m;
    memcpy(work + m, piece, n);
    m += n;
    *npend = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < m;) {
        size_t len;
        int kind = utf8_take(work + i, m - i, &len);
        if (kind < 0) {
            memcpy(pend, work + i, m - i);
            *npend = m - i;
            break;
        }
        ok = kind ? append(r, (const char *)work + i, len) : append(r, "\xEF\xBF\xBD", 3);
        i += len;
    }
    return ok;
}

/* The largest m <= n such that s[0..m) does not end inside a UTF-8 sequence. */
static size_t utf8_complete(const char *s, size_t n) {
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue;
        size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        return need > back ? n - back : n;
    }
    return n;
}

/* The first occurrence of any stop sequence starting at or after `from`; -1 if none. */
static long find_stop(const gen_result *r, const gen_params *p, size_t from) {
    long best = -1;
    for (int k = 0; k < p->n_stop; k++) {
        size_t sl = p->stop_len[k];
        if (sl == 0 || sl > r->len) continue;
        size_t start = from + 1 > sl ? from + 1 - sl : 0;
        for (size_t i = start; i + sl <= r->len; i++) {
            if (best >= 0 && (long)i >= best) break;
            if (memcmp(r->text + i, p->stop[k], sl) == 0) {
                best = (long)i;
                break;
            }
        }
    }
    return best;
}

bool generate(model *m, const tokenizer *t, const tok_list *prompt, const gen_params *p, gen_result *r,
              char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    r->n_prompt = prompt->n;
    r->finish = "length";
    if (prompt->n == 0) {
        snprintf(err, errlen, "the prompt is empty");
        return false;
    }
    if (prompt->n >= m->ctx) {
        /* advise a larger `context` only when there is one to have */
        if (m->ctx < m->ctx_train)
            snprintf(err, errlen, "the prompt has %d tokens; the context holds %d (raise the config `context`, up "
                                  "to the model's %d, or send a shorter conversation)", prompt->n, m->ctx,
                     m->ctx_train);
        else
            snprintf(err, errlen, "the prompt has %d tokens; the context holds %d, this model's most: send a "
                                  "shorter conversation", prompt->n, m->ctx);
        return false;
    }
    sampler s;
    if (!sampler_init(&s, m->vocab, p->seed) || !append(r, "", 0)) {
        sampler_free(&s);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    size_t max_stop = 0, streamed = 0;
    for (int k = 0; k < p->n_stop; k++)
        if (p->stop_len[k] > max_stop) max_stop = p->stop_len[k];
    const float *logits = model_eval(m, prompt->ids, prompt->n);
    char piece[512];
    unsigned char pend[4];
    size_t npend = 0;
    for (int i = 0; logits && i < p->max_tokens; i++) {
        int32_t tok = sampler_pick(&s, logits, m->vocab, p->temperature, p->top_p);
        if (!p->ignore_eos && tok_is_eog(t, tok)) {
            r->finish = "stop";
            break;
        }
        r->n_gen++;
        size_t before = r->len, n = tok_piece(t, tok, false, piece, sizeof piece);
        const char *text = piece;
        if (t->kind == TOK_SPM && t->add_space_prefix && r->len == 0 && npend == 0 && n > 0 && piece[0] == ' ')
            text++, n--; /* SentencePiece: the word-start mark of the first word is not text */
        if (!append_utf8(r, pend, &npend, text, n)) break;
        long at = p->n_stop ? find_stop(r, p, before) : -1;
        if (at >= 0) {
            r->len = (size_t)at;
            r->text[r->len] = '\0';
            r->finish = "stop";
            npend = 0;
            break;
        }
        if (p->on_text) {
            size_t safe = r->len > max_stop ? r->len - (max_stop ? max_stop - 1 : 0) : 0;
            safe = utf8_complete(r->text, safe);
            if (safe > streamed) {
                p->on_text(p->ctx, r->text + streamed, safe - streamed);
                streamed = safe;
            }
        }
        if (i + 1 == p->max_tokens || m->n_cached >= m->ctx) break;
        logits = model_step(m, tok);
    }
    if (npend) { /* the answer ends inside a UTF-8 sequence */
        size_t before = r->len;
        append(r, "\xEF\xBF\xBD", 3);
        long at = p->n_stop ? find_stop(r, p, before) : -1;
        if (at >= 0) {
            r->len = (size_t)at;
            r->text[r->len] = '\0';
            r->finish = "stop";
        }
    }
    if (p->on_text && r->len > streamed) p->on_text(p->ctx, r->text + streamed, r->len - streamed);
    sampler_free(&s);
    return true;
}

void gen_result_free(gen_result *r) {
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* ---- constrained choice ----------------------------------------------------------------------- */

static double log_prob(const float *logits, int n, int32_t tok) {
    float max = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)(logits[i] - max));
    return (double)(logits[tok] - max) - log(sum);
}

int choose(model *m, const tokenizer *t, const tok_list *prompt, const char *const *choices, const size_t *lens,
           int n, double *scores, int *n_scored, char *err, size_t errlen) {
    int best = -1;
    *n_scored = 0;
    if (prompt->n == 0 || prompt->n >= m->ctx) {
        snprintf(err, errlen, "the prompt has %d tokens; the context holds %d", prompt->n, m->ctx);
        return -1;
    }
    for (int c = 0; c < n; c++) {
        scores[c] = -INFINITY;
        tok_list ct = {0};
        if (!lens[c] || !tok_encode(t, choices[c], lens[c], false, &ct) || ct.n == 0 ||
            prompt->n + ct.n > m->ctx) {
            tok_list_free(&ct);
            continue;
        }
        /* the prompt's keys stay in the cache: each choice computes only its own tokens */
        const float *logits = model_eval(m, prompt->ids, prompt->n);
        double score = 0.0;
        for (int j = 0; logits && j < ct.n; j++) {
            score += log_prob(logits, m->vocab, ct.ids[j]);
            if (j + 1 < ct.n) logits = model_step(m, ct.ids[j]);
        }
        if (logits) {
            scores[c] = score;
            *n_scored += ct.n;
            if (best < 0 || score > scores[best]) best = c;
        }
        tok_list_free(&ct);
    }
    if (best < 0) snprintf(err, errlen, "no choice fits: each is empty or longer than the context leaves");
    return best;
}

/* ---- benchmark -------------------------------------------------------------------------------- */

bool bench_run(model *m, const tok_list *prompt, int n_gen, double (*now)(void), bench_result *r) {
    memset(r, 0, sizeof *r);
    if (prompt->n <= 0 || prompt->n + n_gen > m->ctx) return false;
    model_reset(m);
    double t0 = now();
    const float *logits = model_eval(m, prompt->ids, prompt->n);
    double t1 = now();
    for (int i = 0; logits && i < n_gen; i++) {
        int32_t best = 0;
        for (int j = 1; j < m->vocab; j++)
            if (logits[j] > logits[best]) best = j;
        logits = model_step(m, best);
        r->n_gen++;
    }
    double t2 = now();
    r->n_prompt = prompt->n;
    r->prefill_s = t1 - t0;
    r->decode_s = t2 - t1;
    return logits != NULL;
}
