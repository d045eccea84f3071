/* model.c - loading a llama-architecture GGUF model and its forward pass (see model.h). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_CTX 4096

static bool err_set(char *err, size_t errlen, const char *fmt, const char *a, const char *b) {
    snprintf(err, errlen, fmt, a, b);
    return false;
}

static bool widen(model *m, const gguf_tensor *t, const float **out) {
    size_t n = (size_t)(t->nbytes / 2);
    float *f = malloc(sizeof(float) * n);
    float **list = realloc(m->widened, sizeof(float *) * (size_t)(m->n_widened + 1));
    if (!f || !list) {
        free(f);
        if (list) m->widened = list;
        return false;
    }
    m->widened = list;
    m->widened[m->n_widened++] = f;
    widen_to_f32(f, t->data, t->type, n);
    m->weight_bytes += sizeof(float) * n;
    *out = f;
    return true;
}

/* A matrix of `rows` rows of `cols` weights (GGUF shape [cols, rows]). */
static bool get_mat(model *m, const char *name, int cols, int rows, bool optional, qmat *out, char *err,
                    size_t errlen) {
    const gguf_tensor *t = gguf_tensor_find(&m->gguf, name);
    memset(out, 0, sizeof *out);
    if (!t) {
        if (optional) return true;
        return err_set(err, errlen, "the model has no tensor %s%s", name, "");
    }
    if (t->ne[0] != (uint64_t)cols || t->ne[1] != (uint64_t)rows || t->ne[2] != 1 || t->ne[3] != 1) {
        snprintf(err, errlen, "tensor %s has shape [%llu, %llu], expected [%d, %d]", name,
                 (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], cols, rows);
        return false;
    }
    if (!ggml_type_supported(t->type))
        return err_set(err, errlen,
                       "tensor %s is %s; llm-local computes with F32, F16, BF16, Q8_0, Q4_0 and Q4_1 (convert "
                       "the model with llama-quantize to Q8_0 or Q4_1, e.g. `llama-quantize --pure in.gguf "
                       "out.gguf Q4_1`)", name, ggml_type_name(t->type));
    out->type = t->type;
    out->rows = rows;
    out->cols = cols;
    out->data = t->data;
    if (t->type == GGML_F16 || t->type == GGML_BF16) {
        const float *f;
        if (!widen(m, t, &f)) return err_set(err, errlen, "out of memory widening %s%s", name, "");
        out->type = GGML_F32;
        out->data = (const uint8_t *)f;
    }
    out->row_bytes = (size_t)ggml_nbytes(out->type, (uint64_t)cols);
    return true;
}

static bool get_vec(model *m, const char *name, int n, const float **out, char *err, size_t errlen) {
    qmat q;
    if (!get_mat(m, name, n, 1, false, &q, err, errlen)) return false;
    if (q.type != GGML_F32) return err_set(err, errlen, "tensor %s must be F32, F16 or BF16, not %s", name,
                                           ggml_type_name(q.type));
    *out = (const float *)q.data;
    return true;
}

static bool get_int(const gguf_file *g, const char *key, int *out, int def, char *err, size_t errlen) {
    uint64_t v;
    if (!gguf_get_u64(g, key, &v)) {
        if (def >= 0) {
            *out = def;
            return true;
        }
        return err_set(err, errlen, "the model file lacks %s%s", key, "");
    }
    if (v == 0 || v > (1u << 24)) return err_set(err, errlen, "the model's %s is out of range%s", key, "");
    *out = (int)v;
    return true;
}

static void *state_alloc(model *m, size_t n) {
    m->state_bytes += n;
    return calloc(1, n ? n : 1);
}

