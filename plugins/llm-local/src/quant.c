/* quant.c - ggml types, dequantisation and the matrix-vector kernels (see quant.h).
 *
 * The kernels are written once over a few 128-bit vector operations that map one to one onto
 * wasm SIMD128 (the plug-in) and SSE2 (the native benchmark build), so both run the same
 * algorithm; a scalar version serves any other target. */
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- types ------------------------------------------------------------------------------------ */

typedef struct {
    uint32_t type;
    const char *name;
    uint32_t block;  /* elements per block */
    uint32_t size;   /* bytes per block */
} type_info;

static const type_info TYPES[] = {
    {GGML_F32, "F32", 1, 4},      {GGML_F16, "F16", 1, 2},       {GGML_Q4_0, "Q4_0", 32, 18},
    {GGML_Q4_1, "Q4_1", 32, 20},  {GGML_Q5_0, "Q5_0", 32, 22},   {GGML_Q5_1, "Q5_1", 32, 24},
    {GGML_Q8_0, "Q8_0", 32, 34},  {GGML_Q8_1, "Q8_1", 32, 36},   {GGML_Q2_K, "Q2_K", 256, 84},
    {GGML_Q3_K, "Q3_K", 256, 110}, {GGML_Q4_K, "Q4_K", 256, 144}, {GGML_Q5_K, "Q5_K", 256, 176},
    {GGML_Q6_K, "Q6_K", 256, 210}, {GGML_Q8_K, "Q8_K", 256, 292}, {GGML_I8, "I8", 1, 1},
    {GGML_I16, "I16", 1, 2},      {GGML_I32, "I32", 1, 4},       {GGML_I64, "I64", 1, 8},
    {GGML_F64, "F64", 1, 8},      {GGML_BF16, "BF16", 1, 2},
};

static const type_info *type_find(uint32_t type) {
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].type == type) return &TYPES[i];
    return NULL;
}

const char *ggml_type_name(uint32_t type) {
    static char unknown[24];
    const type_info *t = type_find(type);
    if (t) return t->name;
    snprintf(unknown, sizeof unknown, "type %u", (unsigned)type);
    return unknown;
}

uint64_t ggml_nbytes(uint32_t type, uint64_t n) {
    const type_info *t = type_find(type);
    if (!t || n % t->block) return 0;
    return n / t->block * t->size;
}

bool ggml_type_supported(uint32_t type) {
    return type == GGML_F32 || type == GGML_F16 || type == GGML_BF16 || type == GGML_Q8_0 ||
           type == GGML_Q4_0 || type == GGML_Q4_1;
}

/* ---- f16 -------------------------------------------------------------------------------------- */

static float F16[65536];

static float f16_compute(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (mant << 13);          /* inf / nan */
    } else if (exp == 0) {
        float f = ldexpf((float)mant, -24);                 /* zero / subnormal */
        return sign ? -f : f;
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void f16_init(void) {
    for (uint32_t i = 0; i < 65536; i++) F16[i] = f16_compute((uint16_t)i);
}

float f16_to_f32(uint16_t h) { return F16[h]; }

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return F16[h];
}

void widen_to_f32(float *out, const uint8_t *in, uint32_t type, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, 2);
        if (type == GGML_F16) {
            out[i] = F16[h];
        } else {
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
        }
    }
}

