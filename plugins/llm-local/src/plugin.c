/* plugin.c - chainsocket/llm-local: answers `call_llm` requests with a llama-architecture model read
 * from a GGUF file in a granted folder (see docs/plugins.md#llm-local).
 *
 * Exports: `call` (the llm ABI); the debug and benchmark exports `logits`, `tokenize`,
 * `detokenize`, `info` and `bench`, which the host never calls (tests and bench/ do).
 *
 * The model is loaded on the first call of an instance and kept in this module's memory for every
 * later call (a failed load is retried on the next call); so is the KV cache, so a conversation
 * that grows from the previous prompt only computes its new tokens. */
#include "chainsocket.h"
#include "generate.h"
#include "model.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_MAX_TOKENS 256
#define DEFAULT_TEMPERATURE 0.2
#define DEFAULT_TOP_P 0.9
#define MAX_STOPS 16
#define MAX_CHOICES 64

static struct {
    bool loaded;
    model m;
    tokenizer t;
    int tpl;
    char *system;      /* default system prompt, or NULL */
    double load_s;
} G;

static char ERR[1024];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- config ----------------------------------------------------------------------------------- */

static char *config_str(const char *key) {
    cs_buf b;
    if (cs_config_get(key, &b) != CS_OK) return NULL;
    return b.data; /* NUL-terminated, ours */
}

/* A config number; `def` when unset. false (with ERR) when set but not a number. */
static bool config_num(const char *key, double def, double *out) {
    char *s = config_str(key);
    *out = def;
    if (!s) return true;
    char *end;
    double v = strtod(s, &end);
    bool ok = end != s && *end == '\0' && isfinite(v);
    if (ok) *out = v;
    else snprintf(ERR, sizeof ERR, "config `%s` must be a number, not \"%.60s\"", key, s);
    free(s);
    return ok;
}

static bool ensure_loaded(void) {
    if (G.loaded) return true;
    char *path = config_str("model");
    if (!path || !*path) {
        free(path);
        snprintf(ERR, sizeof ERR,
                 "config `model` is not set: give the path of a .gguf file as the plug-in sees it, inside a "
                 "granted folder, e.g. config: {model: /models/model.gguf} with grant: {paths: {./models: /models}}");
        return false;
    }
    if (!strchr(path, '/')) {
        /* a model package's key: the host mounts the app's `models: {key: ...}` at /models/<key>/ */
        size_t n = strlen(path) + 32;
        char *full = malloc(n);
        if (!full) {
            free(path);
            snprintf(ERR, sizeof ERR, "out of memory");
            return false;
        }
        snprintf(full, n, "/models/%s/model.gguf", path);
        free(path);
        path = full;
    }
    double ctx;
    if (!config_num("context", 0, &ctx)) {
        free(path);
        return false;
    }
    if (ctx < 0 || ctx > 1 << 20) {
        free(path);
        snprintf(ERR, sizeof ERR, "config `context` must be between 1 and the model's context length");
        return false;
    }
    char *tpl = config_str("chat_template");
    int kind = TPL_AUTO;
    if (tpl && strcmp(tpl, "chatml") == 0) kind = TPL_CHATML;
    else if (tpl && strcmp(tpl, "none") == 0) kind = TPL_NONE;
    else if (tpl && strcmp(tpl, "auto") != 0) {
        snprintf(ERR, sizeof ERR, "config `chat_template` must be auto, chatml or none, not \"%.40s\"", tpl);
        free(tpl);
        free(path);
        return false;
    }
    free(tpl);
    double t0 = now_s();
    char err[768];
    if (!model_load(&G.m, path, (int)ctx, err, sizeof err)) {
        snprintf(ERR, sizeof ERR, "%s", err);
        free(path);
        return false;
    }
    if (!tok_init(&G.t, &G.m.gguf, err, sizeof err)) {
        snprintf(ERR, sizeof ERR, "%s: %s", path, err);
        model_free(&G.m);
        free(path);
        return false;
    }
    if (G.t.n_vocab > G.m.vocab) {
        snprintf(ERR, sizeof ERR, "%s: the tokenizer has %d tokens but the model only %d", path, G.t.n_vocab,
                 G.m.vocab);
        tok_free(&G.t);
        model_free(&G.m);
        free(path);
        return false;
    }
    G.tpl = chat_resolve(&G.t, kind);
    if (G.tpl == TPL_CHATML && (G.t.im_start < 0 || G.t.im_end < 0)) {
        snprintf(ERR, sizeof ERR, "%s: chat_template chatml needs the tokens <|im_start|> and <|im_end|>, which this "
                                  "model lacks (use chat_template: none)", path);
        tok_free(&G.t);
        model_free(&G.m);
        free(path);
        return false;
    }
    G.system = config_str("system_prompt");
    if (!G.system) G.system = chat_default_system(gguf_get_str(&G.m.gguf, "tokenizer.chat_template"));
    G.load_s = now_s() - t0;
    G.loaded = true;
    char line[512];
    snprintf(line, sizeof line,
             "loaded %s in %.2f s: %d layers, dim %d, %d heads (%d kv), vocab %d, context %d; %s; %llu MB weights, "
             "%llu MB cache and buffers",
             path, G.load_s, G.m.n_layers, G.m.dim, G.m.n_heads, G.m.n_kv_heads, G.m.vocab, G.m.ctx, G.m.type_summary,
             (unsigned long long)(G.m.weight_bytes >> 20), (unsigned long long)(G.m.state_bytes >> 20));
    cs_log_info(line);
    free(path);
    return true;
}

