/*
 * chainsocket.c - Extism kernel binding, Chainsocket host functions, and the cs_run helper.
 */
#include "chainsocket.h"

/* =============================================================================================
 * Imports. Ownership (extism 1.x): config_get, var_get, var_set, log_* and error_set take
 * ownership of the handles passed to them - never free or reuse those. The kernel resets its
 * memory at the start of every call, so a leaked kernel block lives at most one call; we still
 * free what we own.
 * =========================================================================================== */

#define KERNEL(name) __attribute__((import_module("extism:host/env"), import_name(#name)))
#define USER(name) __attribute__((import_module("extism:host/user"), import_name(#name)))

KERNEL(alloc) uint64_t ek_alloc(uint64_t len);
KERNEL(free) void ek_free(uint64_t h);
KERNEL(length) uint64_t ek_length(uint64_t h);
KERNEL(load_u8) uint32_t ek_load_u8(uint64_t off);
KERNEL(load_u64) uint64_t ek_load_u64(uint64_t off);
KERNEL(store_u8) void ek_store_u8(uint64_t off, uint32_t v);
KERNEL(store_u64) void ek_store_u64(uint64_t off, uint64_t v);
KERNEL(input_length) uint64_t ek_input_length(void);
KERNEL(input_load_u8) uint32_t ek_input_load_u8(uint64_t off);
KERNEL(input_load_u64) uint64_t ek_input_load_u64(uint64_t off);
KERNEL(output_set) void ek_output_set(uint64_t h, uint64_t len);
KERNEL(error_set) void ek_error_set(uint64_t h);
KERNEL(config_get) uint64_t ek_config_get(uint64_t key);
KERNEL(var_get) uint64_t ek_var_get(uint64_t key);
KERNEL(var_set) void ek_var_set(uint64_t key, uint64_t value);
KERNEL(log_debug) void ek_log_debug(uint64_t h);
KERNEL(log_info) void ek_log_info(uint64_t h);
KERNEL(log_warn) void ek_log_warn(uint64_t h);
KERNEL(log_error) void ek_log_error(uint64_t h);

USER(call_llm) uint64_t cs_host_call_llm(uint64_t req);
USER(call_tool) uint64_t cs_host_call_tool(uint64_t req);
USER(call_agent) uint64_t cs_host_call_agent(uint64_t req);
USER(http_fetch) uint64_t cs_host_http_fetch(uint64_t req);
USER(kv_get) uint64_t cs_host_kv_get(uint64_t req);
USER(kv_set) uint64_t cs_host_kv_set(uint64_t req);
USER(emit) uint64_t cs_host_emit(uint64_t req);
USER(http_open) uint64_t cs_host_http_open(uint64_t req); /* the streaming extension (docs/abi.md) */
USER(http_read) uint64_t cs_host_http_read(uint64_t req);
USER(http_close) uint64_t cs_host_http_close(uint64_t req);

/* =============================================================================================
 * Errors
 * =========================================================================================== */

static cs_error_info g_err = {CS_OK, "", ""};
static char *g_code, *g_msg; /* heap copies behind g_err */

const char *cs_status_name(cs_status st) {
    switch (st) {
    case CS_OK: return "ok";
    case CS_ERR_NOMEM: return "nomem";
    case CS_ERR_INVALID_ARG: return "invalid_arg";
    case CS_ERR_NOT_FOUND: return "not_found";
    case CS_ERR_JSON: return "json";
    case CS_ERR_HOST: return "host";
    case CS_ERR_UNKNOWN_FN: return "unknown_fn";
    case CS_ERR_PLUGIN: return "plugin";
    }
    return "unknown";
}

/* Record an error: message = a + b + c (any may be NULL). Returns st. If even that allocation
 * fails, a static message is kept so callers always get something. */
static cs_status set_err3(cs_status st, const char *code, const char *a, const char *b, const char *c) {
    size_t la = cs_strlen(a), lb = cs_strlen(b), lc = cs_strlen(c);
    cs_free(g_code);
    cs_free(g_msg);
    g_code = cs_strndup(code ? code : cs_status_name(st), cs_strlen(code ? code : cs_status_name(st)));
    g_msg = (char *)cs_malloc(la + lb + lc + 1);
    if (g_msg) {
        if (la) cs_memcpy(g_msg, a, la);
        if (lb) cs_memcpy(g_msg + la, b, lb);
        if (lc) cs_memcpy(g_msg + la + lb, c, lc);
        g_msg[la + lb + lc] = 0;
    }
    g_err.status = st;
    g_err.code = g_code ? g_code : cs_status_name(st);
    g_err.message = g_msg ? g_msg : "out of memory (while recording an error)";
    return st;
}