/* ---- the vector layer ------------------------------------------------------------------------- */

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#define HAVE_SIMD 1
typedef v128_t VI;
typedef v128_t VF;
static inline VI vi_load(const void *p) { return wasm_v128_load(p); }
static inline VI ext_lo_s8(VI v) { return wasm_i16x8_extend_low_i8x16(v); }
static inline VI ext_hi_s8(VI v) { return wasm_i16x8_extend_high_i8x16(v); }
static inline VI ext_lo_u8(VI v) { return wasm_u16x8_extend_low_u8x16(v); }
static inline VI ext_hi_u8(VI v) { return wasm_u16x8_extend_high_u8x16(v); }
static inline VI vi_dot(VI a, VI b) { return wasm_i32x4_dot_i16x8(a, b); }
static inline VI vi_add(VI a, VI b) { return wasm_i32x4_add(a, b); }
static inline VI nib_lo(VI v) { return wasm_v128_and(v, wasm_i8x16_splat(0x0F)); }
static inline VI nib_hi(VI v) { return wasm_u8x16_shr(v, 4); }
static inline VI vi_sub8(VI a, int8_t b) { return wasm_i8x16_sub(a, wasm_i8x16_splat(b)); }
static inline VF vi_to_f(VI v) { return wasm_f32x4_convert_i32x4(v); }
static inline VF vf_zero(void) { return wasm_f32x4_splat(0.0f); }
static inline VF vf_splat(float x) { return wasm_f32x4_splat(x); }
static inline VF vf_load(const float *p) { return wasm_v128_load(p); }
static inline void vf_store(float *p, VF v) { wasm_v128_store(p, v); }
static inline VF vf_add(VF a, VF b) { return wasm_f32x4_add(a, b); }
static inline VF vf_mul(VF a, VF b) { return wasm_f32x4_mul(a, b); }
static inline float vf_hsum(VF v) {
    return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
           (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}
#elif defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_SIMD 1
typedef __m128i VI;
typedef __m128 VF;
static inline VI vi_load(const void *p) { return _mm_loadu_si128((const __m128i *)p); }
static inline VI ext_lo_s8(VI v) { return _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8); }
static inline VI ext_hi_s8(VI v) { return _mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8); }
static inline VI ext_lo_u8(VI v) { return _mm_unpacklo_epi8(v, _mm_setzero_si128()); }
static inline VI ext_hi_u8(VI v) { return _mm_unpackhi_epi8(v, _mm_setzero_si128()); }
static inline VI vi_dot(VI a, VI b) { return _mm_madd_epi16(a, b); }
static inline VI vi_add(VI a, VI b) { return _mm_add_epi32(a, b); }
static inline VI nib_lo(VI v) { return _mm_and_si128(v, _mm_set1_epi8(0x0F)); }
static inline VI nib_hi(VI v) { return _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F)); }
static inline VI vi_sub8(VI a, int8_t b) { return _mm_sub_epi8(a, _mm_set1_epi8(b)); }
static inline VF vi_to_f(VI v) { return _mm_cvtepi32_ps(v); }
static inline VF vf_zero(void) { return _mm_setzero_ps(); }
static inline VF vf_splat(float x) { return _mm_set1_ps(x); }
static inline VF vf_load(const float *p) { return _mm_loadu_ps(p); }
static inline void vf_store(float *p, VF v) { _mm_storeu_ps(p, v); }
static inline VF vf_add(VF a, VF b) { return _mm_add_ps(a, b); }
static inline VF vf_mul(VF a, VF b) { return _mm_mul_ps(a, b); }
static inline float vf_hsum(VF v) {
    float f[4];
    _mm_storeu_ps(f, v);
    return (f[0] + f[1]) + (f[2] + f[3]);
}
#else
#define HAVE_SIMD 0
#endif

/* ---- activation quantisation ------------------------------------------------------------------ */

bool qact_alloc(qact *a, int cap) {
    memset(a, 0, sizeof *a);
    int nb = (cap + QK - 1) / QK;
    a->cap = nb * QK;
    a->q = malloc(sizeof(int16_t) * (size_t)a->cap + 16);
    a->d = malloc(sizeof(float) * (size_t)nb);
    a->s = malloc(sizeof(float) * (size_t)nb);
    a->isum = malloc(sizeof(int32_t) * (size_t)nb);
    return a->q && a->d && a->s && a->isum;
}

void qact_free(qact *a) {
    free(a->q);
    free(a->d);
    free(a->s);
    free(a->isum);
    memset(a, 0, sizeof *a);
}

/* roundf(x) for |x| < 2^31, inline: under wasm roundf is a libm call (f32.nearest rounds ties to
 * even), and it was ~5% of prefill. x - trunc(x) is exact, so this is roundf bit for bit. */
static inline int round_half_away(float x) {
    float t = truncf(x);
    if (fabsf(x - t) >= 0.5f) t += copysignf(1.0f, x);
    return (int)t;
}