/* ---- requests --------------------------------------------------------------------------------- */

static void answer(cs_jw *out, const char *content, size_t len, const char *finish, const char *error, int in,
                   int gen) {
    cs_jw_object_begin(out);
    cs_jw_key(out, "content");
    cs_jw_string_n(out, content ? content : "", content ? len : 0);
    cs_jw_key(out, "finish_reason");
    cs_jw_string(out, finish);
    cs_jw_key(out, "usage");
    cs_jw_object_begin(out);
    cs_jw_key(out, "input_tokens");
    cs_jw_int(out, in);
    cs_jw_key(out, "output_tokens");
    cs_jw_int(out, gen);
    cs_jw_object_end(out);
    if (error) {
        cs_jw_key(out, "error");
        cs_jw_string(out, error);
    }
    cs_jw_object_end(out);
}

static cs_status fail_answer(cs_jw *out, const char *error) {
    cs_log_error(error);
    answer(out, "", 0, "error", error, 0, 0);
    return CS_OK;
}

/* The conversation of a request as chat messages; NULL with ERR set if malformed. */
static chat_msg *read_messages(const cs_json *msgs, int *n) {
    if (!cs_json_is(msgs, CS_JSON_ARRAY) || msgs->len == 0) {
        snprintf(ERR, sizeof ERR, "the request needs \"messages\": a non-empty list of {role, content}");
        return NULL;
    }
    chat_msg *out = calloc(msgs->len, sizeof *out);
    int i = 0;
    for (const cs_json *it = msgs->child; out && it; it = it->next, i++) {
        const cs_json *role = cs_json_get(it, "role"), *content = cs_json_get(it, "content");
        if (!cs_json_is(role, CS_JSON_STRING) || !(cs_json_is(content, CS_JSON_STRING) || cs_json_is(content, CS_JSON_NULL))) {
            snprintf(ERR, sizeof ERR, "message %d needs a string \"role\" and a string \"content\"", i);
            free(out);
            return NULL;
        }
        out[i].role = role->str;
        out[i].role_len = role->len;
        out[i].content = content->type == CS_JSON_STRING ? content->str : "";
        out[i].content_len = content->type == CS_JSON_STRING ? content->len : 0;
    }
    if (!out) snprintf(ERR, sizeof ERR, "out of memory");
    *n = i;
    return out;
}

static void emit_text(void *ctx, const char *text, size_t len) {
    (void)ctx;
    char *s = malloc(len + 1);
    if (!s) return;
    memcpy(s, text, len);
    s[len] = '\0';
    if (*s) cs_emit_chunk(s);
    free(s);
}

/* `choices`: the answer is the likeliest of the given continuations, never free text (see
 * generate.h `choose`); one chunk when streaming. */
static cs_status answer_choice(cs_jw *out, const cs_json *choices, const tok_list *prompt, bool stream) {
    const char *texts[MAX_CHOICES];
    size_t lens[MAX_CHOICES];
    double scores[MAX_CHOICES];
    int n = 0;
    if (!cs_json_is(choices, CS_JSON_ARRAY) || choices->len == 0 || choices->len > MAX_CHOICES)
        return fail_answer(out, "\"choices\" must be a list of 1 to 64 strings");
    for (const cs_json *it = choices->child; it; it = it->next) {
        if (it->type != CS_JSON_STRING || it->len == 0)
            return fail_answer(out, "\"choices\" must be a list of 1 to 64 non-empty strings");
        texts[n] = it->str;
        lens[n++] = it->len;
    }
    char err[256];
    int scored = 0;
    int best = choose(&G.m, &G.t, prompt, texts, lens, n, scores, &scored, err, sizeof err);
    if (best < 0) {
        cs_log_error(err);
        answer(out, "", 0, "error", err, prompt->n, 0);
        return CS_OK;
    }
    if (stream) emit_text(NULL, texts[best], lens[best]);
    answer(out, texts[best], lens[best], "stop", NULL, prompt->n, scored);
    return CS_OK;
}

