/* llm-local-cli - the plug-in's C (model, tokenizer, generation) as a native program, for
 * bench/llm_local_bench.py and for checking a model outside Wasm. Build: ../build.sh --native.
 *
 *   llm-local-cli MODEL --bench [--prompt TEXT | --tokens 1,2,3] [--n 64] [--context N]
 *       -> {"n_prompt", "n_gen", "prefill_s", "decode_s"}: greedy, end-of-text ignored
 *   llm-local-cli MODEL --prompt TEXT [--n 64] [--temperature 0] [--seed 0] [--raw]
 *       -> {"content", "finish_reason", "usage"}: one user message through the chat template
 *   llm-local-cli MODEL --logits (--prompt TEXT | --tokens 1,2,3)
 *       -> {"tokens", "logits"} of the last position */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate.h"
#include "model.h"
#include "tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void json_str(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') printf("\\n");
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [--bench] [--logits] [--prompt TEXT | --tokens 1,2,3] [--n N] "
                        "[--context N] [--temperature T] [--seed S] [--raw]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1], *prompt_text = "Once upon a time", *tokens_arg = NULL;
    int n = 64, ctx = 0, bench = 0, logits_mode = 0, raw = 0;
    double temperature = 0.0;
    unsigned long long seed = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--bench") == 0) bench = 1;
        else if (strcmp(a, "--logits") == 0) logits_mode = 1;
        else if (strcmp(a, "--raw") == 0) raw = 1;
        else if (strcmp(a, "--prompt") == 0 && v) prompt_text = v, i++;
        else if (strcmp(a, "--tokens") == 0 && v) tokens_arg = v, i++;
        else if (strcmp(a, "--n") == 0 && v) n = atoi(v), i++;
        else if (strcmp(a, "--context") == 0 && v) ctx = atoi(v), i++;
        else if (strcmp(a, "--temperature") == 0 && v) temperature = atof(v), i++;
        else if (strcmp(a, "--seed") == 0 && v) seed = strtoull(v, NULL, 10), i++;
        else {
            fprintf(stderr, "unknown argument %s\n", a);
            return 2;
        }
    }
    static model m;
    static tokenizer t;
    char err[1024];
    double t0 = now_s();
    if (!model_load(&m, path, ctx, err, sizeof err) || !tok_init(&t, &m.gguf, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    double load_s = now_s() - t0;
    tok_list prompt = {0};
    if (tokens_arg) {
        for (const char *p = tokens_arg; *p;) {
            tok_list_push(&prompt, (int32_t)strtol(p, (char **)&p, 10));
            if (*p == ',') p++;
        }
    } else if (bench || logits_mode) {
        tok_encode(&t, prompt_text, strlen(prompt_text), false, &prompt);
    } else {
        chat_msg msg = {"user", prompt_text, 4, strlen(prompt_text)};
        char *system = chat_default_system(gguf_get_str(&m.gguf, "tokenizer.chat_template"));
        chat_prompt(&t, raw ? TPL_NONE : TPL_AUTO, system, &msg, 1, &prompt);
        free(system);
    }
    if (bench) {
        bench_result r;
        if (!bench_run(&m, &prompt, n, now_s, &r)) {
            fprintf(stderr, "error: the prompt and --n exceed the context\n");
            return 1;
        }
        printf("{\"load_s\": %.6f, \"n_prompt\": %d, \"n_gen\": %d, \"prefill_s\": %.6f, \"decode_s\": %.6f}\n",
               load_s, r.n_prompt, r.n_gen, r.prefill_s, r.decode_s);
    } else if (logits_mode) {
        const float *lg = model_eval(&m, prompt.ids, prompt.n);
        if (!lg) return 1;
        printf("{\"tokens\": [");
        for (int i = 0; i < prompt.n; i++) printf("%s%d", i ? ", " : "", prompt.ids[i]);
        printf("], \"logits\": [");
        for (int i = 0; i < m.vocab; i++) printf("%s%.9g", i ? ", " : "", lg[i]);
        printf("]}\n");
    } else {
        gen_params p = {0};
        p.temperature = (float)temperature;
        p.top_p = 0.9f;
        p.seed = seed;
        p.max_tokens = n;
        gen_result r;
        if (!generate(&m, &t, &prompt, &p, &r, err, sizeof err)) {
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
        printf("{\"content\": ");
        json_str(r.text, r.len);
        printf(", \"finish_reason\": \"%s\", \"usage\": {\"input_tokens\": %d, \"output_tokens\": %d}}\n", r.finish,
               r.n_prompt, r.n_gen);
        gen_result_free(&r);
    }
    tok_list_free(&prompt);
    tok_free(&t);
    model_free(&m);
    return 0;
}
