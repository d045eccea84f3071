/*
 * chainsocket.h - the Chainsocket SDK for C plug-ins (ABI 1, see docs/abi.md and docs/sdk/c.md).
 *
 * Three layers, each usable on its own:
 *  1. The Extism kernel (input, output, config, vars, logs, errors) as plain C calls that copy
 *     bytes in and out of the kernel's memory 8 bytes at a time.
 *  2. The Chainsocket host functions: a raw cs_host_call(name, bytes) and typed wrappers
 *     (cs_call_llm, cs_call_tool, cs_call_agent, cs_http_fetch, cs_kv_get, cs_kv_set, cs_emit_*).
 *  3. cs_run(handler): the body of a JSON-in/JSON-out `call` export.
 *
 * Errors: every fallible function returns a cs_status (CS_OK == 0). The details of the last
 * failure (for CS_ERR_HOST: the host's error code and message) are in cs_last_error(), in the
 * spirit of errno/sqlite3_errmsg: wasm is single-threaded, and a plug-in usually just forwards the
 * message. Strings are UTF-8. Every buffer/response you receive is owned by you: free it with the
 * matching *_free function (they all accept zeroed/already-freed structs).
 */
#ifndef CHAINSOCKET_H
#define CHAINSOCKET_H

#include "cs_json.h"
#include "cs_mem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Status and errors
 * ------------------------------------------------------------------------------------------- */

typedef enum {
    CS_OK = 0,
    CS_ERR_NOMEM,       /* the guest heap or the kernel's memory could not grow */
    CS_ERR_INVALID_ARG, /* a required argument is NULL/empty */
    CS_ERR_NOT_FOUND,   /* config key or var is not set */
    CS_ERR_JSON,        /* malformed JSON, or a document without the expected fields */
    CS_ERR_HOST,        /* the host answered with an error document; see cs_last_error()->code */
    CS_ERR_UNKNOWN_FN,  /* cs_host_call: not a Chainsocket host function */
    CS_ERR_PLUGIN       /* raised by the plug-in itself with cs_error() */
} cs_status;

/* CS_ERR_HOST codes (docs/abi.md): "bad_request", "not_declared", "cycle", "depth", "not_granted",
 * "unsupported", "callee_failed", "http_error", "timeout" (the call's wall-clock limit, its
 * timeout_ms or its caller's, ran out), "too_large", "internal". Compare with cs_streq. */
typedef struct {
    cs_status status;
    const char *code;    /* CS_ERR_HOST: the host's code ("not_declared", ...); else the status name */
    const char *message; /* human-readable; never NULL */
} cs_error_info;

/* The last failure recorded by the SDK (status CS_OK and "" if none). Valid until the next SDK
 * call that fails. */
const cs_error_info *cs_last_error(void);
/* Shorthand for cs_last_error()->message. */
const char *cs_errmsg(void);
/* Record a plug-in error (status CS_ERR_PLUGIN) and return CS_ERR_PLUGIN, so a cs_run handler can
 * `return cs_error("bad input: ", detail);` - the parts are concatenated (detail may be NULL). */
cs_status cs_error(const char *message, const char *detail);
/* "ok", "nomem", "invalid_arg", "not_found", "json", "host", "unknown_fn", "plugin". */
const char *cs_status_name(cs_status st);

/* ---------------------------------------------------------------------------------------------
 * Buffers
 * ------------------------------------------------------------------------------------------- */

/* Bytes owned by the caller. data is always NUL-terminated (so text can be used as a C string)
 * and may contain NULs: len is authoritative. */
typedef struct {
    char *data;
    size_t len;
} cs_buf;
void cs_buf_free(cs_buf *b);

/* ---------------------------------------------------------------------------------------------
 * Extism kernel
 * ------------------------------------------------------------------------------------------- */

/* An offset in the kernel's memory (not a pointer into this module's memory). */
typedef uint64_t cs_handle;

/* Copy bytes into a new kernel block. Returns 0 for len == 0 (the kernel's own convention) or OOM. */
cs_handle cs_handle_from(const void *data, size_t len);
/* Copy a kernel block out (it stays allocated). h == 0 gives an empty buffer. */
cs_status cs_handle_read(cs_handle h, cs_buf *out);
/* Free a kernel block you own (responses of host functions). 0 is ignored. */
void cs_handle_free(cs_handle h);

