/*
 * The C SDK's conformance plug-in: the exports and behaviour of docs/sdk/conformance.md, written
 * against the SDK only (chainsocket.h), so the shared test suite exercises the SDK end to end.
 */
#include "chainsocket.h"

/* ---- raw kernel exports ---- */

CS_EXPORT(echo) {
    cs_buf in;
    cs_status st = cs_input(&in);
    if (!st) st = cs_output(in.data, in.len);
    cs_buf_free(&in);
    return st ? cs_fail(cs_errmsg()) : 0;
}

/* `crash`: C's own failure, a trap (`unreachable`) after setting the message as the error. */
CS_EXPORT(crash) {
    cs_buf in;
    if (!cs_input(&in)) cs_fail_n(in.data, in.len);
    __builtin_trap();
}

CS_EXPORT(config_get) {
    cs_buf key, val;
    if (cs_input(&key)) return cs_fail(cs_errmsg());
    cs_status st = cs_config_get(key.data, &val);
    if (st == CS_ERR_NOT_FOUND) {
        cs_error("missing config key: ", key.data);
        cs_buf_free(&key);
        return cs_fail(cs_errmsg());
    }
    cs_buf_free(&key);
    if (!st) st = cs_output(val.data, val.len);
    cs_buf_free(&val);
    return st ? cs_fail(cs_errmsg()) : 0;
}

CS_EXPORT(count) {
    cs_buf v;
    uint64_t n = 0;
    cs_status st = cs_var_get("count", &v);
    if (st == CS_OK) {
        for (size_t i = 0; i < v.len && v.data[i] >= '0' && v.data[i] <= '9'; i++) n = n * 10 + (uint64_t)(v.data[i] - '0');
        cs_buf_free(&v);
    } else if (st != CS_ERR_NOT_FOUND) {
        return cs_fail(cs_errmsg());
    }
    cs_jw w; /* used as a plain string builder */
    cs_jw_init(&w);
    cs_jw_int(&w, (int64_t)(n + 1));
    if (!cs_jw_ok(&w) || cs_var_set("count", w.data, w.len) || cs_output(w.data, w.len)) {
        cs_jw_free(&w);
        return cs_fail(cs_errmsg());
    }
    cs_jw_free(&w);
    return 0;
}

CS_EXPORT(fail) {
    cs_buf msg;
    if (cs_input(&msg)) return cs_fail(cs_errmsg());
    int32_t rc = cs_fail_n(msg.data, msg.len);
    cs_buf_free(&msg);
    return rc;
}

CS_EXPORT(log) {
    cs_buf msg;
    if (cs_input(&msg)) return cs_fail(cs_errmsg());
    cs_log(CS_LOG_INFO, msg.data, msg.len);
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_append(&w, "warn:", 5);
    cs_jw_append(&w, msg.data, msg.len);
    cs_buf_free(&msg);
    if (!cs_jw_ok(&w)) return cs_fail("out of memory");
    cs_log(CS_LOG_WARN, w.data, w.len);
    cs_jw_free(&w);
    return cs_output_str("logged") ? cs_fail(cs_errmsg()) : 0;
}

CS_EXPORT(raw) {
    cs_buf in, out;
    if (cs_input(&in)) return cs_fail(cs_errmsg());
    size_t nl = 0;
    while (nl < in.len && in.data[nl] != '\n') nl++;
    if (nl == in.len) {
        cs_buf_free(&in);
        return cs_fail("raw: expected '<host function>\\n<payload>'");
    }
    in.data[nl] = 0; /* in.data is now the function name, followed by the payload */
    cs_status st = cs_host_call(in.data, in.data + nl + 1, in.len - nl - 1, &out);
    cs_buf_free(&in);
    if (!st) st = cs_output(out.data, out.len);
    cs_buf_free(&out);
    return st ? cs_fail(cs_errmsg()) : 0;
}

/* ---- host: typed wrappers, driven by {"fn", "request"} ---- */

static void write_host_error(cs_jw *out) {
    cs_jw_object_begin(out);
    cs_jw_key(out, "error");
    cs_jw_object_begin(out);
    cs_jw_key(out, "code");
    cs_jw_string(out, cs_last_error()->code);
    cs_jw_key(out, "message");
    cs_jw_string(out, cs_last_error()->message);
    cs_jw_object_end(out);
    cs_jw_object_end(out);
}