void qact_quantize(qact *a, const float *x, int n) {
    a->n = n;
    for (int b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) {
            float v = fabsf(xb[j]);
            if (v > amax) amax = v;
        }
        float d = amax / 32767.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < QK; j++) {
            int v = round_half_away(xb[j] * id);
            a->q[b * QK + j] = (int16_t)v;
            sum += v;
        }
        a->d[b] = d;
        a->isum[b] = sum;
        a->s[b] = d * (float)sum;
    }
}

/* ---- row kernels ------------------------------------------------------------------------------ */

float dot_f32(const float *a, const float *b, int n) {
    int i = 0;
    float sum = 0.0f;
#if HAVE_SIMD
    VF s0 = vf_zero(), s1 = vf_zero();
    for (; i + 8 <= n; i += 8) {
        s0 = vf_add(s0, vf_mul(vf_load(a + i), vf_load(b + i)));
        s1 = vf_add(s1, vf_mul(vf_load(a + i + 4), vf_load(b + i + 4)));
    }
    sum = vf_hsum(vf_add(s0, s1));
#endif
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

void axpy_f32(float *y, float a, const float *x, int n) {
    int i = 0;
#if HAVE_SIMD
    VF va = vf_splat(a);
    for (; i + 4 <= n; i += 4) vf_store(y + i, vf_add(vf_load(y + i), vf_mul(va, vf_load(x + i))));
#endif
    for (; i < n; i++) y[i] += a * x[i];
}

#if HAVE_SIMD
static inline VF block_q8_0(const uint8_t *blk, const int16_t *xq, float dx) {
    VI w0 = vi_load(blk + 2), w1 = vi_load(blk + 18);
    VI p = vi_add(vi_add(vi_dot(ext_lo_s8(w0), vi_load(xq)), vi_dot(ext_hi_s8(w0), vi_load(xq + 8))),
                  vi_add(vi_dot(ext_lo_s8(w1), vi_load(xq + 16)), vi_dot(ext_hi_s8(w1), vi_load(xq + 24))));
    return vf_mul(vi_to_f(p), vf_splat(f16_at(blk) * dx));
}

static inline VF block_q4_0(const uint8_t *blk, const int16_t *xq, float dx) {
    VI q = vi_load(blk + 2);
    VI lo = vi_sub8(nib_lo(q), 8), hi = vi_sub8(nib_hi(q), 8);
    VI p = vi_add(vi_add(vi_dot(ext_lo_s8(lo), vi_load(xq)), vi_dot(ext_hi_s8(lo), vi_load(xq + 8))),
                  vi_add(vi_dot(ext_lo_s8(hi), vi_load(xq + 16)), vi_dot(ext_hi_s8(hi), vi_load(xq + 24))));
    return vf_mul(vi_to_f(p), vf_splat(f16_at(blk) * dx));
}

static inline VF block_q4_1(const uint8_t *blk, const int16_t *xq, float dx) {
    VI q = vi_load(blk + 4);
    VI lo = nib_lo(q), hi = nib_hi(q);
    VI p = vi_add(vi_add(vi_dot(ext_lo_u8(lo), vi_load(xq)), vi_dot(ext_hi_u8(lo), vi_load(xq + 8))),
                  vi_add(vi_dot(ext_lo_u8(hi), vi_load(xq + 16)), vi_dot(ext_hi_u8(hi), vi_load(xq + 24))));
    return vf_mul(vi_to_f(p), vf_splat(f16_at(blk) * dx));
}
#endif

/* Two accumulators (even and odd blocks): one chain of float adds would wait on its own latency. */
static float row_q8_0(const uint8_t *row, const qact *a, int nb) {
#if HAVE_SIMD
    VF acc0 = vf_zero(), acc1 = vf_zero();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        acc0 = vf_add(acc0, block_q8_0(row + (size_t)b * 34, a->q + b * QK, a->d[b]));
        acc1 = vf_add(acc1, block_q8_0(row + (size_t)(b + 1) * 34, a->q + (b + 1) * QK, a->d[b + 1]));
    }
    if (b < nb) acc0 = vf_add(acc0, block_q8_0(row + (size_t)b * 34, a->q + b * QK, a->d[b]));
    return vf_hsum(vf_add(acc0, acc1));
#else
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * 34;
        const int8_t *w = (const int8_t *)(blk + 2);
        const int16_t *xq = a->q + b * QK;
        int32_t s = 0;
        for (int j = 0; j < QK; j++) s += w[j] * xq[j];
        sum += (float)s * f16_at(blk) * a->d[b];
    }
    return sum;