/* The call's input bytes. */
cs_status cs_input(cs_buf *out);
/* The call's output bytes (the last call wins). */
cs_status cs_output(const void *data, size_t len);
cs_status cs_output_str(const char *s);
/* Set the call's error message (kernel error_set) and return 1, the export's failure code:
 * `return cs_fail("bad input");`. An empty message becomes "error" (a 0 handle would clear it). */
int32_t cs_fail(const char *msg);
int32_t cs_fail_n(const char *msg, size_t len);

/* Config value of the plug-in (strings as they are, other YAML values as JSON text).
 * CS_ERR_NOT_FOUND when missing (an empty key is never found). */
cs_status cs_config_get(const char *key, cs_buf *out);
/* Per-instance variables, kept across calls in one process. CS_ERR_NOT_FOUND when unset. */
cs_status cs_var_get(const char *key, cs_buf *out);
/* Store a var. The kernel treats an empty value as "delete" (it cannot store empty values). */
cs_status cs_var_set(const char *key, const void *value, size_t len);
cs_status cs_var_delete(const char *key);

typedef enum { CS_LOG_DEBUG, CS_LOG_INFO, CS_LOG_WARN, CS_LOG_ERROR } cs_log_level;
/* Log through the kernel (shown by `cspm run -v`). Empty messages are skipped: the kernel traps
 * on a 0 handle. */
void cs_log(cs_log_level level, const char *msg, size_t len);
void cs_log_str(cs_log_level level, const char *msg);
#define cs_log_debug(msg) cs_log_str(CS_LOG_DEBUG, (msg))
#define cs_log_info(msg) cs_log_str(CS_LOG_INFO, (msg))
#define cs_log_warn(msg) cs_log_str(CS_LOG_WARN, (msg))
#define cs_log_error(msg) cs_log_str(CS_LOG_ERROR, (msg))

/* ---------------------------------------------------------------------------------------------
 * Chainsocket host functions: raw
 * ------------------------------------------------------------------------------------------- */

/* Call host function `fn` ("call_llm", "call_tool", "call_agent", "http_fetch", "kv_get",
 * "kv_set", "emit", and the streaming extension "http_open", "http_read", "http_close") with request bytes as they are, and return the response bytes as they are -
 * an error document is a normal response here (CS_OK). CS_ERR_UNKNOWN_FN for another name. */
cs_status cs_host_call(const char *fn, const void *request, size_t len, cs_buf *out);

/* ---------------------------------------------------------------------------------------------
 * Chainsocket host functions: typed
 *
 * Requests borrow your strings; responses own theirs (free them with the *_free function).
 * When the host answers with an error document the wrapper returns CS_ERR_HOST and
 * cs_last_error() has its code and message. `name` is the name in the app config.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *id;
    const char *name;
    const cs_json *arguments; /* a JSON object */
} cs_tool_call;

typedef struct {
    const char *role;         /* "system" | "user" | "assistant" | "tool" */
    const char *content;
    const char *tool_call_id; /* optional (role "tool") */
    const cs_tool_call *tool_calls; /* optional (role "assistant") */
    size_t n_tool_calls;
} cs_message;

typedef struct {
    const char *name;
    const char *description;    /* optional */
    const cs_json *input_schema; /* optional JSON Schema object */
} cs_tool_spec;

typedef struct {
    const char *name;
    const cs_message *messages;
    size_t n_messages;
    const char *const *stop; /* optional */
    size_t n_stop;
    /* optional scalars: set has_x to send x */
    bool has_max_tokens, has_temperature, has_top_p, has_seed, has_stream;
    int64_t max_tokens;
    double temperature, top_p;
    int64_t seed;
    bool stream;
    const cs_tool_spec *tools; /* optional: tool calling */
    size_t n_tools;
    const char *tool_choice;   /* optional: "auto" | "none" | "required" | a tool name */
} cs_llm_request;

