/* {{name}}: an offline stand-in LLM. It answers with the last user message after a prefix, which is
 * enough to build and test an app before a real model (or a REST API) takes its place. */
#include "chainsocket.h"

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* A "token" here is a word. */
static int64_t count_words(const char *text, size_t len) {
    int64_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        bool space = is_space(text[i]);
        if (!space && !in_word) words++;
        in_word = !space;
    }
    return words;
}

/* {"messages": [{"role", "content"}, ...], "max_tokens"?, ...}
 *   -> {"content", "finish_reason": "stop", "usage": {"input_tokens", "output_tokens"}}.
 * cs_run parsed the input; what this handler writes to `out` becomes the output. */
static cs_status handle(const cs_json *in, cs_jw *out) {
    const cs_json *messages = cs_json_get(in, "messages");
    const cs_json *last_user = NULL;
    int64_t input_tokens = 0;
    /* Children of an array are a linked list; cs_json_get and friends accept NULL. */
    for (const cs_json *m = messages ? messages->child : NULL; m; m = m->next) {
        const cs_json *content = cs_json_get(m, "content");
        if (!cs_json_is(content, CS_JSON_STRING)) continue;
        input_tokens += count_words(content->str, content->len);
        if (cs_streq(cs_json_get_string(m, "role"), "user")) last_user = content;
    }

    cs_buf prefix; /* plugin.yaml declares `prefix`; the app sets it */
    if (cs_config_get("prefix", &prefix) != CS_OK) prefix = (cs_buf){0};

    cs_jw content; /* a cs_jw doubles as a string builder (raw bytes only) */
    cs_jw_init(&content);
    if (prefix.data) cs_jw_append(&content, prefix.data, prefix.len);
    else cs_jw_append(&content, "You said: ", 10);
    if (last_user) cs_jw_append(&content, last_user->str, last_user->len);
    cs_buf_free(&prefix);
    if (!cs_jw_ok(&content)) { /* out of memory: the builder's bytes are incomplete */
        cs_jw_free(&content);
        return cs_error("out of memory", NULL);
    }

    cs_jw_object_begin(out); /* commas and escaping are the writer's job */
    cs_jw_key(out, "content");
    cs_jw_string_n(out, content.data, content.len);
    cs_jw_key(out, "finish_reason");
    cs_jw_string(out, "stop");
    cs_jw_key(out, "usage");
    cs_jw_object_begin(out);
    cs_jw_key(out, "input_tokens");
    cs_jw_int(out, input_tokens);
    cs_jw_key(out, "output_tokens");
    cs_jw_int(out, count_words(content.data, content.len));
    cs_jw_object_end(out);
    cs_jw_object_end(out);
    cs_jw_free(&content);
    return CS_OK;
}

/* The export the host runs: JSON in, handle(), JSON out; an error status fails the call with its
 * message. */
CS_EXPORT(call) { return cs_run(handle); }