static cs_status handle_call(const cs_json *in, cs_jw *out) {
    if (!ensure_loaded()) return fail_answer(out, ERR);
    const cs_json *tools = cs_json_get(in, "tools");
    if (cs_json_is(tools, CS_JSON_ARRAY) && tools->len > 0)
        return fail_answer(out, "llm-local does not do native tool calling; describe the tools in the prompt");
    int n_msgs = 0;
    chat_msg *msgs = read_messages(cs_json_get(in, "messages"), &n_msgs);
    if (!msgs) return fail_answer(out, ERR);

    gen_params p = {0};
    double v, cfg_temp, cfg_top_p, cfg_seed, cfg_max;
    if (!config_num("temperature", DEFAULT_TEMPERATURE, &cfg_temp) || !config_num("top_p", DEFAULT_TOP_P, &cfg_top_p) ||
        !config_num("seed", 0, &cfg_seed) || !config_num("max_tokens", DEFAULT_MAX_TOKENS, &cfg_max)) {
        free(msgs);
        return fail_answer(out, ERR);
    }
    const cs_json *jt = cs_json_get(in, "temperature"), *jp = cs_json_get(in, "top_p");
    p.temperature = (float)(cs_json_is(jt, CS_JSON_NUMBER) ? jt->number : cfg_temp);
    p.top_p = (float)(cs_json_is(jp, CS_JSON_NUMBER) ? jp->number : cfg_top_p);
    int64_t iv;
    p.seed = cs_json_int64(cs_json_get(in, "seed"), &iv) ? (uint64_t)iv : (uint64_t)(int64_t)cfg_seed;
    v = cs_json_int64(cs_json_get(in, "max_tokens"), &iv) ? (double)iv : cfg_max;
    p.max_tokens = v < 1 ? 1 : v > 1 << 20 ? 1 << 20 : (int)v;
    p.ignore_eos = cs_json_get(in, "ignore_eos") && cs_json_get(in, "ignore_eos")->type == CS_JSON_BOOL &&
                   cs_json_get(in, "ignore_eos")->boolean;

    /* stop: the request's list, else the config's (a JSON list, or one bare string) */
    const char *stops[MAX_STOPS];
    size_t stop_lens[MAX_STOPS];
    cs_json_doc *cfg_doc = NULL;
    const cs_json *stop = cs_json_get(in, "stop");
    char *cfg_stop = NULL;
    if (!stop && (cfg_stop = config_str("stop")) != NULL) {
        cs_json_error jerr;
        cfg_doc = cs_json_parse(cfg_stop, strlen(cfg_stop), &jerr);
        stop = cfg_doc ? cs_json_root(cfg_doc) : NULL;
        if (!stop) p.n_stop = 1, stops[0] = cfg_stop, stop_lens[0] = strlen(cfg_stop);
    }
    if (cs_json_is(stop, CS_JSON_STRING) && stop->len) p.n_stop = 1, stops[0] = stop->str, stop_lens[0] = stop->len;
    for (const cs_json *it = cs_json_is(stop, CS_JSON_ARRAY) ? stop->child : NULL; it && p.n_stop < MAX_STOPS;
         it = it->next)
        if (it->type == CS_JSON_STRING && it->len) stops[p.n_stop] = it->str, stop_lens[p.n_stop++] = it->len;
    p.stop = stops;
    p.stop_len = stop_lens;
    const cs_json *stream = cs_json_get(in, "stream");
    if (stream && stream->type == CS_JSON_BOOL && stream->boolean) p.on_text = emit_text;

    tok_list prompt = {0};
    cs_status st = CS_OK;
    const cs_json *choices = cs_json_get(in, "choices");
    if (!chat_prompt(&G.t, G.tpl, G.system, msgs, n_msgs, &prompt)) {
        st = fail_answer(out, "out of memory building the prompt");
    } else if (choices && choices->type != CS_JSON_NULL) {
        st = answer_choice(out, choices, &prompt, p.on_text != NULL);
    } else {
        gen_result r;
        char err[512];
        if (!generate(&G.m, &G.t, &prompt, &p, &r, err, sizeof err)) {
            cs_log_error(err);
            answer(out, "", 0, "error", err, prompt.n, 0);
        } else {
            answer(out, r.text, r.len, r.finish, NULL, r.n_prompt, r.n_gen);
        }
        gen_result_free(&r);
    }
    tok_list_free(&prompt);
    if (cfg_doc) cs_json_doc_free(cfg_doc);
    free(cfg_stop);
    free(msgs);
    return st;
}

