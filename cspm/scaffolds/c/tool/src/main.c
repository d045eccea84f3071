/* {{name}}: a Chainsocket tool that counts the words of a text.
 *
 * An agent (or `cspm call . --args '{"text": "..."}'`) sends structured arguments, which the host
 * checks against the input_schema of plugin.yaml before this code runs; a person (or `cspm call .
 * --input "..."`) sends plain text. The answer is "<N> <unit>", unit from the app's config. */
#include "chainsocket.h"

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

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

/* {"input": "..."} or {"arguments": {"text": "..."}} -> {"output": "3 words", "is_error": false}.
 * cs_run parsed the input; what this handler writes to `out` becomes the output. */
static cs_status handle(const cs_json *in, cs_jw *out) {
    const cs_json *arguments = cs_json_get(in, "arguments");
    const cs_json *text = arguments ? cs_json_get(arguments, "text") : cs_json_get(in, "input");
    if (!cs_json_is(text, CS_JSON_STRING)) return cs_error("expected \"input\" or \"arguments.text\"", NULL);

    cs_buf unit; /* plugin.yaml declares `unit`; the app sets it */
    if (cs_config_get("unit", &unit) != CS_OK) unit = (cs_buf){0};

    cs_jw answer; /* a cs_jw doubles as a string builder: one value, then raw bytes */
    cs_jw_init(&answer);
    cs_jw_int(&answer, count_words(text->str, text->len));
    cs_jw_append(&answer, " ", 1);
    if (unit.data) cs_jw_append(&answer, unit.data, unit.len);
    else cs_jw_append(&answer, "words", 5);
    cs_buf_free(&unit);
    if (!cs_jw_ok(&answer)) { /* out of memory: the builder's bytes are incomplete */
        cs_jw_free(&answer);
        return cs_error("out of memory", NULL);
    }

    cs_jw_object_begin(out); /* commas and escaping are the writer's job */
    cs_jw_key(out, "output");
    cs_jw_string_n(out, answer.data, answer.len);
    cs_jw_key(out, "is_error");
    cs_jw_bool(out, false);
    cs_jw_object_end(out);
    cs_jw_free(&answer);
    return CS_OK;
}

/* The export the host runs: JSON in, handle(), JSON out; an error status fails the call with its
 * message. */
CS_EXPORT(call) { return cs_run(handle); }