typedef struct {
    const char *content;
    size_t content_len;
    const char *finish_reason; /* "stop" | "length" | "error" | "tool_calls" */
    int64_t input_tokens, output_tokens;
    cs_tool_call *tool_calls;  /* finish_reason "tool_calls" */
    size_t n_tool_calls;
    const char *error;         /* optional detail when finish_reason is "error", else NULL */
    cs_json_doc *doc_;         /* owns everything above */
} cs_llm_response;

cs_status cs_call_llm(const cs_llm_request *req, cs_llm_response *out);
void cs_llm_response_free(cs_llm_response *r);

typedef struct {
    const char *output;
    size_t output_len;
    bool is_error; /* the tool ran and reports a failure in output (not a host error) */
    cs_json_doc *doc_;
} cs_tool_response;

/* {"name", "input": str} */
cs_status cs_call_tool(const char *name, const char *input, cs_tool_response *out);
/* {"name", "arguments": {...}} - arguments must be a JSON object */
cs_status cs_call_tool_args(const char *name, const cs_json *arguments, cs_tool_response *out);
void cs_tool_response_free(cs_tool_response *r);

typedef struct {
    const char *output;
    size_t output_len;
    const char *finish_reason; /* "final_answer" | "max_steps" | "error" */
    cs_json_doc *doc_;
} cs_agent_response;

/* session may be NULL */
cs_status cs_call_agent(const char *name, const char *input, const char *session, cs_agent_response *out);
void cs_agent_response_free(cs_agent_response *r);

typedef struct {
    const char *name;
    const char *value;
} cs_http_header;

typedef struct {
    const char *method; /* NULL = "GET" */
    const char *url;
    const cs_http_header *headers;
    size_t n_headers;
    const char *body; /* NULL = no body; UTF-8 text (JSON strings cannot carry raw binary) */
    size_t body_len;
} cs_http_request;

typedef struct {
    int64_t status;
    cs_http_header *headers;
    size_t n_headers;
    const char *body;
    size_t body_len;
    cs_json_doc *doc_;
} cs_http_response;

/* Granted hosts only (plugin.yaml capabilities.hosts); a non-2xx status is a normal response. */
cs_status cs_http_fetch(const cs_http_request *req, cs_http_response *out);
/* First header with that name, case-insensitively; NULL if absent. */
const char *cs_http_header_get(const cs_http_response *r, const char *name);
void cs_http_response_free(cs_http_response *r);

typedef struct {
    bool found;           /* false when the key is unset (value is then JSON null) */
    const cs_json *value; /* never NULL after CS_OK */
    cs_json_doc *doc_;
} cs_kv_value;

cs_status cs_kv_get(const char *key, cs_kv_value *out);
void cs_kv_value_free(cs_kv_value *v);
/* Store any JSON value (max 1 MiB, else CS_ERR_HOST "too_large"). */
cs_status cs_kv_set(const char *key, const cs_json *value);
/* Same, from JSON text (checked locally: CS_ERR_JSON if malformed). */
cs_status cs_kv_set_json(const char *key, const char *json, size_t len);

/* Streaming and progress events for the app's UI. */
cs_status cs_emit_chunk(const char *text);
/* level: "debug" | "info" | "warn" | "error", or NULL (host default). */
cs_status cs_emit_log(const char *level, const char *message);
/* message may be NULL; done/total < 0 are omitted. */
cs_status cs_emit_progress(const char *message, int64_t done, int64_t total);

/* ---------------------------------------------------------------------------------------------
 * Writing exports
 * ------------------------------------------------------------------------------------------- */

/* Define a wasm export `name` taking no parameters and returning the status code
 * (0 = success). The C function is called cs_export_<name>, so `CS_EXPORT(log)` cannot clash
 * with libm's log.
 *     CS_EXPORT(call) { return cs_run(handle); }                                                */
#define CS_EXPORT(name) __attribute__((export_name(#name))) int32_t cs_export_##name(void)

/* A JSON handler: read the parsed input, write one JSON value to out, return CS_OK; or return
 * an error status (usually via cs_error(...)) and write nothing. */
typedef cs_status (*cs_handler)(const cs_json *input, cs_jw *out);

/* Read the input as JSON, run the handler, write its JSON as the output and return 0; on any
 * failure (bad input JSON, handler error, OOM) set the error message and return 1. */
int32_t cs_run(cs_handler handler);

#ifdef __cplusplus
}
#endif
#endif