static cs_status host_call_llm(const cs_json *rq, cs_jw *out) {
    const cs_json *msgs = cs_json_get(rq, "messages"), *stop = cs_json_get(rq, "stop");
    cs_llm_request req = {0};
    req.name = cs_json_get_string(rq, "name");
    size_t nm = msgs ? msgs->len : 0, ns = cs_json_is(stop, CS_JSON_ARRAY) ? stop->len : 0;
    cs_message *m = (cs_message *)cs_calloc(nm + 1, sizeof(cs_message));
    const char **s = (const char **)cs_calloc(ns + 1, sizeof(char *));
    if (!m || !s) {
        cs_free(m), cs_free(s);
        return cs_error("out of memory", NULL);
    }
    size_t i = 0;
    for (const cs_json *c = cs_json_is(msgs, CS_JSON_ARRAY) ? msgs->child : NULL; c; c = c->next, i++) {
        m[i].role = cs_json_get_string(c, "role");
        m[i].content = cs_json_get_string(c, "content");
    }
    req.messages = m;
    req.n_messages = i;
    i = 0;
    for (const cs_json *c = ns ? stop->child : NULL; c; c = c->next) s[i++] = cs_json_string(c);
    req.stop = s;
    req.n_stop = i;
    req.has_max_tokens = cs_json_int64(cs_json_get(rq, "max_tokens"), &req.max_tokens);
    const cs_json *t = cs_json_get(rq, "temperature");
    if ((req.has_temperature = cs_json_is(t, CS_JSON_NUMBER))) req.temperature = t->number;

    cs_llm_response r;
    cs_status st = cs_call_llm(&req, &r);
    cs_free(m);
    cs_free(s);
    if (st == CS_ERR_HOST) return write_host_error(out), CS_OK;
    if (st) return st;
    cs_jw_object_begin(out);
    cs_jw_key(out, "content");
    cs_jw_string_n(out, r.content, r.content_len);
    cs_jw_key(out, "finish_reason");
    cs_jw_string(out, r.finish_reason);
    cs_jw_key(out, "usage");
    cs_jw_object_begin(out);
    cs_jw_key(out, "input_tokens");
    cs_jw_int(out, r.input_tokens);
    cs_jw_key(out, "output_tokens");
    cs_jw_int(out, r.output_tokens);
    cs_jw_object_end(out);
    cs_jw_object_end(out);
    cs_llm_response_free(&r);
    return CS_OK;
}

static cs_status host_call_tool(const cs_json *rq, cs_jw *out) {
    cs_tool_response r;
    cs_status st = cs_call_tool(cs_json_get_string(rq, "name"), cs_json_get_string(rq, "input"), &r);
    if (st == CS_ERR_HOST) return write_host_error(out), CS_OK;
    if (st) return st;
    cs_jw_object_begin(out);
    cs_jw_key(out, "output");
    cs_jw_string_n(out, r.output, r.output_len);
    cs_jw_key(out, "is_error");
    cs_jw_bool(out, r.is_error);
    cs_jw_object_end(out);
    cs_tool_response_free(&r);
    return CS_OK;
}

static cs_status host_call_agent(const cs_json *rq, cs_jw *out) {
    cs_agent_response r;
    cs_status st = cs_call_agent(cs_json_get_string(rq, "name"), cs_json_get_string(rq, "input"),
                                 cs_json_get_string(rq, "session"), &r);
    if (st == CS_ERR_HOST) return write_host_error(out), CS_OK;
    if (st) return st;
    cs_jw_object_begin(out);
    cs_jw_key(out, "output");
    cs_jw_string_n(out, r.output, r.output_len);
    cs_jw_key(out, "finish_reason");
    cs_jw_string(out, r.finish_reason);
    cs_jw_object_end(out);
    cs_agent_response_free(&r);
    return CS_OK;
}