static cs_status nomem(void) { return set_err3(CS_ERR_NOMEM, NULL, "out of memory", NULL, NULL); }

/* A parse failure as "<a><b><reason> at byte <offset>" (CS_ERR_NOMEM when the parser ran out). */
static cs_status json_err(const char *a, const char *b, const cs_json_error *je) {
    if (cs_streq(je->msg, "out of memory")) return nomem();
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_append(&w, je->msg, cs_strlen(je->msg));
    cs_jw_append(&w, " at byte ", 9);
    cs_jw_int(&w, (int64_t)je->offset);
    cs_status st = set_err3(CS_ERR_JSON, NULL, a, b, cs_jw_ok(&w) ? w.data : je->msg);
    cs_jw_free(&w);
    return st;
}

const cs_error_info *cs_last_error(void) { return &g_err; }
const char *cs_errmsg(void) { return g_err.message; }

cs_status cs_error(const char *message, const char *detail) {
    return set_err3(CS_ERR_PLUGIN, NULL, message, detail, NULL);
}

void cs_buf_free(cs_buf *b) {
    if (!b) return;
    cs_free(b->data);
    b->data = NULL;
    b->len = 0;
}

/* =============================================================================================
 * Kernel memory: copies 8 bytes per host call (1 MiB = 131072 calls instead of 1048576).
 * =========================================================================================== */

cs_handle cs_handle_from(const void *data, size_t len) {
    if (!len) return 0;
    uint64_t h = ek_alloc(len);
    if (!h) return 0;
    const unsigned char *s = (const unsigned char *)data;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        cs_memcpy(&w, s + i, 8);
        ek_store_u64(h + i, w);
    }
    for (; i < len; i++) ek_store_u8(h + i, s[i]);
    return h;
}

/* Read n bytes with a word loader (kernel block or input) into a fresh NUL-terminated buffer. */
static cs_status read_words(uint64_t base, size_t n, uint64_t (*load64)(uint64_t),
                            uint32_t (*load8)(uint64_t), cs_buf *out) {
    out->data = NULL;
    out->len = 0;
    char *d = (char *)cs_malloc(n + 1);
    if (!d) return nomem();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = load64(base + i);
        cs_memcpy(d + i, &w, 8);
    }
    for (; i < n; i++) d[i] = (char)load8(base + i);
    d[n] = 0;
    out->data = d;
    out->len = n;
    return CS_OK;
}

cs_status cs_handle_read(cs_handle h, cs_buf *out) {
    if (!out) return set_err3(CS_ERR_INVALID_ARG, NULL, "cs_handle_read: out is NULL", NULL, NULL);
    size_t n = h ? (size_t)ek_length(h) : 0;
    return read_words(h, n, ek_load_u64, ek_load_u8, out);
}

void cs_handle_free(cs_handle h) {
    if (h) ek_free(h);
}

cs_status cs_input(cs_buf *out) {
    if (!out) return set_err3(CS_ERR_INVALID_ARG, NULL, "cs_input: out is NULL", NULL, NULL);
    return read_words(0, (size_t)ek_input_length(), ek_input_load_u64, ek_input_load_u8, out);
}

cs_status cs_output(const void *data, size_t len) {
    uint64_t h = cs_handle_from(data, len);
    if (len && !h) return nomem();
    ek_output_set(h, len); /* the kernel keeps the block as the output: do not free it */
    return CS_OK;
}

cs_status cs_output_str(const char *s) { return cs_output(s, cs_strlen(s)); }

int32_t cs_fail_n(const char *msg, size_t len) {
    if (!msg || !len) msg = "error", len = 5;
    uint64_t h = cs_handle_from(msg, len);
    if (h) ek_error_set(h); /* owned by the kernel from now on */
    return 1;
}

