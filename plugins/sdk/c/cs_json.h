/*
 * cs_json.h - a small JSON reader (DOM) and writer for Chainsocket C plug-ins.
 *
 * Everything a plug-in exchanges with the host is one JSON document, so this is the part of the SDK
 * that must never be sloppy:
 *  - The reader is strict RFC 8259 (no comments, no trailing commas, no NaN), iterative (deep nesting
 *    cannot overflow the 64 KiB wasm stack), decodes \uXXXX escapes including surrogate pairs (a lone
 *    surrogate becomes U+FFFD), and keeps each number's original text so integers of any size
 *    round-trip exactly. Bytes >= 0x80 are passed through as they are.
 *  - The writer inserts commas itself, escapes '"', '\\' and control characters, replaces invalid
 *    UTF-8 with U+FFFD (the host rejects invalid UTF-8), writes non-finite doubles as null and finite
 *    ones in the shortest form that reads back to the same double.
 * A parsed document owns all its nodes and strings in one arena: free it once with cs_json_doc_free.
 */
#ifndef CS_JSON_H
#define CS_JSON_H

#include "cs_mem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CS_JSON_NULL,
    CS_JSON_BOOL,
    CS_JSON_NUMBER,
    CS_JSON_STRING,
    CS_JSON_ARRAY,
    CS_JSON_OBJECT
} cs_json_type;

/* One node of a parsed document. Read-only for users; walk children with
 *   for (const cs_json *it = v->child; it; it = it->next) ...                                     */
typedef struct cs_json cs_json;
struct cs_json {
    cs_json_type type;
    bool boolean;       /* BOOL */
    double number;      /* NUMBER: value as a double (see cs_json_int64 for exact integers) */
    const char *str;    /* STRING: decoded UTF-8, NUL-terminated (may also contain NULs: use len);
                           NUMBER: the number's text as written (NOT NUL-terminated) */
    size_t len;         /* STRING/NUMBER: byte length of str; ARRAY/OBJECT: number of children */
    const char *key;    /* member name (NUL-terminated) when the parent is an OBJECT, else NULL */
    size_t key_len;
    cs_json *child;     /* ARRAY/OBJECT: first child */
    cs_json *next;      /* next sibling */
    cs_json *parent;    /* NULL for the root */
};

typedef struct cs_json_doc cs_json_doc;

/* Why parsing failed: a static message and the byte offset in the input. */
typedef struct {
    const char *msg;
    size_t offset;
} cs_json_error;

/* Parse len bytes of text (copied; text need not be NUL-terminated). Returns NULL on malformed input
 * or out of memory; *err (if not NULL) then says why ("out of memory" for OOM). */
cs_json_doc *cs_json_parse(const char *text, size_t len, cs_json_error *err);
/* The root value; never NULL for a parsed document. */
const cs_json *cs_json_root(const cs_json_doc *doc);
/* Free the document and every node/string in it. NULL is ignored. */
void cs_json_doc_free(cs_json_doc *doc);
/* Allocate n bytes (8-aligned) that live as long as doc: handy for arrays of structs that point
 * into the document (the SDK's typed responses use it). NULL on OOM. */
void *cs_json_doc_alloc(cs_json_doc *doc, size_t n);

/* Lookups. All accept NULL and return NULL/false when the value is missing or of another type. */
const cs_json *cs_json_get(const cs_json *obj, const char *key); /* first member with that key */
const cs_json *cs_json_at(const cs_json *arr, size_t i);         /* O(i) */
const char *cs_json_string(const cs_json *v);                    /* STRING -> its text */
const char *cs_json_get_string(const cs_json *obj, const char *key);
bool cs_json_is(const cs_json *v, cs_json_type t);
/* An exact integer: the number's text is an integer in int64 range, or its double value is integral
 * and below 2^53 in magnitude (so "2.0" and "1e3" are accepted). */
bool cs_json_int64(const cs_json *v, int64_t *out);

/* ---- numbers ---- */
/* Parse a JSON number (the strict grammar, whole buffer). Correctly rounded except in rare
 * near-halfway cases beyond 15-17 significant digits. */
bool cs_json_parse_double(const char *s, size_t len, double *out);
/* Shortest text that reads back as v (JSON syntax, e.g. "0.1", "1e+21", "-5e-7"); non-finite -> "null".
 * buf needs 32 bytes; returns the length (buf is also NUL-terminated). */
size_t cs_json_format_double(double v, char buf[32]);

/* ---- writer ---- */
/* A growing output buffer with JSON helpers. Commas are automatic: call the functions in document
 * order (key then value inside objects). Out-of-memory is sticky: check cs_jw_ok() (or the SDK's
 * cs_run does) once at the end instead of after every call. */
typedef struct {
    char *data;      /* the bytes written so far (NUL-terminated while ok) */
    size_t len, cap;
    bool failed;     /* an allocation failed; data is incomplete */
    bool need_comma; /* internal */
} cs_jw;

void cs_jw_init(cs_jw *w);
void cs_jw_free(cs_jw *w);
bool cs_jw_ok(const cs_jw *w);
void cs_jw_object_begin(cs_jw *w);
void cs_jw_object_end(cs_jw *w);
void cs_jw_array_begin(cs_jw *w);
void cs_jw_array_end(cs_jw *w);
void cs_jw_key(cs_jw *w, const char *key);
void cs_jw_key_n(cs_jw *w, const char *key, size_t n);
void cs_jw_string(cs_jw *w, const char *s); /* NULL writes null */
void cs_jw_string_n(cs_jw *w, const char *s, size_t n);
void cs_jw_int(cs_jw *w, int64_t v);
void cs_jw_double(cs_jw *w, double v);
void cs_jw_bool(cs_jw *w, bool v);
void cs_jw_null(cs_jw *w);
/* A parsed value (and everything under it), compactly; numbers keep their original text. NULL
 * writes null. */
void cs_jw_value(cs_jw *w, const cs_json *v);
/* Pre-serialised JSON, as one value: the caller vouches that it is valid. */
void cs_jw_raw(cs_jw *w, const char *json, size_t n);
/* Plain bytes with no JSON meaning (lets cs_jw double as a string builder). */
void cs_jw_append(cs_jw *w, const void *bytes, size_t n);

#ifdef __cplusplus
}
#endif
#endif
