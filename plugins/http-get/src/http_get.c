/*
 * http-get: a Chainsocket tool that fetches a granted URL through the host's http_fetch and answers
 * with readable text - HTML reduced to its text (title first), JSON and plain text as they are -
 * truncated to config `max_chars`. Every failure is an is_error answer that says what to do.
 */
#include "chainsocket.h"
#include "html_text.h"
#include "url.h"

#define DEFAULT_USER_AGENT "chainsocket-http-get/1.0"
#define DEFAULT_MAX_CHARS 4000
#define ERROR_BODY_CHARS 200
#define ACCEPT "text/html,application/xhtml+xml,application/json,text/plain;q=0.9,*/*;q=0.5"

typedef enum { BODY_HTML, BODY_TEXT, BODY_BINARY } body_kind;

/* ---- answers --------------------------------------------------------------------------------- */

static cs_status answer(cs_jw *out, const char *text, size_t len, bool is_error) {
    cs_jw_object_begin(out);
    cs_jw_key(out, "output");
    cs_jw_string_n(out, text, len);
    cs_jw_key(out, "is_error");
    cs_jw_bool(out, is_error);
    cs_jw_object_end(out);
    return CS_OK;
}

/* An is_error answer made of the NULL-terminated parts: REFUSE(out, "a", b, "c"). */
static cs_status refuse_parts(cs_jw *out, const char *const *parts) {
    cs_jw msg;
    cs_jw_init(&msg);
    for (; *parts; parts++) cs_jw_append(&msg, *parts, cs_strlen(*parts));
    cs_status st = cs_jw_ok(&msg) ? answer(out, msg.data, msg.len, true) : cs_error("out of memory", NULL);
    cs_jw_free(&msg);
    return st;
}
#define REFUSE(out, ...) refuse_parts((out), (const char *const[]){__VA_ARGS__, NULL})

static void format_int(int64_t v, char buf[24]) {
    char digits[24];
    int n = 0, k = 0;
    bool negative = v < 0;
    uint64_t u = negative ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do digits[n++] = (char)('0' + u % 10); while ((u /= 10) && n < 22);
    if (negative) buf[k++] = '-';
    while (n) buf[k++] = digits[--n];
    buf[k] = 0;
}

/* ---- configuration --------------------------------------------------------------------------- */

typedef struct {
    cs_buf user_agent;
    size_t max_chars;
} settings;

/* Reads the config; on a bad value writes the is_error answer and returns false. */
static bool read_settings(settings *cfg, cs_jw *out) {
    cs_memset(cfg, 0, sizeof *cfg);
    cfg->max_chars = DEFAULT_MAX_CHARS;
    cs_buf v;
    if (cs_config_get("max_chars", &v) == CS_OK) {
        uint64_t n = 0;
        bool ok = v.len > 0 && v.len <= 9;
        for (size_t i = 0; ok && i < v.len; i++) {
            ok = v.data[i] >= '0' && v.data[i] <= '9';
            n = n * 10 + (uint64_t)(v.data[i] - '0');
        }
        if (!ok || n == 0) {
            REFUSE(out, "config max_chars must be a positive integer (at most 999999999), not '", v.data, "'");
            cs_buf_free(&v);
            return false;
        }
        cfg->max_chars = (size_t)n;
        cs_buf_free(&v);
    }
    if (cs_config_get("user_agent", &cfg->user_agent) != CS_OK || cfg->user_agent.len == 0) {
        cs_buf_free(&cfg->user_agent);
        cfg->user_agent.data = cs_strndup(DEFAULT_USER_AGENT, sizeof DEFAULT_USER_AGENT - 1);
        cfg->user_agent.len = sizeof DEFAULT_USER_AGENT - 1;
    }
    return true;
}

/* ---- classifying the body -------------------------------------------------------------------- */

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

static bool contains_ci(const char *s, size_t n, const char *word) {
    size_t w = cs_strlen(word);
    for (size_t i = 0; i + w <= n; i++) {
        size_t k = 0;
        while (k < w && lower(s[i + k]) == word[k]) k++;
        if (k == w) return true;
    }
    return false;
}

static bool ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = cs_strlen(suffix);
    return n >= k && cs_memcmp(s + n - k, suffix, k) == 0;
}