int32_t cs_fail(const char *msg) { return cs_fail_n(msg, cs_strlen(msg)); }

/* A kernel copy of a non-empty key, or 0 (with the error recorded). */
static uint64_t key_handle(const char *key, const char *what) {
    size_t n = cs_strlen(key);
    if (!n) {
        set_err3(CS_ERR_INVALID_ARG, NULL, what, ": empty key", NULL);
        return 0;
    }
    uint64_t h = cs_handle_from(key, n);
    if (!h) nomem();
    return h;
}

/* Shared by config_get and var_get: both take the key handle and return a fresh block or 0. */
static cs_status get_value(uint64_t (*getter)(uint64_t), const char *what, const char *key, cs_buf *out) {
    if (!out) return set_err3(CS_ERR_INVALID_ARG, NULL, what, ": out is NULL", NULL);
    out->data = NULL;
    out->len = 0;
    if (!cs_strlen(key)) return set_err3(CS_ERR_NOT_FOUND, NULL, what, ": empty key", NULL);
    uint64_t kh = key_handle(key, what);
    if (!kh) return g_err.status;
    uint64_t vh = getter(kh); /* kh now belongs to the kernel */
    if (!vh) return set_err3(CS_ERR_NOT_FOUND, NULL, what, ": not set: ", key);
    cs_status st = cs_handle_read(vh, out);
    ek_free(vh);
    return st;
}

cs_status cs_config_get(const char *key, cs_buf *out) { return get_value(ek_config_get, "config", key, out); }
cs_status cs_var_get(const char *key, cs_buf *out) { return get_value(ek_var_get, "var", key, out); }

cs_status cs_var_set(const char *key, const void *value, size_t len) {
    uint64_t vh = 0;
    if (len) {
        vh = cs_handle_from(value, len);
        if (!vh) return nomem();
    }
    uint64_t kh = key_handle(key, "var");
    if (!kh) {
        cs_handle_free(vh);
        return g_err.status;
    }
    ek_var_set(kh, vh); /* both handles now belong to the kernel */
    return CS_OK;
}

cs_status cs_var_delete(const char *key) { return cs_var_set(key, NULL, 0); }

void cs_log(cs_log_level level, const char *msg, size_t len) {
    uint64_t h = cs_handle_from(msg, len);
    if (!h) return;
    switch (level) {
    case CS_LOG_DEBUG: ek_log_debug(h); break;
    case CS_LOG_WARN: ek_log_warn(h); break;
    case CS_LOG_ERROR: ek_log_error(h); break;
    default: ek_log_info(h); break;
    }
}

void cs_log_str(cs_log_level level, const char *msg) { cs_log(level, msg, cs_strlen(msg)); }

/* =============================================================================================
 * Host functions: raw
 * =========================================================================================== */

typedef uint64_t (*host_fn)(uint64_t);

static host_fn host_fn_by_name(const char *name) {
    static const struct {
        const char *name;
        host_fn fn;
    } FNS[] = {
        {"call_llm", cs_host_call_llm},   {"call_tool", cs_host_call_tool}, {"call_agent", cs_host_call_agent},
        {"http_fetch", cs_host_http_fetch}, {"kv_get", cs_host_kv_get},     {"kv_set", cs_host_kv_set},
        {"emit", cs_host_emit},
        {"http_open", cs_host_http_open}, {"http_read", cs_host_http_read}, {"http_close", cs_host_http_close},
    };
    for (size_t i = 0; i < sizeof FNS / sizeof FNS[0]; i++)
        if (cs_streq(name, FNS[i].name)) return FNS[i].fn;
    return NULL;
}

/* The host does not take the request handle, so we free it; the response block is ours too. */
static cs_status invoke(host_fn fn, const char *fname, const void *req, size_t len, cs_buf *out) {
    uint64_t h = cs_handle_from(req, len);
    if (len && !h) return nomem();
    uint64_t r = fn(h);
    cs_handle_free(h);
    if (!r) return set_err3(CS_ERR_HOST, "internal", fname, ": the host returned no response", NULL);
    cs_status st = cs_handle_read(r, out);
    ek_free(r);
    return st;
}