static cs_status host_http_fetch(const cs_json *rq, cs_jw *out) {
    const cs_json *hdrs = cs_json_get(rq, "headers"), *body = cs_json_get(rq, "body");
    size_t nh = cs_json_is(hdrs, CS_JSON_OBJECT) ? hdrs->len : 0, i = 0;
    cs_http_header *h = (cs_http_header *)cs_calloc(nh + 1, sizeof(cs_http_header));
    if (!h) return cs_error("out of memory", NULL);
    for (const cs_json *c = nh ? hdrs->child : NULL; c; c = c->next, i++) {
        h[i].name = c->key;
        h[i].value = cs_json_string(c);
    }
    cs_http_request req = {0};
    req.method = cs_json_get_string(rq, "method");
    req.url = cs_json_get_string(rq, "url");
    req.headers = h;
    req.n_headers = i;
    if (cs_json_is(body, CS_JSON_STRING)) req.body = body->str, req.body_len = body->len;
    cs_http_response r;
    cs_status st = cs_http_fetch(&req, &r);
    cs_free(h);
    if (st == CS_ERR_HOST) return write_host_error(out), CS_OK;
    if (st) return st;
    cs_jw_object_begin(out);
    cs_jw_key(out, "status");
    cs_jw_int(out, r.status);
    cs_jw_key(out, "headers");
    cs_jw_object_begin(out);
    for (i = 0; i < r.n_headers; i++) {
        cs_jw_key(out, r.headers[i].name);
        cs_jw_string(out, r.headers[i].value);
    }
    cs_jw_object_end(out);
    cs_jw_key(out, "body");
    cs_jw_string_n(out, r.body, r.body_len);
    cs_jw_object_end(out);
    cs_http_response_free(&r);
    return CS_OK;
}

static cs_status host_kv_get(const cs_json *rq, cs_jw *out) {
    cs_kv_value v;
    cs_status st = cs_kv_get(cs_json_get_string(rq, "key"), &v);
    if (st == CS_ERR_HOST) return write_host_error(out), CS_OK;
    if (st) return st;
    cs_jw_object_begin(out);
    cs_jw_key(out, "value");
    cs_jw_value(out, v.value);
    cs_jw_object_end(out);
    cs_kv_value_free(&v);
    return CS_OK;
}

static cs_status host_kv_set(const cs_json *rq, cs_jw *out) {
    cs_status st = cs_kv_set(cs_json_get_string(rq, "key"), cs_json_get(rq, "value"));
    if (st == CS_ERR_HOST) return write_host_error(out), CS_OK;
    if (st) return st;
    cs_jw_raw(out, "{}", 2);
    return CS_OK;
}

static cs_status host_emit(const cs_json *rq, cs_jw *out) {
    const char *type = cs_json_get_string(rq, "type");
    cs_status st;
    if (cs_streq(type, "chunk")) {
        st = cs_emit_chunk(cs_json_get_string(rq, "text"));
    } else if (cs_streq(type, "log")) {
        st = cs_emit_log(cs_json_get_string(rq, "level"), cs_json_get_string(rq, "message"));
    } else if (cs_streq(type, "progress")) {
        int64_t done = -1, total = -1;
        cs_json_int64(cs_json_get(rq, "done"), &done);
        cs_json_int64(cs_json_get(rq, "total"), &total);
        st = cs_emit_progress(cs_json_get_string(rq, "message"), done, total);
    } else {
        return cs_error("host emit: unknown event type: ", type);
    }
    if (st == CS_ERR_HOST) return write_host_error(out), CS_OK;
    if (st) return st;
    cs_jw_raw(out, "{}", 2);
    return CS_OK;
}

static cs_status host_handler(const cs_json *in, cs_jw *out) {
    static const struct {
        const char *fn;
        cs_handler h;
    } FNS[] = {
        {"call_llm", host_call_llm}, {"call_tool", host_call_tool}, {"call_agent", host_call_agent},
        {"http_fetch", host_http_fetch}, {"kv_get", host_kv_get}, {"kv_set", host_kv_set},
        {"emit", host_emit},
    };
    const char *fn = cs_json_get_string(in, "fn");
    const cs_json *rq = cs_json_get(in, "request");
    for (size_t i = 0; i < sizeof FNS / sizeof FNS[0]; i++)
        if (cs_streq(fn, FNS[i].fn)) return FNS[i].h(rq, out);
    return cs_error("host: unknown fn: ", fn ? fn : "(missing)");
}