bool model_load(model *m, const char *path, int ctx, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    f16_init();
    gguf_file *g = &m->gguf;
    if (!gguf_open(path, g, err, errlen)) return false;
    const char *arch = gguf_get_str(g, "general.architecture");
    if (!arch || strcmp(arch, "llama") != 0) {
        snprintf(err, errlen, "%s: general.architecture is \"%s\"; llm-local runs the llama architecture "
                              "(Llama, SmolLM/SmolLM2, TinyLlama, Mistral...)", path, arch ? arch : "(missing)");
        model_free(m);
        return false;
    }
    bool ok = get_int(g, "llama.embedding_length", &m->dim, -1, err, errlen) &&
              get_int(g, "llama.feed_forward_length", &m->hidden, -1, err, errlen) &&
              get_int(g, "llama.block_count", &m->n_layers, -1, err, errlen) &&
              get_int(g, "llama.attention.head_count", &m->n_heads, -1, err, errlen);
    ok = ok && get_int(g, "llama.attention.head_count_kv", &m->n_kv_heads, m->n_heads, err, errlen) &&
         get_int(g, "llama.attention.key_length", &m->head_dim, m->dim / m->n_heads, err, errlen) &&
         get_int(g, "llama.context_length", &m->ctx_train, 2048, err, errlen) &&
         get_int(g, "llama.rope.dimension_count", &m->rope_dim, m->head_dim, err, errlen);
    if (ok && (m->dim > 65536 || m->hidden > (1 << 20) || m->n_layers > 4096 || m->n_heads > 4096 ||
               m->head_dim > 1024)) {
        snprintf(err, errlen, "%s: implausible model shape (dim %d, hidden %d, %d layers, %d heads of %d)", path,
                 m->dim, m->hidden, m->n_layers, m->n_heads, m->head_dim);
        ok = false;
    }
    if (ok && (m->n_kv_heads > m->n_heads || m->n_heads % m->n_kv_heads || m->rope_dim > m->head_dim ||
               m->rope_dim % 2 || m->head_dim % 2)) {
        snprintf(err, errlen, "%s: unsupported attention shape (%d heads, %d kv heads, head size %d, rope %d)", path,
                 m->n_heads, m->n_kv_heads, m->head_dim, m->rope_dim);
        ok = false;
    }
    double v;
    m->rope_base = gguf_get_f64(g, "llama.rope.freq_base", &v) ? (float)v : 10000.0f;
    m->eps = gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &v) ? (float)v : 1e-5f;
    m->kv_dim = m->n_kv_heads * m->head_dim;
    ok = ok && gguf_read_data(path, g, err, errlen);
    m->weight_bytes = g->blob_size;
    if (ok) {
        const gguf_tensor *emb = gguf_tensor_find(g, "token_embd.weight");
        if (!emb) ok = err_set(err, errlen, "the model has no tensor token_embd.weight%s%s", "", "");
        else m->vocab = (int)emb->ne[1];
    }
    ok = ok && get_mat(m, "token_embd.weight", m->dim, m->vocab, false, &m->tok_embd, err, errlen) &&
         get_mat(m, "output.weight", m->dim, m->vocab, true, &m->output, err, errlen) &&
         get_vec(m, "output_norm.weight", m->dim, &m->output_norm, err, errlen);
    if (ok && !m->output.data) m->output = m->tok_embd; /* tied embeddings (SmolLM2) */
    if (ok) {
        m->layers = calloc((size_t)m->n_layers, sizeof(layer));
        if (!m->layers) ok = err_set(err, errlen, "out of memory%s%s", "", "");
    }
    int qdim = m->n_heads * m->head_dim;
    for (int l = 0; ok && l < m->n_layers; l++) {
        layer *L = &m->layers[l];
        char name[96];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d.%s.weight", l, s), name)
        ok = get_vec(m, NAME("attn_norm"), m->dim, &L->attn_norm, err, errlen) &&
             get_vec(m, NAME("ffn_norm"), m->dim, &L->ffn_norm, err, errlen) &&
             get_mat(m, NAME("attn_q"), m->dim, qdim, false, &L->wq, err, errlen) &&
             get_mat(m, NAME("attn_k"), m->dim, m->kv_dim, false, &L->wk, err, errlen) &&
             get_mat(m, NAME("attn_v"), m->dim, m->kv_dim, false, &L->wv, err, errlen) &&
             get_mat(m, NAME("attn_output"), qdim, m->dim, false, &L->wo, err, errlen) &&
             get_mat(m, NAME("ffn_gate"), m->dim, m->hidden, false, &L->w_gate, err, errlen) &&
             get_mat(m, NAME("ffn_up"), m->dim, m->hidden, false, &L->w_up, err, errlen) &&
             get_mat(m, NAME("ffn_down"), m->hidden, m->dim, false, &L->w_down, err, errlen);
#undef NAME
    }
    if (ok && (m->dim % QK || qdim % QK || m->hidden % QK)) {
        /* activation quantisation works on blocks of 32; GGUF quantised rows guarantee it, F32 may not */
        bool quantised = m->output.type != GGML_F32;
        for (int l = 0; l < m->n_layers; l++) quantised = quantised || m->layers[l].wq.type != GGML_F32 ||
            m->layers[l].w_gate.type != GGML_F32 || m->layers[l].w_down.type != GGML_F32 ||
            m->layers[l].wo.type != GGML_F32;
        if (quantised) ok = err_set(err, errlen, "quantised weights need sizes that are multiples of 32%s%s", "", "");
    }
    if (ok) {
        if (ctx <= 0) ctx = m->ctx_train < DEFAULT_MAX_CTX ? m->ctx_train : DEFAULT_MAX_CTX;
        if (ctx > m->ctx_train) ctx = m->ctx_train;
        m->ctx = ctx;
        int wide = m->dim > qdim ? m->dim : qdim;
        m->x = state_alloc(m, sizeof(float) * BATCH * (size_t)m->dim);
        m->xb = state_alloc(m, sizeof(float) * BATCH * (size_t)wide);
        m->xb2 = state_alloc(m, sizeof(float) * BATCH * (size_t)m->dim);
        m->q = state_alloc(m, sizeof(float) * BATCH * (size_t)qdim);
        m->hb = state_alloc(m, sizeof(float) * BATCH * (size_t)m->hidden);
        m->hb2 = state_alloc(m, sizeof(float) * BATCH * (size_t)m->hidden);
        m->att = state_alloc(m, sizeof(float) * (size_t)m->n_heads * (size_t)ctx);
        m->logits = state_alloc(m, sizeof(float) * (size_t)m->vocab);
        size_t cache = sizeof(float) * (size_t)m->n_layers * (size_t)ctx * (size_t)m->kv_dim;
        m->key_cache = state_alloc(m, cache);
        m->value_cache = state_alloc(m, cache);
        m->rope_freq = state_alloc(m, sizeof(float) * (size_t)(m->rope_dim / 2));
        m->cached = state_alloc(m, sizeof(int32_t) * (size_t)ctx);
        ok = m->x && m->xb && m->xb2 && m->q && m->hb && m->hb2 && m->att && m->logits && m->key_cache &&
             m->value_cache && m->rope_freq && m->cached;
        for (int i = 0; ok && i < BATCH; i++) ok = qact_alloc(&m->xq[i], wide) && qact_alloc(&m->hq[i], m->hidden);
        if (!ok)
            snprintf(err, errlen, "not enough memory for a %d-token context (%llu MB of cache): lower the config "
                                  "`context` or raise memory_pages", ctx, (unsigned long long)(2 * cache >> 20));
    }
    if (ok) {
        for (int i = 0; i < m->rope_dim / 2; i++)
            m->rope_freq[i] = (float)pow((double)m->rope_base, -2.0 * i / (double)m->rope_dim);
        /* a summary of the weight types, e.g. "Q4_1 x210, Q8_0 x1, F32 x61" */
        uint32_t types[8];
        int counts[8], nt = 0;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            int k = 0;
            while (k < nt && types[k] != g->tensors[i].type) k++;
            if (k == nt && nt < 8) { types[nt] = g->tensors[i].type; counts[nt++] = 0; }
            if (k < nt) counts[k]++;
        }
        size_t used = 0;
        for (int k = 0; k < nt && used < sizeof m->type_summary; k++)
            used += (size_t)snprintf(m->type_summary + used, sizeof m->type_summary - used, "%s%s x%d",
                                     k ? ", " : "", ggml_type_name(types[k]), counts[k]);
    }
    if (!ok) model_free(m);
    return ok;
}