cs_status cs_host_call(const char *fn, const void *request, size_t len, cs_buf *out) {
    if (!out) return set_err3(CS_ERR_INVALID_ARG, NULL, "cs_host_call: out is NULL", NULL, NULL);
    out->data = NULL;
    out->len = 0;
    host_fn f = host_fn_by_name(fn);
    if (!f) return set_err3(CS_ERR_UNKNOWN_FN, NULL, "unknown host function: ", fn ? fn : "(null)", NULL);
    return invoke(f, fn, request, len, out);
}

/* =============================================================================================
 * Host functions: typed plumbing
 * =========================================================================================== */

/* Send the request in w (freed here) and parse the response. An error document becomes
 * CS_ERR_HOST with its code/message; on CS_OK *doc holds a JSON object. */
static cs_status request(host_fn fn, const char *fname, cs_jw *w, cs_json_doc **doc) {
    *doc = NULL;
    if (!cs_jw_ok(w)) {
        cs_jw_free(w);
        return nomem();
    }
    cs_buf resp;
    cs_status st = invoke(fn, fname, w->data, w->len, &resp);
    cs_jw_free(w);
    if (st) return st;
    cs_json_error je;
    cs_json_doc *d = cs_json_parse(resp.data, resp.len, &je);
    cs_buf_free(&resp);
    if (!d) return json_err(fname, ": response is not JSON: ", &je);
    const cs_json *root = cs_json_root(d);
    const cs_json *e = cs_json_get(root, "error");
    if (cs_json_is(e, CS_JSON_OBJECT)) { /* (call_llm's "error" string is a normal field) */
        const char *code = cs_json_get_string(e, "code"), *msg = cs_json_get_string(e, "message");
        set_err3(CS_ERR_HOST, code ? code : "internal", msg ? msg : "(no message)", NULL, NULL);
        cs_json_doc_free(d);
        return CS_ERR_HOST;
    }
    if (!cs_json_is(root, CS_JSON_OBJECT)) {
        cs_json_doc_free(d);
        return set_err3(CS_ERR_JSON, NULL, fname, ": response is not a JSON object", NULL);
    }
    *doc = d;
    return CS_OK;
}

/* Required field accessors: record a CS_ERR_JSON naming the function and field. */
static cs_status bad_field(const char *fname, const char *field) {
    return set_err3(CS_ERR_JSON, NULL, fname, ": response has no valid field: ", field);
}

static cs_status need_string(const cs_json *obj, const char *fname, const char *field, const char **s, size_t *len) {
    const cs_json *v = cs_json_get(obj, field);
    if (!cs_json_is(v, CS_JSON_STRING)) return bad_field(fname, field);
    *s = v->str;
    if (len) *len = v->len;
    return CS_OK;
}

static cs_status need_int(const cs_json *obj, const char *fname, const char *field, int64_t *out) {
    if (!cs_json_int64(cs_json_get(obj, field), out)) return bad_field(fname, field);
    return CS_OK;
}

static cs_status need_bool(const cs_json *obj, const char *fname, const char *field, bool *out) {
    const cs_json *v = cs_json_get(obj, field);
    if (!cs_json_is(v, CS_JSON_BOOL)) return bad_field(fname, field);
    *out = v->boolean;
    return CS_OK;
}

static cs_status check_name(const char *name, const char *fname) {
    if (!cs_strlen(name)) return set_err3(CS_ERR_INVALID_ARG, NULL, fname, ": name is required", NULL);
    return CS_OK;
}

/* Parse a tool_calls array into an array allocated in doc. */
static cs_status read_tool_calls(const cs_json *arr, cs_json_doc *doc, const char *fname, cs_tool_call **out,
                                 size_t *n) {
    *out = NULL;
    *n = 0;
    if (!arr) return CS_OK;
    if (!cs_json_is(arr, CS_JSON_ARRAY)) return bad_field(fname, "tool_calls");
    if (!arr->len) return CS_OK;
    cs_tool_call *tc = (cs_tool_call *)cs_json_doc_alloc(doc, arr->len * sizeof(cs_tool_call));
    if (!tc) return nomem();
    size_t i = 0;
    for (const cs_json *c = arr->child; c; c = c->next, i++) {
        tc[i].id = cs_json_get_string(c, "id");
        tc[i].name = cs_json_get_string(c, "name");
        tc[i].arguments = cs_json_get(c, "arguments");
        if (!tc[i].id || !tc[i].name || !cs_json_is(tc[i].arguments, CS_JSON_OBJECT))
            return bad_field(fname, "tool_calls");
    }
    *out = tc;
    *n = i;
    return CS_OK;
}