/* The media type of a Content-Type header, lowercased and without parameters, into buf. */
static size_t media_type(const char *header, char buf[96]) {
    size_t n = 0;
    if (!header) return 0;
    while (*header == ' ') header++;
    for (; *header && *header != ';' && *header != ' ' && n < 95; header++) buf[n++] = lower(*header);
    buf[n] = 0;
    return n;
}

static body_kind classify(const char *type, size_t type_len, const char *body, size_t len) {
    static const char *const TEXTUAL[] = {
        "application/json", "application/xml", "application/javascript", "application/ecmascript",
        "application/x-javascript", "application/yaml", "application/x-yaml", "application/toml",
        "application/x-ndjson", "application/csv", "application/sql", "application/graphql",
        "application/x-www-form-urlencoded", "application/rtf", NULL};
    if (type_len) {
        if (cs_streq(type, "text/html") || cs_streq(type, "application/xhtml+xml")) return BODY_HTML;
        if (type_len > 5 && cs_memcmp(type, "text/", 5) == 0) return BODY_TEXT;
        if (ends_with(type, type_len, "+json") || ends_with(type, type_len, "+xml")) return BODY_TEXT;
        for (int i = 0; TEXTUAL[i]; i++)
            if (cs_streq(type, TEXTUAL[i])) return BODY_TEXT;
        return BODY_BINARY;
    }
    /* no Content-Type: sniff the start */
    size_t head = len < 1024 ? len : 1024, odd = 0;
    for (size_t i = 0; i < head; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c == 0 || (c == 0xEF && i + 2 < len && (unsigned char)body[i + 1] == 0xBF &&
                       (unsigned char)body[i + 2] == 0xBD)) odd++; /* NUL or U+FFFD: undecodable bytes */
    }
    if (odd * 20 > head) return BODY_BINARY;
    if (contains_ci(body, head, "<html") || contains_ci(body, head, "<!doctype html")) return BODY_HTML;
    return BODY_TEXT;
}

/* ---- the tool -------------------------------------------------------------------------------- */

/* The message for a refused or failed http_fetch (host error documents). */
static cs_status fetch_failed(cs_jw *out, const char *url) {
    const cs_error_info *e = cs_last_error();
    if (e->status != CS_ERR_HOST) return REFUSE(out, "fetching ", url, " failed: ", e->message);
    if (cs_streq(e->code, "http_error")) {
        bool too_large = contains_ci(e->message, cs_strlen(e->message), "larger than");
        return REFUSE(out, "fetching ", url, " failed: ", e->message,
                      too_large ? " (the page is too large to fetch; look for a smaller page or an API)"
                                : " (the server may be down, slow or not speak this protocol; check the URL or try later)");
    }
    if (cs_streq(e->code, "timeout"))
        return REFUSE(out, "fetching ", url, " timed out after the call's time limit: ", e->message,
                      ". The app can raise that limit (`grant: {timeout_ms: N}` of the component it names), "
                      "or try a page that answers faster");
    if (!cs_streq(e->code, "not_granted")) return REFUSE(out, "fetching ", url, " was refused: ", e->message);
    char *entry = url_grant_entry(url);
    bool plain = entry && cs_strlen(entry) > 8 && cs_memcmp(entry, "\"http://", 8) == 0;
    cs_status st = REFUSE(out, "cannot fetch ", url, ": ", e->message,
                          ". The app must grant the host to this tool in `grant: {hosts: [", entry ? entry : "", "]}`",
                          plain ? " (plain http must be written `http://`: a bare host means https)" : "");
    cs_free(entry);
    return st;
}