#endif
}

static inline float dot_inline(const float *a, const float *b, int n) {
    int i = 0;
    float sum = 0.0f;
#if HAVE_SIMD
    VF s0 = vf_zero(), s1 = vf_zero();
    for (; i + 8 <= n; i += 8) {
        s0 = vf_add(s0, vf_mul(vf_load(a + i), vf_load(b + i)));
        s1 = vf_add(s1, vf_mul(vf_load(a + i + 4), vf_load(b + i + 4)));
    }
    sum = vf_hsum(vf_add(s0, s1));
#endif
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

void attend(float *out, const float *q, int n_q, int hd, const float *kc, const float *vc, size_t stride, int n_t,
            float scale, float *att) {
    for (int t = 0; t < n_t; t++) {
        const float *k = kc + (size_t)t * stride;
        for (int j = 0; j < n_q; j++) att[(size_t)j * n_t + t] = dot_inline(q + (size_t)j * hd, k, hd) * scale;
    }
    for (int j = 0; j < n_q; j++) {
        float *a = att + (size_t)j * n_t, max = a[0], sum = 0.0f;
        for (int t = 1; t < n_t; t++) if (a[t] > max) max = a[t];
        for (int t = 0; t < n_t; t++) {
            a[t] = expf(a[t] - max);
            sum += a[t];
        }
        float inv = 1.0f / sum;
        for (int t = 0; t < n_t; t++) a[t] *= inv;
    }
    memset(out, 0, sizeof(float) * (size_t)n_q * (size_t)hd);
    for (int t = 0; t < n_t; t++) {
        const float *v = vc + (size_t)t * stride;
        for (int j = 0; j < n_q; j++) {
            float w = att[(size_t)j * n_t + t], *o = out + (size_t)j * hd;
            int i = 0;
#if HAVE_SIMD
            VF vw = vf_splat(w);
            for (; i + 4 <= hd; i += 4) vf_store(o + i, vf_add(vf_load(o + i), vf_mul(vw, vf_load(v + i))));
#endif
            for (; i < hd; i++) o[i] += w * v[i];
        }
    }
}

static float row_q4_0(const uint8_t *row, const qact *a, int nb) {
#if HAVE_SIMD
    VF acc0 = vf_zero(), acc1 = vf_zero();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        acc0 = vf_add(acc0, block_q4_0(row + (size_t)b * 18, a->q + b * QK, a->d[b]));
        acc1 = vf_add(acc1, block_q4_0(row + (size_t)(b + 1) * 18, a->q + (b + 1) * QK, a->d[b + 1]));
    }
    if (b < nb) acc0 = vf_add(acc0, block_q4_0(row + (size_t)b * 18, a->q + b * QK, a->d[b]));
    return vf_hsum(vf_add(acc0, acc1));
#else
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * 18, *qs = blk + 2;
        const int16_t *xq = a->q + b * QK;
        int32_t s = 0;
        for (int j = 0; j < 16; j++) s += ((qs[j] & 15) - 8) * xq[j] + ((qs[j] >> 4) - 8) * xq[j + 16];
        sum += (float)s * f16_at(blk) * a->d[b];
    }
    return sum;
#endif
}

static float row_q4_1(const uint8_t *row, const qact *a, int nb) {
#if HAVE_SIMD
    VF acc0 = vf_zero(), acc1 = vf_zero();
    float offs0 = 0.0f, offs1 = 0.0f;
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        const uint8_t *b0 = row + (size_t)b * 20, *b1 = b0 + 20;
        acc0 = vf_add(acc0, block_q4_1(b0, a->q + b * QK, a->d[b]));
        acc1 = vf_add(acc1, block_q4_1(b1, a->q + (b + 1) * QK, a->d[b + 1]));
        offs0 += f16_at(b0 + 2) * a->s[b];
        offs1 += f16_at(b1 + 2) * a->s[b + 1];
    }
    if (b < nb) {
        const uint8_t *b0 = row + (size_t)b * 20;
        acc0 = vf_add(acc0, block_q4_1(b0, a->q + b * QK, a->d[b]));
        offs0 += f16_at(b0 + 2) * a->s[b];
    }
    return vf_hsum(vf_add(acc0, acc1)) + (offs0 + offs1);
