/* model.h - a llama-architecture transformer read from GGUF, and its forward pass.
 *
 * Per layer: x += Wo * attention(rope(Wq * rmsnorm(x)), rope(Wk * rmsnorm(x)), Wv * rmsnorm(x));
 * x += Wdown * (silu(Wgate * rmsnorm(x)) * (Wup * rmsnorm(x))). Grouped-query attention (head h
 * reads key/value head h / (n_heads / n_kv_heads)) over a KV cache of `ctx` positions.
 *
 * RoPE rotates adjacent pairs (x[2i], x[2i+1]) by pos * base^(-2i/rope_dim), as llama.cpp's
 * "normal" RoPE does for the llama architecture: the HF -> GGUF converter permutes the rows of
 * attn_q and attn_k so that this equals HF's rotate_half pairing (i, i + head_dim/2).
 *
 * The cache remembers which tokens it holds, so an evaluation whose tokens start with those of the
 * previous one (a growing chat or agent scratchpad) only computes the new positions. */
#ifndef LLM_MODEL_H
#define LLM_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "gguf.h"
#include "quant.h"

#define BATCH 16

typedef struct {
    const float *attn_norm, *ffn_norm;
    qmat wq, wk, wv, wo, w_gate, w_up, w_down;
} layer;

typedef struct {
    gguf_file gguf;
    int dim, hidden, n_layers, n_heads, n_kv_heads, head_dim, kv_dim, vocab, ctx_train, ctx, rope_dim;
    float rope_base, eps;
    qmat tok_embd, output;
    const float *output_norm;
    layer *layers;
    float **widened;  /* F16/BF16 tensors widened to F32 (owned) */
    int n_widened;
    /* state, for up to BATCH positions at once (prompt tokens are computed in batches, so each
     * weight row is read from memory once per batch instead of once per token) */
    float *x, *xb, *xb2, *hb, *hb2, *q, *att, *logits, *key_cache, *value_cache, *rope_freq;
    qact xq[BATCH], hq[BATCH];
    int32_t *cached;  /* the tokens whose keys and values are in the cache */
    int n_cached;
    uint64_t weight_bytes, state_bytes;
    char type_summary[160];
} model;

/* Loads the model at path (header, weights, state for `ctx` positions; 0 = the model's own
 * context length, capped at 4096). On failure returns false with a message in err. */
bool model_load(model *m, const char *path, int ctx, char *err, size_t errlen);
void model_free(model *m);

/* Computes tokens[0..n) starting after the longest prefix already in the cache, BATCH positions at a
 * time; returns the logits of the last position (m->logits), or NULL when n is 0, larger than the
 * context, or a token is out of range. */
const float *model_eval(model *m, const int32_t *tokens, int n);
/* One more token at position n_cached. */
const float *model_step(model *m, int32_t token);
/* Forget the cache (the next evaluation starts from position 0). */
void model_reset(model *m);

#endif