void model_free(model *m) {
    gguf_free(&m->gguf);
    for (int i = 0; i < m->n_widened; i++) free(m->widened[i]);
    free(m->widened);
    free(m->layers);
    free(m->x);
    free(m->xb);
    free(m->xb2);
    free(m->q);
    free(m->hb);
    free(m->hb2);
    free(m->att);
    free(m->logits);
    free(m->key_cache);
    free(m->value_cache);
    free(m->rope_freq);
    free(m->cached);
    for (int i = 0; i < BATCH; i++) {
        qact_free(&m->xq[i]);
        qact_free(&m->hq[i]);
    }
    memset(m, 0, sizeof *m);
}

void model_reset(model *m) { m->n_cached = 0; }

/* ---- forward ---------------------------------------------------------------------------------- */

static void rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

static void rope(float *v, int heads, int head_dim, int rope_dim, const float *cs, const float *sn) {
    for (int h = 0; h < heads; h++) {
        float *x = v + h * head_dim;
        for (int i = 0; i < rope_dim / 2; i++) {
            float a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = a * cs[i] - b * sn[i];
            x[2 * i + 1] = a * sn[i] + b * cs[i];
        }
    }
}

/* out_i = w * x_i for nt vectors (strides in floats), quantising the x_i first when w is quantised
 * and `*fresh` says they changed since the last quantisation. */
static void mm(float *out, size_t out_stride, const qmat *w, const float *x, size_t x_stride, qact *xq, int nt, int n,
               bool *fresh) {
    if (w->type != GGML_F32 && *fresh) {
        for (int i = 0; i < nt; i++) qact_quantize(&xq[i], x + (size_t)i * x_stride, n);
        *fresh = false;
    }
    matmul(out, out_stride, w, x, x_stride, xq, nt);
}

/* Positions pos0 .. pos0 + nt - 1 (nt <= BATCH) of tokens toks[0..nt); the logits of the last one
 * when need_logits. */