#else
    float sum = 0.0f, offs = 0.0f;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * 20, *qs = blk + 4;
        const int16_t *xq = a->q + b * QK;
        int32_t s = 0;
        for (int j = 0; j < 16; j++) s += (qs[j] & 15) * xq[j] + (qs[j] >> 4) * xq[j + 16];
        sum += (float)s * f16_at(blk) * a->d[b];
        offs += f16_at(blk + 2) * a->s[b];
    }
    return sum + offs;
#endif
}

#if HAVE_SIMD
/* ---- token tiles (prefill) ----------------------------------------------------------------------
 * Prefill multiplies each weight row by up to BATCH activation vectors. The per-row kernels above
 * decode a block (nibbles -> 16-bit lanes, the f16 scale) again for every vector; these decode it
 * once per TILE vectors and keep the TILE accumulators in registers. Each vector's sum is formed
 * exactly as in the per-row kernel (even blocks in acc0, odd in acc1, the same per-block products,
 * Q4_1's offsets in their own two sums), so batched and one-at-a-time results are bit-identical. */
#define TILE 4

static inline void dec_q8_0(const uint8_t *blk, VI w[4]) {
    VI w0 = vi_load(blk + 2), w1 = vi_load(blk + 18);
    w[0] = ext_lo_s8(w0), w[1] = ext_hi_s8(w0), w[2] = ext_lo_s8(w1), w[3] = ext_hi_s8(w1);
}

static inline void dec_q4_0(const uint8_t *blk, VI w[4]) {
    VI q = vi_load(blk + 2), lo = vi_sub8(nib_lo(q), 8), hi = vi_sub8(nib_hi(q), 8);
    w[0] = ext_lo_s8(lo), w[1] = ext_hi_s8(lo), w[2] = ext_lo_s8(hi), w[3] = ext_hi_s8(hi);
}

static inline void dec_q4_1(const uint8_t *blk, VI w[4]) {
    VI q = vi_load(blk + 4), lo = nib_lo(q), hi = nib_hi(q);
    w[0] = ext_lo_u8(lo), w[1] = ext_hi_u8(lo), w[2] = ext_lo_u8(hi), w[3] = ext_hi_u8(hi);
}

static inline VF tile_block(const VI w[4], const int16_t *xq, float d) {
    VI p = vi_add(vi_add(vi_dot(w[0], vi_load(xq)), vi_dot(w[1], vi_load(xq + 8))),
                  vi_add(vi_dot(w[2], vi_load(xq + 16)), vi_dot(w[3], vi_load(xq + 24))));
    return vf_mul(vi_to_f(p), vf_splat(d));
}

/* One row times TILE quantised vectors a[0..TILE): res[i] = row . a[i]. */
/* always_inline: clang-14 otherwise keeps one shared copy with the type tests inside the block loop
 * (the per-type wrappers below rely on the type being a constant). */
static inline __attribute__((always_inline)) void row_tile(uint32_t type, const uint8_t *row, const qact *a, int nb,
                                                           float *res) {
    size_t bs = type == GGML_Q8_0 ? 34 : type == GGML_Q4_0 ? 18 : 20;
    VF acc0[TILE], acc1[TILE];
    for (int i = 0; i < TILE; i++) acc0[i] = acc1[i] = vf_zero();
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * bs;
        VI w[4];
        if (type == GGML_Q8_0) dec_q8_0(blk, w);
        else if (type == GGML_Q4_0) dec_q4_0(blk, w);
        else dec_q4_1(blk, w);
        float dw = f16_at(blk);
        if (b & 1)
            for (int i = 0; i < TILE; i++)
                acc1[i] = vf_add(acc1[i], tile_block(w, a[i].q + b * QK, dw * a[i].d[b]));
        else
            for (int i = 0; i < TILE; i++)
                acc0[i] = vf_add(acc0[i], tile_block(w, a[i].q + b * QK, dw * a[i].d[b]));
    }
    for (int i = 0; i < TILE; i++) res[i] = vf_hsum(vf_add(acc0[i], acc1[i]));
    if (type == GGML_Q4_1)
        for (int i = 0; i < TILE; i++) {
            float offs0 = 0.0f, offs1 = 0.0f;
            int b = 0;
            for (; b + 2 <= nb; b += 2) {
                offs0 += f16_at(row + (size_t)b * 20 + 2) * a[i].s[b];
                offs1 += f16_at(row + (size_t)(b + 1) * 20 + 2) * a[i].s[b + 1];
            }
            if (b < nb) offs0 += f16_at(row + (size_t)b * 20 + 2) * a[i].s[b];
            res[i] += offs0 + offs1;
        }
}