CS_EXPORT(host) { return cs_run(host_handler); }

/* ---- call, by config kind ---- */

static bool has_prefix(const cs_json *s, const char *prefix) {
    size_t n = cs_strlen(prefix);
    return s->len >= n && cs_memcmp(s->str, prefix, n) == 0;
}

static cs_status tool_result(cs_jw *out, const char *text, size_t len, bool is_error) {
    cs_jw_object_begin(out);
    cs_jw_key(out, "output");
    cs_jw_string_n(out, text, len);
    cs_jw_key(out, "is_error");
    cs_jw_bool(out, is_error);
    cs_jw_object_end(out);
    return CS_OK;
}

/* An http(s) URL as input: fetch it (GET) and answer with the body, or the failure. */
static cs_status tool_fetch(const cs_json *url, cs_jw *out) {
    cs_http_request req = {0};
    req.url = url->str;
    cs_http_response r;
    cs_status st = cs_http_fetch(&req, &r);
    cs_jw msg;
    cs_jw_init(&msg);
    if (st == CS_ERR_HOST) {
        cs_jw_append(&msg, "error: ", 7);
        cs_jw_append(&msg, cs_errmsg(), cs_strlen(cs_errmsg()));
    } else if (st) {
        return st;
    } else if (r.status >= 400) {
        char digits[24];
        int n = 0;
        for (int64_t v = r.status; v > 0 && n < 20; v /= 10) digits[n++] = (char)('0' + v % 10);
        cs_jw_append(&msg, "HTTP ", 5);
        while (n) cs_jw_append(&msg, &digits[--n], 1);
    } else {
        tool_result(out, r.body, r.body_len, false);
        cs_http_response_free(&r);
        return CS_OK;
    }
    if (st == CS_OK) cs_http_response_free(&r);
    if (!cs_jw_ok(&msg)) return cs_error("out of memory", NULL);
    tool_result(out, msg.data, msg.len, true);
    cs_jw_free(&msg);
    return CS_OK;
}

static cs_status tool_call(const cs_json *in, cs_jw *out) {
    const cs_json *input = cs_json_get(in, "input"), *args = cs_json_get(in, "arguments");
    if (cs_json_is(input, CS_JSON_STRING) && (has_prefix(input, "http://") || has_prefix(input, "https://")))
        return tool_fetch(input, out);
    cs_jw_object_begin(out);
    cs_jw_key(out, "output");
    if (cs_json_is(input, CS_JSON_STRING)) {
        cs_jw_string_n(out, input->str, input->len);
    } else if (args) {
        cs_jw compact; /* the arguments as compact JSON text, then as a string */
        cs_jw_init(&compact);
        cs_jw_value(&compact, args);
        if (!cs_jw_ok(&compact)) return cs_error("out of memory", NULL);
        cs_jw_string_n(out, compact.data, compact.len);
        cs_jw_free(&compact);
    } else {
        return cs_error("tool input needs \"input\" or \"arguments\"", NULL);
    }
    cs_jw_key(out, "is_error");
    cs_jw_bool(out, false);
    cs_jw_object_end(out);
    return CS_OK;
}

static cs_status llm_call(const cs_json *in, cs_jw *out) {
    const cs_json *msgs = cs_json_get(in, "messages");
    if (!cs_json_is(msgs, CS_JSON_ARRAY) || !msgs->len) return cs_error("llm input needs non-empty \"messages\"", NULL);
    const cs_json *last = cs_json_at(msgs, msgs->len - 1), *content = cs_json_get(last, "content");
    if (!cs_json_is(content, CS_JSON_STRING)) return cs_error("llm input: the last message has no \"content\"", NULL);
    cs_jw text; /* "echo: " + content, built as plain bytes */
    cs_jw_init(&text);
    cs_jw_append(&text, "echo: ", 6);
    cs_jw_append(&text, content->str, content->len);
    if (!cs_jw_ok(&text)) return cs_error("out of memory", NULL);
    cs_jw_object_begin(out);
    cs_jw_key(out, "content");
    cs_jw_string_n(out, text.data, text.len);
    cs_jw_free(&text);
    cs_jw_key(out, "finish_reason");
    cs_jw_string(out, "stop");
    cs_jw_key(out, "usage");
    cs_jw_object_begin(out);
    cs_jw_key(out, "input_tokens");
    cs_jw_int(out, (int64_t)msgs->len);
    cs_jw_key(out, "output_tokens");
    cs_jw_int(out, 1);
    cs_jw_object_end(out);
    cs_jw_object_end(out);
    return CS_OK;
}

