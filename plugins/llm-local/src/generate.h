/* generate.h - chat template, sampling and the generation loop (no Extism here: the native
 * benchmark harness links the same code). */
#ifndef LLM_GENERATE_H
#define LLM_GENERATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "model.h"
#include "tokenizer.h"

/* ---- chat template ---------------------------------------------------------------------------- */

enum { TPL_AUTO = 0, TPL_CHATML = 1, TPL_NONE = 2 };

typedef struct {
    const char *role, *content;
    size_t role_len, content_len;
} chat_msg;

/* TPL_AUTO resolves to ChatML when the vocabulary has <|im_start|> and <|im_end|>, else none. */
int chat_resolve(const tokenizer *t, int tpl);
/* The prompt tokens of a conversation, ending with the assistant's turn opening.
 *   ChatML: [bos] (<|im_start|>system\n{default_system}<|im_end|>\n when the first message is not a
 *           system message and default_system is set) then <|im_start|>{role}\n{content}<|im_end|>\n
 *           per message, then <|im_start|>assistant\n. Message text is never read as special tokens.
 *   none:   [bos] the contents joined by "\n" (completion style). */
bool chat_prompt(const tokenizer *t, int tpl, const char *default_system, const chat_msg *msgs, int n,
                 tok_list *out);
/* The default system prompt a ChatML chat template (tokenizer.chat_template) writes when the first
 * message is not a system message (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by
 * Hugging Face"), or NULL. Malloc'd. */
char *chat_default_system(const char *tmpl);

/* ---- sampling --------------------------------------------------------------------------------- */

typedef struct {
    uint64_t state;
    int32_t *idx;   /* scratch of vocab entries */
    float *prob;
    int cap;
} sampler;

bool sampler_init(sampler *s, int vocab, uint64_t seed);
void sampler_free(sampler *s);
/* temperature <= 0 or top_p <= 0: the most likely token (the lowest id among equals); otherwise
 * softmax(logits / temperature) cut to the smallest set of tokens whose probability reaches top_p
 * (top_p >= 1: all of them), sampled with the seeded generator. Deterministic for a given seed. */
int32_t sampler_pick(sampler *s, const float *logits, int n, float temperature, float top_p);

/* ---- generation ------------------------------------------------------------------------------- */

typedef struct {
    float temperature, top_p;
    uint64_t seed;
    int max_tokens;
    const char *const *stop;
    const size_t *stop_len;
    int n_stop;
    bool ignore_eos;
    /* called with text as it becomes final (never a prefix of a stop sequence that may still
     * complete, never a split UTF-8 sequence); may be NULL */
    void (*on_text)(void *ctx, const char *text, size_t len);
    void *ctx;
} gen_params;

typedef struct {
    char *text;             /* always valid UTF-8: bytes that are not become U+FFFD */
    size_t len, cap;
    const char *finish; /* "stop" or "length" */
    int n_prompt, n_gen;
} gen_result;

/* Generates after `prompt`. false with err set when the prompt does not fit the context. */
bool generate(model *m, const tokenizer *t, const tok_list *prompt, const gen_params *p, gen_result *r,
              char *err, size_t errlen);
void gen_result_free(gen_result *r);

/* ---- constrained choice ----------------------------------------------------------------------- */

/* Scores each of n choices as the continuation of `prompt`: the sum of the log-probabilities of its
 * tokens (a choice is tokenized on its own). Returns the index of the best, the first among equals,
 * with scores[i] (-INFINITY for a choice that is empty or does not fit the context); -1 with err set
 * when none fits. Choosing, not sampling: the answer is always one of the choices, spelt as given. */
int choose(model *m, const tokenizer *t, const tok_list *prompt, const char *const *choices, const size_t *lens,
           int n, double *scores, int *n_scored, char *err, size_t errlen);

/* ---- benchmark -------------------------------------------------------------------------------- */

typedef struct {
    int n_prompt, n_gen;
    double prefill_s, decode_s;
} bench_result;

/* Greedy decoding of n_gen tokens after the prompt (end-of-text ignored), from an empty cache;
 * `now` returns seconds. */
bool bench_run(model *m, const tok_list *prompt, int n_gen, double (*now)(void), bench_result *r);

#endif