/* ---- row pairs (decode) ------------------------------------------------------------------------ */

static inline void dec_block(uint32_t type, const uint8_t *blk, VI w[4]) {
    if (type == GGML_Q8_0) dec_q8_0(blk, w);
    else if (type == GGML_Q4_0) dec_q4_0(blk, w);
    else dec_q4_1(blk, w);
}

static inline VF pair_block(uint32_t type, const uint8_t *blk, VI x0, VI x1, VI x2, VI x3, float dx) {
    VI w[4];
    dec_block(type, blk, w);
    VI p = vi_add(vi_add(vi_dot(w[0], x0), vi_dot(w[1], x1)), vi_add(vi_dot(w[2], x2), vi_dot(w[3], x3)));
    return vf_mul(vi_to_f(p), vf_splat(f16_at(blk) * dx));
}

/* Two rows times one quantised vector (decode): the vector's block and scale are loaded once for
 * both rows. Each row's sum is formed exactly as in the per-row kernel (even blocks, odd blocks). */
static inline __attribute__((always_inline)) void row_pair(uint32_t type, const uint8_t *r0, const uint8_t *r1,
                                                           const qact *a, int nb, float *res) {
    size_t bs = type == GGML_Q8_0 ? 34 : type == GGML_Q4_0 ? 18 : 20;
    VF a00 = vf_zero(), a01 = vf_zero(), a10 = vf_zero(), a11 = vf_zero();
    float o00 = 0.0f, o01 = 0.0f, o10 = 0.0f, o11 = 0.0f;
#define PAIR_STEP(b, acc0, acc1, offs0, offs1)                                                                   \
    do {                                                                                                     \
        const int16_t *xq = a->q + (b) * QK;                                                                 \
        VI x0 = vi_load(xq), x1 = vi_load(xq + 8), x2 = vi_load(xq + 16), x3 = vi_load(xq + 24);             \
        const uint8_t *p0 = r0 + (size_t)(b) * bs, *p1 = r1 + (size_t)(b) * bs;                              \
        acc0 = vf_add(acc0, pair_block(type, p0, x0, x1, x2, x3, a->d[b]));                                 \
        acc1 = vf_add(acc1, pair_block(type, p1, x0, x1, x2, x3, a->d[b]));                                 \
        if (type == GGML_Q4_1) {                                                                             \
            offs0 += f16_at(p0 + 2) * a->s[b];                                                               \
            offs1 += f16_at(p1 + 2) * a->s[b];                                                               \
        }                                                                                                    \
    } while (0)
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        PAIR_STEP(b, a00, a10, o00, o10);
        PAIR_STEP(b + 1, a01, a11, o01, o11);
    }
    if (b < nb) PAIR_STEP(b, a00, a10, o00, o10);
#undef PAIR_STEP
    res[0] = vf_hsum(vf_add(a00, a01));
    res[1] = vf_hsum(vf_add(a10, a11));
    if (type == GGML_Q4_1) {
        res[0] += o00 + o01;
        res[1] += o10 + o11;
    }
}

/* The type as a constant in each copy, so the decoder's branch folds away. */
static void rows_pair_q8_0(const uint8_t *r0, const uint8_t *r1, const qact *a, int nb, float *res) {
    row_pair(GGML_Q8_0, r0, r1, a, nb, res);
}
static void rows_pair_q4_0(const uint8_t *r0, const uint8_t *r1, const qact *a, int nb, float *res) {
    row_pair(GGML_Q4_0, r0, r1, a, nb, res);
}
static void rows_pair_q4_1(const uint8_t *r0, const uint8_t *r1, const qact *a, int nb, float *res) {
    row_pair(GGML_Q4_1, r0, r1, a, nb, res);
}
static void rows_tile_q8_0(const uint8_t *row, const qact *a, int nb, float *res) { row_tile(GGML_Q8_0, row, a, nb, res); }
static void rows_tile_q4_0(const uint8_t *row, const qact *a, int nb, float *res) { row_tile(GGML_Q4_0, row, a, nb, res); }
static void rows_tile_q4_1(const uint8_t *row, const qact *a, int nb, float *res) { row_tile(GGML_Q4_1, row, a, nb, res); }
#endif