static cs_status agent_result(cs_jw *out, const char *output, size_t len, const char *finish) {
    cs_jw_object_begin(out);
    cs_jw_key(out, "output");
    cs_jw_string_n(out, output, len);
    cs_jw_key(out, "finish_reason");
    cs_jw_string(out, finish);
    cs_jw_object_end(out);
    return CS_OK;
}

/* A host error document ends the agent with {"output": "error: <message>", "finish_reason": "error"}. */
static cs_status agent_host_error(cs_jw *out) {
    cs_jw msg;
    cs_jw_init(&msg);
    cs_jw_append(&msg, "error: ", 7);
    cs_jw_append(&msg, cs_errmsg(), cs_strlen(cs_errmsg()));
    if (!cs_jw_ok(&msg)) return cs_error("out of memory", NULL);
    agent_result(out, msg.data, msg.len, "error");
    cs_jw_free(&msg);
    return CS_OK;
}

static cs_status agent_call(const cs_json *in, cs_jw *out) {
    const cs_json *input = cs_json_get(in, "input");
    if (!cs_json_is(input, CS_JSON_STRING)) return cs_error("agent input needs \"input\"", NULL);
    const char *tool = cs_json_get_string(cs_json_at(cs_json_get(in, "tools"), 0), "name");
    const char *llm = cs_json_get_string(cs_json_at(cs_json_get(in, "llms"), 0), "name");
    if (tool) {
        cs_tool_response r;
        cs_status st = cs_call_tool(tool, input->str, &r);
        if (st == CS_ERR_HOST) return agent_host_error(out);
        if (st) return st;
        agent_result(out, r.output, r.output_len, "final_answer");
        cs_tool_response_free(&r);
        return CS_OK;
    }
    if (llm) {
        cs_buf prompt = {0};
        cs_message m[2];
        size_t n = 0;
        if (cs_config_get("prompt", &prompt) == CS_OK && prompt.len) m[n].role = "system", m[n++].content = prompt.data;
        m[n].role = "user";
        m[n++].content = input->str;
        for (size_t i = 0; i < n; i++) m[i].tool_call_id = NULL, m[i].tool_calls = NULL, m[i].n_tool_calls = 0;
        cs_llm_request req = {0};
        req.name = llm;
        req.messages = m;
        req.n_messages = n;
        cs_llm_response r;
        cs_status st = cs_call_llm(&req, &r);
        cs_buf_free(&prompt);
        if (st == CS_ERR_HOST) return agent_host_error(out);
        if (st) return st;
        agent_result(out, r.content, r.content_len, "final_answer");
        cs_llm_response_free(&r);
        return CS_OK;
    }
    const char *sub = cs_json_get_string(cs_json_at(cs_json_get(in, "agents"), 0), "name");
    if (sub) {
        cs_agent_response r;
        cs_status st = cs_call_agent(sub, input->str, NULL, &r);
        if (st == CS_ERR_HOST) return agent_host_error(out);
        if (st) return st;
        agent_result(out, r.output, r.output_len, r.finish_reason);
        cs_agent_response_free(&r);
        return CS_OK;
    }
    return agent_result(out, input->str, input->len, "final_answer");
}

CS_EXPORT(call) {
    cs_buf kind = {0};
    cs_handler h = tool_call;
    if (cs_config_get("kind", &kind) == CS_OK) {
        if (cs_streq(kind.data, "llm")) h = llm_call;
        else if (cs_streq(kind.data, "agent")) h = agent_call;
        else if (!cs_streq(kind.data, "tool")) {
            cs_error("unknown kind: ", kind.data);
            cs_buf_free(&kind);
            return cs_fail(cs_errmsg());
        }
        cs_buf_free(&kind);
    }
    return cs_run(h);
}