/* Non-2xx: "HTTP 404 from host: <the first 200 characters of the body as text>". */
static cs_status bad_status(cs_jw *out, const char *url, const cs_http_response *r, body_kind kind) {
    char status[24];
    format_int(r->status, status);
    text_sink detail;
    sink_init(&detail, ERROR_BODY_CHARS);
    detail.one_line = true;
    const char *location = cs_http_header_get(r, "location");
    if (r->status >= 300 && r->status < 400 && location) {
        sink_text(&detail, "the page moved to ", 18);
        sink_text(&detail, location, cs_strlen(location));
        sink_raw(&detail, "; fetch that URL instead (its host must be granted too)", 55);
    } else if (kind == BODY_HTML) {
        html_text(r->body, r->body_len, &detail);
    } else if (kind == BODY_TEXT) {
        sink_text(&detail, r->body, r->body_len);
    }
    if (sink_empty(&detail)) sink_text(&detail, "(no body)", 9);
    sink_finish(&detail, false);
    char *host = url_authority(url);
    cs_status st = cs_jw_ok(&detail.out) ? REFUSE(out, "HTTP ", status, " from ", host ? host : url, ": ", detail.out.data)
                                         : cs_error("out of memory", NULL);
    cs_free(host);
    sink_free(&detail);
    return st;
}

/* 2xx: the body as readable text. */
static cs_status readable(cs_jw *out, const char *url, const cs_http_response *r, body_kind kind,
                          const char *type, size_t max_chars) {
    if (kind == BODY_BINARY)
        return REFUSE(out, "cannot return ", url, ": it is ", *type ? type : "binary data",
                      ", and this tool returns only HTML, JSON and text; look for a text or HTML page instead");
    text_sink text;
    sink_init(&text, max_chars);
    if (kind == BODY_HTML) {
        text_sink title;
        sink_init(&title, 300);
        html_title(r->body, r->body_len, &title);
        sink_finish(&title, false);
        if (!sink_empty(&title)) {
            sink_raw(&text, "Title: ", 7);
            sink_raw(&text, title.out.data, title.out.len);
            sink_break(&text, 2);
        }
        sink_free(&title);
        html_text(r->body, r->body_len, &text);
    } else {
        sink_raw(&text, r->body, r->body_len);
    }
    if (sink_empty(&text)) {
        char status[24];
        format_int(r->status, status);
        sink_raw(&text, "(the response has no text: HTTP ", 32);
        sink_raw(&text, status, cs_strlen(status));
        sink_raw(&text, ")", 1);
    }
    sink_finish(&text, true);
    cs_status st = cs_jw_ok(&text.out) ? answer(out, text.out.data, text.out.len, false)
                                       : cs_error("out of memory", NULL);
    sink_free(&text);
    return st;
}

static cs_status http_get(const cs_json *in, cs_jw *out) {
    const cs_json *raw = cs_json_get(in, "input");
    if (!raw) raw = cs_json_get(cs_json_get(in, "arguments"), "url");
    if (!cs_json_is(raw, CS_JSON_STRING))
        return REFUSE(out, "expected {\"input\": \"https://...\"} or {\"arguments\": {\"url\": \"https://...\"}}");

    const char *why = NULL;
    bool quote_input = false;
    char *url = url_clean(raw->str, raw->len, &why, &quote_input);
    if (!url) return quote_input ? REFUSE(out, why, "'", raw->str, "'") : REFUSE(out, why);

    settings cfg;
    if (!read_settings(&cfg, out)) { cs_free(url); return CS_OK; }

    cs_http_header headers[] = {{"User-Agent", cfg.user_agent.data}, {"Accept", ACCEPT}};
    cs_http_request req = {.method = "GET", .url = url, .headers = headers, .n_headers = 2};
    cs_http_response r;
    cs_status st = cs_http_fetch(&req, &r);
    if (st == CS_OK) {
        char type[96];
        size_t type_len = media_type(cs_http_header_get(&r, "content-type"), type);
        body_kind kind = classify(type, type_len, r.body, r.body_len);
        if (r.status < 200 || r.status > 299) st = bad_status(out, url, &r, kind);
        else st = readable(out, url, &r, kind, type, cfg.max_chars);
        cs_http_response_free(&r);
    } else if (st == CS_ERR_HOST || st == CS_ERR_JSON) {
        st = fetch_failed(out, url);
    } else if (st == CS_ERR_NOMEM) {
        st = REFUSE(out, "the response from ", url, " is too large for this tool's memory "
                    "(raise grant.memory_pages, or fetch a smaller page)");
    }
    cs_buf_free(&cfg.user_agent);
    cs_free(url);
    return st;
}

CS_EXPORT(call) { return cs_run(http_get); }