static void write_tool_calls(cs_jw *w, const cs_tool_call *tc, size_t n) {
    cs_jw_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        cs_jw_object_begin(w);
        cs_jw_key(w, "id");
        cs_jw_string(w, tc[i].id ? tc[i].id : "");
        cs_jw_key(w, "name");
        cs_jw_string(w, tc[i].name ? tc[i].name : "");
        cs_jw_key(w, "arguments");
        if (tc[i].arguments) cs_jw_value(w, tc[i].arguments);
        else cs_jw_raw(w, "{}", 2);
        cs_jw_object_end(w);
    }
    cs_jw_array_end(w);
}

/* =============================================================================================
 * call_llm
 * =========================================================================================== */

cs_status cs_call_llm(const cs_llm_request *req, cs_llm_response *out) {
    static const char F[] = "call_llm";
    if (!out) return set_err3(CS_ERR_INVALID_ARG, NULL, F, ": out is NULL", NULL);
    cs_memset(out, 0, sizeof *out);
    if (!req) return set_err3(CS_ERR_INVALID_ARG, NULL, F, ": req is NULL", NULL);
    cs_status st = check_name(req->name, F);
    if (st) return st;
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_object_begin(&w);
    cs_jw_key(&w, "name");
    cs_jw_string(&w, req->name);
    cs_jw_key(&w, "messages");
    cs_jw_array_begin(&w);
    for (size_t i = 0; i < req->n_messages; i++) {
        const cs_message *m = &req->messages[i];
        cs_jw_object_begin(&w);
        cs_jw_key(&w, "role");
        cs_jw_string(&w, m->role ? m->role : "user");
        cs_jw_key(&w, "content");
        cs_jw_string(&w, m->content ? m->content : "");
        if (m->tool_call_id) {
            cs_jw_key(&w, "tool_call_id");
            cs_jw_string(&w, m->tool_call_id);
        }
        if (m->n_tool_calls) {
            cs_jw_key(&w, "tool_calls");
            write_tool_calls(&w, m->tool_calls, m->n_tool_calls);
        }
        cs_jw_object_end(&w);
    }
    cs_jw_array_end(&w);
    if (req->n_stop) {
        cs_jw_key(&w, "stop");
        cs_jw_array_begin(&w);
        for (size_t i = 0; i < req->n_stop; i++) cs_jw_string(&w, req->stop[i] ? req->stop[i] : "");
        cs_jw_array_end(&w);
    }
    if (req->has_max_tokens) cs_jw_key(&w, "max_tokens"), cs_jw_int(&w, req->max_tokens);
    if (req->has_temperature) cs_jw_key(&w, "temperature"), cs_jw_double(&w, req->temperature);
    if (req->has_top_p) cs_jw_key(&w, "top_p"), cs_jw_double(&w, req->top_p);
    if (req->has_seed) cs_jw_key(&w, "seed"), cs_jw_int(&w, req->seed);
    if (req->has_stream) cs_jw_key(&w, "stream"), cs_jw_bool(&w, req->stream);
    if (req->n_tools) {
        cs_jw_key(&w, "tools");
        cs_jw_array_begin(&w);
        for (size_t i = 0; i < req->n_tools; i++) {
            const cs_tool_spec *t = &req->tools[i];
            cs_jw_object_begin(&w);
            cs_jw_key(&w, "name");
            cs_jw_string(&w, t->name ? t->name : "");
            if (t->description) cs_jw_key(&w, "description"), cs_jw_string(&w, t->description);
            if (t->input_schema) cs_jw_key(&w, "input_schema"), cs_jw_value(&w, t->input_schema);
            cs_jw_object_end(&w);
        }
        cs_jw_array_end(&w);
    }
    if (req->tool_choice) cs_jw_key(&w, "tool_choice"), cs_jw_string(&w, req->tool_choice);
    cs_jw_object_end(&w);

    cs_json_doc *doc;
    if ((st = request(cs_host_call_llm, F, &w, &doc))) return st;
    const cs_json *r = cs_json_root(doc), *usage = cs_json_get(r, "usage");
    if (!(st = need_string(r, F, "content", &out->content, &out->content_len)) &&
        !(st = need_string(r, F, "finish_reason", &out->finish_reason, NULL))) {
        if (!cs_json_int64(cs_json_get(usage, "input_tokens"), &out->input_tokens))
            st = bad_field(F, "usage.input_tokens");
        else if (!cs_json_int64(cs_json_get(usage, "output_tokens"), &out->output_tokens))
            st = bad_field(F, "usage.output_tokens");
        else
            st = read_tool_calls(cs_json_get(r, "tool_calls"), doc, F, &out->tool_calls, &out->n_tool_calls);
    }
    out->error = cs_json_get_string(r, "error");
    if (st) {
        cs_json_doc_free(doc);
        cs_memset(out, 0, sizeof *out);
        return st;
    }
    out->doc_ = doc;
    return CS_OK;
}