static void forward(model *m, const int32_t *toks, int nt, int pos0, bool need_logits) {
    int dim = m->dim, hd = m->head_dim, kv_dim = m->kv_dim, qdim = m->n_heads * hd, hidden = m->hidden;
    int wide = dim > qdim ? dim : qdim;
    int group = m->n_heads / m->n_kv_heads;
    int half = m->rope_dim / 2 < 512 ? m->rope_dim / 2 : 512;
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < nt; i++) dequant_row(m->x + (size_t)i * dim, &m->tok_embd, toks[i]);
    for (int l = 0; l < m->n_layers; l++) {
        const layer *L = &m->layers[l];
        float *kc = m->key_cache + (size_t)l * m->ctx * kv_dim, *vc = m->value_cache + (size_t)l * m->ctx * kv_dim;
        float *k0 = kc + (size_t)pos0 * kv_dim, *v0 = vc + (size_t)pos0 * kv_dim;
        bool fresh = true;
        for (int i = 0; i < nt; i++)
            rmsnorm(m->xb + (size_t)i * wide, m->x + (size_t)i * dim, L->attn_norm, dim, m->eps);
        mm(m->q, (size_t)qdim, &L->wq, m->xb, (size_t)wide, m->xq, nt, dim, &fresh);
        mm(k0, (size_t)kv_dim, &L->wk, m->xb, (size_t)wide, m->xq, nt, dim, &fresh);
        mm(v0, (size_t)kv_dim, &L->wv, m->xb, (size_t)wide, m->xq, nt, dim, &fresh);
        for (int i = 0; i < nt; i++) {
            int pos = pos0 + i;
            float cs[512], sn[512]; /* rope_dim / 2 <= 512: head sizes above 1024 are not supported */
            for (int j = 0; j < half; j++) {
                float angle = (float)pos * m->rope_freq[j];
                cs[j] = cosf(angle);
                sn[j] = sinf(angle);
            }
            float *q = m->q + (size_t)i * qdim;
            rope(q, m->n_heads, hd, 2 * half, cs, sn);
            rope(k0 + (size_t)i * kv_dim, m->n_kv_heads, hd, 2 * half, cs, sn);
            /* the `group` query heads of each key/value head together: each cached row is read once */
            for (int kvh = 0; kvh < m->n_kv_heads; kvh++)
                attend(m->xb + (size_t)i * wide + (size_t)kvh * group * hd, q + (size_t)kvh * group * hd, group, hd,
                       kc + kvh * hd, vc + kvh * hd, (size_t)kv_dim, pos + 1, scale, m->att);
        }
        fresh = true;
        mm(m->xb2, (size_t)dim, &L->wo, m->xb, (size_t)wide, m->xq, nt, qdim, &fresh);
        for (size_t j = 0; j < (size_t)nt * dim; j++) m->x[j] += m->xb2[j];
        fresh = true;
        for (int i = 0; i < nt; i++)
            rmsnorm(m->xb + (size_t)i * wide, m->x + (size_t)i * dim, L->ffn_norm, dim, m->eps);
        mm(m->hb, (size_t)hidden, &L->w_gate, m->xb, (size_t)wide, m->xq, nt, dim, &fresh);
        mm(m->hb2, (size_t)hidden, &L->w_up, m->xb, (size_t)wide, m->xq, nt, dim, &fresh);
        for (size_t j = 0; j < (size_t)nt * hidden; j++) {
            float g = m->hb[j];
            m->hb[j] = g / (1.0f + expf(-g)) * m->hb2[j];
        }
        fresh = true;
        mm(m->xb2, (size_t)dim, &L->w_down, m->hb, (size_t)hidden, m->hq, nt, hidden, &fresh);
        for (size_t j = 0; j < (size_t)nt * dim; j++) m->x[j] += m->xb2[j];
    }
    if (need_logits) {
        bool fresh = true;
        float *last = m->x + (size_t)(nt - 1) * dim;
        rmsnorm(last, last, m->output_norm, dim, m->eps);
        mm(m->logits, 0, &m->output, last, 0, m->xq, 1, dim, &fresh);
    }
}

const float *model_eval(model *m, const int32_t *tokens, int n) {
    if (n <= 0 || n > m->ctx) return NULL;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->vocab) return NULL;
    int p = 0;
    while (p < m->n_cached && p < n && m->cached[p] == tokens[p]) p++;
    if (p == n) p = n - 1; /* the last position is computed again for its logits */
    m->n_cached = p;
    for (int pos = p; pos < n; pos += BATCH) {
        int nt = n - pos < BATCH ? n - pos : BATCH;
        forward(m, tokens + pos, nt, pos, pos + nt == n);
        memcpy(m->cached + pos, tokens + pos, sizeof(int32_t) * (size_t)nt);
        m->n_cached = pos + nt;
    }
    return m->logits;
}

const float *model_step(model *m, int32_t token) {
    if (m->n_cached >= m->ctx || token < 0 || token >= m->vocab) return NULL;
    forward(m, &token, 1, m->n_cached, true);
    m->cached[m->n_cached++] = token;
    return m->logits;
}
