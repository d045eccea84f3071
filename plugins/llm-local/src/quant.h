/* quant.h - ggml tensor types, dequantisation and the matrix-vector kernels.
 *
 * Supported weight types: F32, F16 and BF16 (widened to F32 at load), Q8_0, Q4_0 and Q4_1 (used
 * as they are). A quantised block holds 32 weights of one row:
 *   Q8_0: f16 d, int8 q[32]                 w = d * q
 *   Q4_0: f16 d, u8 qs[16]                  w = d * (nibble - 8)
 *   Q4_1: f16 d, f16 m, u8 qs[16]           w = d * nibble + m
 * where byte j of qs holds weight j in its low nibble and weight j + 16 in its high nibble.
 *
 * Quantised matrices multiply an activation vector that is itself quantised to 16 bits per block
 * of 32 (qact: d = max|x| / 32767, q = round(x / d)): the inner loop is then an integer dot product
 * of 16-bit lanes (SIMD128 i32x4.dot_i16x8_s under wasm, SSE2 pmaddwd natively) and each block costs
 * one float multiply-add. llama.cpp quantises activations to 8 bits instead; that is as fast here
 * (the weights are widened to 16 bits either way) but visibly worse for small models: with 8-bit
 * activations SmolLM2-135M Q4_1 answers "What is the capital of France?" with "L'Étoile, la
 * Marseillaise...", with 16-bit ones (and in float) with "The capital of France is Paris."
 * F32 matrices multiply the float vector directly. */
#ifndef LLM_QUANT_H
#define LLM_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7,
    GGML_Q8_0 = 8, GGML_Q8_1 = 9, GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13,
    GGML_Q6_K = 14, GGML_Q8_K = 15, GGML_I8 = 24, GGML_I16 = 25, GGML_I32 = 26, GGML_I64 = 27,
    GGML_F64 = 28, GGML_BF16 = 30
};
#define QK 32 /* weights per block of Q8_0 / Q4_0 / Q4_1 */

/* Name of a ggml type ("Q4_1"), "type N" for unknown ones (static buffer for those). */
const char *ggml_type_name(uint32_t type);
/* Bytes of n elements of `type` (n a multiple of the block size); 0 for unknown types or a
 * count that is not a whole number of blocks. */
uint64_t ggml_nbytes(uint32_t type, uint64_t n);
/* True for the types this plug-in computes with. */
bool ggml_type_supported(uint32_t type);

void f16_init(void);          /* fills the f16 -> f32 table; call once */
float f16_to_f32(uint16_t h);

/* A row-major matrix of `rows` rows of `cols` weights each, in one of F32/Q8_0/Q4_0/Q4_1. */
typedef struct {
    uint32_t type;
    int rows, cols;
    size_t row_bytes;
    const uint8_t *data;
} qmat;

/* A float vector quantised to 16 bits per block (for the quantised kernels). */
typedef struct {
    int n, cap;     /* n elements (a multiple of 32), capacity in elements */
    int16_t *q;
    float *d;       /* per block scale */
    float *s;       /* per block d * sum(q) (Q4_1's offset term) */
    int32_t *isum;  /* per block sum(q) (Q4_0's -8 term) */
} qact;

bool qact_alloc(qact *a, int cap);
void qact_free(qact *a);
void qact_quantize(qact *a, const float *x, int n);

/* out[r] = sum_c w[r][c] * x[c] for r in [r0, r1); `xq` must hold x quantised when w is quantised
 * (it may be NULL for F32 matrices). */
void matvec(float *out, const qmat *w, const float *x, const qact *xq, int r0, int r1);
/* The same for nt vectors at once: out[i * out_stride + r] = w[r] . x_i, where x_i = x + i * x_stride
 * (quantised: xq[i]). Each row is read from memory once for all nt vectors. Under SIMD, quantised
 * rows go through two kernels that share work without changing a single bit of the result (each
 * sum is formed in the same order as the per-row kernel's): prefill (nt >= 4) decodes each block once
 * for 4 vectors; decode (nt < 4) takes two rows per pass, loading each block of the vector once.
 * (Widening a whole row once to 16 bits for all vectors made native prefill ~15% faster but Wasm's
 * ~15% slower - twice the loads - so the blocks are decoded into registers instead.) */
void matmul(float *out, size_t out_stride, const qmat *w, const float *x, size_t x_stride, const qact *xq, int nt);
/* Row r of w as floats (the embedding lookup). */
void dequant_row(float *out, const qmat *w, int r);
/* Widen `n` F16/BF16 values to F32. */
void widen_to_f32(float *out, const uint8_t *in, uint32_t type, size_t n);

/* Attention of n_q query heads (q: n_q rows of hd floats) that share one key/value head, over the
 * n_t cached positions k_t = kc + t * stride, v_t = vc + t * stride: out_j = sum_t softmax_t(q_j . k_t *
 * scale) v_t. `att` is scratch of n_q * n_t floats. */
void attend(float *out, const float *q, int n_q, int hd, const float *kc, const float *vc, size_t stride, int n_t,
            float scale, float *att);

/* Small float kernels of the forward pass. */
float dot_f32(const float *a, const float *b, int n);
void axpy_f32(float *y, float a, const float *x, int n); /* y += a * x */

#endif