void matmul(float *out, size_t out_stride, const qmat *w, const float *x, size_t x_stride, const qact *xq, int nt) {
    int nb = w->cols / QK;
#if HAVE_SIMD
    void (*tile)(const uint8_t *, const qact *, int, float *) = NULL;
    if (nt >= TILE)
        tile = w->type == GGML_Q8_0 ? rows_tile_q8_0 : w->type == GGML_Q4_0 ? rows_tile_q4_0
             : w->type == GGML_Q4_1 ? rows_tile_q4_1 : NULL;
#endif
    int r = 0;
#if HAVE_SIMD
    void (*pair)(const uint8_t *, const uint8_t *, const qact *, int, float *) =
        w->type == GGML_Q8_0 ? rows_pair_q8_0 : w->type == GGML_Q4_0 ? rows_pair_q4_0
        : w->type == GGML_Q4_1 ? rows_pair_q4_1 : NULL;
    if (nt < TILE && pair) /* decode, and the last few tokens of a prompt */
        for (; r + 2 <= w->rows; r += 2) {
            const uint8_t *row = w->data + (size_t)r * w->row_bytes;
            for (int i = 0; i < nt; i++) {
                float res[2];
                pair(row, row + w->row_bytes, xq + i, nb, res);
                out[(size_t)i * out_stride + r] = res[0];
                out[(size_t)i * out_stride + r + 1] = res[1];
            }
        }
#endif
    for (; r < w->rows; r++) {
        const uint8_t *row = w->data + (size_t)r * w->row_bytes;
        int i = 0;
#if HAVE_SIMD
        if (tile)
            for (; i + TILE <= nt; i += TILE) {
                float res[TILE];
                tile(row, xq + i, nb, res);
                for (int k = 0; k < TILE; k++) out[(size_t)(i + k) * out_stride + r] = res[k];
            }
#endif
        for (; i < nt; i++) {
            float *o = out + (size_t)i * out_stride + r;
            switch (w->type) {
            case GGML_F32: *o = dot_f32((const float *)row, x + (size_t)i * x_stride, w->cols); break;
            case GGML_Q8_0: *o = row_q8_0(row, &xq[i], nb); break;
            case GGML_Q4_0: *o = row_q4_0(row, &xq[i], nb); break;
            case GGML_Q4_1: *o = row_q4_1(row, &xq[i], nb); break;
            default: *o = 0.0f; break;
            }
        }
    }
}

void dequant_row(float *out, const qmat *w, int r) {
    const uint8_t *row = w->data + (size_t)r * w->row_bytes;
    int nb = w->cols / QK;
    switch (w->type) {
    case GGML_F32: memcpy(out, row, sizeof(float) * (size_t)w->cols); break;
    case GGML_Q8_0:
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * 34;
            float d = f16_at(blk);
            for (int j = 0; j < QK; j++) out[b * QK + j] = d * (float)((const int8_t *)(blk + 2))[j];
        }
        break;
    case GGML_Q4_0:
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * 18;
            float d = f16_at(blk);
            for (int j = 0; j < 16; j++) {
                out[b * QK + j] = d * (float)((blk[2 + j] & 15) - 8);
                out[b * QK + j + 16] = d * (float)((blk[2 + j] >> 4) - 8);
            }
        }
        break;
    case GGML_Q4_1:
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * 20;
            float d = f16_at(blk), m = f16_at(blk + 2);
            for (int j = 0; j < 16; j++) {
                out[b * QK + j] = d * (float)(blk[4 + j] & 15) + m;
                out[b * QK + j + 16] = d * (float)(blk[4 + j] >> 4) + m;
            }
        }
        break;
    default: memset(out, 0, sizeof(float) * (size_t)w->cols); break;
    }
}