void cs_llm_response_free(cs_llm_response *r) {
    if (!r) return;
    cs_json_doc_free(r->doc_);
    cs_memset(r, 0, sizeof *r);
}

/* =============================================================================================
 * call_tool / call_agent
 * =========================================================================================== */

static cs_status tool_request(const char *name, const char *input, const cs_json *arguments, cs_tool_response *out) {
    static const char F[] = "call_tool";
    if (!out) return set_err3(CS_ERR_INVALID_ARG, NULL, F, ": out is NULL", NULL);
    cs_memset(out, 0, sizeof *out);
    cs_status st = check_name(name, F);
    if (st) return st;
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_object_begin(&w);
    cs_jw_key(&w, "name");
    cs_jw_string(&w, name);
    if (arguments) {
        if (!cs_json_is(arguments, CS_JSON_OBJECT)) {
            cs_jw_free(&w);
            return set_err3(CS_ERR_INVALID_ARG, NULL, F, ": arguments must be a JSON object", NULL);
        }
        cs_jw_key(&w, "arguments");
        cs_jw_value(&w, arguments);
    } else {
        cs_jw_key(&w, "input");
        cs_jw_string(&w, input ? input : "");
    }
    cs_jw_object_end(&w);
    cs_json_doc *doc;
    if ((st = request(cs_host_call_tool, F, &w, &doc))) return st;
    const cs_json *r = cs_json_root(doc);
    if ((st = need_string(r, F, "output", &out->output, &out->output_len)) ||
        (st = need_bool(r, F, "is_error", &out->is_error))) {
        cs_json_doc_free(doc);
        cs_memset(out, 0, sizeof *out);
        return st;
    }
    out->doc_ = doc;
    return CS_OK;
}

cs_status cs_call_tool(const char *name, const char *input, cs_tool_response *out) {
    return tool_request(name, input, NULL, out);
}

cs_status cs_call_tool_args(const char *name, const cs_json *arguments, cs_tool_response *out) {
    if (!arguments) return set_err3(CS_ERR_INVALID_ARG, NULL, "call_tool: arguments is NULL", NULL, NULL);
    return tool_request(name, NULL, arguments, out);
}

void cs_tool_response_free(cs_tool_response *r) {
    if (!r) return;
    cs_json_doc_free(r->doc_);
    cs_memset(r, 0, sizeof *r);
}

cs_status cs_call_agent(const char *name, const char *input, const char *session, cs_agent_response *out) {
    static const char F[] = "call_agent";
    if (!out) return set_err3(CS_ERR_INVALID_ARG, NULL, F, ": out is NULL", NULL);
    cs_memset(out, 0, sizeof *out);
    cs_status st = check_name(name, F);
    if (st) return st;
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_object_begin(&w);
    cs_jw_key(&w, "name");
    cs_jw_string(&w, name);
    cs_jw_key(&w, "input");
    cs_jw_string(&w, input ? input : "");
    if (session) cs_jw_key(&w, "session"), cs_jw_string(&w, session);
    cs_jw_object_end(&w);
    cs_json_doc *doc;
    if ((st = request(cs_host_call_agent, F, &w, &doc))) return st;
    const cs_json *r = cs_json_root(doc);
    if ((st = need_string(r, F, "output", &out->output, &out->output_len)) ||
        (st = need_string(r, F, "finish_reason", &out->finish_reason, NULL))) {
        cs_json_doc_free(doc);
        cs_memset(out, 0, sizeof *out);
        return st;
    }
    out->doc_ = doc;
    return CS_OK;
}