CS_EXPORT(call) { return cs_run(handle_call); }

/* ---- debug and benchmark exports -------------------------------------------------------------- */

/* The tokens a debug request names: "tokens": [ids], "text": str (+ "special": bool), or
 * "messages": [...] (the chat prompt). */
static cs_status request_tokens(const cs_json *in, tok_list *out) {
    const cs_json *tokens = cs_json_get(in, "tokens"), *text = cs_json_get(in, "text");
    const cs_json *msgs = cs_json_get(in, "messages"), *special = cs_json_get(in, "special");
    if (cs_json_is(tokens, CS_JSON_ARRAY)) {
        for (const cs_json *it = tokens->child; it; it = it->next) {
            int64_t id;
            if (!cs_json_int64(it, &id) || id < 0 || id >= G.m.vocab) return cs_error("token out of range", NULL);
            if (!tok_list_push(out, (int32_t)id)) return cs_error("out of memory", NULL);
        }
        return CS_OK;
    }
    if (cs_json_is(text, CS_JSON_STRING)) {
        bool sp = special && special->type == CS_JSON_BOOL && special->boolean;
        const cs_json *bos = cs_json_get(in, "bos");
        if (bos && bos->type == CS_JSON_BOOL && bos->boolean && G.t.bos >= 0) tok_list_push(out, G.t.bos);
        return tok_encode(&G.t, text->str, text->len, sp, out) ? CS_OK : cs_error("out of memory", NULL);
    }
    if (msgs) {
        int n;
        chat_msg *m = read_messages(msgs, &n);
        if (!m) return cs_error(ERR, NULL);
        bool ok = chat_prompt(&G.t, G.tpl, G.system, m, n, out);
        free(m);
        return ok ? CS_OK : cs_error("out of memory", NULL);
    }
    return cs_error("expected \"tokens\", \"text\" or \"messages\"", NULL);
}

static void write_tokens(cs_jw *out, const tok_list *l) {
    cs_jw_key(out, "tokens");
    cs_jw_array_begin(out);
    for (int i = 0; i < l->n; i++) cs_jw_int(out, l->ids[i]);
    cs_jw_array_end(out);
}

static cs_status handle_logits(const cs_json *in, cs_jw *out) {
    if (!ensure_loaded()) return cs_error(ERR, NULL);
    tok_list l = {0};
    cs_status st = request_tokens(in, &l);
    const cs_json *fresh = cs_json_get(in, "fresh");
    if (fresh && fresh->type == CS_JSON_BOOL && fresh->boolean) model_reset(&G.m);
    const float *logits = st == CS_OK ? model_eval(&G.m, l.ids, l.n) : NULL;
    if (st == CS_OK && !logits) st = cs_error("no tokens, or more than the context holds", NULL);
    if (st == CS_OK) {
        cs_jw_object_begin(out);
        write_tokens(out, &l);
        cs_jw_key(out, "logits");
        cs_jw_array_begin(out);
        for (int i = 0; i < G.m.vocab; i++) cs_jw_double(out, logits[i]);
        cs_jw_array_end(out);
        cs_jw_object_end(out);
    }
    tok_list_free(&l);
    return st;
}

CS_EXPORT(logits) { return cs_run(handle_logits); }

static cs_status handle_tokenize(const cs_json *in, cs_jw *out) {
    if (!ensure_loaded()) return cs_error(ERR, NULL);
    tok_list l = {0};
    cs_status st = request_tokens(in, &l);
    if (st == CS_OK) {
        cs_jw_object_begin(out);
        write_tokens(out, &l);
        cs_jw_object_end(out);
    }
    tok_list_free(&l);
    return st;
}

CS_EXPORT(tokenize) { return cs_run(handle_tokenize); }

static cs_status handle_detokenize(const cs_json *in, cs_jw *out) {
    if (!ensure_loaded()) return cs_error(ERR, NULL);
    tok_list l = {0};
    cs_status st = request_tokens(in, &l);
    const cs_json *special = cs_json_get(in, "special");
    bool sp = special && special->type == CS_JSON_BOOL && special->boolean;
    if (st == CS_OK) {
        cs_jw text, pieces;
        cs_jw_init(&text);
        cs_jw_init(&pieces);
        cs_jw_array_begin(&pieces);
        char buf[512];
        for (int i = 0; i < l.n; i++) {
            size_t n = tok_piece(&G.t, l.ids[i], sp, buf, sizeof buf);
            cs_jw_append(&text, buf, n);
            cs_jw_string_n(&pieces, buf, n);
        }
        cs_jw_array_end(&pieces);
        /* SentencePiece: the word-start mark added in front of the text is not text */
        size_t skip = G.t.kind == TOK_SPM && G.t.add_space_prefix && text.len > 0 && text.data[0] == ' ';
        cs_jw_object_begin(out);
        cs_jw_key(out, "text");
        cs_jw_string_n(out, text.data ? text.data + skip : "", text.len - skip);
        cs_jw_key(out, "pieces");
        cs_jw_raw(out, pieces.data, pieces.len);
        cs_jw_object_end(out);
        cs_jw_free(&text);
        cs_jw_free(&pieces);
    }
    tok_list_free(&l);
    return st;
}

CS_EXPORT(detokenize) { return cs_run(handle_detokenize); }

static void kv_int(cs_jw *out, const char *key, int64_t v) {
    cs_jw_key(out, key);
    cs_jw_int(out, v);
}

static cs_status handle_info(const cs_json *in, cs_jw *out) {
    (void)in;
    if (!ensure_loaded()) return cs_error(ERR, NULL);
    cs_jw_object_begin(out);
    kv_int(out, "dim", G.m.dim);
    kv_int(out, "hidden", G.m.hidden);
    kv_int(out, "layers", G.m.n_layers);
    kv_int(out, "heads", G.m.n_heads);
    kv_int(out, "kv_heads", G.m.n_kv_heads);
    kv_int(out, "head_dim", G.m.head_dim);
    kv_int(out, "vocab", G.m.vocab);
    kv_int(out, "context", G.m.ctx);
    kv_int(out, "context_train", G.m.ctx_train);
    kv_int(out, "weight_bytes", (int64_t)G.m.weight_bytes);
    kv_int(out, "state_bytes", (int64_t)G.m.state_bytes);
    kv_int(out, "cached_tokens", G.m.n_cached);
    kv_int(out, "bos", G.t.bos);
    kv_int(out, "eos", G.t.eos);
    cs_jw_key(out, "add_bos");
    cs_jw_bool(out, G.t.add_bos);
    cs_jw_key(out, "types");
    cs_jw_string(out, G.m.type_summary);
    cs_jw_key(out, "tokenizer");
    cs_jw_string(out, G.t.kind == TOK_GPT2 ? "gpt2" : "llama");
    cs_jw_key(out, "chat_template");
    cs_jw_string(out, G.tpl == TPL_CHATML ? "chatml" : "none");
    cs_jw_key(out, "system_prompt");
    cs_jw_string(out, G.system);
    cs_jw_key(out, "load_s");
    cs_jw_double(out, G.load_s);
    cs_jw_object_end(out);
    return CS_OK;
}

CS_EXPORT(info) { return cs_run(handle_info); }

static cs_status handle_bench(const cs_json *in, cs_jw *out) {
    if (!ensure_loaded()) return cs_error(ERR, NULL);
    tok_list l = {0};
    cs_status st = request_tokens(in, &l);
    int64_t n = 32;
    cs_json_int64(cs_json_get(in, "n"), &n);
    bench_result r;
    if (st == CS_OK && !bench_run(&G.m, &l, (int)n, now_s, &r)) st = cs_error("the prompt and n exceed the context", NULL);
    if (st == CS_OK) {
        cs_jw_object_begin(out);
        kv_int(out, "n_prompt", r.n_prompt);
        kv_int(out, "n_gen", r.n_gen);
        cs_jw_key(out, "prefill_s");
        cs_jw_double(out, r.prefill_s);
        cs_jw_key(out, "decode_s");
        cs_jw_double(out, r.decode_s);
        cs_jw_object_end(out);
    }
    tok_list_free(&l);
    return st;
}

CS_EXPORT(bench) { return cs_run(handle_bench); }