void cs_agent_response_free(cs_agent_response *r) {
    if (!r) return;
    cs_json_doc_free(r->doc_);
    cs_memset(r, 0, sizeof *r);
}

/* =============================================================================================
 * http_fetch
 * =========================================================================================== */

cs_status cs_http_fetch(const cs_http_request *req, cs_http_response *out) {
    static const char F[] = "http_fetch";
    if (!out) return set_err3(CS_ERR_INVALID_ARG, NULL, F, ": out is NULL", NULL);
    cs_memset(out, 0, sizeof *out);
    if (!req || !cs_strlen(req->url)) return set_err3(CS_ERR_INVALID_ARG, NULL, F, ": url is required", NULL);
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_object_begin(&w);
    cs_jw_key(&w, "method");
    cs_jw_string(&w, req->method ? req->method : "GET");
    cs_jw_key(&w, "url");
    cs_jw_string(&w, req->url);
    cs_jw_key(&w, "headers");
    cs_jw_object_begin(&w);
    for (size_t i = 0; i < req->n_headers; i++) {
        cs_jw_key(&w, req->headers[i].name);
        cs_jw_string(&w, req->headers[i].value ? req->headers[i].value : "");
    }
    cs_jw_object_end(&w);
    if (req->body) cs_jw_key(&w, "body"), cs_jw_string_n(&w, req->body, req->body_len);
    cs_jw_object_end(&w);
    cs_json_doc *doc;
    cs_status st;
    if ((st = request(cs_host_http_fetch, F, &w, &doc))) return st;
    const cs_json *r = cs_json_root(doc), *h = cs_json_get(r, "headers");
    if ((st = need_int(r, F, "status", &out->status)) || (st = need_string(r, F, "body", &out->body, &out->body_len)))
        goto fail;
    if (!cs_json_is(h, CS_JSON_OBJECT)) {
        st = bad_field(F, "headers");
        goto fail;
    }
    if (h->len) {
        out->headers = (cs_http_header *)cs_json_doc_alloc(doc, h->len * sizeof(cs_http_header));
        if (!out->headers) {
            st = nomem();
            goto fail;
        }
        for (const cs_json *c = h->child; c; c = c->next) {
            if (!cs_json_is(c, CS_JSON_STRING)) {
                st = bad_field(F, "headers");
                goto fail;
            }
            out->headers[out->n_headers].name = c->key;
            out->headers[out->n_headers++].value = c->str;
        }
    }
    out->doc_ = doc;
    return CS_OK;
fail:
    cs_json_doc_free(doc);
    cs_memset(out, 0, sizeof *out);
    return st;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

const char *cs_http_header_get(const cs_http_response *r, const char *name) {
    if (!r || !name) return NULL;
    for (size_t i = 0; i < r->n_headers; i++) {
        const char *a = r->headers[i].name, *b = name;
        while (*a && lower(*a) == lower(*b)) a++, b++;
        if (!*a && !*b) return r->headers[i].value;
    }
    return NULL;
}

void cs_http_response_free(cs_http_response *r) {
    if (!r) return;
    cs_json_doc_free(r->doc_);
    cs_memset(r, 0, sizeof *r);
}

/* =============================================================================================
 * kv_get / kv_set
 * =========================================================================================== */

cs_status cs_kv_get(const char *key, cs_kv_value *out) {
    static const char F[] = "kv_get";
    if (!out) return set_err3(CS_ERR_INVALID_ARG, NULL, F, ": out is NULL", NULL);
    cs_memset(out, 0, sizeof *out);
    if (!cs_strlen(key)) return set_err3(CS_ERR_INVALID_ARG, NULL, F, ": empty key", NULL);
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_object_begin(&w);
    cs_jw_key(&w, "key");
    cs_jw_string(&w, key);
    cs_jw_object_end(&w);
    cs_json_doc *doc;
    cs_status st;
    if ((st = request(cs_host_kv_get, F, &w, &doc))) return st;
    const cs_json *v = cs_json_get(cs_json_root(doc), "value");
    if (!v) {
        cs_json_doc_free(doc);
        return bad_field(F, "value");
    }
    out->value = v;
    out->found = v->type != CS_JSON_NULL;
    out->doc_ = doc;
    return CS_OK;
}

void cs_kv_value_free(cs_kv_value *v) {
    if (!v) return;
    cs_json_doc_free(v->doc_);
    cs_memset(v, 0, sizeof *v);
}

/* Send {"key": key, "value": <value or raw>} and expect {}. */
static cs_status kv_set(const char *key, const cs_json *value, const char *raw, size_t raw_len) {
    static const char F[] = "kv_set";
    if (!cs_strlen(key)) return set_err3(CS_ERR_INVALID_ARG, NULL, F, ": empty key", NULL);
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_object_begin(&w);
    cs_jw_key(&w, "key");
    cs_jw_string(&w, key);
    cs_jw_key(&w, "value");
    if (raw) cs_jw_raw(&w, raw, raw_len);
    else cs_jw_value(&w, value);
    cs_jw_object_end(&w);
    cs_json_doc *doc;
    cs_status st = request(cs_host_kv_set, F, &w, &doc);
    cs_json_doc_free(doc);
    return st;
}

cs_status cs_kv_set(const char *key, const cs_json *value) { return kv_set(key, value, NULL, 0); }

cs_status cs_kv_set_json(const char *key, const char *json, size_t len) {
    cs_json_error je;
    cs_json_doc *d = cs_json_parse(json, len, &je);
    if (!d) return json_err("kv_set: value is not JSON: ", NULL, &je);
    cs_json_doc_free(d);
    return kv_set(key, NULL, json, len);
}

/* =============================================================================================
 * emit
 * =========================================================================================== */

static cs_status emit(cs_jw *w) {
    cs_json_doc *doc;
    cs_status st = request(cs_host_emit, "emit", w, &doc);
    cs_json_doc_free(doc);
    return st;
}

cs_status cs_emit_chunk(const char *text) {
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_object_begin(&w);
    cs_jw_key(&w, "type");
    cs_jw_string(&w, "chunk");
    cs_jw_key(&w, "text");
    cs_jw_string(&w, text ? text : "");
    cs_jw_object_end(&w);
    return emit(&w);
}

cs_status cs_emit_log(const char *level, const char *message) {
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_object_begin(&w);
    cs_jw_key(&w, "type");
    cs_jw_string(&w, "log");
    if (level) cs_jw_key(&w, "level"), cs_jw_string(&w, level);
    cs_jw_key(&w, "message");
    cs_jw_string(&w, message ? message : "");
    cs_jw_object_end(&w);
    return emit(&w);
}

cs_status cs_emit_progress(const char *message, int64_t done, int64_t total) {
    cs_jw w;
    cs_jw_init(&w);
    cs_jw_object_begin(&w);
    cs_jw_key(&w, "type");
    cs_jw_string(&w, "progress");
    if (message) cs_jw_key(&w, "message"), cs_jw_string(&w, message);
    if (done >= 0) cs_jw_key(&w, "done"), cs_jw_int(&w, done);
    if (total >= 0) cs_jw_key(&w, "total"), cs_jw_int(&w, total);
    cs_jw_object_end(&w);
    return emit(&w);
}

/* =============================================================================================
 * cs_run
 * =========================================================================================== */

int32_t cs_run(cs_handler handler) {
    cs_buf in;
    cs_status st = cs_input(&in);
    if (st) return cs_fail(cs_errmsg());
    cs_json_error je;
    cs_json_doc *doc = cs_json_parse(in.data, in.len, &je);
    cs_buf_free(&in);
    if (!doc) {
        json_err("input is not valid JSON: ", NULL, &je);
        return cs_fail(cs_errmsg());
    }
    cs_jw w;
    cs_jw_init(&w);
    st = handler(cs_json_root(doc), &w);
    if (!st && !cs_jw_ok(&w)) st = nomem();
    if (!st) st = cs_output(w.data, w.len);
    cs_jw_free(&w);
    cs_json_doc_free(doc);
    if (st) return cs_fail(cs_errmsg());
    return 0;
}
